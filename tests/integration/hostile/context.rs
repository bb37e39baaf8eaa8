//! Stale tokens and read-only contexts (V48-V54), context forgery (V62-V72), session tricks
//! (V73-V82).

use super::{key_id, mint_claims, mint_with};
use crate::common::*;

/// Replace the character at `idx` by another base64url character.
fn flip_char(s: &str, idx: usize) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    chars[idx] = if chars[idx] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[test]
fn stale_tokens_of_suspended_and_deleted_tenants() {
    let db = Db::new("hx_stale");
    plan(
        &db,
        r#"{"name": "hx-stale", "limits": {"seats": 50}}"#,
        &["acme"],
    );
    let acme = db.tenant_id("acme").to_string();
    let tok = token_for(&db, "acme");
    // an application connection opened while acme is active
    let mut open = with_token(&db, "mt_it_app", &tok);
    assert_eq!(count(&mut open), 2);
    su_exec(&db, "SELECT tenant.set_status('acme', 'suspended')");
    // V48: the open connection sees the suspension at its next statement
    assert_eq!(count(&mut open), 0, "V48: open connection after suspension");
    assert_eq!(current_tenant(&mut open), None, "V48");
    // V49: a new connection carrying the old token: nothing
    let check_dead = |db: &Db, what: &str| {
        let mut c = with_token(db, "mt_it_app", &tok);
        assert_eq!(count(&mut c), 0, "{what}: rows");
        assert!(
            one_bool(&mut c, "SELECT tenant.current_tenant() IS NULL"),
            "{what}: current_tenant"
        );
        expect_code(
            &mut c,
            "INSERT INTO public.notes (body) VALUES ('stale')",
            "MT003",
            what,
        );
        expect_one_of(
            &mut c,
            "SELECT tenant.consume('seats', 1)",
            &["MT003", "MT001"],
            what,
        );
    };
    check_dead(&db, "V49: suspended");
    // V50: the same after deletion
    su_exec(&db, "SELECT tenant.set_status('acme', 'deleted')");
    check_dead(&db, "V50: deleted");
    assert_eq!(count(&mut open), 0, "V50: open connection");
    // V51: with suspended_access = read, a suspended tenant's old token reads but never writes
    su_exec(&db, "SELECT tenant.set_status('acme', 'suspended')");
    su_exec(
        &db,
        &format!(
            "ALTER DATABASE {} SET multitenant.suspended_access = 'read'",
            db.name
        ),
    );
    let mut ro = with_token(&db, "mt_it_app", &tok);
    assert_eq!(bodies(&mut ro), vec!["a1", "a2"], "V51: reads");
    assert_eq!(
        current_tenant(&mut ro).as_deref(),
        Some(acme.as_str()),
        "V51"
    );
    expect_code(
        &mut ro,
        "INSERT INTO public.notes (body) VALUES ('ro')",
        "MT003",
        "V51: insert",
    );
    expect_code(
        &mut ro,
        "UPDATE public.notes SET body = 'ro'",
        "MT003",
        "V51: update",
    );
    expect_code(&mut ro, "DELETE FROM public.notes", "MT003", "V51: delete");
    expect_code(
        &mut ro,
        "SELECT tenant.consume('seats', 1)",
        "MT003",
        "V51: consume",
    );
    // V52: after reactivation the same old token writes again (new and open connections)
    su_exec(&db, "SELECT tenant.set_status('acme', 'active')");
    let mut back = with_token(&db, "mt_it_app", &tok);
    expect_ok(
        &mut back,
        "INSERT INTO public.notes (body) VALUES ('back')",
        "V52: write after reactivation",
    );
    assert_eq!(count(&mut back), 3, "V52");
    assert_eq!(count(&mut open), 3, "V52: the open connection");
    assert_eq!(db.all_bodies(), vec!["a1", "a2", "back", "g1"]);
}

