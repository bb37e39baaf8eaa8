//! The extension's life cycle: DROP and CREATE EXTENSION again, pg_dump and pg_restore.

use crate::common::*;

/// Run a PostgreSQL 15 client program against the cluster as postgres; it must succeed.
fn pg_tool(program: &str, args: &[&str]) {
    let port = port().unwrap().to_string();
    let out = std::process::Command::new(format!("/usr/lib/postgresql/15/bin/{program}"))
        .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program}: {}",
        String::from_utf8_lossy(&out.stderr)
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
    exec_in(
        &mut be,
        "acme",
        "INSERT INTO public.notes (body) VALUES ('new')",
    );
    let n: i64 = one_in(&mut be, "acme", "SELECT count(*) FROM public.notes");
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
    exec_in(
        &mut be,
        "acme",
        "INSERT INTO public.notes (body) VALUES ('a3')",
    );
    let file = std::env::temp_dir().join(format!("{}.dump", db.name));
    let file = file.to_str().unwrap();
    pg_tool("pg_dump", &["-Fc", "-f", file, &db.name]);
    let restored = Db::bare("restored");
    pg_tool(
        "pg_restore",
        &["--exit-on-error", "-d", &restored.name, file],
    );
    let _ = std::fs::remove_file(file);
    let mut su = restored.as_role("postgres");
    let slugs = texts(&mut su, "SELECT slug FROM tenant.tenants ORDER BY 1");
    assert_eq!(slugs, vec!["acme", "globex"]);
    let isolated: i64 = q1(&mut su, "SELECT count(*) FROM tenant.isolated_tables");
    assert_eq!(isolated, 1);
    assert_eq!(
        verify(&mut su, Some("acme"))["valid"],
        true,
        "the audit chains survive the round trip"
    );
    // a fresh secret: tokens of the old database do not work here
    let old_token = token_for(&db, "acme");
    let mut app = restored.as_role("mt_it_app");
    set_token(&mut app, &old_token);
    assert_eq!(count(&mut app), 0);
    // isolation holds in the restored database
    let mut be2 = restored.as_role("mt_it_backend");
    assert_eq!(count(&mut be2), 0);
    begin_in(&mut be2, "acme");
    assert_eq!(bodies(&mut be2), vec!["a1", "a2", "a3"]);
    be2.batch_execute("COMMIT").unwrap();
    // the identity sequences came along (issue 9, hole 10): an audited write and a new
    // permission get fresh ids instead of colliding (23505) or being swallowed
    let audited_before: i64 = q1(&mut su, "SELECT count(*) FROM tenant.audit_log");
    exec_in(
        &mut be2,
        "acme",
        "INSERT INTO public.notes (body) VALUES ('a4'); \
         SELECT tenant.grant_permission('member', 'reports', 'export')",
    );
    let audited_after: i64 = q1(&mut su, "SELECT count(*) FROM tenant.audit_log");
    assert!(
        audited_after > audited_before,
        "the audited insert and the grant were logged"
    );
    let granted: i64 = q1(
        &mut su,
        "SELECT count(*) FROM tenant.permissions WHERE resource = 'reports' AND action = 'export'",
    );
    assert_eq!(granted, 1, "grant_permission wrote its row");
}

#[test]
fn every_function_table_and_schema_of_the_extension_says_what_it_is() {
    let db = Db::new("comments");
    let mut su = db.as_role("postgres");
    let missing = texts(
        &mut su,
        "SELECT p.oid::regprocedure::text FROM pg_proc p
          WHERE p.pronamespace IN ('tenant'::regnamespace, 'tenant_internal'::regnamespace)
            AND coalesce(obj_description(p.oid, 'pg_proc'), '') = ''
         UNION ALL
         SELECT c.oid::regclass::text FROM pg_class c
          WHERE c.relnamespace = 'tenant'::regnamespace AND c.relkind = 'r'
            AND coalesce(obj_description(c.oid, 'pg_class'), '') = ''
         UNION ALL
         SELECT n.nspname::text FROM pg_namespace n
          WHERE n.nspname IN ('tenant', 'tenant_internal')
            AND coalesce(obj_description(n.oid, 'pg_namespace'), '') = ''
         ORDER BY 1",
    );
    assert!(
        missing.is_empty(),
        "without a COMMENT (\\df+, \\dt+): {missing:?}"
    );
}

