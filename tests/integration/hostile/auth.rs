//! JWT attacks (V88-V95) and invitations (V96-V100).

use crate::common::jwt::{self, add_issuer_key, add_keys, authenticate, key_file, PEM_KEYS};
use crate::common::*;
use postgres::Client;
use serde_json::{json, Value};

/// The claims of a user's token for a tenant, valid for five minutes.
fn claims(tenant: &str, user: &str) -> Value {
    json!({"tenant_id": tenant, "sub": user, "exp": unix_now() + 300})
}

/// A token assembled by hand: any header JSON, the claims, any signature text.
fn raw(header: &str, claims: &Value, sig: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    format!(
        "{}.{}.{sig}",
        B64.encode(header),
        B64.encode(serde_json::to_vec(claims).unwrap())
    )
}

/// An invitation to `role` in `slug`, made in its context.
fn invite_in(c: &mut Client, slug: &str, role: &str) -> String {
    in_tenant_tx(c, slug, |tx| {
        tx.query_one("SELECT tenant.invite('new@example.com', $1, 24)", &[&role])
    })
    .unwrap()
    .get(0)
}

fn accept(c: &mut Client, token: &str, user: &str) -> Result<String, String> {
    code_of(
        c.query_one(
            "SELECT tenant.accept_invitation($1, $2)::text",
            &[&token, &user],
        ),
        "accept_invitation",
    )
    .map(|r| r.get(0))
}

