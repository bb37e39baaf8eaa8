//! JWT verification rules: pure Rust, no Postgres. The SQL side (`authenticate`) loads the
//! keys, calls [`verify`], then checks the tenant and membership against the registry.

use crate::core::error::{Code, MtError, MtResult};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::Value;

/// Longest JWT we look at; anything longer is refused before parsing.
pub const MAX_JWT_LEN: usize = 16 * 1024;

pub fn parse_alg(s: &str) -> MtResult<Algorithm> {
    Ok(match s {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        other => {
            return Err(
                MtError::invalid(format!("unsupported JWT algorithm \"{other}\""))
                    .hint("Use HS256/384/512, RS256/384/512, PS256/384/512, ES256/384 or EdDSA."),
            )
        }
    })
}

fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// Key material as stored in `tenant.jwt_keys.key`:
/// HMAC: the secret as text, or `base64:<standard base64>` for binary secrets (>= 32 bytes);
/// RSA/EC/EdDSA: a public key in PEM (`-----BEGIN PUBLIC KEY-----`) or a JWK JSON object.
pub fn parse_key(alg: Algorithm, material: &str) -> MtResult<DecodingKey> {
    let bad = |why: &str| MtError::invalid(format!("invalid key for {alg:?}: {why}"));
    if is_hmac(alg) {
        let bytes = match material.strip_prefix("base64:") {
            Some(b64) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|_| bad("not valid base64"))?
            }
            None => material.as_bytes().to_vec(),
        };
        if bytes.len() < 32 {
            return Err(bad("HMAC secrets must be at least 32 bytes"));
        }
        return Ok(DecodingKey::from_secret(&bytes));
    }
    let m = material.trim();
    if m.starts_with('{') {
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_str(m).map_err(|_| bad("not a JWK"))?;
        return DecodingKey::from_jwk(&jwk).map_err(|e| bad(&e.to_string()));
    }
    if m.contains("PRIVATE KEY") {
        return Err(bad("this is a private key; store the public key only"));
    }
    let k = match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => DecodingKey::from_rsa_pem(m.as_bytes()),
        Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(m.as_bytes()),
        Algorithm::EdDSA => DecodingKey::from_ed_pem(m.as_bytes()),
        _ => unreachable!("hmac handled above"),
    };
    k.map_err(|e| bad(&e.to_string()))
}

pub struct KeyEntry {
    pub kid: String,
    pub alg: Algorithm,
    pub key: DecodingKey,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// unix seconds
    pub valid_from: i64,
    pub valid_until: Option<i64>,
    pub active: bool,
}

impl KeyEntry {
    fn usable_at(&self, now: i64) -> bool {
        self.active && self.valid_from <= now && self.valid_until.is_none_or(|u| now < u)
    }
}

/// Which claims carry the tenant, the user and the roles (dotted paths into the payload,
/// e.g. `app_metadata.tenant_id`).
pub struct ClaimNames<'a> {
    pub tenant: &'a str,
    pub user: &'a str,
    pub roles: &'a str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// tenant claim as given (uuid or slug)
    pub tenant: String,
    pub user: Option<String>,
    pub roles: Vec<String>,
    /// the token's exp, unix seconds
    pub exp: i64,
    pub claims: Value,
    /// end of the validity window of the key that verified it (unix seconds)
    pub key_until: Option<i64>,
}

impl Identity {
    /// May a verification made earlier still be relied on at `now`?
    pub fn still_valid(&self, now: i64, leeway: u64) -> bool {
        now < self.exp.saturating_add(leeway as i64) && self.key_until.is_none_or(|u| now < u)
    }
}

pub fn invalid_token(detail: impl Into<String>) -> MtError {
    MtError::new(Code::InvalidToken, "invalid token").detail(detail)
}

/// Follow a dotted path (`a.b.c`) into a JSON object.
pub fn claim_at<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    if path.is_empty() {
        return None;
    }
    path.split('.')
        .try_fold(v, |cur, part| cur.as_object()?.get(part))
}