#[test]
fn lifecycle_renewals_grace_and_retention_move_tenants_with_their_reasons() {
    let db = Db::new("lifecycle_periods");
    let mut be = db.as_role("mt_it_backend");
    let acme = db.tenant_id("acme");
    let globex_before = su_text(
        &db,
        &format!(
            "SELECT status || coalesce(suspended_at::text, '') FROM tenant.tenants WHERE id = '{}'",
            db.tenant_id("globex")
        ),
    );
    // a renewal: active -> active, recorded with the new period end (the free plan: monthly)
    be.batch_execute("SELECT tenant.set_status('acme', 'active')")
        .unwrap();
    let renewed = su_text(
        &db,
        &format!(
            "SELECT (period_end > now() + interval '27 days')::text || ':' || \
                    (SELECT new_data->>'reason' FROM tenant.audit_log WHERE tenant_id = '{acme}' AND record_id = 'tenant.renewed') \
             FROM tenant.tenants WHERE id = '{acme}'"
        ),
    );
    assert_eq!(renewed, "true:requested");
    // suspended: the time is kept; past the grace period run_maintenance deletes it
    be.batch_execute("SELECT tenant.set_status('acme', 'suspended')")
        .unwrap();
    let m: String = q1(&mut be, "SELECT tenant.run_maintenance()::text");
    assert!(m.contains("\"grace_expired\": 0"), "{m}");
    su_exec(&db, &format!("UPDATE tenant.tenants SET suspended_at = now() - interval '31 days' WHERE id = '{acme}'"));
    let m: String = q1(&mut be, "SELECT tenant.run_maintenance()::text");
    assert!(
        m.contains("\"grace_expired\": 1") && m.contains("\"retention_expired\": 0"),
        "{m}"
    );
    let state = su_text(
        &db,
        &format!(
            "SELECT status || ':' || (deleted_at IS NOT NULL)::text || ':' || (purge_after > now() + interval '29 days')::text || ':' || \
                    (SELECT string_agg(new_data->>'reason', ',' ORDER BY id) FROM tenant.audit_log \
                      WHERE tenant_id = '{acme}' AND record_id = 'tenant.status_changed') \
             FROM tenant.tenants WHERE id = '{acme}'"
        ),
    );
    assert_eq!(state, "deleted:true:true:requested,grace_expired");
    // past its retention it is purged, with a receipt in the global chain
    su_exec(&db, &format!("UPDATE tenant.tenants SET purge_after = now() - interval '1 second' WHERE id = '{acme}'"));
    let m: String = q1(&mut be, "SELECT tenant.run_maintenance()::text");
    assert!(m.contains("\"retention_expired\": 1"), "{m}");
    assert_eq!(
        su_text(
            &db,
            &format!("SELECT status FROM tenant.tenants WHERE id = '{acme}'")
        ),
        "purged"
    );
    assert_eq!(
        su_i64(
            &db,
            &format!("SELECT count(*) FROM public.notes WHERE tenant_id = '{acme}'")
        ),
        0
    );
    assert_eq!(
        su_i64(&db, &format!("SELECT count(*) FROM tenant.audit_log WHERE tenant_id IS NULL AND record_id = 'tenant.purged' AND new_data->>'tenant_id' = '{acme}'")),
        1
    );
    // set_status(..., 'purged') is purge: tenant_admin only, after the retention period
    be.batch_execute("SELECT tenant.create('initech', 'Initech'); SELECT tenant.set_status('initech', 'deleted')")
        .unwrap();
    assert_eq!(
        err_of(&mut be, "SELECT tenant.set_status('initech', 'purged')"),
        "MT020"
    );
    let mut admin = db.as_role("mt_it_admin");
    assert_eq!(
        err_of(&mut admin, "SELECT tenant.set_status('initech', 'purged')"),
        "MT040"
    );
    // globex never moved; the application role may not run the maintenance
    assert_eq!(
        su_text(&db, &format!("SELECT status || coalesce(suspended_at::text, '') FROM tenant.tenants WHERE id = '{}'", db.tenant_id("globex"))),
        globex_before
    );
    assert_eq!(
        err_of(
            &mut db.as_role("mt_it_api"),
            "SELECT tenant.run_maintenance()"
        ),
        "42501"
    );
}