#[test]
fn jwt_attacks_are_refused_and_leave_no_context() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let db = Db::new("hx_jwt");
    let acme = db.tenant_id("acme").to_string();
    // hs1, rs1 (RS256), ps1 (PS256), es1 (ES256), hs_iss
    add_keys(&db, &PEM_KEYS[..3]);
    add_issuer_key(&db);
    su_exec(&db, "SELECT tenant.add_member('globex', 'gina')");
    let now = unix_now();
    let good = claims("acme", "alice");
    let valid = jwt::hs("hs1", &good);
    let valid_sig = valid.rsplit('.').next().unwrap().to_string();
    let hs_key = EncodingKey::from_secret(jwt::HS_SECRET.as_bytes());
    let rsa_pub = key_file("rsa_public.pem");
    let ec_pub = key_file("ec256_public.pem");
    let rsa = EncodingKey::from_rsa_pem(key_file("rsa_private.pem").as_bytes()).unwrap();
    let ec384 = EncodingKey::from_ec_pem(key_file("ec384_private.pem").as_bytes()).unwrap();
    let iss_key = EncodingKey::from_secret(jwt::ISS_SECRET.as_bytes());
    let iss =
        |claims: serde_json::Value| jwt::sign(Algorithm::HS256, Some("hs_iss"), &iss_key, &claims);
    let mut jku = Header::new(Algorithm::HS256);
    jku.kid = Some("evil".into());
    jku.jku = Some("https://evil.example/jwks.json".into());
    let cases: Vec<(&str, String, &str)> = vec![
        // V88: alg none, in every spelling, with and without a signature
        (
            "V88: alg none",
            raw(r#"{"alg":"none","typ":"JWT","kid":"hs1"}"#, &good, ""),
            "MT004",
        ),
        (
            "V88: alg None",
            raw(r#"{"alg":"None","kid":"hs1"}"#, &good, ""),
            "MT004",
        ),
        (
            "V88: alg NONE",
            raw(r#"{"alg":"NONE","kid":"hs1"}"#, &good, ""),
            "MT004",
        ),
        (
            "V88: alg nOnE",
            raw(r#"{"alg":"nOnE","kid":"hs1"}"#, &good, ""),
            "MT004",
        ),
        (
            "V88: alg none with a real signature",
            raw(r#"{"alg":"none","kid":"hs1"}"#, &good, &valid_sig),
            "MT004",
        ),
        (
            "V88: no alg",
            raw(r#"{"kid":"hs1"}"#, &good, &valid_sig),
            "MT004",
        ),
        // V89: key confusion: HMAC keyed with a public key's PEM
        (
            "V89: HS256 with the RSA public key, kid rs1",
            jwt::sign(
                Algorithm::HS256,
                Some("rs1"),
                &EncodingKey::from_secret(rsa_pub.as_bytes()),
                &good,
            ),
            "MT004",
        ),
        (
            "V89: HS256 with the RSA public key, kid ps1",
            jwt::sign(
                Algorithm::HS256,
                Some("ps1"),
                &EncodingKey::from_secret(rsa_pub.as_bytes()),
                &good,
            ),
            "MT004",
        ),
        (
            "V89: HS256 with the EC public key, kid es1",
            jwt::sign(
                Algorithm::HS256,
                Some("es1"),
                &EncodingKey::from_secret(ec_pub.as_bytes()),
                &good,
            ),
            "MT004",
        ),
        (
            "V89: HS256 with the RSA public key, no kid",
            jwt::sign(
                Algorithm::HS256,
                None,
                &EncodingKey::from_secret(rsa_pub.as_bytes()),
                &good,
            ),
            "MT004",
        ),
        // V90: unknown kids, a key URL in the header, injection through the kid
        ("V90: unknown kid", jwt::hs("nope", &good), "MT004"),
        ("V90: path in kid", jwt::hs("../hs1", &good), "MT004"),
        (
            "V90: injection in kid",
            jwt::hs("hs1' OR '1'='1", &good),
            "MT004",
        ),
        (
            "V90: jku header with the attacker's key",
            jsonwebtoken::encode(
                &jku,
                &good,
                &EncodingKey::from_secret(b"attacker-secret-0123456789abcdefghijkl"),
            )
            .unwrap(),
            "MT004",
        ),
        // V91: a kid naming a key of another algorithm
        (
            "V91: RS256 signature for the PS256 key",
            jwt::sign(Algorithm::RS256, Some("ps1"), &rsa, &good),
            "MT004",
        ),
        (
            "V91: RS256 for the HS256 key",
            jwt::sign(Algorithm::RS256, Some("hs1"), &rsa, &good),
            "MT004",
        ),
        (
            "V91: HS384 with the HS256 key's secret",
            jwt::sign(Algorithm::HS384, Some("hs1"), &hs_key, &good),
            "MT004",
        ),
        (
            "V91: HS512 with the HS256 key's secret",
            jwt::sign(Algorithm::HS512, Some("hs1"), &hs_key, &good),
            "MT004",
        ),
        (
            "V91: ES384 for the ES256 key",
            jwt::sign(Algorithm::ES384, Some("es1"), &ec384, &good),
            "MT004",
        ),
        // V92: issuer and audience of an issuer-bound key
        (
            "V92: wrong iss",
            iss(
                json!({"tenant_id": "acme", "sub": "a", "exp": now + 300, "iss": "https://evil.example", "aud": "api"}),
            ),
            "MT004",
        ),
        (
            "V92: wrong aud",
            iss(
                json!({"tenant_id": "acme", "sub": "a", "exp": now + 300, "iss": "https://id.example", "aud": "other"}),
            ),
            "MT004",
        ),
        (
            "V92: aud list without api",
            iss(
                json!({"tenant_id": "acme", "sub": "a", "exp": now + 300, "iss": "https://id.example", "aud": ["other", "apix"]}),
            ),
            "MT004",
        ),
        (
            "V92: missing iss and aud",
            iss(json!({"tenant_id": "acme", "sub": "a", "exp": now + 300})),
            "MT004",
        ),
        // V93: expired (beyond the 30 s leeway)
        (
            "V93: exp 120 s ago",
            jwt::hs(
                "hs1",
                &json!({"tenant_id": "acme", "sub": "a", "exp": now - 120}),
            ),
            "MT004",
        ),
        (
            "V93: exp a day ago",
            jwt::hs(
                "hs1",
                &json!({"tenant_id": "acme", "sub": "a", "exp": now - 86400}),
            ),
            "MT004",
        ),
        // V94: not yet valid
        (
            "V94: nbf in 5 minutes",
            jwt::hs(
                "hs1",
                &json!({"tenant_id": "acme", "sub": "a", "exp": now + 600, "nbf": now + 300}),
            ),
            "MT004",
        ),
        // V95: a tenant with members refuses a user that is not one of them
        (
            "V95: not a member",
            jwt::hs("hs1", &claims("globex", "mallory")),
            "MT005",
        ),
    ];
    let mut api = db.as_role("mt_it_api");
    for (what, token, code) in cases {
        assert_eq!(
            authenticate(&mut api, &token),
            Err(code.to_string()),
            "{what}"
        );
    }
    // control: the untampered token and the member enter their tenants
    assert_eq!(
        authenticate(&mut api, &valid).map(|entered| entered.tenant),
        Ok(acme),
        "control: valid token"
    );
    assert!(
        authenticate(&mut api, &jwt::hs("hs1", &claims("globex", "gina"))).is_ok(),
        "control: member"
    );
}

#[test]
fn invitations_cannot_be_replayed_or_redirected() {
    let db = Db::new("hx_invite");
    let other = Db::new("hx_invite_other");
    let acme = db.tenant_id("acme").to_string();
    let mut be = db.as_role("mt_it_backend");
    // V96: an invitation is single use
    let t1 = invite_in(&mut be, "acme", "member");
    assert_eq!(accept(&mut be, &t1, "u1"), Ok(acme.clone()), "first use");
    assert_eq!(
        accept(&mut be, &t1, "u1b"),
        Err("MT004".to_string()),
        "V96: second use"
    );
    // V97: an expired invitation
    let t2 = invite_in(&mut be, "acme", "member");
    su_exec(
        &db,
        "UPDATE tenant.invitations SET expires_at = now() - interval '1 second' WHERE accepted_at IS NULL",
    );
    assert_eq!(
        accept(&mut be, &t2, "u2"),
        Err("MT004".to_string()),
        "V97: expired"
    );
    // V98: acme's invitation redeemed while in globex's context joins acme, never globex
    let t3 = invite_in(&mut be, "acme", "member");
    let joined: String = in_tenant_tx(&mut be, "globex", |tx| {
        tx.query_one("SELECT tenant.accept_invitation($1, 'u3')::text", &[&t3])
    })
    .unwrap()
    .get(0);
    assert_eq!(joined, acme, "V98: joined tenant");
    assert_eq!(
        texts(
            &mut db.as_role("postgres"),
            "SELECT t.slug FROM tenant.members m JOIN tenant.tenants t ON t.id = m.tenant_id WHERE m.user_id = 'u3'"
        ),
        vec!["acme"],
        "V98: memberships of u3"
    );
    // V99: an invitation of one database is unknown in another
    let t4 = invite_in(&mut be, "acme", "member");
    let mut obe = other.as_role("mt_it_backend");
    assert_eq!(
        accept(&mut obe, &t4, "u4"),
        Err("MT004".to_string()),
        "V99: foreign invitation"
    );
    assert_eq!(
        su_i64(
            &other,
            "SELECT count(*) FROM tenant.members WHERE user_id = 'u4'"
        ),
        0,
        "V99"
    );
    // V100: only tenant_service redeems invitations
    for role in ["mt_it_app", "mt_it_api", "mt_it_evil"] {
        let mut c = db.as_role(role);
        assert_eq!(
            accept(&mut c, &t4, "mallory"),
            Err("42501".to_string()),
            "V100: {role}"
        );
    }
    assert_eq!(
        su_i64(
            &db,
            "SELECT count(*) FROM tenant.members WHERE user_id IN ('u1b', 'u2', 'mallory')"
        ),
        0,
        "V96-V100: no membership from a refused invitation"
    );
}
