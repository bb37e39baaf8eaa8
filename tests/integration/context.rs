//! The signed context: tokens minted by `tenant.set_context` (only for tenant_service), carried
//! to other roles and connections, forged or foreign tokens, transaction and session scope,
//! tenant status, the secret.

use crate::common::*;

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
        set_token(&mut app, &tok);
        assert_no_context(&mut app, what);
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
        set_ctx(&mut app, &tok);
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
    let owner_tenant: String = q1(&mut su, "SELECT t.slug FROM public.notes n JOIN tenant.tenants t ON t.id = n.tenant_id WHERE body = 'a3'");
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
        "GRANT EXECUTE ON FUNCTION tenant.set_context(text, text, boolean, text) TO mt_it_app",
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
    begin_in(&mut be, "acme");
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
    let user: Option<String> = q1(&mut be, "SELECT tenant.current_user_id()");
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
