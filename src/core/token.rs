//! The signed tenant context token: pure Rust, no Postgres.
//!
//! Format: `mt1.<payload>.<mac>` where `payload` is base64url(JSON of [`Claims`]) and
//! `mac` is base64url(HMAC-SHA256(secret, "mt1." + payload)). The secret is per database
//! (generated at `CREATE EXTENSION`), so a token minted in another database fails the MAC;
//! the secret's id (random, generated with it) is inside the payload as well, so it also
//! fails the claim check. On Citus the coordinator gives its secret and id to every worker
//! (`tenant.citus_sync()`), so a token minted on the coordinator verifies on every node of
//! that cluster and on no other database.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

const PREFIX: &str = "mt1.";
/// Tokens longer than this are rejected before any decoding (a context is a few hundred
/// bytes, more when it carries a JWT's claims, which are at most 16 KiB).
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// tenant id
    pub t: Uuid,
    /// user id, if any
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub u: Option<String>,
    /// issued at, unix seconds
    pub iat: i64,
    /// expires at, unix seconds
    pub exp: i64,
    /// id of the secret that signed the token (`tenant.secret.key_id`): one per database,
    /// shared by the nodes of a Citus cluster
    pub k: Uuid,
    /// read-only context (a suspended tenant with `multitenant.suspended_access = read`)
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ro: bool,
    /// roles carried by the context (from a JWT)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub r: Vec<String>,
    /// verified custom claims (from a JWT), exposed by `tenant.current_claims()`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c: Option<serde_json::Value>,
    /// the end user's address (given to `set_context` by the backend, or a JWT's
    /// `client_ip` claim), recorded by the audit trail next to the connection's
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// a system context the extension gives itself, on a Citus cluster, for the export,
    /// import or purge of a distributed table's rows: valid only while this database role
    /// (the table's owner) is the current user, whatever the tenant's status short of purged
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub o: Option<String>,
    /// with `o`: the context of a tenant's purge, whose deletions the shards' audit
    /// trigger does not log (the purge erases the tenant's chains on every node anyway)
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub p: bool,
    /// on a Citus cluster, the tenant's row-count limits for the resources that
    /// `limit_rows` counts on distributed tables, read by the shards' trigger on the workers
    /// (which have no plans): -1 unlimited (or billed as overage), None not in the plan
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l: Option<std::collections::BTreeMap<String, Option<i64>>>,
    /// on a Citus cluster, the caller's permissions on the resources `protect` guards,
    /// read by `can()` in the shards' policies on the workers (which have no roles)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub g: Option<crate::core::rbac::Carried>,
}

impl Claims {
    /// The signed system context of a Citus export, import or purge (`o`): the extension
    /// acts for the whole tenant, never for a caller.
    pub fn is_system(&self) -> bool {
        self.o.is_some()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenError {
    Empty,
    TooLong,
    Malformed,
    BadSignature,
    Expired,
    NotYetValid,
    WrongDatabase,
    /// PostgREST claims that name an unknown or inactive tenant
    Refused,
    /// a valid token whose tenant is no longer in a status that allows access (suspended
    /// with `suspended_access = none`, deleted, purged)
    Inactive,
}

impl TokenError {
    pub fn describe(self) -> &'static str {
        match self {
            TokenError::Empty => "no context",
            TokenError::TooLong => "context token too long",
            TokenError::Malformed => "malformed context token",
            TokenError::BadSignature => "context token signature does not verify",
            TokenError::Expired => "context token expired",
            TokenError::NotYetValid => "context token not yet valid",
            TokenError::WrongDatabase => "context token minted for another database",
            TokenError::Refused => "request.jwt.claims name an unknown or inactive tenant",
            TokenError::Inactive => "the context's tenant is suspended or deleted",
        }
    }
}

fn mac(secret: &[u8], signed_part: &[u8]) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts any key length");
    m.update(signed_part);
    m
}

/// Mint a token for `claims` with `secret`.
pub fn encode(secret: &[u8], claims: &Claims) -> String {
    let json = serde_json::to_vec(claims).expect("claims serialize");
    let mut out = String::with_capacity(PREFIX.len() + json.len() * 4 / 3 + 48);
    out.push_str(PREFIX);
    B64.encode_string(&json, &mut out);
    let tag = mac(secret, out.as_bytes()).finalize().into_bytes();
    out.push('.');
    B64.encode_string(tag, &mut out);
    out
}

/// Verify a token: MAC (constant time), then expiry and database.
/// `now` is unix seconds; `leeway` seconds are allowed on `iat` for clock steps.
pub fn verify(secret: &[u8], token: &str, now: i64, key_id: Uuid) -> Result<Claims, TokenError> {
    if token.is_empty() {
        return Err(TokenError::Empty);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong);
    }
    let rest = token.strip_prefix(PREFIX).ok_or(TokenError::Malformed)?;
    let dot = rest.rfind('.').ok_or(TokenError::Malformed)?;
    let (payload_b64, tag_b64) = (&rest[..dot], &rest[dot + 1..]);
    let tag = B64.decode(tag_b64).map_err(|_| TokenError::Malformed)?;
    let signed_part = &token[..PREFIX.len() + dot];
    mac(secret, signed_part.as_bytes())
        .verify_slice(&tag)
        .map_err(|_| TokenError::BadSignature)?;
    let json = B64.decode(payload_b64).map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
    if claims.k != key_id {
        return Err(TokenError::WrongDatabase);
    }
    if now >= claims.exp {
        return Err(TokenError::Expired);
    }
    if claims.iat > now + 60 {
        return Err(TokenError::NotYetValid);
    }
    Ok(claims)
}