#[test]
fn read_only_context_cannot_manage_or_write() {
    let db = Db::new("hx_readonly");
    plan(
        &db,
        r#"{"name": "hx-ro", "limits": {"seats": 50}}"#,
        &["acme"],
    );
    let mut be = db.as_role("mt_it_backend");
    exec_in(
        &mut be,
        "acme",
        "SELECT tenant.create_role('editor');
         SELECT tenant.grant_permission('editor', 'doc', 'update');
         SELECT tenant.invite('old@example.com', 'member', 24);",
    );
    su_exec(
        &db,
        &format!(
            "ALTER DATABASE {} SET multitenant.suspended_access = 'read';
             SELECT tenant.set_status('acme', 'suspended');",
            db.name
        ),
    );
    let snapshot = |db: &Db| -> String {
        su_text(
            db,
            "SELECT (SELECT count(*) FROM tenant.roles)::text || '/' ||
                    (SELECT count(*) FROM tenant.permissions)::text || '/' ||
                    (SELECT count(*) FROM tenant.invitations)::text || '/' ||
                    (SELECT count(*) FROM tenant.members)::text || '/' ||
                    (SELECT coalesce(sum(used), 0) FROM tenant.usage_counters)::text || '/' ||
                    (SELECT string_agg(body, ',' ORDER BY body) FROM public.notes)",
        )
    };
    let before = snapshot(&db);
    let mut be = db.as_role("mt_it_backend");
    // set_context works for a suspended tenant and gives a read-only context
    begin_in(&mut be, "acme");
    assert_eq!(bodies(&mut be), vec!["a1", "a2"]);
    be.batch_execute("COMMIT").unwrap();
    // V53: no role, permission or invitation management in a read-only context
    for sql in [
        "SELECT tenant.create_role('x', '{}')",
        "SELECT tenant.grant_permission('member', 'doc', 'read', NULL)",
        "SELECT tenant.revoke_permission('editor', 'doc', 'update')",
        "SELECT tenant.drop_role('viewer')",
        "SELECT tenant.drop_role('editor')",
        "SELECT tenant.invite('a@b.c', 'member', 24)",
    ] {
        assert_eq!(err_in(&mut be, "acme", sql), "MT003", "V53: {sql}");
    }
    // V54: nor writes or consumption
    for sql in [
        "INSERT INTO public.notes (body) VALUES ('ro')",
        "UPDATE public.notes SET body = 'ro'",
        "DELETE FROM public.notes",
        "SELECT tenant.consume('seats', 1)",
    ] {
        assert_eq!(err_in(&mut be, "acme", sql), "MT003", "V54: {sql}");
    }
    assert_eq!(snapshot(&db), before, "V53/V54: something changed");
}

