//! `tenant.authenticate`: JWTs verified by the database, as the untrusted tenant_user role;
//! key rotation; PostgREST claims.

use crate::common::jwt::{self, add_issuer_key, add_keys, authenticate, key_file, sign, PEM_KEYS};
use crate::common::*;

/// The claims of a user's token for a tenant (slug or id), valid for five minutes.
fn claims(tenant: &str, user: &str) -> serde_json::Value {
    serde_json::json!({"tenant_id": tenant, "sub": user, "roles": ["editor"], "exp": unix_now() + 300, "plan": "pro"})
}

#[test]
fn jwt_valid_tokens_of_every_algorithm_enter_their_tenant() {
    use jsonwebtoken::{Algorithm, EncodingKey};
    let db = Db::new("jwt_ok");
    add_keys(&db, &PEM_KEYS);
    let mut api = db.as_role("mt_it_api");
    let hs = jwt::hs("hs1", &claims("acme", "alice"));
    let entered = authenticate(&mut api, &hs).unwrap();
    assert_eq!(
        (entered.bodies, entered.slug),
        (vec!["a1".into(), "a2".into()], "acme".into())
    );
    let rsa = EncodingKey::from_rsa_pem(key_file("rsa_private.pem").as_bytes()).unwrap();
    let ec256 = EncodingKey::from_ec_pem(key_file("ec256_private.pem").as_bytes()).unwrap();
    let ec384 = EncodingKey::from_ec_pem(key_file("ec384_private.pem").as_bytes()).unwrap();
    let ed = EncodingKey::from_ed_pem(key_file("ed_private.pem").as_bytes()).unwrap();
    let globex = db.tenant_id("globex").to_string();
    for (alg, kid, key) in [
        (Algorithm::RS256, "rs1", &rsa),
        (Algorithm::PS256, "ps1", &rsa),
        (Algorithm::ES256, "es1", &ec256),
        (Algorithm::ES384, "es2", &ec384),
        (Algorithm::EdDSA, "ed1", &ed),
    ] {
        // tenant by uuid this time
        let t = sign(alg, Some(kid), key, &claims(&globex, "bob"));
        let entered = authenticate(&mut api, &t).unwrap();
        assert_eq!(
            (entered.bodies, entered.slug),
            (vec!["g1".into()], "globex".into()),
            "{alg:?}"
        );
    }
    // the verified claims are exposed, and the context ends with the transaction
    let mut tx = api.transaction().unwrap();
    tx.execute("SELECT tenant.authenticate($1)", &[&hs])
        .unwrap();
    let (user, plan, roles): (Option<String>, Option<String>, Vec<String>) = {
        let r = tx
            .query_one("SELECT tenant.current_user_id(), tenant.current_claims()->>'plan', tenant.current_roles()", &[])
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!(user.as_deref(), Some("alice"));
    assert_eq!(plan.as_deref(), Some("pro"));
    assert_eq!(roles, vec!["editor"]);
    tx.commit().unwrap();
    assert_eq!(count(&mut api), 0);
}

#[test]
fn jwt_bad_tokens_are_rejected_with_their_sqlstate() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    use jsonwebtoken::{Algorithm, EncodingKey};
    use serde_json::json;
    let db = Db::new("jwt_bad");
    add_keys(&db, &PEM_KEYS);
    add_issuer_key(&db);
    let mut su = db.as_role("postgres");
    su.batch_execute(
        "SELECT tenant.create('sleepy', 'Sleepy'); SELECT tenant.set_status('sleepy', 'suspended')",
    )
    .unwrap();
    su.batch_execute("SELECT tenant.add_member('globex', 'gina')")
        .unwrap();
    let now = unix_now();
    let good = jwt::hs("hs1", &claims("acme", "alice"));
    let parts: Vec<&str> = good.split('.').collect();
    let mut tampered_claims: serde_json::Value =
        serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    tampered_claims["tenant_id"] = json!("globex");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(serde_json::to_vec(&tampered_claims).unwrap()),
        parts[2]
    );
    let none_token = format!(
        "{}.{}.",
        B64.encode(r#"{"alg":"none","typ":"JWT","kid":"hs1"}"#),
        B64.encode(serde_json::to_vec(&claims("acme", "alice")).unwrap())
    );
    let rsa_pub = key_file("rsa_public.pem");
    let confused = sign(
        Algorithm::HS256,
        Some("rs1"),
        &EncodingKey::from_secret(rsa_pub.as_bytes()),
        &claims("acme", "alice"),
    );
    let confused_no_kid = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(rsa_pub.as_bytes()),
        &claims("acme", "alice"),
    );
    let other_rsa = EncodingKey::from_rsa_pem(key_file("rsa2_private.pem").as_bytes()).unwrap();
    let wrong_key = sign(
        Algorithm::RS256,
        Some("rs1"),
        &other_rsa,
        &claims("acme", "alice"),
    );
    let iss_secret = EncodingKey::from_secret(jwt::ISS_SECRET.as_bytes());
    let iss = |iss: &str, aud: &str| {
        sign(
            Algorithm::HS256,
            Some("hs_iss"),
            &iss_secret,
            &json!({"tenant_id": "acme", "sub": "a", "exp": now + 300, "iss": iss, "aud": aud}),
        )
    };
    let random_bytes: String = (0..300)
        .map(|i| char::from(b'!' + ((i * 37 + 11) % 90) as u8))
        .collect();
    let cases: Vec<(&str, String, &str)> = vec![
        ("tampered payload", tampered, "MT004"),
        ("signed with another key", wrong_key, "MT004"),
        ("alg none", none_token, "MT004"),
        ("HS256 with the RSA public key as secret", confused, "MT004"),
        ("same, without kid", confused_no_kid, "MT004"),
        (
            "expired",
            jwt::hs(
                "hs1",
                &json!({"tenant_id": "acme", "sub": "a", "exp": now - 120}),
            ),
            "MT004",
        ),
        (
            "not yet valid",
            jwt::hs(
                "hs1",
                &json!({"tenant_id": "acme", "sub": "a", "exp": now + 600, "nbf": now + 300}),
            ),
            "MT004",
        ),
        (
            "no exp",
            jwt::hs("hs1", &json!({"tenant_id": "acme", "sub": "a"})),
            "MT004",
        ),
        ("wrong issuer", iss("https://evil.example", "api"), "MT004"),
        (
            "wrong audience",
            iss("https://id.example", "other"),
            "MT004",
        ),
        (
            "unknown tenant",
            jwt::hs("hs1", &claims("nope", "alice")),
            "MT002",
        ),
        (
            "suspended tenant",
            jwt::hs("hs1", &claims("sleepy", "alice")),
            "MT003",
        ),
        (
            "not a member",
            jwt::hs("hs1", &claims("globex", "mallory")),
            "MT005",
        ),
        (
            "no tenant claim",
            jwt::hs("hs1", &json!({"sub": "a", "exp": now + 300})),
            "MT004",
        ),
        ("empty", String::new(), "MT004"),
        ("random bytes", random_bytes, "MT004"),
        ("one megabyte", "a".repeat(1 << 20), "MT004"),
        (
            "non-JSON payload",
            format!("{}.{}.{}", parts[0], B64.encode(b"not json"), parts[2]),
            "MT004",
        ),
    ];
    let mut api = db.as_role("mt_it_api");
    for (what, token, code) in cases {
        assert_eq!(authenticate(&mut api, &token).unwrap_err(), code, "{what}");
    }
    // the member gets in, issuer-bound tokens with the right iss/aud too
    assert_eq!(
        authenticate(&mut api, &jwt::hs("hs1", &claims("globex", "gina")))
            .unwrap()
            .slug,
        "globex"
    );
    assert_eq!(
        authenticate(&mut api, &iss("https://id.example", "api"))
            .unwrap()
            .slug,
        "acme"
    );
}