#[test]
fn tenants_are_edited_and_keep_settings_per_tenant() {
    let db = Db::new("lifecycle_edit");
    let mut be = db.as_role("mt_it_backend");
    let mut admin = db.as_role("mt_it_admin");
    // defaults under the given settings, a region, an owner member, all in one call
    admin
        .batch_execute(
            r#"SELECT tenant.set_setting_default('locale', '"en"');
               SELECT tenant.set_setting_default('theme', '"dark"');"#,
        )
        .unwrap();
    assert_eq!(
        err_of(&mut be, r#"SELECT tenant.set_setting_default('x', '1')"#),
        "42501"
    );
    be.batch_execute(
        r#"SELECT tenant.create('initech', 'Initech', settings => '{"theme": "light"}',
                                region => 'eu-west-1', owner_user_id => 'peter')"#,
    )
    .unwrap();
    let row = su_text(
        &db,
        "SELECT t.settings::text || '|' || t.region || '|' || array_to_string(m.roles, ',') \
         FROM tenant.tenants t JOIN tenant.members m ON m.tenant_id = t.id AND m.user_id = 'peter' WHERE t.slug = 'initech'",
    );
    assert_eq!(row, r#"{"theme": "light", "locale": "en"}|eu-west-1|owner"#);
    for sql in [
        "SELECT tenant.create('x1', 'X', plan => 'nosuch')",
        "SELECT tenant.create('x2', 'X', region => 'Not A Region')",
        "SELECT tenant.create(NULL, 'X')",
    ] {
        assert_eq!(err_of(&mut be, sql), "MT030", "{sql}");
    }
    // update: name, slug, settings merged or replaced; seen by other sessions at once
    let mut other = db.as_role("mt_it_backend");
    let _ = in_tenant(&mut other, "initech", "SELECT 1").unwrap(); // caches filled
    let after: String = q1(
        &mut be,
        r#"SELECT tenant.update('initech', name => 'Initrode', slug => 'initrode', settings => '{"tz": "UTC"}')::text"#,
    );
    assert!(
        after.contains(r#""slug": "initrode""#)
            && after.contains(r#""tz": "UTC""#)
            && after.contains(r#""locale": "en""#),
        "{after}"
    );
    assert_eq!(err_in(&mut other, "initech", "SELECT 1"), "MT002");
    assert!(in_tenant(&mut other, "initrode", "SELECT 1").is_ok());
    let replaced: String = q1(
        &mut be,
        r#"SELECT (tenant.update('initrode', settings => '{"only": 1}', merge => false) -> 'settings')::text"#,
    );
    assert_eq!(replaced, r#"{"only": 1}"#);
    for (sql, code) in [
        ("SELECT tenant.update('initrode', slug => 'acme')", "MT030"),
        (
            "SELECT tenant.update('initrode', slug => 'Bad Slug')",
            "MT030",
        ),
        ("SELECT tenant.update('initrode', name => '  ')", "MT030"),
        ("SELECT tenant.update('nosuch', name => 'x')", "MT002"),
    ] {
        assert_eq!(err_of(&mut be, sql), code, "{sql}");
    }
    assert_eq!(
        err_of(
            &mut db.as_role("mt_it_api"),
            "SELECT tenant.update('acme', name => 'x')"
        ),
        "42501"
    );
    assert_eq!(
        su_i64(
            &db,
            "SELECT count(*) FROM tenant.audit_log WHERE record_id = 'tenant.updated'"
        ),
        2
    );
    // settings of the current tenant
    exec_in(
        &mut be,
        "acme",
        r##"SELECT tenant.set_setting('branding.color', '"#ff0000"')"##,
    );
    let mut api = db.as_role("mt_it_api");
    api.batch_execute(&format!(
        "SET multitenant.context = '{}'",
        token_for(&db, "acme")
    ))
    .unwrap();
    assert_eq!(
        q1::<String>(
            &mut api,
            "SELECT tenant.get_setting('branding.color')::text"
        ),
        r##""#ff0000""##
    );
    assert_eq!(
        q1::<String>(
            &mut api,
            r#"SELECT tenant.get_setting('missing', '"fallback"')::text"#
        ),
        r#""fallback""#
    );
    assert_eq!(
        err_of(&mut api, r#"SELECT tenant.set_setting('theme', '"x"')"#),
        "MT020",
        "the API role is not the backend"
    );
    assert_eq!(
        err_of(&mut api, "SELECT tenant.get_setting('Bad Key')"),
        "MT030"
    );
    api.batch_execute("RESET multitenant.context").unwrap();
    assert_eq!(
        err_of(&mut api, "SELECT tenant.get_setting('theme')"),
        "MT001"
    );
    // another tenant sees none of it; a member needs settings/update
    let g: Option<String> = one_in(
        &mut be,
        "globex",
        "SELECT tenant.get_setting('branding.color')::text",
    );
    assert_eq!(g, None);
    exec_in(
        &mut be,
        "acme",
        "SELECT tenant.add_member('acme', 'vic', ARRAY['viewer'])",
    );
    assert_eq!(
        err_in(
            &mut be,
            ("acme", "vic"),
            r#"SELECT tenant.set_setting('theme', '"x"')"#
        ),
        "MT020"
    );
    exec_in(
        &mut be,
        "acme",
        "SELECT tenant.set_setting('branding.color', NULL)",
    );
    let gone: Option<String> = one_in(
        &mut be,
        "acme",
        "SELECT tenant.get_setting('branding.color')::text",
    );
    assert_eq!(gone, None);
}