/// The tenant a token names, read without verifying it: only to decide whether plans made
/// for another tenant must go (never to grant anything; a forged token costs a replan).
pub fn peek_tenant(token: &str) -> Option<Uuid> {
    #[derive(Deserialize)]
    struct Tenant {
        t: Uuid,
    }
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let rest = token.strip_prefix(PREFIX)?;
    let dot = rest.rfind('.')?;
    let json = B64.decode(&rest[..dot]).ok()?;
    serde_json::from_slice::<Tenant>(&json).ok().map(|t| t.t)
}

/// A token as `encode` writes it holds only base64url characters and dots: what may be put
/// into a `SET` statement as it is.
pub fn is_token_text(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_reads_the_tenant_without_the_key() {
        let c = claims();
        let tok = encode(b"k1", &c);
        assert_eq!(peek_tenant(&tok), Some(c.t));
        // whatever the signature: peeking grants nothing
        let forged = format!("{}.AAAA", &tok[..tok.rfind('.').unwrap()]);
        assert_eq!(peek_tenant(&forged), Some(c.t));
        for bad in ["", "mt1.", "mt1.!!.x", "nope", "mt1.e30.x"] {
            assert_eq!(peek_tenant(bad), None, "{bad}");
        }
    }

    fn claims() -> Claims {
        Claims {
            ip: Some("203.0.113.7".into()),
            t: Uuid::parse_str("0d6c3c1e-5a8e-4c1e-9a59-2b1f0e7f6a01").unwrap(),
            u: Some("alice".into()),
            iat: 1_000,
            exp: 2_000,
            k: ID5,
            ro: false,
            r: vec![],
            c: None,
            o: None,
            p: false,
            l: None,
            g: None,
        }
    }
    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const ID5: Uuid = Uuid::from_u128(5);

    #[test]
    fn a_system_context_names_its_role_and_others_do_not() {
        let plain = encode(KEY, &claims());
        assert!(!plain.contains(".o"));
        assert_eq!(verify(KEY, &plain, 1_500, ID5).unwrap().o, None);
        let mut sys = claims();
        sys.o = Some("app_owner".into());
        let tok = encode(KEY, &sys);
        assert_eq!(
            verify(KEY, &tok, 1_500, ID5).unwrap().o.as_deref(),
            Some("app_owner")
        );
    }

    #[test]
    fn encoded_tokens_are_token_text_and_quotes_are_not() {
        assert!(is_token_text(&encode(KEY, &claims())));
        assert!(is_token_text(""));
        for bad in ["a'b", "a b", "a\\b", "a;b", "é"] {
            assert!(!is_token_text(bad), "{bad}");
        }
    }

    #[test]
    fn round_trip() {
        let tok = encode(KEY, &claims());
        assert!(tok.starts_with("mt1."));
        assert_eq!(verify(KEY, &tok, 1_500, ID5), Ok(claims()));
    }

    #[test]
    fn other_key_fails() {
        let tok = encode(KEY, &claims());
        assert_eq!(
            verify(b"another key", &tok, 1_500, ID5),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn tampered_payload_fails() {
        let tok = encode(KEY, &claims());
        let mut other = claims();
        other.t = Uuid::nil();
        let forged_payload = encode(b"attacker", &other);
        // graft the attacker's payload onto the genuine signature
        let genuine_sig = tok.rsplit('.').next().unwrap();
        let forged_body = forged_payload.rsplit_once('.').unwrap().0;
        let forged = format!("{forged_body}.{genuine_sig}");
        assert_eq!(
            verify(KEY, &forged, 1_500, ID5),
            Err(TokenError::BadSignature)
        );
        // flip one character in the payload
        let mut bytes = tok.clone().into_bytes();
        bytes[6] = if bytes[6] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(bytes).unwrap();
        assert!(verify(KEY, &flipped, 1_500, ID5).is_err());
    }

    #[test]
    fn expiry_and_database_are_checked() {
        let tok = encode(KEY, &claims());
        assert_eq!(verify(KEY, &tok, 2_000, ID5), Err(TokenError::Expired));
        assert_eq!(
            verify(KEY, &tok, 1_500, Uuid::from_u128(6)),
            Err(TokenError::WrongDatabase)
        );
        // up to 60 s of clock skew on iat is tolerated
        assert_eq!(verify(KEY, &tok, 940, ID5), Ok(claims()));
        assert_eq!(verify(KEY, &tok, 939, ID5), Err(TokenError::NotYetValid));
    }

    #[test]
    fn garbage_is_rejected_without_panic() {
        for s in [
            "",
            "mt1.",
            "mt1..",
            "x.y.z",
            "mt1.!!!.###",
            "mt1.e30.AAAA",
            "mt1.e30",
        ] {
            assert!(verify(KEY, s, 1_500, ID5).is_err(), "{s}");
        }
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(verify(KEY, &long, 1_500, ID5), Err(TokenError::TooLong));
        // a validly signed payload that is not our JSON
        let mut body = String::from(PREFIX);
        B64.encode_string(b"[1,2,3]", &mut body);
        let tag = mac(KEY, body.as_bytes()).finalize().into_bytes();
        let tok = format!("{body}.{}", B64.encode(tag));
        assert_eq!(verify(KEY, &tok, 1_500, ID5), Err(TokenError::Malformed));
    }

    #[test]
    fn pseudo_random_inputs_never_panic() {
        // a small deterministic fuzz: xorshift bytes, with and without the prefix
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..2_000 {
            let len = (i % 97) + 1;
            let mut s = String::with_capacity(len + 4);
            if i % 2 == 0 {
                s.push_str(PREFIX);
            }
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let alphabet = b"ABCxyz019-_.=+/ {}\"";
                s.push(alphabet[(x % alphabet.len() as u64) as usize] as char);
            }
            assert!(verify(KEY, &s, 1_500, ID5).is_err());
        }
    }
}