#[test]
fn jwt_api_role_cannot_read_keys_set_context_or_forge() {
    let db = Db::new("jwt_role");
    add_keys(&db, &PEM_KEYS);
    let mut api = db.as_role("mt_it_api");
    assert_eq!(err_of(&mut api, "SELECT * FROM tenant.jwt_keys"), "42501");
    assert_eq!(
        err_of(&mut api, "SELECT tenant.set_context('acme')"),
        "42501"
    );
    assert_eq!(
        err_of(
            &mut api,
            "SELECT tenant.add_jwt_key('evil', 'HS256', repeat('x', 40))"
        ),
        "42501"
    );
    assert_eq!(
        err_of(&mut api, "SELECT tenant.deactivate_jwt_key('hs1')"),
        "42501"
    );
    let mut be = db.as_role("mt_it_backend");
    assert_eq!(
        err_of(&mut be, "SELECT * FROM tenant.jwt_keys"),
        "42501",
        "tenant_service cannot read keys either"
    );
    for sql in [
        "SET multitenant.context = 'mt1.e30.AAAA'",
        "SELECT set_config('multitenant.context', 'forged', false)",
        "RESET multitenant.context",
    ] {
        api.batch_execute(sql).unwrap();
        assert_eq!(count(&mut api), 0, "{sql}");
        assert_eq!(
            err_of(&mut api, "INSERT INTO public.notes (body) VALUES ('x')"),
            "MT001",
            "{sql}"
        );
    }
    // nor change the claim mapping to trick authenticate
    assert_eq!(
        err_of(&mut api, "SET multitenant.jwt_tenant_claim = 'sub'"),
        "42501"
    );
    assert_eq!(
        err_of(&mut api, "SET multitenant.postgrest_claims = on"),
        "42501"
    );
}

