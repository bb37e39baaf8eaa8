//! Execute surface and registration (V1-V12), temporary tables (V13-V18), borrowed trigger
//! functions (V19-V23).

use crate::common::*;
use std::collections::BTreeSet;

/// Every usage counter, as one comparable string.
fn counters(db: &Db) -> String {
    su_text(
        db,
        "SELECT coalesce(string_agg(tenant_id::text || '/' || resource || '/' || used::text, ','
                 ORDER BY tenant_id, resource, window_start), '') FROM tenant.usage_counters",
    )
}

fn audit_rows(db: &Db) -> i64 {
    su_i64(db, "SELECT count(*) FROM tenant.audit_log")
}

/// The functions of schemas tenant and tenant_internal that PUBLIC may execute, as
/// regprocedure text.
const PUBLIC_FUNCTIONS: [&str; 54] = [
    "tenant.current_tenant()",
    "tenant.require_tenant()",
    "tenant.current_user_id()",
    "tenant.context_status()",
    "tenant.clear_context()",
    "tenant.current_claims()",
    "tenant.current_roles()",
    "tenant.has_feature(text)",
    "tenant.require_feature(text)",
    "tenant.consume(text,bigint,text)",
    "tenant.track(text,numeric,text,jsonb)",
    "tenant.has_restriction(text)",
    "tenant.plans()",
    "tenant.check(text,bigint)",
    "tenant.usage_report(timestamp with time zone,timestamp with time zone)",
    "tenant.can(text,text,jsonb)",
    "tenant.authorize(text,text,jsonb)",
    "tenant.create_role(text,text[])",
    "tenant.drop_role(text)",
    "tenant.grant_permission(text,text,text,jsonb)",
    "tenant.revoke_permission(text,text,text)",
    "tenant.invite(text,text,integer)",
    "tenant.effective_roles()",
    "tenant.has_role(text)",
    "tenant.can_user(text,text,text,jsonb)",
    "tenant.pending_invitations()",
    "tenant.revoke_invitation(uuid)",
    "tenant.resend_invitation(uuid,integer)",
    "tenant.log_event(text,jsonb,text)",
    "tenant.create_organization(text,text)",
    "tenant.drop_organization(text)",
    "tenant.set_member_organization(text,text)",
    "tenant.current_organization()",
    "tenant.my_tenants(text)",
    "tenant.set_setting(text,jsonb)",
    "tenant.get_setting(text,jsonb)",
    "tenant.forget_user(text)",
    "tenant.adopt(regclass,text,text)",
    "tenant.verify_audit(text)",
    "tenant.isolate(regclass,text)",
    "tenant.unisolate(regclass)",
    "tenant.protect(regclass,text,text,jsonb)",
    "tenant.add_domain(text)",
    "tenant.remove_domain(text)",
    "tenant.set_branding(jsonb)",
    "tenant.define_custom_field(text,text,text,boolean,text[],text)",
    "tenant.drop_custom_field(text,text)",
    "tenant.validate_custom_fields(text,jsonb)",
    "tenant.complete_step(text,jsonb)",
    "tenant.onboarding()",
    "tenant.storage_path(text)",
    "tenant.register_object(text,bigint)",
    "tenant.unregister_object(text)",
    "tenant_internal._allow()",
];

