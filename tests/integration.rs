//! Client integration suite: a real PostgreSQL cluster with the extension installed
//! (`scripts/test.sh` starts one with `scripts/cluster.sh`), reached through the `postgres`
//! client crate as distinct roles:
//!   postgres          superuser (setup only)
//!   mt_it_owner       non-superuser that owns the application tables
//!   mt_it_backend     trusted backend, member of tenant_service
//!   mt_it_app         plain application role (no tenant role at all)
//!   mt_it_api         untrusted API role, member of tenant_user
//! Every test gets a fresh database with a fresh extension (and so a fresh secret).
//!
//! Built only with `--features integration`; `scripts/test.sh` starts the cluster, sets
//! MT_PGPORT and runs it. Without MT_PGPORT the tests fail rather than pass vacuously.

mod common;
use common::*;
use postgres::Client;

#[test]
fn tenants_cannot_see_or_change_each_other() {
    let db = Db::new("cross");
    let globex = db.tenant_id("globex");
    let mut be = db.as_role("mt_it_backend");
    be.batch_execute("BEGIN; SELECT tenant.set_context('acme')")
        .unwrap();
    assert_eq!(bodies(&mut be), vec!["a1", "a2"]);
    // reads that name the other tenant find nothing
    let n: i64 = be
        .query_one(
            "SELECT count(*) FROM public.notes WHERE tenant_id::text = $1",
            &[&globex.to_string()],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    // updates and deletes aimed at the other tenant change nothing
    assert_eq!(
        be.execute("UPDATE public.notes SET body = 'x' WHERE body = 'g1'", &[])
            .unwrap(),
        0
    );
    assert_eq!(
        be.execute("DELETE FROM public.notes WHERE body = 'g1'", &[])
            .unwrap(),
        0
    );
    // moving an own row to the other tenant is refused
    let e = be
        .execute(
            "UPDATE public.notes SET tenant_id = $1::text::uuid WHERE body = 'a1'",
            &[&globex.to_string()],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&e), "42501");
    be.batch_execute("ROLLBACK").unwrap();
    // inserting a row for the other tenant is refused
    let st = err_of(
        &mut be,
        &format!("BEGIN; SELECT tenant.set_context('acme'); INSERT INTO public.notes (tenant_id, body) VALUES ('{globex}', 'planted')"),
    );
    assert_eq!(st, "42501");
    assert_eq!(db.all_bodies(), vec!["a1", "a2", "g1"], "nothing changed");
    // and globex sees exactly its own row
    be.batch_execute("BEGIN; SELECT tenant.set_context('globex')")
        .unwrap();
    assert_eq!(bodies(&mut be), vec!["g1"]);
    be.batch_execute("COMMIT").unwrap();
}

#[test]
fn no_context_means_no_rows_and_insert_fails() {
    let db = Db::new("noctx");
    for role in ["mt_it_backend", "mt_it_app", "mt_it_api", "mt_it_owner"] {
        let mut c = db.as_role(role);
        assert_eq!(count(&mut c), 0, "{role} sees rows without a context");
        assert_eq!(
            err_of(&mut c, "INSERT INTO public.notes (body) VALUES ('x')"),
            "MT001",
            "{role}"
        );
        let tid = db.tenant_id("acme");
        assert_eq!(
            err_of(
                &mut c,
                &format!("INSERT INTO public.notes (tenant_id, body) VALUES ('{tid}', 'x')")
            ),
            "MT001",
            "{role} with an explicit tenant_id"
        );
        assert_eq!(
            err_of(&mut c, "DELETE FROM public.notes"),
            "MT001",
            "{role}"
        );
        assert_eq!(
            err_of(&mut c, "UPDATE public.notes SET body = 'x'"),
            "MT001",
            "{role}"
        );
    }
    assert_eq!(db.all_bodies(), vec!["a1", "a2", "g1"]);
}

#[test]
fn table_owner_is_held_by_the_policy() {
    let db = Db::new("owner");
    let mut owner = db.as_role("mt_it_owner");
    assert_eq!(
        count(&mut owner),
        0,
        "FORCE ROW LEVEL SECURITY applies to the owner"
    );
    let tok = token_for(&db, "globex");
    owner
        .batch_execute(&format!("BEGIN; SET LOCAL multitenant.context = '{tok}'"))
        .unwrap();
    assert_eq!(bodies(&mut owner), vec!["g1"]);
    assert_eq!(
        owner
            .execute("DELETE FROM public.notes WHERE body LIKE 'a%'", &[])
            .unwrap(),
        0
    );
    owner.batch_execute("COMMIT").unwrap();
    assert_eq!(db.all_bodies(), vec!["a1", "a2", "g1"]);
}

#[test]
fn forged_tampered_and_foreign_tokens_are_no_context() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    let db = Db::new("forge");
    let other = Db::new("forge_other");
    let globex = db.tenant_id("globex");
    let acme_token = token_for(&db, "acme");
    // tampered: same signature, payload rewritten to the other tenant
    let parts: Vec<&str> = acme_token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let mut claims: serde_json::Value =
        serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    claims["t"] = serde_json::Value::String(globex.to_string());
    let tampered = format!(
        "mt1.{}.{}",
        B64.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    // made up from scratch
    let made_up = format!(
        "mt1.{}.{}",
        B64.encode(serde_json::to_vec(&claims).unwrap()),
        B64.encode([7u8; 32])
    );
    // valid, but minted in another database (whose tenant has the same slug)
    let foreign = token_for(&other, "globex");
    let mut app = db.as_role("mt_it_app");
    for (what, tok) in [
        ("made up", made_up),
        ("tampered", tampered),
        ("foreign", foreign),
        ("junk", "x".repeat(5000)),
    ] {
        app.batch_execute(&format!("SET multitenant.context = '{tok}'"))
            .unwrap();
        let cur: Option<String> = app
            .query_one("SELECT tenant.current_tenant()::text", &[])
            .unwrap()
            .get(0);
        assert_eq!(cur, None, "{what}");
        assert_eq!(count(&mut app), 0, "{what}");
        assert_eq!(
            err_of(
                &mut app,
                "INSERT INTO public.notes (body) VALUES ('forged')"
            ),
            "MT001",
            "{what}"
        );
        assert_eq!(
            err_of(&mut app, "DELETE FROM public.notes"),
            "MT001",
            "{what}"
        );
        assert_eq!(
            err_of(&mut app, "UPDATE public.notes SET body = 'x'"),
            "MT001",
            "{what}"
        );
        // set_config() is no better than SET
        app.query_one(
            "SELECT set_config('multitenant.context', $1, false)",
            &[&tok],
        )
        .unwrap();
        assert_eq!(count(&mut app), 0, "{what} via set_config");
    }
    app.batch_execute("RESET multitenant.context").unwrap();
    assert_eq!(count(&mut app), 0);
    assert_eq!(db.all_bodies(), vec!["a1", "a2", "g1"]);
}

#[test]
fn a_minted_token_travels_to_another_role_and_connection() {
    // what a transaction-pooling proxy does: the backend mints, another session carries it
    let db = Db::new("travel");
    let tok = token_for(&db, "acme");
    let mut app = db.as_role("mt_it_app");
    app.batch_execute(&format!("BEGIN; SET LOCAL multitenant.context = '{tok}'"))
        .unwrap();
    assert_eq!(bodies(&mut app), vec!["a1", "a2"]);
    app.execute("INSERT INTO public.notes (body) VALUES ('a3')", &[])
        .unwrap();
    app.batch_execute("COMMIT").unwrap();
    assert_eq!(count(&mut app), 0, "SET LOCAL ended with the transaction");
    assert_eq!(db.all_bodies(), vec!["a1", "a2", "a3", "g1"]);
    let mut su = db.as_role("postgres");
    let owner_tenant: String = su
        .query_one("SELECT t.slug FROM public.notes n JOIN tenant.tenants t ON t.id = n.tenant_id WHERE body = 'a3'", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        owner_tenant, "acme",
        "the default filled the tenant from the context"
    );
}

#[test]
fn set_context_is_only_for_tenant_service() {
    let db = Db::new("svc");
    for role in ["mt_it_app", "mt_it_api", "mt_it_owner"] {
        let mut c = db.as_role(role);
        assert_eq!(
            err_of(&mut c, "SELECT tenant.set_context('acme')"),
            "42501",
            "{role}"
        );
        assert_eq!(
            err_of(&mut c, "SELECT tenant.create('evil', 'Evil')"),
            "42501",
            "{role}"
        );
    }
    // even with EXECUTE granted, the role check inside refuses (MT020)
    let mut su = db.as_role("postgres");
    su.batch_execute(
        "GRANT EXECUTE ON FUNCTION tenant.set_context(text, text, boolean) TO mt_it_app",
    )
    .unwrap();
    let mut app = db.as_role("mt_it_app");
    assert_eq!(
        err_of(&mut app, "SELECT tenant.set_context('acme')"),
        "MT020"
    );
}