#[test]
fn jwt_key_rotation_overlaps_then_retires_the_old_key() {
    use jsonwebtoken::{Algorithm, EncodingKey};
    let db = Db::new("jwt_rot");
    add_keys(&db, &PEM_KEYS);
    let mut api = db.as_role("mt_it_api");
    // an open session caches the keys now
    authenticate(&mut api, &jwt::hs("hs1", &claims("acme", "a"))).unwrap();
    let new_secret = "the-rotated-hmac-secret-0123456789abcdef";
    let mut su = db.as_role("postgres");
    su.execute(
        "SELECT tenant.rotate_jwt_key('hs1', 'hs2', 'HS256', $1, 600)",
        &[&new_secret],
    )
    .unwrap();
    let old = jwt::hs("hs1", &claims("acme", "a"));
    let new = sign(
        Algorithm::HS256,
        Some("hs2"),
        &EncodingKey::from_secret(new_secret.as_bytes()),
        &claims("acme", "a"),
    );
    assert!(
        authenticate(&mut api, &old).is_ok(),
        "old key valid during the overlap"
    );
    assert!(authenticate(&mut api, &new).is_ok(), "new key valid");
    let done: bool = q1(&mut su, "SELECT tenant.deactivate_jwt_key('hs1')");
    assert!(done);
    assert_eq!(
        authenticate(&mut api, &old).unwrap_err(),
        "MT004",
        "retired key, seen by the open session"
    );
    assert!(authenticate(&mut api, &new).is_ok());
    // bad key material is refused when written, not when used
    assert_eq!(
        err_of(
            &mut su,
            "SELECT tenant.add_jwt_key('weak', 'HS256', 'short')"
        ),
        "MT030"
    );
    assert_eq!(
        err_of(
            &mut su,
            "SELECT tenant.add_jwt_key('x', 'none', repeat('x', 40))"
        ),
        "MT030"
    );
    assert_eq!(
        err_of(
            &mut su,
            "SELECT tenant.add_jwt_key('x', 'RS256', 'not a pem')"
        ),
        "MT030"
    );
    assert_eq!(
        err_of(
            &mut su,
            "SELECT tenant.add_jwt_key('hs2', 'HS256', repeat('y', 40))"
        ),
        "MT030",
        "duplicate kid"
    );
}

#[test]
fn postgrest_claims_are_ignored_unless_turned_on() {
    let db = Db::new("pgrst");
    let mut api = db.as_role("mt_it_api");
    let claims = r#"{"tenant_id": "acme", "sub": "alice", "role": "mt_it_api"}"#;
    api.batch_execute(&format!("SET request.jwt.claims = '{claims}'"))
        .unwrap();
    assert_eq!(
        count(&mut api),
        0,
        "off by default: a client-set GUC is not trusted"
    );
    let mut su = db.as_role("postgres");
    su.batch_execute(&format!(
        "ALTER DATABASE {} SET multitenant.postgrest_claims = on",
        db.name
    ))
    .unwrap();
    let mut api = db.as_role("mt_it_api");
    api.batch_execute(&format!("SET request.jwt.claims = '{claims}'"))
        .unwrap();
    assert_eq!(bodies(&mut api), vec!["a1", "a2"]);
    let user: Option<String> = q1(&mut api, "SELECT tenant.current_user_id()");
    assert_eq!(user.as_deref(), Some("alice"));
    // a signed context, when present, wins
    let tok = token_for(&db, "globex");
    set_token(&mut api, &tok);
    assert_eq!(bodies(&mut api), vec!["g1"]);
    api.batch_execute(
        "RESET multitenant.context; SET request.jwt.claims = '{\"tenant_id\": \"nope\"}'",
    )
    .unwrap();
    assert_eq!(count(&mut api), 0, "unknown tenant in the claims: no rows");
}