#[test]
fn forged_context_tokens_are_no_context() {
    let db = Db::new("hx_forge");
    let other = Db::new("hx_forge_other");
    let acme = db.tenant_id("acme").to_string();
    let globex = db.tenant_id("globex").to_string();
    let tok = token_for(&db, "acme");
    let gtok = token_for(&db, "globex");
    let parts: Vec<&str> = tok.split('.').collect();
    assert_eq!(parts.len(), 3, "token format mt1.<payload>.<mac>: {tok}");
    let gparts: Vec<&str> = gtok.split('.').collect();
    let oid = key_id(&mut db.as_role("postgres"));
    let mut app = db.as_role("mt_it_app");
    let mut check = |value: &str, what: &str| {
        set_ctx(&mut app, value);
        assert_no_context(&mut app, what);
    };
    // V62: garbage, wrong prefixes
    check("garbage", "V62: garbage");
    check(&format!("mt2.{}.{}", parts[1], parts[2]), "V62: mt2 prefix");
    check(
        &format!("MT1.{}.{}", parts[1], parts[2]),
        "V62: upper-case prefix",
    );
    check("mt1..", "V62: empty parts");
    check("mt1.e30.", "V62: empty mac");
    // V63: one character of the payload changed; payload of one token with the mac of another
    check(
        &format!(
            "mt1.{}.{}",
            flip_char(parts[1], parts[1].len() / 2),
            parts[2]
        ),
        "V63: payload character changed",
    );
    check(
        &format!("mt1.{}.{}", gparts[1], parts[2]),
        "V63: globex's payload with acme's mac",
    );
    // V64: the mac changed, truncated or extended
    check(
        &format!("mt1.{}.{}", parts[1], flip_char(parts[2], 0)),
        "V64: mac changed",
    );
    check(
        &format!("mt1.{}.{}", parts[1], &parts[2][..parts[2].len() - 4]),
        "V64: mac truncated",
    );
    check(&format!("{tok}.AAAA"), "V64: segment appended");
    check(&format!("{tok}AAAA"), "V64: mac extended");
    // V65: a valid token of another database (same slugs, another secret and oid)
    check(&token_for(&other, "acme"), "V65: foreign database");
    // V66: empty
    check("", "V66: empty");
    // V67: one megabyte
    check(
        &format!("mt1.{}.{}", "A".repeat(1 << 20), parts[2]),
        "V67: 1 MB token",
    );
    // V68: a payload that is not UTF-8 (NUL-free), with a mac-shaped tail
    let bin = mint_with(
        &[7u8; 32],
        &[0xff, 0xfe, 0xfd, 0xc3, 0x28, 0xa0, 0xa1, 0x80, 0xf0],
    );
    check(&bin, "V68: non-UTF-8 payload");
    // V69: well-formed claims for globex signed with guessed keys
    for (what, key) in [
        ("V69: zero key", vec![0u8; 32]),
        ("V69: empty key", Vec::new()),
        ("V69: key 'secret'", b"secret".to_vec()),
    ] {
        check(&mint_claims(&key, &globex, &oid), what);
    }
    // control for V62-V69: the same minting with the real secret is accepted, so the
    // refusals above are due to the key, not to the harness
    let secret: Vec<u8> = {
        let mut su = db.as_role("postgres");
        su.query_one("SELECT key FROM tenant.secret", &[])
            .unwrap()
            .get(0)
    };
    set_token(&mut app, &mint_claims(&secret, &globex, &oid));
    assert_eq!(bodies(&mut app), vec!["g1"], "control: the real secret");
    // V70b: the extension's own system context (claim `o`, made for export/import/purge of
    // a Citus table) holds only while its role is the current user: signed with the real
    // secret for another role, it is no context for mt_it_app. V70c: off the Citus workers
    // it holds only in the backend whose export/import/purge set it, while it is set: for
    // mt_it_app itself, presented as a copy, it is no context either
    let now = unix_now();
    let system = |role: &str| {
        let claims =
            serde_json::json!({"t": globex, "iat": now, "exp": now + 600, "k": oid, "o": role});
        mint_with(&secret, &serde_json::to_vec(&claims).unwrap())
    };
    set_token(&mut app, &system("mt_it_owner_elsewhere"));
    assert!(
        bodies(&mut app).is_empty(),
        "V70b: another role's system context"
    );
    let cur: Option<String> = app
        .query_one("SELECT tenant.current_tenant()::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(cur, None, "V70b");
    set_token(&mut app, &system("mt_it_app"));
    assert!(
        bodies(&mut app).is_empty(),
        "V70c: a copy of its own role's"
    );
    // V70: set_config(..., is_local => true) with a forged value inside a transaction
    app.batch_execute("RESET multitenant.context").unwrap();
    {
        let mut tx = app.transaction().unwrap();
        tx.execute(
            "SELECT set_config('multitenant.context', $1, true)",
            &[&format!("mt1.{}.{}", gparts[1], parts[2])],
        )
        .unwrap();
        let n: i64 = tx
            .query_one("SELECT count(*) FROM public.notes", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "V70: set_config local");
        let cur: Option<String> = tx
            .query_one("SELECT tenant.current_tenant()::text", &[])
            .unwrap()
            .get(0);
        assert_eq!(cur, None, "V70");
        tx.rollback().unwrap();
    }
    // V71: the attacker carrying acme's copied token gets acme's context exactly (carrying
    // is by design) and still no table it has no privilege on
    let mut evil = with_token(&db, "mt_it_evil", &tok);
    assert_eq!(
        current_tenant(&mut evil).as_deref(),
        Some(acme.as_str()),
        "V71"
    );
    assert_eq!(
        texts(&mut evil, "SELECT slug FROM tenant.tenants ORDER BY slug"),
        vec!["acme"],
        "V71: tenants visible with acme's token"
    );
    expect_code(
        &mut evil,
        "SELECT * FROM public.notes",
        "42501",
        "V71: no SELECT on notes",
    );
    // V72: an expired token (context_ttl = 1 s)
    su_exec(
        &db,
        &format!("ALTER DATABASE {} SET multitenant.context_ttl = 1", db.name),
    );
    let short_lived = token_for(&db, "acme");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let mut late = with_token(&db, "mt_it_app", &short_lived);
    assert_no_context(&mut late, "V72: expired token");
    assert_eq!(db.all_bodies(), vec!["a1", "a2", "g1"]);
}

#[test]
fn session_tricks_do_not_cross_tenants() {
    let db = Db::new("hx_session");
    let acme = db.tenant_id("acme").to_string();
    let tok = token_for(&db, "acme");
    let gtok = token_for(&db, "globex");
    // V73: a forged value SET before the library is loaded (a placeholder) is no context
    let mut app = db.as_role("mt_it_app");
    app.batch_execute("SET multitenant.context = 'forged'")
        .unwrap();
    assert_no_context(&mut app, "V73: forged placeholder (app)");
    let mut evil = db.as_role("mt_it_evil");
    let payload = tok.split('.').nth(1).unwrap();
    let mac = tok.rsplit('.').next().unwrap();
    evil.batch_execute(&format!(
        "SET multitenant.context = 'mt1.{}.{mac}'",
        flip_char(payload, payload.len() / 2)
    ))
    .unwrap();
    assert_eq!(
        texts(&mut evil, "SELECT slug FROM tenant.tenants"),
        Vec::<String>::new(),
        "V73: tampered placeholder (evil) sees a tenant row"
    );
    // V74: a valid token SET before the library is loaded still works (what poolers do)
    let mut app = db.as_role("mt_it_app");
    app.batch_execute(&format!("SET multitenant.context = '{tok}'"))
        .unwrap();
    assert_eq!(bodies(&mut app), vec!["a1", "a2"], "V74");
    // V75: RESET ALL and DISCARD ALL drop the context
    let mut be = db.as_role("mt_it_backend");
    for reset in ["RESET ALL", "DISCARD ALL", "RESET multitenant.context"] {
        expect_ok(
            &mut be,
            "SELECT tenant.set_context('acme', NULL, false)",
            "session context",
        );
        assert_eq!(count(&mut be), 2, "V75: before {reset}");
        be.batch_execute(reset).unwrap();
        assert_eq!(count(&mut be), 0, "V75: after {reset}");
    }
    app.batch_execute("RESET ALL").unwrap();
    assert_eq!(count(&mut app), 0, "V75: carried token after RESET ALL");
    // V76: the superuser switching to an application role is held like the role
    let mut su = db.as_role("postgres");
    su.batch_execute("SET SESSION AUTHORIZATION mt_it_app")
        .unwrap();
    assert_eq!(count(&mut su), 0, "V76: SESSION AUTHORIZATION, no context");
    set_token(&mut su, &gtok);
    assert_eq!(
        bodies(&mut su),
        vec!["g1"],
        "V76: SESSION AUTHORIZATION, globex"
    );
    let mut su = db.as_role("postgres");
    set_token(&mut su, &tok);
    su.batch_execute("SET ROLE mt_it_app").unwrap();
    assert_eq!(bodies(&mut su), vec!["a1", "a2"], "V76: SET ROLE, acme");
    su.batch_execute("RESET multitenant.context").unwrap();
    assert_eq!(count(&mut su), 0, "V76: SET ROLE, no context");
    // V77: the attacker cannot become the trusted backend
    expect_code(
        &mut evil,
        "SET ROLE mt_it_backend",
        "42501",
        "V77: SET ROLE",
    );
    expect_code(
        &mut evil,
        "SET SESSION AUTHORIZATION mt_it_backend",
        "42501",
        "V77: SET SESSION AUTHORIZATION",
    );
    // V78: rolling back to a savepoint restores the outer context
    let mut be = db.as_role("mt_it_backend");
    be.batch_execute("BEGIN; SELECT tenant.set_context('acme'); SAVEPOINT s; SELECT tenant.set_context('globex')")
        .unwrap();
    assert_eq!(bodies(&mut be), vec!["g1"], "V78: inner context");
    be.batch_execute("ROLLBACK TO SAVEPOINT s").unwrap();
    assert_eq!(bodies(&mut be), vec!["a1", "a2"], "V78: after ROLLBACK TO");
    be.batch_execute("COMMIT").unwrap();
    assert_eq!(count(&mut be), 0, "V78: after COMMIT");
    // V79: a session-scoped context set in a rolled-back transaction is gone
    be.batch_execute("BEGIN; SELECT tenant.set_context('acme', NULL, false); ROLLBACK")
        .unwrap();
    assert_eq!(count(&mut be), 0, "V79: session context rolled back");
    assert_eq!(current_tenant(&mut be), None, "V79");
    // V80: only tenant_service mints
    for role in ["mt_it_app", "mt_it_api", "mt_it_evil", "mt_it_owner"] {
        let mut c = db.as_role(role);
        expect_code(
            &mut c,
            "SELECT tenant.set_context('acme')",
            "42501",
            &format!("V80: {role}"),
        );
    }
    // V81: superuser-only settings stay out of reach once the library is loaded
    let mut evil = db.as_role("mt_it_evil");
    assert_eq!(current_tenant(&mut evil), None);
    for sql in [
        "SET multitenant.context_ttl = 999999",
        "SET multitenant.suspended_access = 'read'",
        "SET multitenant.jwt_membership = 'off'",
        "SET multitenant.jwt_tenant_claim = 'sub'",
        "SET multitenant.jwt_leeway = 3600",
        "SET multitenant.postgrest_claims = on",
        "SELECT set_config('multitenant.context_ttl', '999999', false)",
    ] {
        expect_code(&mut evil, sql, "42501", &format!("V81: {sql}"));
    }
    // V82: ... and a placeholder set before the library loads is not honoured either
    su_exec(&db, "SELECT tenant.set_status('acme', 'suspended')");
    let mut app = db.as_role("mt_it_app");
    ok_or_one_of(
        &mut app,
        "SET multitenant.suspended_access = 'read'",
        &["42501"],
        "V82: placeholder",
    );
    set_token(&mut app, &tok);
    assert_eq!(
        count(&mut app),
        0,
        "V82: suspended tenant read through a placeholder"
    );
    let access: String = q1(
        &mut app,
        "SELECT current_setting('multitenant.suspended_access')",
    );
    assert_eq!(access, "none", "V82: the placeholder value survived");
    assert_ne!(
        current_tenant(&mut app).as_deref(),
        Some(acme.as_str()),
        "V82"
    );
}