#[test]
fn the_secret_is_not_readable_by_application_roles() {
    let db = Db::new("secret");
    for role in ["mt_it_backend", "mt_it_app", "mt_it_api", "mt_it_owner"] {
        let mut c = db.as_role(role);
        assert_eq!(
            err_of(&mut c, "SELECT key FROM tenant.secret"),
            "42501",
            "{role}"
        );
        assert_eq!(
            err_of(&mut c, "UPDATE tenant.secret SET key = key"),
            "42501",
            "{role}"
        );
    }
}

#[test]
fn context_is_transaction_local_unless_session_scope_is_asked() {
    let db = Db::new("scope");
    let mut be = db.as_role("mt_it_backend");
    be.batch_execute("BEGIN; SELECT tenant.set_context('acme')")
        .unwrap();
    assert_eq!(count(&mut be), 2);
    be.batch_execute("COMMIT").unwrap();
    assert_eq!(count(&mut be), 0, "gone in the next transaction");
    // a rolled back transaction takes its context with it too
    be.batch_execute("BEGIN; SELECT tenant.set_context('acme'); ROLLBACK")
        .unwrap();
    assert_eq!(count(&mut be), 0);
    // session scope, explicitly
    be.batch_execute("SELECT tenant.set_context('globex', 'bob', is_local => false)")
        .unwrap();
    assert_eq!(count(&mut be), 1);
    assert_eq!(count(&mut be), 1, "still there in the next transaction");
    let user: Option<String> = be
        .query_one("SELECT tenant.current_user_id()", &[])
        .unwrap()
        .get(0);
    assert_eq!(user.as_deref(), Some("bob"));
    be.batch_execute("SELECT tenant.clear_context()").unwrap();
    assert_eq!(count(&mut be), 0);
}

#[test]
fn unknown_suspended_and_deleted_tenants_are_refused() {
    let db = Db::new("status");
    let mut be = db.as_role("mt_it_backend");
    assert_eq!(
        err_of(&mut be, "SELECT tenant.set_context('nope')"),
        "MT002"
    );
    assert_eq!(
        err_of(
            &mut be,
            "SELECT tenant.set_context('00000000-0000-0000-0000-000000000000')"
        ),
        "MT002"
    );
    // an open session that cached the tenant as active must see the suspension at once
    let mut other = db.as_role("mt_it_backend");
    other
        .batch_execute("BEGIN; SELECT tenant.set_context('acme'); COMMIT")
        .unwrap();
    be.batch_execute("SELECT tenant.set_status('acme', 'suspended')")
        .unwrap();
    assert_eq!(
        err_of(&mut other, "SELECT tenant.set_context('acme')"),
        "MT003"
    );
    assert_eq!(
        err_of(&mut be, "SELECT tenant.set_context('acme')"),
        "MT003"
    );
    be.batch_execute("SELECT tenant.set_status('acme', 'active')")
        .unwrap();
    other
        .batch_execute("BEGIN; SELECT tenant.set_context('acme'); COMMIT")
        .unwrap();
    be.batch_execute("SELECT tenant.set_status('acme', 'deleted')")
        .unwrap();
    assert_eq!(
        err_of(&mut be, "SELECT tenant.set_context('acme')"),
        "MT003"
    );
    assert_eq!(
        err_of(&mut be, "SELECT tenant.set_status('acme', 'active')"),
        "MT040"
    );
}