pub fn as_id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() && s.len() <= 256 => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Extract tenant, user and roles from verified claims.
pub fn identity_from_claims(claims: Value, names: &ClaimNames) -> MtResult<Identity> {
    let tenant = claim_at(&claims, names.tenant)
        .and_then(as_id)
        .ok_or_else(|| invalid_token(format!("the token has no \"{}\" claim", names.tenant)))?;
    let user = claim_at(&claims, names.user).and_then(as_id);
    let roles = match claim_at(&claims, names.roles) {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|r| r.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid_token(format!("\"{}\" must be strings", names.roles)))?,
        Some(_) => {
            return Err(invalid_token(format!(
                "\"{}\" must be a string array",
                names.roles
            )))
        }
    };
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(|| invalid_token("the token has no numeric exp claim"))?;
    Ok(Identity {
        tenant,
        user,
        roles,
        exp,
        claims,
        key_until: None,
    })
}

fn describe(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    let s = match e.kind() {
        K::ExpiredSignature => "token expired",
        K::ImmatureSignature => "token not yet valid (nbf)",
        K::InvalidIssuer => "wrong issuer",
        K::InvalidAudience => "wrong audience",
        K::InvalidSignature => "bad signature",
        K::InvalidAlgorithm | K::InvalidAlgorithmName => "algorithm not allowed for this key",
        K::MissingRequiredClaim(c) => return format!("missing required claim {c}"),
        K::InvalidToken => "malformed token",
        K::Base64(_) | K::Json(_) | K::Utf8(_) => "malformed token",
        _ => "token rejected",
    };
    s.to_string()
}