#[test]
fn public_execute_surface_is_exactly_the_documented_list() {
    let db = Db::new("hx_surface");
    // V1: exactly the documented functions are executable by PUBLIC (NULL proacl counts as
    // PUBLIC-executable: that is the default for a new function)
    let mut su = db.as_role("postgres");
    su.batch_execute("SELECT pg_catalog.set_config('search_path', '', false)")
        .unwrap();
    let actual: BTreeSet<String> = texts(
        &mut su,
        "SELECT p.oid::pg_catalog.regprocedure::pg_catalog.text
           FROM pg_catalog.pg_proc p
          WHERE p.pronamespace IN ('tenant'::pg_catalog.regnamespace, 'tenant_internal'::pg_catalog.regnamespace)
            AND (p.proacl IS NULL
                 OR EXISTS (SELECT 1 FROM pg_catalog.aclexplode(p.proacl) a
                             WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'))",
    )
    .into_iter()
    .map(|s| s.replace('"', "")) // tenant."check"(...) prints quoted
    .collect();
    let expected: BTreeSet<String> = PUBLIC_FUNCTIONS.iter().map(|s| s.to_string()).collect();
    let extra: Vec<&String> = actual.difference(&expected).collect();
    let missing: Vec<&String> = expected.difference(&actual).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "V1: PUBLIC-executable functions differ from the documented list\n  executable by PUBLIC but not documented: {extra:#?}\n  documented but not executable by PUBLIC: {missing:#?}"
    );

    let mut evil = db.as_role("mt_it_evil");
    // V2: the audit hash helper is not callable by the attacker
    expect_one_of(
        &mut evil,
        "SELECT tenant_internal._audit_content(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
        &["42501", "42883"],
        "V2: tenant_internal._audit_content",
    );
    // V3: nor the cache invalidation hook
    expect_one_of(
        &mut evil,
        "SELECT tenant_internal._invalidate(0)",
        &["42501", "42883"],
        "V3: tenant_internal._invalidate",
    );
    // V4: nor the row counter behind limit_rows (burning or freeing another tenant's slots)
    expect_one_of(
        &mut evil,
        "SELECT tenant._count_row(NULL, 'x', 1)",
        &["42501", "42883"],
        "V4: tenant._count_row",
    );
    // V5: nor the internal registration helpers behind the SQL wrappers
    for sql in [
        "SELECT tenant._isolate('public.notes'::regclass::oid, 'tenant_id')",
        "SELECT tenant._unisolate('public.notes'::regclass::oid)",
        "SELECT tenant._limit_rows('public.notes'::regclass::oid, 'seats', 'tenant_id')",
        "SELECT tenant._unlimit_rows('public.notes'::regclass::oid)",
        "SELECT tenant._audit('public.notes'::regclass::oid, '{}'::text[], false)",
        "SELECT tenant._unaudit('public.notes'::regclass::oid)",
        "SELECT tenant._protect('public.notes'::regclass::oid, 'docs', NULL)",
    ] {
        expect_one_of(&mut evil, sql, &["42501", "42883"], "V5: internal helper");
    }
    // V6: nor any management function
    for sql in [
        "SELECT tenant.set_context('acme')",
        "SELECT tenant.create('evilcorp', 'Evil')",
        "SELECT tenant.set_status('globex', 'suspended')",
        "SELECT tenant.add_member('acme', 'mallory')",
        "SELECT tenant.remove_member('acme', 'alice')",
        "SELECT tenant.set_plan('acme', 'free')",
        "SELECT tenant.load_plan('{\"name\": \"evil\", \"limits\": {\"seats\": -1}}')",
        "SELECT tenant.set_limit_override('acme', 'seats', -1)",
        "SELECT tenant.set_feature_override('acme', 'sso', true)",
        "SELECT tenant.add_jwt_key('evil', 'HS256', repeat('x', 40))",
        "SELECT tenant.deactivate_jwt_key('k1')",
        "SELECT tenant.rotate_jwt_key('k1', 'k2', 'HS256', repeat('y', 40))",
        "SELECT tenant.purge_audit(0, 0)",
        "SELECT tenant.run_maintenance()",
        "SELECT * FROM tenant.invoice('acme')",
        "SELECT tenant.accept_invitation('x', 'mallory')",
        "SELECT tenant.authenticate('x.y.z')",
        "SELECT tenant.limit_rows('public.notes', 'seats')",
        "SELECT tenant.audit('public.notes')",
    ] {
        expect_code(&mut evil, sql, "42501", "V6: management function");
    }
    assert_eq!(db.all_bodies(), vec!["a1", "a2", "g1"]);
}

#[test]
fn registration_needs_ownership_and_tenant_admin() {
    let db = Db::new("hx_register");
    let relations = "('public.notes'::regclass, 'tenant.audit_log'::regclass, 'tenant.secret'::regclass, \
                     'tenant.tenants'::regclass, 'tenant.members'::regclass, 'pg_catalog.pg_class'::regclass, \
                     'pg_catalog.pg_authid'::regclass)";
    let snapshot = |db: &Db| -> String {
        su_text(
            db,
            &format!(
                "SELECT (SELECT count(*) FROM pg_trigger WHERE tgrelid IN {relations})::text || '/' ||
                        (SELECT count(*) FROM pg_policy WHERE polrelid IN {relations})::text || '/' ||
                        (SELECT count(*) FROM tenant.isolated_tables)::text || '/' ||
                        (SELECT count(*) FROM tenant.audited_tables)::text || '/' ||
                        (SELECT count(*) FROM tenant.row_limits)::text"
            ),
        )
    };
    let before = snapshot(&db);
    let mut evil = db.as_role("mt_it_evil");
    // V7: the attacker cannot attach or detach row limits and audit (EXECUTE is tenant_admin's)
    for sql in [
        "SELECT tenant.limit_rows('public.notes', 'seats')",
        "SELECT tenant.unlimit_rows('public.notes')",
        "SELECT tenant.audit('public.notes')",
        "SELECT tenant.unaudit('public.notes')",
    ] {
        expect_code(&mut evil, sql, "42501", "V7: mt_it_evil");
    }
    // V8: isolate/unisolate/protect are executable by PUBLIC but need the table's owner
    for sql in [
        "SELECT tenant.isolate('public.notes')",
        "SELECT tenant.unisolate('public.notes')",
        "SELECT tenant.protect('public.notes', 'notes')",
    ] {
        expect_code(&mut evil, sql, "MT020", "V8: mt_it_evil, not the owner");
    }
    // V9: a tenant_admin that does not own the table is refused by the ownership check
    let mut admin = db.as_role("mt_it_admin");
    for sql in [
        "SELECT tenant.limit_rows('public.notes', 'seats')",
        "SELECT tenant.unlimit_rows('public.notes')",
        "SELECT tenant.audit('public.notes')",
        "SELECT tenant.unaudit('public.notes')",
        "SELECT tenant.unisolate('public.notes')",
    ] {
        expect_code(&mut admin, sql, "MT020", "V9: tenant_admin, not the owner");
    }
    // V10: the owner that is not tenant_admin may isolate but not limit or audit
    let mut owner = db.as_role("mt_it_owner");
    for sql in [
        "SELECT tenant.limit_rows('public.notes', 'seats')",
        "SELECT tenant.audit('public.notes')",
    ] {
        expect_code(&mut owner, sql, "42501", "V10: owner without tenant_admin");
    }
    expect_ok(
        &mut owner,
        "SELECT tenant.isolate('public.notes')",
        "V10: the owner re-isolates its table (idempotent)",
    );
    // V11: the extension's own tables and the catalogs are refused to everyone, the
    // superuser included
    let mut su = db.as_role("postgres");
    for (who, c) in [
        ("mt_it_evil", &mut evil),
        ("mt_it_owner", &mut owner),
        ("mt_it_admin", &mut admin),
        ("postgres", &mut su),
    ] {
        for (tbl, col) in [
            ("tenant.audit_log", "tenant_id"),
            ("tenant.secret", "id"),
            ("tenant.tenants", "id"),
            ("tenant.members", "tenant_id"),
            ("pg_catalog.pg_class", "oid"),
            ("pg_catalog.pg_authid", "oid"),
        ] {
            for sql in [
                format!("SELECT tenant.isolate('{tbl}', '{col}')"),
                format!("SELECT tenant.unisolate('{tbl}')"),
                format!("SELECT tenant.protect('{tbl}', 'x')"),
                format!("SELECT tenant.limit_rows('{tbl}', 'seats', '{col}')"),
                format!("SELECT tenant.audit('{tbl}')"),
            ] {
                expect_one_of(
                    c,
                    &sql,
                    &["MT020", "MT030", "42501"],
                    &format!("V11: {who} on {tbl}"),
                );
            }
        }
    }
    // V12: none of the refused calls left a trigger, policy or registry row behind, and
    // notes is still isolated
    assert_eq!(
        snapshot(&db),
        before,
        "V12: triggers/policies/registries changed"
    );
    assert!(
        one_bool(
            &mut su,
            "SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE oid = 'public.notes'::regclass"
        ),
        "V12: notes lost its RLS flags"
    );
    assert_eq!(
        count(&mut db.as_role("mt_it_app")),
        0,
        "V12: still fail closed"
    );
}

#[test]
fn temporary_tables_are_refused_and_leave_no_trace() {
    let db = Db::new("hx_temp");
    plan(
        &db,
        r#"{"name": "hx-temp", "limits": {"seats": 10}}"#,
        &["acme", "globex"],
    );
    su_exec(&db, "SELECT tenant.limit_rows('public.notes', 'seats')");
    su_exec(&db, "SELECT tenant.audit('public.notes')");
    // some usage and audit entries exist for acme before the attack
    let mut be = db.as_role("mt_it_backend");
    exec_in(
        &mut be,
        "acme",
        "INSERT INTO public.notes (body) VALUES ('a3')",
    );
    let counters_before = counters(&db);
    let audit_before = audit_rows(&db);
    assert!(counters_before.contains("/seats/3"), "{counters_before}");
    let acme = db.tenant_id("acme").to_string();
    let globex = db.tenant_id("globex").to_string();

    let mut evil = as_tenant(&db, "mt_it_evil", "acme");
    expect_ok(
        &mut evil,
        "CREATE TEMP TABLE t (tenant_id uuid, body text)",
        "temp table",
    );
    // V13: limit_rows on the attacker's temp table: not tenant_admin
    expect_code(
        &mut evil,
        "SELECT tenant.limit_rows('pg_temp.t', 'seats')",
        "42501",
        "V13",
    );
    // V14: audit and the detach functions: not tenant_admin either
    for sql in [
        "SELECT tenant.audit('pg_temp.t')",
        "SELECT tenant.unaudit('pg_temp.t')",
        "SELECT tenant.unlimit_rows('pg_temp.t')",
    ] {
        expect_code(&mut evil, sql, "42501", "V14");
    }
    // V15: isolate of a temporary table (the owner is the attacker): MT030
    expect_code(&mut evil, "SELECT tenant.isolate('t')", "MT030", "V15");
    // V16: protect and unisolate of a temporary table: MT030
    expect_code(
        &mut evil,
        "SELECT tenant.protect('pg_temp.t', 'docs')",
        "MT030",
        "V16: protect",
    );
    expect_code(
        &mut evil,
        "SELECT tenant.unisolate('pg_temp.t')",
        "MT030",
        "V16: unisolate",
    );
    // V17: a tenant_admin on its own temporary table: MT030
    let mut admin = as_tenant(&db, "mt_it_admin", "acme");
    expect_ok(
        &mut admin,
        "CREATE TEMP TABLE t (tenant_id uuid NOT NULL, body text)",
        "temp table",
    );
    expect_code(
        &mut admin,
        "SELECT tenant.limit_rows('pg_temp.t', 'seats')",
        "MT030",
        "V17: limit_rows",
    );
    expect_code(
        &mut admin,
        "SELECT tenant.audit('pg_temp.t')",
        "MT030",
        "V17: audit",
    );
    expect_code(
        &mut admin,
        "SELECT tenant.isolate('pg_temp.t')",
        "MT030",
        "V17: isolate",
    );
    // V18: rows the attackers write into their temporary tables, for any tenant, land in no
    // counter and no audit chain; every chain still verifies
    for c in [&mut evil, &mut admin] {
        expect_ok(
            c,
            &format!(
                "INSERT INTO pg_temp.t VALUES ('{acme}', 'x'), ('{globex}', 'y');
                 UPDATE pg_temp.t SET body = 'z'; DELETE FROM pg_temp.t;"
            ),
            "V18: writes to a temp table",
        );
    }
    assert_eq!(
        counters(&db),
        counters_before,
        "V18: usage counters changed"
    );
    assert_eq!(audit_rows(&db), audit_before, "V18: audit log changed");
    let mut su = db.as_role("postgres");
    assert!(audit_valid(&mut su, "acme"), "V18: acme's chain");
    assert!(audit_valid(&mut su, "globex"), "V18: globex's chain");
    assert_eq!(
        su_i64(&db, "SELECT count(*) FROM tenant.audited_tables"),
        1,
        "V18: only notes is audited"
    );
    assert_eq!(
        su_i64(&db, "SELECT count(*) FROM tenant.row_limits"),
        1,
        "V18: only notes is limited"
    );
}

#[test]
fn extension_trigger_functions_cannot_be_borrowed() {
    let db = Db::new("hx_borrow");
    plan(
        &db,
        r#"{"name": "hx-borrow", "limits": {"seats": 10}}"#,
        &["acme", "globex"],
    );
    su_exec(&db, "SELECT tenant.limit_rows('public.notes', 'seats')");
    su_exec(&db, "SELECT tenant.audit('public.notes')");
    let acme = db.tenant_id("acme").to_string();
    let globex = db.tenant_id("globex").to_string();
    let counters_before = counters(&db);
    let audit_before = audit_rows(&db);
    assert!(
        counters_before.contains(&format!("{acme}/seats/2")),
        "{counters_before}"
    );

    let mut evil = as_tenant(&db, "mt_it_evil", "acme");
    expect_ok(
        &mut evil,
        "CREATE TEMP TABLE t (tenant_id uuid, body text)",
        "temp table",
    );
    // V19: the audit trigger function attached to the attacker's temp table: the trigger
    // cannot be created (EXECUTE on the trigger functions is tenant_admin's), and would
    // refuse to run anyway (the table is not registered: V23b)
    expect_code(
        &mut evil,
        "CREATE TRIGGER x AFTER INSERT OR UPDATE OR DELETE ON pg_temp.t FOR EACH ROW EXECUTE FUNCTION tenant_internal._audit_trigger()",
        "42501",
        "V19: attaching the audit trigger",
    );
    if run(
        &mut evil,
        "CREATE TRIGGER x AFTER INSERT OR UPDATE OR DELETE ON pg_temp.t FOR EACH ROW EXECUTE FUNCTION tenant_internal._audit_trigger()",
    )
    .is_ok()
    {
        expect_code(
            &mut evil,
            &format!("INSERT INTO pg_temp.t VALUES ('{globex}', 'planted')"),
            "MT030",
            "V19: borrowed audit trigger",
        );
        expect_ok(&mut evil, "DROP TRIGGER x ON pg_temp.t", "drop trigger");
    }
    assert_eq!(audit_rows(&db), audit_before, "V19: audit log changed");
    // V20: the row-limit trigger function on the attacker's temp table, aimed at acme's seats
    expect_code(
        &mut evil,
        "CREATE TRIGGER y AFTER INSERT OR DELETE ON pg_temp.t FOR EACH ROW EXECUTE FUNCTION tenant_internal._limit_rows_trigger('seats', 'tenant_id')",
        "42501",
        "V20: attaching the row-limit trigger",
    );
    if run(
        &mut evil,
        "CREATE TRIGGER y AFTER INSERT OR DELETE ON pg_temp.t FOR EACH ROW EXECUTE FUNCTION tenant_internal._limit_rows_trigger('seats', 'tenant_id')",
    )
    .is_ok()
    {
        expect_code(
            &mut evil,
            &format!("INSERT INTO pg_temp.t VALUES ('{acme}', 'burn')"),
            "MT030",
            "V20: borrowed limit trigger",
        );
    }
    assert_eq!(counters(&db), counters_before, "V20: counters changed");

    // the owner of an ordinary, unregistered table tries the same
    let mut owner = db.as_role("mt_it_owner");
    expect_ok(
        &mut owner,
        "CREATE TABLE public.fake (tenant_id uuid, body text)",
        "fake table",
    );
    // V21: audit trigger on an unregistered permanent table
    if run(
        &mut owner,
        "CREATE TRIGGER x AFTER INSERT ON public.fake FOR EACH ROW EXECUTE FUNCTION tenant_internal._audit_trigger()",
    )
    .is_ok()
    {
        expect_code(
            &mut owner,
            &format!("INSERT INTO public.fake VALUES ('{acme}', 'forged entry')"),
            "MT030",
            "V21: audit trigger on an unregistered table",
        );
        expect_ok(&mut owner, "DROP TRIGGER x ON public.fake", "drop trigger");
    }
    assert_eq!(audit_rows(&db), audit_before, "V21: audit log changed");
    // V22: limit trigger on INSERT to burn acme's seats
    if run(
        &mut owner,
        "CREATE TRIGGER y AFTER INSERT ON public.fake FOR EACH ROW EXECUTE FUNCTION tenant_internal._limit_rows_trigger('seats', 'tenant_id')",
    )
    .is_ok()
    {
        expect_code(
            &mut owner,
            &format!("INSERT INTO public.fake SELECT '{acme}', 'burn' FROM generate_series(1, 8)"),
            "MT030",
            "V22: burning another tenant's slots",
        );
        expect_ok(&mut owner, "DROP TRIGGER y ON public.fake", "drop trigger");
    }
    assert_eq!(counters(&db), counters_before, "V22: counters changed");
    // V23: limit trigger on DELETE to free acme's slots
    expect_ok(
        &mut owner,
        &format!("INSERT INTO public.fake SELECT '{acme}', 'free' FROM generate_series(1, 2)"),
        "rows without trigger",
    );
    if run(
        &mut owner,
        "CREATE TRIGGER z AFTER DELETE ON public.fake FOR EACH ROW EXECUTE FUNCTION tenant_internal._limit_rows_trigger('seats', 'tenant_id')",
    )
    .is_ok()
    {
        expect_code(
            &mut owner,
            "DELETE FROM public.fake",
            "MT030",
            "V23: freeing another tenant's slots",
        );
    }
    assert_eq!(counters(&db), counters_before, "V23: counters changed");
    // V23b: a tenant_admin member, who may attach them, attaches both to a table it owns that
    // was never registered: they refuse to run, nothing is logged or counted
    let mut su = db.as_role("postgres");
    su.batch_execute(
        "CREATE TABLE public.fake_admin (tenant_id uuid, body text);
         ALTER TABLE public.fake_admin OWNER TO mt_it_admin;",
    )
    .unwrap();
    let mut admin = db.as_role("mt_it_admin");
    expect_ok(
        &mut admin,
        "CREATE TRIGGER x AFTER INSERT ON public.fake_admin FOR EACH ROW EXECUTE FUNCTION tenant_internal._audit_trigger();
         CREATE TRIGGER y BEFORE INSERT OR DELETE ON public.fake_admin FOR EACH ROW EXECUTE FUNCTION tenant_internal._limit_rows_trigger()",
        "V23b: attaching by a tenant_admin",
    );
    expect_code(
        &mut admin,
        &format!("INSERT INTO public.fake_admin VALUES ('{acme}', 'forged')"),
        "MT030",
        "V23b: the triggers refuse an unregistered table",
    );
    assert_eq!(audit_rows(&db), audit_before, "V23b: audit log changed");
    assert_eq!(counters(&db), counters_before, "V23b: counters changed");
    assert!(audit_valid(&mut su, "acme"), "V19-V23b: acme's chain");
}

#[test]
fn functions_of_the_teams_and_lifecycle_work_give_an_attacker_nothing() {
    // V118: the functions PUBLIC may execute that came with teams, organizations, settings,
    // the switcher, erasure and adoption, called by a role with only CONNECT and TEMP, after
    // every session trick it has (its own search_path with temp objects first, an `=` of its
    // own, standard_conforming_strings off): no context, no rights, nothing written
    let db = Db::new("hostile_v118");
    let mut evil = db.as_role("mt_it_evil");
    evil.batch_execute(
        "CREATE TEMP TABLE members (tenant_id uuid, user_id text, roles text[]);
         CREATE FUNCTION pg_temp.texteq(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
         CREATE OPERATOR pg_temp.= (LEFTARG = text, RIGHTARG = text, PROCEDURE = pg_temp.texteq);
         SET search_path = pg_temp, public;
         SET standard_conforming_strings = off;",
    )
    .unwrap();
    let before = (
        audit_rows(&db),
        su_i64(&db, "SELECT count(*) FROM tenant.members"),
    );
    for (sql, code) in [
        ("SELECT tenant.can_user('bob', 'x', 'y')", "MT001"),
        ("SELECT * FROM tenant.pending_invitations()", "MT001"),
        (
            "SELECT tenant.revoke_invitation(gen_random_uuid())",
            "MT001",
        ),
        (
            "SELECT tenant.resend_invitation(gen_random_uuid())",
            "MT001",
        ),
        ("SELECT tenant.log_event('x')", "MT001"),
        ("SELECT tenant.create_organization('x', 'X')", "MT001"),
        ("SELECT tenant.set_member_organization('bob', 'x')", "MT001"),
        ("SELECT tenant.drop_organization('x')", "MT001"),
        ("SELECT * FROM tenant.my_tenants()", "MT001"),
        ("SELECT * FROM tenant.my_tenants('bob')", "MT020"),
        ("SELECT tenant.set_setting('x', '1')", "MT001"),
        ("SELECT tenant.get_setting('x')", "MT001"),
        ("SELECT tenant.forget_user('bob')", "MT001"),
        ("SELECT tenant.adopt('public.notes', 'acme')", "MT020"),
        ("SELECT tenant.export('acme')", "42501"),
        (
            "SELECT * FROM tenant.export_rows('acme', 'public.notes')",
            "42501",
        ),
        ("SELECT tenant.import('acme', '{}')", "42501"),
        ("SELECT tenant.purge('acme', true)", "42501"),
        ("SELECT * FROM tenant.tenant_stats()", "42501"),
        ("SELECT * FROM tenant.activity()", "42501"),
    ] {
        expect_code(&mut evil, sql, code, "V118: mt_it_evil");
    }
    // what needs no context answers nothing
    let (roles, has): (Vec<String>, bool) = {
        let r = evil
            .query_one(
                "SELECT tenant.effective_roles(), tenant.has_role('owner')",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert!(roles.is_empty() && !has, "V118: roles without a context");
    assert_eq!(
        (
            audit_rows(&db),
            su_i64(&db, "SELECT count(*) FROM tenant.members")
        ),
        before,
        "V118: nothing written"
    );
}