#[test]
fn bad_input_gets_specific_sqlstates() {
    let db = Db::new("input");
    let mut be = db.as_role("mt_it_backend");
    for sql in [
        "SELECT tenant.create('Bad Slug', 'x')",
        "SELECT tenant.create('-x', 'x')",
        "SELECT tenant.create('ok', '   ')",
        "SELECT tenant.create('ok', 'Ok', status => 'purged')",
        "SELECT tenant.create('ok', 'Ok', status => 'nonsense')",
        "SELECT tenant.create('ok', 'Ok', settings => '[1]')",
        "SELECT tenant.create('acme', 'Duplicate')",
        "SELECT tenant.set_context('acme', '')",
    ] {
        assert_eq!(err_of(&mut be, sql), "MT030", "{sql}");
    }
    let mut owner = db.as_role("mt_it_owner");
    owner
        .batch_execute("CREATE TABLE public.other (id int PRIMARY KEY, tenant_id text, org uuid)")
        .unwrap();
    assert_eq!(
        err_of(&mut owner, "SELECT tenant.isolate('public.other')"),
        "MT030",
        "text column"
    );
    assert_eq!(
        err_of(&mut owner, "SELECT tenant.isolate('public.other', 'nope')"),
        "MT030"
    );
    assert_eq!(
        err_of(&mut owner, "SELECT tenant.isolate('public.missing')"),
        "42P01"
    );
    owner
        .batch_execute("SELECT tenant.isolate('public.other', 'org')")
        .unwrap();
    assert_eq!(
        err_of(
            &mut owner,
            "SELECT tenant.isolate('public.other', 'tenant_id')"
        ),
        "MT030",
        "other column"
    );
    // only the owner may isolate or unisolate
    assert_eq!(
        err_of(&mut be, "SELECT tenant.unisolate('public.notes')"),
        "MT020"
    );
    assert_eq!(
        err_of(&mut be, "SELECT tenant.isolate('public.other', 'org')"),
        "MT020"
    );
    // a failed isolate leaves nothing behind
    let n: i64 = owner
        .query_one("SELECT count(*) FROM tenant.isolated_tables", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
}

#[test]
fn isolate_then_unisolate_round_trip_through_client() {
    let db = Db::new("unisolate");
    let mut owner = db.as_role("mt_it_owner");
    owner
        .batch_execute("SELECT tenant.isolate('public.notes')")
        .unwrap();
    let n: i64 = owner
        .query_one(
            "SELECT count(*) FROM pg_policies WHERE tablename = 'notes'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 4, "idempotent: still four policies");
    let done: bool = owner
        .query_one("SELECT tenant.unisolate('public.notes')", &[])
        .unwrap()
        .get(0);
    assert!(done);
    assert_eq!(
        count(&mut owner),
        3,
        "without isolation the owner sees every row again"
    );
    owner
        .batch_execute("SELECT tenant.isolate('public.notes')")
        .unwrap();
    assert_eq!(count(&mut owner), 0);
}

#[test]
fn many_connections_each_see_only_their_tenant() {
    let db = Db::new("conc");
    let mut be = db.as_role("mt_it_backend");
    for i in 0..8 {
        be.execute("SELECT tenant.create($1, $1)", &[&format!("t{i}")])
            .unwrap();
    }
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let name = db.name.clone();
            std::thread::spawn(move || {
                let mut c = connect(&name, "mt_it_backend");
                let slug = format!("t{i}");
                for k in 0..25 {
                    let mut tx = c.transaction().unwrap();
                    tx.execute("SELECT tenant.set_context($1)", &[&slug])
                        .unwrap();
                    tx.execute(
                        "INSERT INTO public.notes (body) VALUES ($1)",
                        &[&format!("{slug}-{k}")],
                    )
                    .unwrap();
                    let rows = tx.query("SELECT body FROM public.notes", &[]).unwrap();
                    assert_eq!(rows.len(), k + 1);
                    for r in rows {
                        let b: String = r.get(0);
                        assert!(b.starts_with(&format!("{slug}-")), "{slug} saw {b}");
                    }
                    tx.commit().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(db.all_bodies().len(), 3 + 8 * 25);
}

// ---------------------------------------------------------------------------------------
// tenant.authenticate: JWTs verified by the database, as the untrusted tenant_user role
// ---------------------------------------------------------------------------------------

mod jwt {
    use super::*;
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    use serde_json::{json, Value};

    pub const HS_SECRET: &str = "integration-hmac-secret-0123456789abcdef";

    pub fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    pub fn key_file(name: &str) -> String {
        std::fs::read_to_string(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
    }

    pub fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
        let mut h = Header::new(alg);
        h.kid = kid.map(str::to_string);
        encode(&h, claims, key).unwrap()
    }

    pub fn hs(kid: &str, claims: &Value) -> String {
        sign(
            Algorithm::HS256,
            Some(kid),
            &EncodingKey::from_secret(HS_SECRET.as_bytes()),
            claims,
        )
    }

    pub fn claims(tenant: &str, user: &str) -> Value {
        json!({"tenant_id": tenant, "sub": user, "roles": ["editor"], "exp": now() + 300, "plan": "pro"})
    }

    /// Register the HS256 key `hs1` and asymmetric keys as tenant_admin (a superuser here).
    pub fn setup_keys(db: &Db) {
        let mut su = db.as_role("postgres");
        su.execute(
            "SELECT tenant.add_jwt_key('hs1', 'HS256', $1)",
            &[&HS_SECRET],
        )
        .unwrap();
        for (kid, alg, file) in [
            ("rs1", "RS256", "rsa_public.pem"),
            ("ps1", "PS256", "rsa_public.pem"),
            ("es1", "ES256", "ec256_public.pem"),
            ("es2", "ES384", "ec384_public.pem"),
            ("ed1", "EdDSA", "ed_public.pem"),
        ] {
            su.execute(
                "SELECT tenant.add_jwt_key($1, $2, $3)",
                &[&kid, &alg, &key_file(file)],
            )
            .unwrap();
        }
    }

    /// authenticate in a transaction, then return the rows visible and the context's tenant slug.
    pub fn auth_and_read(c: &mut Client, token: &str) -> Result<(Vec<String>, String), String> {
        let mut tx = c.transaction().unwrap();
        if let Err(e) = tx.execute("SELECT tenant.authenticate($1)", &[&token]) {
            let code = sqlstate(&e);
            eprintln!("authenticate failed: {e:?}");
            drop(tx);
            // and nothing is left behind
            let cur: Option<String> = c
                .query_one("SELECT tenant.current_tenant()::text", &[])
                .unwrap()
                .get(0);
            assert_eq!(cur, None, "a failed authenticate left a context");
            assert_eq!(count(c), 0);
            return Err(code);
        }
        let rows: Vec<String> = tx
            .query("SELECT body FROM public.notes ORDER BY body", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let slug: String = tx
            .query_one(
                "SELECT slug FROM tenant.tenants WHERE id = tenant.current_tenant()",
                &[],
            )
            .unwrap()
            .get(0);
        tx.commit().unwrap();
        Ok((rows, slug))
    }
}

#[test]
fn jwt_valid_tokens_of_every_algorithm_enter_their_tenant() {
    use jsonwebtoken::{Algorithm, EncodingKey};
    let db = Db::new("jwt_ok");
    jwt::setup_keys(&db);
    let mut api = db.as_role("mt_it_api");
    let hs = jwt::hs("hs1", &jwt::claims("acme", "alice"));
    assert_eq!(
        jwt::auth_and_read(&mut api, &hs).unwrap(),
        (vec!["a1".into(), "a2".into()], "acme".into())
    );
    let rsa = EncodingKey::from_rsa_pem(jwt::key_file("rsa_private.pem").as_bytes()).unwrap();
    let ec256 = EncodingKey::from_ec_pem(jwt::key_file("ec256_private.pem").as_bytes()).unwrap();
    let ec384 = EncodingKey::from_ec_pem(jwt::key_file("ec384_private.pem").as_bytes()).unwrap();
    let ed = EncodingKey::from_ed_pem(jwt::key_file("ed_private.pem").as_bytes()).unwrap();
    let globex = db.tenant_id("globex").to_string();
    for (alg, kid, key) in [
        (Algorithm::RS256, "rs1", &rsa),
        (Algorithm::PS256, "ps1", &rsa),
        (Algorithm::ES256, "es1", &ec256),
        (Algorithm::ES384, "es2", &ec384),
        (Algorithm::EdDSA, "ed1", &ed),
    ] {
        // tenant by uuid this time
        let t = jwt::sign(alg, Some(kid), key, &jwt::claims(&globex, "bob"));
        assert_eq!(
            jwt::auth_and_read(&mut api, &t).unwrap(),
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
    jwt::setup_keys(&db);
    let mut su = db.as_role("postgres");
    su.execute(
        "SELECT tenant.add_jwt_key('hs_iss', 'HS256', $1, issuer => 'https://id.example', audience => 'api')",
        &[&"issuer-bound-secret-0123456789abcdefghij"],
    )
    .unwrap();
    su.batch_execute(
        "SELECT tenant.create('sleepy', 'Sleepy'); SELECT tenant.set_status('sleepy', 'suspended')",
    )
    .unwrap();
    su.batch_execute("SELECT tenant.add_member('globex', 'gina')")
        .unwrap();
    let now = jwt::now();
    let good = jwt::hs("hs1", &jwt::claims("acme", "alice"));
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
        B64.encode(serde_json::to_vec(&jwt::claims("acme", "alice")).unwrap())
    );
    let rsa_pub = jwt::key_file("rsa_public.pem");
    let confused = jwt::sign(
        Algorithm::HS256,
        Some("rs1"),
        &EncodingKey::from_secret(rsa_pub.as_bytes()),
        &jwt::claims("acme", "alice"),
    );
    let confused_no_kid = jwt::sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(rsa_pub.as_bytes()),
        &jwt::claims("acme", "alice"),
    );
    let other_rsa =
        EncodingKey::from_rsa_pem(jwt::key_file("rsa2_private.pem").as_bytes()).unwrap();
    let wrong_key = jwt::sign(
        Algorithm::RS256,
        Some("rs1"),
        &other_rsa,
        &jwt::claims("acme", "alice"),
    );
    let iss_secret = EncodingKey::from_secret(b"issuer-bound-secret-0123456789abcdefghij");
    let iss = |iss: &str, aud: &str| {
        jwt::sign(
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
            jwt::hs("hs1", &jwt::claims("nope", "alice")),
            "MT002",
        ),
        (
            "suspended tenant",
            jwt::hs("hs1", &jwt::claims("sleepy", "alice")),
            "MT003",
        ),
        (
            "not a member",
            jwt::hs("hs1", &jwt::claims("globex", "mallory")),
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
        assert_eq!(
            jwt::auth_and_read(&mut api, &token).unwrap_err(),
            code,
            "{what}"
        );
    }
    // the member gets in, issuer-bound tokens with the right iss/aud too
    assert_eq!(
        jwt::auth_and_read(&mut api, &jwt::hs("hs1", &jwt::claims("globex", "gina")))
            .unwrap()
            .1,
        "globex"
    );
    assert_eq!(
        jwt::auth_and_read(&mut api, &iss("https://id.example", "api"))
            .unwrap()
            .1,
        "acme"
    );
}

#[test]
fn jwt_api_role_cannot_read_keys_set_context_or_forge() {
    let db = Db::new("jwt_role");
    jwt::setup_keys(&db);
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
    jwt::setup_keys(&db);
    let mut api = db.as_role("mt_it_api");
    // an open session caches the keys now
    jwt::auth_and_read(&mut api, &jwt::hs("hs1", &jwt::claims("acme", "a"))).unwrap();
    let new_secret = "the-rotated-hmac-secret-0123456789abcdef";
    let mut su = db.as_role("postgres");
    su.execute(
        "SELECT tenant.rotate_jwt_key('hs1', 'hs2', 'HS256', $1, 600)",
        &[&new_secret],
    )
    .unwrap();
    let old = jwt::hs("hs1", &jwt::claims("acme", "a"));
    let new = jwt::sign(
        Algorithm::HS256,
        Some("hs2"),
        &EncodingKey::from_secret(new_secret.as_bytes()),
        &jwt::claims("acme", "a"),
    );
    assert!(
        jwt::auth_and_read(&mut api, &old).is_ok(),
        "old key valid during the overlap"
    );
    assert!(jwt::auth_and_read(&mut api, &new).is_ok(), "new key valid");
    let done: bool = su
        .query_one("SELECT tenant.deactivate_jwt_key('hs1')", &[])
        .unwrap()
        .get(0);
    assert!(done);
    assert_eq!(
        jwt::auth_and_read(&mut api, &old).unwrap_err(),
        "MT004",
        "retired key, seen by the open session"
    );
    assert!(jwt::auth_and_read(&mut api, &new).is_ok());
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
    let user: Option<String> = api
        .query_one("SELECT tenant.current_user_id()", &[])
        .unwrap()
        .get(0);
    assert_eq!(user.as_deref(), Some("alice"));
    // a signed context, when present, wins
    let tok = token_for(&db, "globex");
    api.batch_execute(&format!("SET multitenant.context = '{tok}'"))
        .unwrap();
    assert_eq!(bodies(&mut api), vec!["g1"]);
    api.batch_execute(
        "RESET multitenant.context; SET request.jwt.claims = '{\"tenant_id\": \"nope\"}'",
    )
    .unwrap();
    assert_eq!(count(&mut api), 0, "unknown tenant in the claims: no rows");
}

// ---------------------------------------------------------------------------------------
// Plans, features and quotas
// ---------------------------------------------------------------------------------------

fn load_plans(db: &Db) {
    let mut su = db.as_role("postgres");
    su.batch_execute(
        r#"SELECT tenant.load_plan('{"name": "free", "price": 0, "currency": "USD",
              "limits": {"api_calls_per_month": 5000, "users": 20, "campaigns": 1,
                         "requests_per_minute": 100, "missions_per_month": 10},
              "features": ["basic_analytics"], "restrictions": ["no_custom_branding"],
              "overage": {"missions": 0.5}}');
           SELECT tenant.load_plan('{"name": "enterprise", "price": 499, "currency": "USD",
              "limits": {"api_calls_per_month": -1, "users": -1, "campaigns": -1},
              "features": ["basic_analytics", "sso_integration", "audit_logs"]}');
           SELECT tenant.set_plan('acme', 'free');
           SELECT tenant.set_plan('globex', 'free');"#,
    )
    .unwrap();
}

fn in_tenant(c: &mut Client, slug: &str, sql: &str) -> Result<Vec<postgres::Row>, String> {
    let mut tx = c.transaction().unwrap();
    tx.execute("SELECT tenant.set_context($1)", &[&slug])
        .unwrap();
    match tx.query(sql, &[]) {
        Ok(rows) => {
            tx.commit().unwrap();
            Ok(rows)
        }
        Err(e) => Err(sqlstate(&e)),
    }
}

#[test]
fn quota_32_connections_take_exactly_the_last_1000_units() {
    let db = Db::new("quota_conc");
    load_plans(&db);
    let mut be = db.as_role("mt_it_backend");
    let left: i64 =
        in_tenant(&mut be, "acme", "SELECT tenant.consume('api_calls', 4000)").unwrap()[0].get(0);
    assert_eq!(left, 1000);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(32));
    let handles: Vec<_> = (0..32)
        .map(|_| {
            let name = db.name.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut c = connect(&name, "mt_it_backend");
                let (mut ok, mut limited) = (0, 0);
                barrier.wait();
                for _ in 0..50 {
                    match in_tenant(&mut c, "acme", "SELECT tenant.consume('api_calls')") {
                        Ok(_) => ok += 1,
                        Err(code) => {
                            assert_eq!(code, "MT010");
                            limited += 1;
                        }
                    }
                }
                (ok, limited)
            })
        })
        .collect();
    let (ok, limited) = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert_eq!(ok, 1000);
    assert_eq!(limited, 32 * 50 - 1000);
    let mut su = db.as_role("postgres");
    let total: i64 = su
        .query_one(
            "SELECT sum(used)::int8 FROM tenant.usage_counters c JOIN tenant.tenants t ON t.id = c.tenant_id \
             WHERE t.slug = 'acme' AND resource = 'api_calls'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(total, 5000, "the stored total equals the limit");
    // globex's allowance is its own
    let left: i64 =
        in_tenant(&mut be, "globex", "SELECT tenant.consume('api_calls')").unwrap()[0].get(0);
    assert_eq!(left, 4999);
}

#[test]
fn limit_rows_is_exact_under_concurrent_inserts() {
    let db = Db::new("quota_rows");
    load_plans(&db);
    let mut owner = db.as_role("mt_it_owner");
    owner
        .batch_execute(
            "CREATE TABLE public.users (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, tenant_id uuid NOT NULL, name text);
             SELECT tenant.isolate('public.users');
             GRANT SELECT, INSERT, DELETE ON public.users TO mt_it_backend;",
        )
        .unwrap();
    // two users exist before the limit is attached: they count
    let mut be = db.as_role("mt_it_backend");
    in_tenant(
        &mut be,
        "acme",
        "INSERT INTO public.users (name) VALUES ('pre1'), ('pre2')",
    )
    .unwrap();
    // limit_rows is for tenant_admin members who own the table: the superuser here
    db.as_role("postgres")
        .batch_execute("SELECT tenant.limit_rows('public.users', 'users')")
        .unwrap();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(32));
    let handles: Vec<_> = (0..32)
        .map(|i| {
            let name = db.name.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut c = connect(&name, "mt_it_backend");
                barrier.wait();
                let mut ok = 0;
                for k in 0..2 {
                    match in_tenant(
                        &mut c,
                        "acme",
                        &format!("INSERT INTO public.users (name) VALUES ('u{i}-{k}')"),
                    ) {
                        Ok(_) => ok += 1,
                        Err(code) => assert_eq!(code, "MT010"),
                    }
                }
                ok
            })
        })
        .collect();
    let ok: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(ok, 18, "20 users allowed, 2 existed");
    let n: i64 = in_tenant(&mut be, "acme", "SELECT count(*) FROM public.users").unwrap()[0].get(0);
    assert_eq!(n, 20);
    // deleting releases a slot
    assert_eq!(
        in_tenant(
            &mut be,
            "acme",
            "INSERT INTO public.users (name) VALUES ('over')"
        )
        .unwrap_err(),
        "MT010"
    );
    in_tenant(
        &mut be,
        "acme",
        "DELETE FROM public.users WHERE name = 'pre1'",
    )
    .unwrap();
    in_tenant(
        &mut be,
        "acme",
        "INSERT INTO public.users (name) VALUES ('again')",
    )
    .unwrap();
    assert_eq!(
        in_tenant(
            &mut be,
            "acme",
            "INSERT INTO public.users (name) VALUES ('over')"
        )
        .unwrap_err(),
        "MT010"
    );
    // another tenant has its own 20
    in_tenant(
        &mut be,
        "globex",
        "INSERT INTO public.users (name) VALUES ('g')",
    )
    .unwrap();
    // a rolled back insert gives its slot back
    let mut tx = be.transaction().unwrap();
    tx.execute("SELECT tenant.set_context('globex')", &[])
        .unwrap();
    tx.execute("INSERT INTO public.users (name) VALUES ('tmp')", &[])
        .unwrap();
    tx.rollback().unwrap();
    let mut su = db.as_role("postgres");
    let used: i64 = su
        .query_one(
            "SELECT used FROM tenant.usage_counters c JOIN tenant.tenants t ON t.id = c.tenant_id \
             WHERE t.slug = 'globex' AND resource = 'users'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(used, 1);
    // there is no counter function to call to free or burn slots (the trigger counts), and
    // the trigger function cannot be called directly
    assert_eq!(
        err_of(&mut be, "SELECT tenant._count_row(NULL, 'users', -5)"),
        "42883"
    );
    assert_eq!(
        err_of(&mut be, "SELECT tenant._limit_rows_trigger()"),
        "42501"
    );
}

#[test]
fn plan_change_override_unlimited_and_features() {
    let db = Db::new("quota_plan");
    load_plans(&db);
    let mut be = db.as_role("mt_it_backend");
    let mut su = db.as_role("postgres");
    // feature gating
    let has: bool = in_tenant(
        &mut be,
        "acme",
        "SELECT tenant.has_feature('sso_integration')",
    )
    .unwrap()[0]
        .get(0);
    assert!(!has);
    assert_eq!(
        in_tenant(
            &mut be,
            "acme",
            "SELECT tenant.require_feature('sso_integration')"
        )
        .unwrap_err(),
        "MT011"
    );
    let has: bool = in_tenant(
        &mut be,
        "acme",
        "SELECT tenant.has_feature('basic_analytics')",
    )
    .unwrap()[0]
        .get(0);
    assert!(has);
    let none: bool = be
        .query_one("SELECT tenant.has_feature('basic_analytics')", &[])
        .unwrap()
        .get(0);
    assert!(!none, "no context, no features");
    // a hard limit of 1 campaign
    in_tenant(&mut be, "acme", "SELECT tenant.consume('campaigns')").unwrap();
    assert_eq!(
        in_tenant(&mut be, "acme", "SELECT tenant.consume('campaigns')").unwrap_err(),
        "MT010"
    );
    let fits: bool =
        in_tenant(&mut be, "acme", "SELECT tenant.check('campaigns')").unwrap()[0].get(0);
    assert!(!fits);
    // a per-tenant override (custom deal) applies at the next check, in this open session
    su.batch_execute("SELECT tenant.set_limit_override('acme', 'campaigns', 3)")
        .unwrap();
    let left: i64 =
        in_tenant(&mut be, "acme", "SELECT tenant.consume('campaigns')").unwrap()[0].get(0);
    assert_eq!(left, 1);
    // plan change to enterprise: unlimited, feature on
    be.batch_execute("SELECT tenant.set_plan('globex', 'enterprise')")
        .unwrap();
    let rows = in_tenant(
        &mut be,
        "globex",
        "SELECT tenant.consume('api_calls', 1000000), tenant.has_feature('sso_integration')",
    )
    .unwrap();
    let (left, sso): (Option<i64>, bool) = (rows[0].get(0), rows[0].get(1));
    assert_eq!(left, None, "unlimited");
    assert!(sso);
    // feature override
    su.batch_execute("SELECT tenant.set_feature_override('acme', 'sso_integration', true)")
        .unwrap();
    let has: bool = in_tenant(
        &mut be,
        "acme",
        "SELECT tenant.has_feature('sso_integration')",
    )
    .unwrap()[0]
        .get(0);
    assert!(has);
    // bad input
    for (sql, code) in [
        ("SELECT tenant.consume('api_calls', 0)", "MT030"),
        ("SELECT tenant.consume('api_calls', -5)", "MT030"),
        ("SELECT tenant.consume('nonexistent')", "MT030"),
        ("SELECT tenant.consume('Bad Name')", "MT030"),
        ("SELECT tenant.set_plan('acme', 'platinum')", "MT030"),
    ] {
        assert_eq!(in_tenant(&mut be, "acme", sql).unwrap_err(), code, "{sql}");
    }
    assert_eq!(
        err_of(&mut be, "SELECT tenant.consume('api_calls')"),
        "MT001",
        "no context"
    );
    assert_eq!(
        err_of(&mut be, "SELECT tenant.load_plan('{\"name\": \"x\"}')"),
        "42501",
        "only tenant_admin defines plans"
    );
    assert_eq!(
        err_of(
            &mut su,
            "SELECT tenant.load_plan('{\"name\": \"x\", \"limits\": {\"a\": -7}}')"
        ),
        "MT030"
    );
}

#[test]
fn quota_windows_roll_over_and_reports_add_up() {
    let db = Db::new("quota_window");
    load_plans(&db);
    let mut be = db.as_role("mt_it_backend");
    let mut su = db.as_role("postgres");
    in_tenant(&mut be, "acme", "SELECT tenant.consume('requests', 100)").unwrap();
    assert_eq!(
        in_tenant(&mut be, "acme", "SELECT tenant.consume('requests')").unwrap_err(),
        "MT010"
    );
    // pretend the minute is over: move the window into the past
    su.batch_execute(
        "UPDATE tenant.usage_counters SET window_start = window_start - interval '1 minute', \
         window_end = window_end - interval '1 minute' WHERE resource = 'requests'",
    )
    .unwrap();
    let left: i64 =
        in_tenant(&mut be, "acme", "SELECT tenant.consume('requests', 10)").unwrap()[0].get(0);
    assert_eq!(left, 90, "a new window starts empty");
    // soft limit with overage: missions 10/month at 0.5
    in_tenant(&mut be, "acme", "SELECT tenant.consume('missions', 14)").unwrap();
    let rows = in_tenant(
        &mut be,
        "acme",
        "SELECT resource, limit_value, window_used, percent_used::float8, used_in_range FROM tenant.usage_report(now() - interval '1 day', now()) ORDER BY resource",
    )
    .unwrap();
    let report: Vec<(String, i64, i64, Option<f64>, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    let missions = report.iter().find(|r| r.0 == "missions").unwrap();
    assert_eq!((missions.1, missions.2, missions.3), (10, 14, Some(140.0)));
    let requests = report.iter().find(|r| r.0 == "requests").unwrap();
    assert_eq!(
        (requests.2, requests.4),
        (10, 110),
        "current window 10, 110 within the day"
    );
    // globex sees none of acme's usage
    let rows = in_tenant(
        &mut be,
        "globex",
        "SELECT sum(window_used)::int8 FROM tenant.usage_report()",
    )
    .unwrap();
    assert_eq!(rows[0].get::<_, Option<i64>>(0), Some(0));
    // an application role (not the backend, which sees every tenant) sees only its counters
    let mut app = db.as_role("mt_it_app");
    for (slug, expected) in [("globex", 0i64), ("acme", 3)] {
        let tok = token_for(&db, slug);
        app.batch_execute(&format!("SET multitenant.context = '{tok}'"))
            .unwrap();
        let n: i64 = app
            .query_one("SELECT count(*) FROM tenant.usage_counters", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, expected, "{slug}");
    }
    // invoice: base price + 4 missions over the limit at 0.5
    let inv = be
        .query(
            "SELECT line, quantity, (amount * 100)::int8 FROM tenant.invoice('acme') ORDER BY line",
            &[],
        )
        .unwrap();
    let inv: Vec<(String, i64, i64)> = inv.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(inv.len(), 2, "{inv:?}");
    assert!(
        inv[0].0.starts_with("overage missions") && inv[0].1 == 4 && inv[0].2 == 200,
        "{inv:?}"
    );
    assert!(
        inv[1].0.starts_with("plan free") && inv[1].2 == 0,
        "{inv:?}"
    );
    // maintenance rolls counters into daily history without changing the report
    let m: String = su
        .query_one("SELECT tenant.run_maintenance()::text", &[])
        .unwrap()
        .get(0);
    let m: serde_json::Value = serde_json::from_str(&m).unwrap();
    assert!(
        m["rolled_up"].as_i64().unwrap() >= 2,
        "one daily row per resource and day: {m}"
    );
    let rows = in_tenant(&mut be, "acme", "SELECT used_in_range FROM tenant.usage_report(now() - interval '1 day', now()) WHERE resource = 'requests'").unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 110);
}

// ---------------------------------------------------------------------------------------
// Audit trail
// ---------------------------------------------------------------------------------------

fn audited(db: &Db) {
    // audit is for tenant_admin members who own the table: the superuser here
    db.as_role("postgres")
        .batch_execute("SELECT tenant.audit('public.notes', ignore_columns => ARRAY['secret'])")
        .unwrap();
    let mut owner = db.as_role("mt_it_owner");
    owner
        .batch_execute("ALTER TABLE public.notes ADD COLUMN secret text")
        .unwrap();
}

fn verify(c: &mut Client, tenant: Option<&str>) -> serde_json::Value {
    let s: String = c
        .query_one("SELECT tenant.verify_audit($1)::text", &[&tenant])
        .unwrap()
        .get(0);
    serde_json::from_str(&s).unwrap()
}

#[test]
fn audit_logs_every_operation_with_tenant_user_and_data() {
    let db = Db::new("audit_ops");
    audited(&db);
    let mut be = db.as_role("mt_it_backend");
    be.batch_execute(
        "BEGIN; SELECT tenant.set_context('acme', 'alice');
         INSERT INTO public.notes (body, secret) VALUES ('n1', 's1');
         UPDATE public.notes SET body = 'n1b', secret = 's2' WHERE body = 'n1';
         UPDATE public.notes SET secret = 's3' WHERE body = 'n1b';
         DELETE FROM public.notes WHERE body = 'n1b';
         COMMIT;
         BEGIN; SELECT tenant.set_context('acme', 'alice');
         INSERT INTO public.notes (body) VALUES ('rolled back'); ROLLBACK;",
    )
    .unwrap();
    let mut su = db.as_role("postgres");
    let acme = db.tenant_id("acme").to_string();
    let rows = su
        .query(
            "SELECT operation, tenant_id::text, user_id, db_role, old_data::text, new_data::text, changed, record_id \
             FROM tenant.audit_log WHERE table_name = 'public.notes' AND user_id = 'alice' ORDER BY seq",
            &[],
        )
        .unwrap();
    let ops: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        ops,
        vec!["INSERT", "UPDATE", "DELETE"],
        "the secret-only update is not logged; the rollback left nothing"
    );
    for r in &rows {
        assert_eq!(
            r.get::<_, Option<String>>(1).as_deref(),
            Some(acme.as_str())
        );
        assert_eq!(r.get::<_, String>(3), "mt_it_backend");
    }
    let ins_new: String = rows[0].get(5);
    assert!(
        ins_new.contains("\"body\": \"n1\"") && !ins_new.contains("secret"),
        "{ins_new}"
    );
    let upd_old: String = rows[1].get(4);
    let upd_new: String = rows[1].get(5);
    assert!(upd_old.contains("\"n1\"") && upd_new.contains("\"n1b\""));
    assert_eq!(rows[1].get::<_, Vec<String>>(6), vec!["body"]);
    let del_old: Option<String> = rows[2].get(4);
    assert!(del_old.unwrap().contains("n1b"));
    let record: Option<String> = rows[0].get(7);
    assert!(
        record.unwrap().parse::<i64>().is_ok(),
        "record id from the primary key"
    );
    // history of one row is one indexed lookup
    let n: i64 = su
        .query_one(
            "SELECT count(*) FROM tenant.audit_log WHERE table_oid = 'public.notes'::regclass AND record_id = $1",
            &[&rows[0].get::<_, Option<String>>(7)],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 3);
    // TRUNCATE is logged at statement level
    let mut owner = db.as_role("mt_it_owner");
    owner.batch_execute("TRUNCATE public.notes").unwrap();
    let t: i64 = su
        .query_one(
            "SELECT count(*) FROM tenant.audit_log WHERE operation = 'TRUNCATE'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(t, 1);
    // management events are in the same log
    let ev: Vec<String> = su
        .query("SELECT record_id FROM tenant.audit_log WHERE operation = 'EVENT' AND tenant_id::text = $1 ORDER BY seq", &[&acme])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ev, vec!["tenant.created"]);
    su.batch_execute(
        "SELECT tenant.set_status('acme', 'suspended'); SELECT tenant.add_member('globex', 'gina')",
    )
    .unwrap();
    let n: i64 = su
        .query_one(
            "SELECT count(*) FROM tenant.audit_log WHERE operation = 'EVENT' AND record_id IN ('tenant.status_changed', 'member.added')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    assert_eq!(verify(&mut su, Some("acme"))["valid"], true);
    assert_eq!(verify(&mut su, Some("globex"))["valid"], true);
}

#[test]
fn audit_log_is_tenant_scoped_append_only_and_tamper_evident() {
    let db = Db::new("audit_guard");
    audited(&db);
    let mut be = db.as_role("mt_it_backend");
    for (slug, body) in [("acme", "a9"), ("globex", "g9"), ("acme", "a10")] {
        be.batch_execute(&format!(
            "BEGIN; SELECT tenant.set_context('{slug}'); INSERT INTO public.notes (body) VALUES ('{body}'); COMMIT;"
        ))
        .unwrap();
    }
    // an application role in acme's context reads acme's entries only
    let mut app = db.as_role("mt_it_app");
    let tok = token_for(&db, "acme");
    app.batch_execute(&format!("SET multitenant.context = '{tok}'"))
        .unwrap();
    let rows = app
        .query("SELECT DISTINCT tenant_id::text FROM tenant.audit_log", &[])
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].get::<_, Option<String>>(0),
        Some(db.tenant_id("acme").to_string())
    );
    let globex_rows: i64 = app
        .query_one(
            "SELECT count(*) FROM tenant.audit_log WHERE new_data->>'body' = 'g9'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(globex_rows, 0);
    // a tenant may verify its own chain, not another's
    assert_eq!(verify(&mut app, Some("acme"))["valid"], true);
    assert_eq!(
        err_of(&mut app, "SELECT tenant.verify_audit('globex')"),
        "MT020"
    );
    // append-only for everyone, the owner (a superuser here) included
    let mut su = db.as_role("postgres");
    assert_eq!(
        err_of(&mut su, "UPDATE tenant.audit_log SET operation = 'X'"),
        "MT020"
    );
    assert_eq!(err_of(&mut su, "DELETE FROM tenant.audit_log"), "MT020");
    assert_eq!(err_of(&mut su, "TRUNCATE tenant.audit_log"), "MT020");
    assert_eq!(err_of(&mut su, "DELETE FROM tenant.audit_heads"), "MT020");
    assert_eq!(err_of(&mut app, "DELETE FROM tenant.audit_log"), "42501");
    // a superuser who disables triggers can edit, and verify_audit names the entry
    let id: i64 = su
        .query_one(
            "SELECT id FROM tenant.audit_log WHERE new_data->>'body' = 'a9'",
            &[],
        )
        .unwrap()
        .get(0);
    su.batch_execute(&format!(
        "SET session_replication_role = replica;
         UPDATE tenant.audit_log SET new_data = jsonb_set(new_data, '{{body}}', '\"forged\"') WHERE id = {id};
         RESET session_replication_role;"
    ))
    .unwrap();
    let v = verify(&mut su, Some("acme"));
    assert_eq!(v["valid"], false, "{v}");
    assert_eq!(v["entry_id"], id, "{v}");
    assert_eq!(
        verify(&mut su, Some("globex"))["valid"],
        true,
        "other chains unaffected"
    );
    // deleting the newest entry is found too (the head remembers)
    su.batch_execute(
        "SET session_replication_role = replica;
         DELETE FROM tenant.audit_log WHERE id = (SELECT max(id) FROM tenant.audit_log WHERE tenant_id = (SELECT id FROM tenant.tenants WHERE slug = 'globex'));
         RESET session_replication_role;",
    )
    .unwrap();
    assert_eq!(verify(&mut su, Some("globex"))["valid"], false);
}

#[test]
fn audit_chains_verify_after_16_concurrent_writers() {
    let db = Db::new("audit_conc");
    audited(&db);
    let mut be = db.as_role("mt_it_backend");
    for i in 0..4 {
        be.execute("SELECT tenant.create($1, $1)", &[&format!("c{i}")])
            .unwrap();
    }
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let name = db.name.clone();
            std::thread::spawn(move || {
                let mut c = connect(&name, "mt_it_backend");
                // half the writers share tenant c0, the others spread over c1..c3
                let slug = if i % 2 == 0 {
                    "c0".to_string()
                } else {
                    format!("c{}", 1 + i % 3)
                };
                for k in 0..30 {
                    let mut tx = c.transaction().unwrap();
                    tx.execute("SELECT tenant.set_context($1)", &[&slug])
                        .unwrap();
                    tx.execute(
                        "INSERT INTO public.notes (body) VALUES ($1)",
                        &[&format!("w{i}-{k}")],
                    )
                    .unwrap();
                    tx.execute(
                        "UPDATE public.notes SET body = body || '!' WHERE body = $1",
                        &[&format!("w{i}-{k}")],
                    )
                    .unwrap();
                    tx.commit().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut su = db.as_role("postgres");
    let mut total = 0;
    for slug in ["c0", "c1", "c2", "c3", "acme", "globex"] {
        let v = verify(&mut su, Some(slug));
        assert_eq!(v["valid"], true, "{slug}: {v}");
        total += v["entries"].as_i64().unwrap();
    }
    // 16 writers x 30 x (insert + update), plus tenant.created events and the fixture's 3 rows
    let logged: i64 = su
        .query_one(
            "SELECT count(*) FROM tenant.audit_log WHERE chain NOT LIKE 'global/%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(total, logged);
    assert!(logged >= 16 * 30 * 2);
    assert_eq!(verify(&mut su, None)["valid"], true, "global chain");
}

#[test]
fn purge_audit_removes_old_entries_and_chains_still_verify() {
    let db = Db::new("audit_purge");
    audited(&db);
    let mut be = db.as_role("mt_it_backend");
    for k in 0..6 {
        be.batch_execute(&format!(
            "BEGIN; SELECT tenant.set_context('acme'); INSERT INTO public.notes (body) VALUES ('p{k}'); COMMIT;"
        ))
        .unwrap();
    }
    let mut su = db.as_role("postgres");
    assert_eq!(
        err_of(&mut be, "SELECT tenant.purge_audit()"),
        "42501",
        "tenant_admin only"
    );
    assert_eq!(err_of(&mut su, "SELECT tenant.purge_audit(0, 1)"), "MT030");
    let n: i64 = su
        .query_one("SELECT tenant.purge_audit()", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "nothing is past retention yet");
    // make the first three entries of the busiest acme chain 40 days old (a superuser with
    // triggers off; `at` is hashed, so verify now fails until they are purged)
    let chain: String = su
        .query_one(
            "SELECT chain FROM tenant.audit_log WHERE tenant_id = (SELECT id FROM tenant.tenants WHERE slug = 'acme') \
             GROUP BY chain ORDER BY count(*) DESC LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0);
    let total: i64 = su
        .query_one(
            "SELECT count(*) FROM tenant.audit_log WHERE chain = $1",
            &[&chain],
        )
        .unwrap()
        .get(0);
    assert!(total >= 6);
    su.execute("SET session_replication_role = replica", &[])
        .unwrap();
    su.execute(
        "UPDATE tenant.audit_log SET at = at - interval '40 days' WHERE chain = $1 AND seq <= 3",
        &[&chain],
    )
    .unwrap();
    su.execute("RESET session_replication_role", &[]).unwrap();
    assert_eq!(verify(&mut su, Some("acme"))["valid"], false);
    // 30 days for plans without audit_logs: the three old entries (a prefix) go
    let n: i64 = su
        .query_one("SELECT tenant.purge_audit(30, 365)", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 3);
    let left: i64 = su
        .query_one(
            "SELECT count(*) FROM tenant.audit_log WHERE chain = $1",
            &[&chain],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, total - 3);
    let v = verify(&mut su, Some("acme"));
    assert_eq!(
        v["valid"], true,
        "the chain verifies from its new base: {v}"
    );
    assert_eq!(
        err_of(&mut su, "DELETE FROM tenant.audit_log"),
        "MT020",
        "still append-only"
    );
}

// ---------------------------------------------------------------------------------------
// Roles, permissions, protect() and invitations
// ---------------------------------------------------------------------------------------

/// The seeds' matrix in tenant acme: explorer < business < agency, conditions on owner.
fn seed_roles(db: &Db) {
    let mut be = db.as_role("mt_it_backend");
    be.batch_execute(
        r#"BEGIN; SELECT tenant.set_context('acme');
           SELECT tenant.create_role('explorer');
           SELECT tenant.create_role('business', ARRAY['explorer']);
           SELECT tenant.create_role('agency', ARRAY['business']);
           SELECT tenant.grant_permission('explorer', 'missions', 'read');
           SELECT tenant.grant_permission('explorer', 'profile', 'update', '{"user_id": "self"}');
           SELECT tenant.grant_permission('business', 'campaigns', 'create');
           SELECT tenant.grant_permission('business', 'campaigns', 'read', '{"owner_id": "self"}');
           SELECT tenant.grant_permission('business', 'campaigns', 'update', '{"owner_id": "self"}');
           SELECT tenant.grant_permission('agency', 'campaigns', 'read');
           SELECT tenant.grant_permission('agency', 'members', 'invite');
           SELECT tenant.grant_permission('agency', 'reports', '*');
           SELECT tenant.add_member('acme', 'eve', ARRAY['explorer']);
           SELECT tenant.add_member('acme', 'bob', ARRAY['business']);
           SELECT tenant.add_member('acme', 'ann', ARRAY['agency']);
           SELECT tenant.add_member('acme', 'root', ARRAY['admin']);
           COMMIT;"#,
    )
    .unwrap();
}

fn can_as(
    c: &mut Client,
    tenant: &str,
    user: &str,
    resource: &str,
    action: &str,
    ctx: &str,
) -> bool {
    let mut tx = c.transaction().unwrap();
    tx.execute("SELECT tenant.set_context($1, $2)", &[&tenant, &user])
        .unwrap();
    let ok: bool = tx
        .query_one(
            &format!("SELECT tenant.can($1, $2, '{ctx}'::jsonb)"),
            &[&resource, &action],
        )
        .unwrap()
        .get(0);
    tx.commit().unwrap();
    ok
}

#[test]
fn rbac_seed_matrix_inheritance_conditions_and_wildcards() {
    let db = Db::new("rbac_matrix");
    seed_roles(&db);
    let mut be = db.as_role("mt_it_backend");
    let cases = [
        ("eve", "missions", "read", "{}", true),
        ("eve", "campaigns", "create", "{}", false),
        ("eve", "profile", "update", r#"{"user_id": "eve"}"#, true),
        ("eve", "profile", "update", r#"{"user_id": "bob"}"#, false),
        ("bob", "missions", "read", "{}", true),
        ("bob", "campaigns", "create", "{}", true),
        ("bob", "campaigns", "update", r#"{"owner_id": "bob"}"#, true),
        (
            "bob",
            "campaigns",
            "update",
            r#"{"owner_id": "ann"}"#,
            false,
        ),
        ("bob", "reports", "read", "{}", false),
        ("ann", "campaigns", "update", r#"{"owner_id": "ann"}"#, true),
        ("ann", "campaigns", "read", r#"{"owner_id": "bob"}"#, true),
        ("ann", "reports", "export", "{}", true),
        ("root", "anything", "purge", "{}", true),
        ("nobody", "missions", "read", "{}", false),
    ];
    for (user, res, act, ctx, expected) in cases {
        assert_eq!(
            can_as(&mut be, "acme", user, res, act, ctx),
            expected,
            "{user} {act} {res} {ctx}"
        );
    }
    // authorize raises the permission SQLSTATE
    let st = err_of(&mut be, "BEGIN; SELECT tenant.set_context('acme', 'eve'); SELECT tenant.authorize('reports', 'read')");
    assert_eq!(st, "MT020");
    // a cycle is rejected when written; unknown operators too
    for sql in [
        "SELECT tenant.create_role('explorer', ARRAY['agency'])",
        "SELECT tenant.create_role('loop', ARRAY['loop'])",
        "SELECT tenant.grant_permission('explorer', 'missions', 'read', '{\"owner_id\": {\"regex\": \".*\"}}')",
        "SELECT tenant.grant_permission('ghost', 'missions', 'read')",
    ] {
        assert_eq!(err_of(&mut be, &format!("BEGIN; SELECT tenant.set_context('acme'); {sql}")), "MT030", "{sql}");
    }
    // without a context nothing is allowed
    let no: bool = be
        .query_one("SELECT tenant.can('missions', 'read')", &[])
        .unwrap()
        .get(0);
    assert!(!no);
    // roles of one tenant mean nothing in another
    assert!(!can_as(&mut be, "globex", "ann", "campaigns", "read", "{}"));
}

#[test]
fn rbac_protect_enforces_owner_rules_and_revocation_is_seen_at_once() {
    let db = Db::new("rbac_protect");
    seed_roles(&db);
    let mut owner = db.as_role("mt_it_owner");
    owner
        .batch_execute(
            "CREATE TABLE public.campaigns (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                 tenant_id uuid NOT NULL, owner_id text NOT NULL DEFAULT tenant.current_user_id(), name text);
             SELECT tenant.isolate('public.campaigns');
             SELECT tenant.protect('public.campaigns', 'campaigns', owner_column => 'owner_id');
             GRANT SELECT, INSERT, UPDATE, DELETE ON public.campaigns TO mt_it_backend;",
        )
        .unwrap();
    let mut be = db.as_role("mt_it_backend");
    let run = |c: &mut Client, user: &str, sql: &str| -> Result<u64, String> {
        let mut tx = c.transaction().unwrap();
        tx.execute("SELECT tenant.set_context('acme', $1)", &[&user])
            .unwrap();
        match tx.execute(sql, &[]) {
            Ok(n) => {
                tx.commit().unwrap();
                Ok(n)
            }
            Err(e) => Err(sqlstate(&e)),
        }
    };
    assert_eq!(
        run(
            &mut be,
            "bob",
            "INSERT INTO public.campaigns (name) VALUES ('bob1')"
        ),
        Ok(1)
    );
    assert_eq!(
        run(
            &mut be,
            "ann",
            "INSERT INTO public.campaigns (name) VALUES ('ann1')"
        ),
        Ok(1)
    );
    assert_eq!(
        run(
            &mut be,
            "eve",
            "INSERT INTO public.campaigns (name) VALUES ('eve1')"
        ),
        Err("42501".into())
    );
    assert_eq!(
        run(
            &mut be,
            "bob",
            "UPDATE public.campaigns SET name = name || '!'"
        ),
        Ok(1),
        "only his own"
    );
    assert_eq!(
        run(&mut be, "bob", "SELECT 1 FROM public.campaigns"),
        Ok(1),
        "reads only his own"
    );
    assert_eq!(
        run(&mut be, "ann", "SELECT 1 FROM public.campaigns"),
        Ok(2),
        "agency reads all"
    );
    assert_eq!(run(&mut be, "eve", "SELECT 1 FROM public.campaigns"), Ok(0));
    assert_eq!(
        run(&mut be, "bob", "DELETE FROM public.campaigns"),
        Ok(0),
        "no delete permission"
    );
    // revocation in one session is seen by another open session at its next statement
    let mut admin = db.as_role("mt_it_backend");
    admin
        .batch_execute("BEGIN; SELECT tenant.set_context('acme'); SELECT tenant.revoke_permission('business', 'campaigns', 'update'); COMMIT;")
        .unwrap();
    assert_eq!(
        run(
            &mut be,
            "bob",
            "UPDATE public.campaigns SET name = name || '?'"
        ),
        Ok(0)
    );
    assert!(!can_as(
        &mut be,
        "acme",
        "bob",
        "campaigns",
        "update",
        r#"{"owner_id": "bob"}"#
    ));
}

#[test]
fn rbac_member_of_two_tenants_sees_each_only_in_its_context() {
    let db = Db::new("rbac_two");
    let mut be = db.as_role("mt_it_backend");
    be.batch_execute(
        "SELECT tenant.add_member('acme', 'sam', ARRAY['viewer']); SELECT tenant.add_member('globex', 'sam', ARRAY['admin'])",
    )
    .unwrap();
    let mut visit = |slug: &str| -> (Vec<String>, bool) {
        let mut tx = be.transaction().unwrap();
        tx.execute("SELECT tenant.set_context($1, 'sam')", &[&slug])
            .unwrap();
        let rows = tx
            .query("SELECT body FROM public.notes ORDER BY 1", &[])
            .unwrap();
        let can_del: bool = tx
            .query_one("SELECT tenant.can('notes', 'delete')", &[])
            .unwrap()
            .get(0);
        tx.commit().unwrap();
        (rows.iter().map(|r| r.get(0)).collect(), can_del)
    };
    assert_eq!(
        visit("acme"),
        (vec!["a1".to_string(), "a2".to_string()], false),
        "viewer in acme"
    );
    assert_eq!(
        visit("globex"),
        (vec!["g1".to_string()], true),
        "admin in globex"
    );
}

#[test]
fn invitations_are_single_use_expiring_and_cannot_escalate() {
    let db = Db::new("rbac_invite");
    seed_roles(&db);
    let mut be = db.as_role("mt_it_backend");
    let invite = |c: &mut Client, user: &str, role: &str| -> Result<String, String> {
        let mut tx = c.transaction().unwrap();
        tx.execute("SELECT tenant.set_context('acme', $1)", &[&user])
            .unwrap();
        match tx.query_one("SELECT tenant.invite('new@example.com', $1)", &[&role]) {
            Ok(r) => {
                let t: String = r.get(0);
                tx.commit().unwrap();
                Ok(t)
            }
            Err(e) => Err(sqlstate(&e)),
        }
    };
    // ann (agency, may invite) can hand out business but not admin (above her)
    let tok = invite(&mut be, "ann", "business").unwrap();
    assert_eq!(invite(&mut be, "ann", "admin").unwrap_err(), "MT020");
    assert_eq!(
        invite(&mut be, "bob", "explorer").unwrap_err(),
        "MT020",
        "business may not invite"
    );
    let tenant: String = be
        .query_one(
            "SELECT tenant.accept_invitation($1, 'newbie')::text",
            &[&tok],
        )
        .unwrap()
        .get(0);
    assert_eq!(tenant, db.tenant_id("acme").to_string());
    assert!(can_as(
        &mut be,
        "acme",
        "newbie",
        "campaigns",
        "create",
        "{}"
    ));
    // single use
    let e = be
        .query_one("SELECT tenant.accept_invitation($1, 'other')", &[&tok])
        .unwrap_err();
    assert_eq!(sqlstate(&e), "MT004");
    // expired
    let tok2 = invite(&mut be, "ann", "explorer").unwrap();
    let mut su = db.as_role("postgres");
    su.batch_execute("UPDATE tenant.invitations SET expires_at = now() - interval '1 second' WHERE accepted_at IS NULL")
        .unwrap();
    let e = be
        .query_one("SELECT tenant.accept_invitation($1, 'late')", &[&tok2])
        .unwrap_err();
    assert_eq!(sqlstate(&e), "MT004");
    // only the hash is stored
    let stored: i64 = su
        .query_one(
            "SELECT count(*) FROM tenant.invitations WHERE token_hash = convert_to($1, 'UTF8')",
            &[&tok2],
        )
        .unwrap()
        .get(0);
    assert_eq!(stored, 0);
    // the API role cannot redeem invitations for arbitrary users
    let mut api = db.as_role("mt_it_api");
    assert_eq!(
        err_of(&mut api, "SELECT tenant.accept_invitation('x', 'y')"),
        "42501"
    );
}

#[test]
fn unaudit_and_unlimit_rows_detach_and_need_the_owner() {
    let db = Db::new("detach");
    load_plans(&db);
    audited(&db);
    let mut owner = db.as_role("postgres");
    owner
        .batch_execute("SELECT tenant.limit_rows('public.notes', 'campaigns')")
        .unwrap();
    let mut be = db.as_role("mt_it_backend");
    // acme already has 2 notes, the campaigns limit is 1: inserts are refused
    assert_eq!(
        in_tenant(
            &mut be,
            "acme",
            "INSERT INTO public.notes (body) VALUES ('x')"
        )
        .unwrap_err(),
        "MT010"
    );
    assert_eq!(
        err_of(&mut be, "SELECT tenant.unlimit_rows('public.notes')"),
        "42501",
        "tenant_admin only"
    );
    assert_eq!(
        err_of(&mut be, "SELECT tenant.unaudit('public.notes')"),
        "42501",
        "tenant_admin only"
    );
    let mut admin = db.as_role("mt_it_admin");
    assert_eq!(
        err_of(&mut admin, "SELECT tenant.unaudit('public.notes')"),
        "MT020",
        "a tenant_admin who does not own the table"
    );
    let done: bool = owner
        .query_one("SELECT tenant.unlimit_rows('public.notes')", &[])
        .unwrap()
        .get(0);
    assert!(done);
    let again: bool = owner
        .query_one("SELECT tenant.unlimit_rows('public.notes')", &[])
        .unwrap()
        .get(0);
    assert!(!again);
    in_tenant(
        &mut be,
        "acme",
        "INSERT INTO public.notes (body) VALUES ('y')",
    )
    .unwrap();
    let mut su = db.as_role("postgres");
    let count = |su: &mut Client| -> i64 {
        su.query_one(
            "SELECT count(*) FROM tenant.audit_log WHERE table_name = 'public.notes'",
            &[],
        )
        .unwrap()
        .get(0)
    };
    let before = count(&mut su);
    assert!(before >= 1, "the insert was audited");
    let done: bool = owner
        .query_one("SELECT tenant.unaudit('public.notes')", &[])
        .unwrap()
        .get(0);
    assert!(done);
    in_tenant(
        &mut be,
        "globex",
        "INSERT INTO public.notes (body) VALUES ('z')",
    )
    .unwrap();
    assert_eq!(count(&mut su), before, "no longer audited");
    let n: i64 = su
        .query_one("SELECT count(*) FROM tenant.audited_tables", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

#[test]
fn remove_member_and_drop_role_take_effect_at_once() {
    let db = Db::new("rbac_remove");
    seed_roles(&db);
    let mut be = db.as_role("mt_it_backend");
    assert!(can_as(&mut be, "acme", "ann", "reports", "export", "{}"));
    // a role that others inherit from cannot be dropped
    assert_eq!(
        err_of(
            &mut be,
            "BEGIN; SELECT tenant.set_context('acme'); SELECT tenant.drop_role('explorer')"
        ),
        "MT030"
    );
    let mut other = db.as_role("mt_it_backend");
    other
        .batch_execute(
            "BEGIN; SELECT tenant.set_context('acme'); SELECT tenant.drop_role('agency'); COMMIT",
        )
        .unwrap();
    assert!(
        !can_as(&mut be, "acme", "ann", "reports", "export", "{}"),
        "role dropped"
    );
    assert!(can_as(&mut be, "acme", "bob", "campaigns", "create", "{}"));
    let removed: bool = other
        .query_one("SELECT tenant.remove_member('acme', 'bob')", &[])
        .unwrap()
        .get(0);
    assert!(removed);
    let again: bool = other
        .query_one("SELECT tenant.remove_member('acme', 'bob')", &[])
        .unwrap()
        .get(0);
    assert!(!again);
    assert!(
        !can_as(&mut be, "acme", "bob", "campaigns", "create", "{}"),
        "no longer a member"
    );
    // and an app role cannot manage roles
    let mut app = db.as_role("mt_it_app");
    assert_eq!(
        err_of(&mut app, "SELECT tenant.remove_member('acme', 'eve')"),
        "42501"
    );
}

#[test]
fn drop_and_recreate_extension_then_isolate_again() {
    let db = Db::new("recreate");
    let mut su = db.as_role("postgres");
    su.batch_execute("DROP EXTENSION multitenant CASCADE; CREATE EXTENSION multitenant;")
        .unwrap();
    let mut be = db.as_role("mt_it_backend");
    be.batch_execute(
        "SELECT tenant.create('acme', 'Acme'); SELECT tenant.create('globex', 'Globex')",
    )
    .unwrap();
    let mut owner = db.as_role("mt_it_owner");
    // the cascade left the permissive policy behind; isolate copes with it
    owner
        .batch_execute("SELECT tenant.isolate('public.notes')")
        .unwrap();
    assert_eq!(count(&mut be), 0, "no context, no rows");
    be.batch_execute("BEGIN; SELECT tenant.set_context('acme'); INSERT INTO public.notes (body) VALUES ('new'); COMMIT;")
        .unwrap();
    let mut tx = be.transaction().unwrap();
    tx.execute("SELECT tenant.set_context('acme')", &[])
        .unwrap();
    let n: i64 = tx
        .query_one("SELECT count(*) FROM public.notes", &[])
        .unwrap()
        .get(0);
    tx.commit().unwrap();
    assert_eq!(
        n, 1,
        "old rows belong to tenants that no longer exist; only the new one is acme's"
    );
}

#[test]
fn pg_dump_and_restore_keep_tenants_isolation_and_audit() {
    let db = Db::new("dump");
    audited(&db);
    let mut be = db.as_role("mt_it_backend");
    be.batch_execute("BEGIN; SELECT tenant.set_context('acme'); INSERT INTO public.notes (body) VALUES ('a3'); COMMIT;")
        .unwrap();
    let port = port().unwrap().to_string();
    let bin = "/usr/lib/postgresql/15/bin";
    let file = std::env::temp_dir().join(format!("{}.dump", db.name));
    let out = std::process::Command::new(format!("{bin}/pg_dump"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-Fc",
            "-f",
        ])
        .arg(&file)
        .arg(&db.name)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored = Db {
        name: format!("{}_restored", db.name),
    };
    let mut root = connect("postgres", "postgres");
    root.batch_execute(&format!("CREATE DATABASE {}", restored.name))
        .unwrap();
    let out = std::process::Command::new(format!("{bin}/pg_restore"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "--exit-on-error",
            "-d",
            &restored.name,
        ])
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "pg_restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut su = restored.as_role("postgres");
    let slugs: Vec<String> = su
        .query("SELECT slug FROM tenant.tenants ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(slugs, vec!["acme", "globex"]);
    let isolated: i64 = su
        .query_one("SELECT count(*) FROM tenant.isolated_tables", &[])
        .unwrap()
        .get(0);
    assert_eq!(isolated, 1);
    assert_eq!(
        verify(&mut su, Some("acme"))["valid"],
        true,
        "the audit chains survive the round trip"
    );
    // a fresh secret: tokens of the old database do not work here
    let old_token = token_for(&db, "acme");
    let mut app = restored.as_role("mt_it_app");
    app.batch_execute(&format!("SET multitenant.context = '{old_token}'"))
        .unwrap();
    assert_eq!(count(&mut app), 0);
    // isolation holds in the restored database
    let mut be2 = restored.as_role("mt_it_backend");
    assert_eq!(count(&mut be2), 0);
    be2.batch_execute("BEGIN; SELECT tenant.set_context('acme')")
        .unwrap();
    assert_eq!(bodies(&mut be2), vec!["a1", "a2", "a3"]);
    be2.batch_execute("COMMIT").unwrap();
    // the identity sequences came along (issue 9, hole 10): an audited write and a new
    // permission get fresh ids instead of colliding (23505) or being swallowed
    let audited_before: i64 = su
        .query_one("SELECT count(*) FROM tenant.audit_log", &[])
        .unwrap()
        .get(0);
    be2.batch_execute(
        "BEGIN; SELECT tenant.set_context('acme'); INSERT INTO public.notes (body) VALUES ('a4'); \
         SELECT tenant.grant_permission('member', 'reports', 'export'); COMMIT;",
    )
    .unwrap();
    let audited_after: i64 = su
        .query_one("SELECT count(*) FROM tenant.audit_log", &[])
        .unwrap()
        .get(0);
    assert!(
        audited_after > audited_before,
        "the audited insert and the grant were logged"
    );
    let granted: i64 = su
        .query_one(
            "SELECT count(*) FROM tenant.permissions WHERE resource = 'reports' AND action = 'export'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(granted, 1, "grant_permission wrote its row");
}