/// Verify `token` against `keys`: the header's `kid` picks the key (or, without a kid, every
/// usable key of the header's algorithm is tried); the header's algorithm must be the
/// key's (no algorithm confusion, no `none`); signature, `exp` (required), `nbf`, and the
/// key's `iss`/`aud` when set are checked with `leeway` seconds.
pub fn verify(
    token: &str,
    keys: &[KeyEntry],
    now: i64,
    leeway: u64,
    names: &ClaimNames,
) -> MtResult<Identity> {
    if token.is_empty() {
        return Err(invalid_token("empty token"));
    }
    if token.len() > MAX_JWT_LEN {
        return Err(invalid_token(format!(
            "token longer than {MAX_JWT_LEN} bytes"
        )));
    }
    let header = decode_header(token).map_err(|e| invalid_token(describe(&e)))?;
    let candidates: Vec<&KeyEntry> = match &header.kid {
        Some(kid) => {
            let k = keys
                .iter()
                .find(|k| &k.kid == kid)
                .ok_or_else(|| invalid_token("unknown key id"))?;
            if k.alg != header.alg {
                return Err(invalid_token("algorithm does not match the key"));
            }
            if !k.usable_at(now) {
                return Err(invalid_token("key not active"));
            }
            vec![k]
        }
        None => keys
            .iter()
            .filter(|k| k.alg == header.alg && k.usable_at(now))
            .collect(),
    };
    if candidates.is_empty() {
        return Err(invalid_token("no active key for this algorithm"));
    }
    let mut last = invalid_token("token rejected");
    for k in candidates {
        let mut v = Validation::new(k.alg);
        v.leeway = leeway;
        v.validate_exp = true;
        v.validate_nbf = true;
        // a configured iss/aud must be present, not merely correct when present
        let mut required = vec!["exp"];
        match &k.issuer {
            Some(iss) => {
                v.set_issuer(&[iss]);
                required.push("iss");
            }
            None => v.iss = None,
        }
        match &k.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                required.push("aud");
            }
            None => v.validate_aud = false,
        }
        v.set_required_spec_claims(&required);
        match decode::<Value>(token, &k.key, &v) {
            Ok(data) => {
                let mut id = identity_from_claims(data.claims, names)?;
                id.key_until = k.valid_until;
                return Ok(id);
            }
            Err(e) => last = invalid_token(describe(&e)),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &str = "an-hmac-secret-of-at-least-32-bytes!!";
    const NAMES: ClaimNames = ClaimNames {
        tenant: "tenant_id",
        user: "sub",
        roles: "roles",
    };

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn hs_key(kid: &str) -> KeyEntry {
        KeyEntry {
            kid: kid.into(),
            alg: Algorithm::HS256,
            key: parse_key(Algorithm::HS256, SECRET).unwrap(),
            issuer: None,
            audience: None,
            valid_from: 0,
            valid_until: None,
            active: true,
        }
    }

    fn sign(kid: Option<&str>, secret: &str, claims: &Value) -> String {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = kid.map(str::to_string);
        encode(&h, claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    }

    fn good_claims() -> Value {
        json!({"tenant_id": "acme", "sub": "alice", "roles": ["admin"], "exp": now() + 600, "plan": "pro"})
    }

    #[test]
    fn valid_token_yields_identity() {
        let t = sign(Some("k1"), SECRET, &good_claims());
        let id = verify(&t, &[hs_key("k1")], now(), 0, &NAMES).unwrap();
        assert!(id.still_valid(now(), 0));
        assert!(!id.still_valid(now() + 601, 0));
        assert!(id.still_valid(now() + 601, 5));
        assert_eq!(id.tenant, "acme");
        assert_eq!(id.user.as_deref(), Some("alice"));
        assert_eq!(id.roles, vec!["admin"]);
        assert_eq!(id.claims["plan"], "pro");
        // without a kid, keys of the same algorithm are tried
        let t = sign(None, SECRET, &good_claims());
        assert!(verify(&t, &[hs_key("k1")], now(), 0, &NAMES).is_ok());
    }

    #[test]
    fn rejections_are_mt004() {
        let keys = [hs_key("k1")];
        let cases = [
            (
                "other secret",
                sign(
                    Some("k1"),
                    "another-secret-that-is-long-enough!!",
                    &good_claims(),
                ),
            ),
            ("unknown kid", sign(Some("k9"), SECRET, &good_claims())),
            (
                "expired",
                sign(
                    Some("k1"),
                    SECRET,
                    &json!({"tenant_id": "a", "exp": now() - 100}),
                ),
            ),
            (
                "no exp",
                sign(Some("k1"), SECRET, &json!({"tenant_id": "a"})),
            ),
            (
                "nbf",
                sign(
                    Some("k1"),
                    SECRET,
                    &json!({"tenant_id": "a", "exp": now() + 600, "nbf": now() + 300}),
                ),
            ),
            (
                "no tenant",
                sign(Some("k1"), SECRET, &json!({"sub": "a", "exp": now() + 600})),
            ),
            ("empty", String::new()),
            ("garbage", "a.b.c".into()),
            ("huge", "a".repeat(MAX_JWT_LEN + 1)),
        ];
        for (what, t) in cases {
            let e = verify(&t, &keys, now(), 0, &NAMES).unwrap_err();
            assert_eq!(e.code, Code::InvalidToken, "{what}: {e:?}");
        }
    }

    #[test]
    fn alg_none_and_confusion_are_rejected() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
        use base64::Engine;
        let body = B64.encode(serde_json::to_vec(&good_claims()).unwrap());
        for header in [
            r#"{"alg":"none","typ":"JWT"}"#,
            r#"{"alg":"none","kid":"k1"}"#,
            r#"{"alg":"HS256","kid":"k1"}"#,
        ] {
            let t = format!("{}.{body}.", B64.encode(header));
            assert_eq!(
                verify(&t, &[hs_key("k1")], now(), 0, &NAMES)
                    .unwrap_err()
                    .code,
                Code::InvalidToken
            );
        }
        // an RS256 key whose public PEM is used as an HS256 secret by an attacker
        let pem = include_str!("../../tests/keys/rsa_public.pem");
        let rsa = KeyEntry {
            alg: Algorithm::RS256,
            key: parse_key(Algorithm::RS256, pem).unwrap(),
            ..hs_key("rsa")
        };
        let forged = sign(Some("rsa"), pem, &good_claims());
        let e = verify(&forged, &[rsa], now(), 0, &NAMES).unwrap_err();
        assert_eq!(
            e.detail.as_deref(),
            Some("algorithm does not match the key")
        );
    }

    #[test]
    fn issuer_audience_window_and_leeway() {
        let mut k = hs_key("k1");
        k.issuer = Some("https://issuer".into());
        k.audience = Some("api".into());
        let mut c = good_claims();
        let t = sign(Some("k1"), SECRET, &c);
        let d = verify(&t, std::slice::from_ref(&k), now(), 0, &NAMES)
            .unwrap_err()
            .detail
            .unwrap();
        assert!(
            d == "wrong issuer" || d.starts_with("missing required claim"),
            "{d}"
        );
        c["iss"] = json!("https://issuer");
        c["aud"] = json!("other");
        let t = sign(Some("k1"), SECRET, &c);
        assert_eq!(
            verify(&t, std::slice::from_ref(&k), now(), 0, &NAMES)
                .unwrap_err()
                .detail
                .as_deref(),
            Some("wrong audience")
        );
        c["aud"] = json!("api");
        let t = sign(Some("k1"), SECRET, &c);
        assert!(verify(&t, std::slice::from_ref(&k), now(), 0, &NAMES).is_ok());
        // key validity window
        k.valid_until = Some(now() - 1);
        assert_eq!(
            verify(&t, std::slice::from_ref(&k), now(), 0, &NAMES)
                .unwrap_err()
                .detail
                .as_deref(),
            Some("key not active")
        );
        // leeway
        let t = sign(
            Some("k1"),
            SECRET,
            &json!({"tenant_id": "a", "exp": now() - 5}),
        );
        assert!(verify(&t, &[hs_key("k1")], now(), 0, &NAMES).is_err());
        assert!(verify(&t, &[hs_key("k1")], now(), 60, &NAMES).is_ok());
    }

    #[test]
    fn claim_paths_and_roles() {
        let c = json!({"app_metadata": {"tenant": "t1"}, "sub": 42, "role": "viewer", "exp": 1});
        let names = ClaimNames {
            tenant: "app_metadata.tenant",
            user: "sub",
            roles: "role",
        };
        let id = identity_from_claims(c, &names).unwrap();
        assert_eq!(id.tenant, "t1");
        assert_eq!(id.user.as_deref(), Some("42"));
        assert_eq!(id.roles, vec!["viewer"]);
        assert!(claim_at(&json!({"a": 1}), "a.b").is_none());
        assert!(claim_at(&json!({"a": 1}), "").is_none());
        let bad = json!({"tenant_id": "t", "roles": [1, 2], "exp": 1});
        assert_eq!(
            identity_from_claims(bad, &NAMES).unwrap_err().code,
            Code::InvalidToken
        );
    }

    #[test]
    fn key_material_is_validated() {
        assert!(parse_key(Algorithm::HS256, "short").is_err());
        assert!(parse_key(Algorithm::HS256, "base64:!!!").is_err());
        assert!(parse_key(Algorithm::HS512, &format!("base64:{}", "QUFB".repeat(11))).is_ok());
        assert!(parse_key(Algorithm::RS256, "not a pem").is_err());
        assert!(parse_key(
            Algorithm::RS256,
            include_str!("../../tests/keys/rsa_private.pem")
        )
        .is_err());
        assert!(parse_key(
            Algorithm::ES256,
            include_str!("../../tests/keys/ec256_public.pem")
        )
        .is_ok());
        assert!(parse_key(
            Algorithm::EdDSA,
            include_str!("../../tests/keys/ed_public.pem")
        )
        .is_ok());
        assert!(parse_alg("none").is_err());
        assert!(parse_alg("HS256").is_ok());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC{0,300}") {
            let _ = verify(&s, &[hs_key("k1")], now(), 0, &NAMES);
        }

        #[test]
        fn arbitrary_dotted_tokens_never_verify(a in "[A-Za-z0-9_-]{0,80}", b in "[A-Za-z0-9_-]{0,200}", c in "[A-Za-z0-9_-]{0,80}") {
            let t = format!("{a}.{b}.{c}");
            proptest::prop_assert!(verify(&t, &[hs_key("k1")], now(), 0, &NAMES).is_err());
        }

        #[test]
        fn arbitrary_claims_never_panic(tenant in proptest::option::of("\\PC{0,40}"), sub in proptest::option::of(0i64..1000), roles in proptest::collection::vec("[a-z]{0,8}", 0..4)) {
            let mut c = json!({"exp": now() + 60, "roles": roles});
            if let Some(t) = tenant { c["tenant_id"] = json!(t); }
            if let Some(s) = sub { c["sub"] = json!(s); }
            let t = sign(Some("k1"), SECRET, &c);
            let _ = verify(&t, &[hs_key("k1")], now(), 0, &NAMES);
        }
    }
}
