//! Upgrade suite: a database created at 0.1.0 (sql/multitenant--0.1.0.sql, frozen from the
//! landed commit ee08f8d) with data in place (isolated, partitioned, audited, row-limited and
//! protected tables, plans, members, keys, usage, audit chains) is updated with
//! `ALTER EXTENSION multitenant UPDATE`, then:
//! - the extension's objects (functions with their language, body, settings, volatility,
//!   parallel safety and privileges; tables, columns, constraints, indexes, policies,
//!   triggers, event triggers, configuration-dump list) equal those of a fresh install;
//! - isolation, quotas, audit chains and permissions work on the data written before.
//!
//! Needs the 0.1.0 install script in the server's extension directory (scripts/test.sh
//! copies it there for the run) and the current build installed. Built only with
//! `--features integration`.

use crate::common::*;
use postgres::Client;

/// Every object of the extension as sortable lines: what a fresh install and an upgraded one
/// must agree on.
const SNAPSHOT: &str = r#"
WITH ext AS (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'multitenant'),
fns AS (
  SELECT p.oid, p.oid::pg_catalog.regprocedure::text AS sig FROM pg_catalog.pg_proc p
  WHERE p.pronamespace IN ('tenant'::pg_catalog.regnamespace, 'tenant_internal'::pg_catalog.regnamespace)
)
SELECT line FROM (
  SELECT 'function ' || f.sig || ' returns ' || pg_catalog.format_type(p.prorettype, NULL)
         || ' lang ' || l.lanname || ' vol ' || p.provolatile::text || ' par ' || p.proparallel::text
         || ' strict ' || p.proisstrict::text || ' secdef ' || p.prosecdef::text
         || ' config ' || coalesce(p.proconfig::text, '-')
         || ' src ' || CASE WHEN l.lanname = 'c' THEN p.prosrc ELSE pg_catalog.md5(p.prosrc) END
         || ' defaults ' || coalesce(pg_catalog.pg_get_expr(p.proargdefaults, 0), '-')
         || ' comment ' || coalesce(pg_catalog.obj_description(p.oid, 'pg_proc'), '-') AS line
  FROM fns f JOIN pg_catalog.pg_proc p ON p.oid = f.oid JOIN pg_catalog.pg_language l ON l.oid = p.prolang
  UNION ALL
  SELECT 'grant ' || f.sig || ' to ' || CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::pg_catalog.regrole::text END
  FROM fns f JOIN pg_catalog.pg_proc p ON p.oid = f.oid
  CROSS JOIN LATERAL pg_catalog.aclexplode(coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner))) a
  WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner
  UNION ALL
  SELECT 'relation ' || c.relname || ' kind ' || c.relkind::text || ' rls ' || c.relrowsecurity::text || '/' || c.relforcerowsecurity::text
         || ' comment ' || coalesce(pg_catalog.obj_description(c.oid, 'pg_class'), '-')
  FROM pg_catalog.pg_class c WHERE c.relnamespace = 'tenant'::pg_catalog.regnamespace
  UNION ALL
  SELECT 'column ' || c.relname || '.' || a.attname || ' ' || pg_catalog.format_type(a.atttypid, a.atttypmod)
         || ' notnull ' || a.attnotnull::text || ' default ' || coalesce(pg_catalog.pg_get_expr(d.adbin, d.adrelid), '-')
         || ' identity ' || a.attidentity::text
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
  WHERE c.relnamespace = 'tenant'::pg_catalog.regnamespace AND c.relkind::text IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'constraint ' || c.conrelid::pg_catalog.regclass::text || ' ' || c.conname || ' ' || pg_catalog.pg_get_constraintdef(c.oid)
  FROM pg_catalog.pg_constraint c WHERE c.connamespace = 'tenant'::pg_catalog.regnamespace
  UNION ALL
  SELECT 'index ' || pg_catalog.pg_get_indexdef(i.indexrelid)
  FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
  WHERE c.relnamespace = 'tenant'::pg_catalog.regnamespace
  UNION ALL
  SELECT 'policy ' || p.tablename || ' ' || p.policyname || ' ' || p.permissive || ' ' || p.cmd || ' '
         || p.roles::text || ' using ' || coalesce(p.qual, '-') || ' check ' || coalesce(p.with_check, '-')
  FROM pg_catalog.pg_policies p WHERE p.schemaname = 'tenant'
  UNION ALL
  SELECT 'trigger ' || t.tgrelid::pg_catalog.regclass::text || ' ' || pg_catalog.pg_get_triggerdef(t.oid)
  FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
  WHERE c.relnamespace = 'tenant'::pg_catalog.regnamespace AND NOT t.tgisinternal
  UNION ALL
  SELECT 'event trigger ' || e.evtname || ' ' || e.evtevent::text || ' ' || e.evtfoid::pg_catalog.regproc::text
         || ' ' || coalesce(e.evttags::text, '-') || ' ' || e.evtenabled::text
  FROM pg_catalog.pg_event_trigger e
  UNION ALL
  SELECT 'config dump ' || x.cfg::pg_catalog.regclass::text
  FROM ext, pg_catalog.pg_extension e CROSS JOIN LATERAL unnest(e.extconfig) x(cfg) WHERE e.oid = ext.oid
  UNION ALL
  SELECT 'member ' || pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid)
  FROM ext, pg_catalog.pg_depend d WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
    AND d.refobjid = ext.oid AND d.deptype = 'e'
  UNION ALL
  SELECT 'schema ' || n.nspname || ' acl ' || coalesce(n.nspacl::text, '-')
         || ' comment ' || coalesce(pg_catalog.obj_description(n.oid, 'pg_namespace'), '-')
  FROM pg_catalog.pg_namespace n WHERE n.nspname IN ('tenant', 'tenant_internal')
  UNION ALL
  SELECT 'role ' || r.rolname FROM pg_catalog.pg_roles r WHERE r.rolname LIKE 'tenant\_%'
) s ORDER BY line
"#;

fn snapshot(c: &mut Client) -> Vec<String> {
    texts(c, SNAPSHOT)
}

/// Policies of a user table, as lines.
fn policies_of(c: &mut Client, table: &str) -> Vec<String> {
    first_column(
        &c.query(
            "SELECT policyname || ' ' || permissive || ' ' || cmd || ' using ' || coalesce(qual, '-') \
             || ' check ' || coalesce(with_check, '-') FROM pg_catalog.pg_policies \
             WHERE schemaname = 'public' AND tablename = $1 ORDER BY 1",
            &[&table],
        )
        .unwrap(),
    )
}

/// The application objects both databases get, written with 0.1.0's API in the old one.
/// Superuser steps stand for the DBA (0.1.0 let any owner call limit_rows and audit).
const APP_TABLES: &str = "
    CREATE TABLE public.notes (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                               tenant_id uuid NOT NULL, body text NOT NULL);
    CREATE TABLE public.ev (tenant_id uuid NOT NULL, n int NOT NULL) PARTITION BY LIST (n);
    CREATE TABLE public.seats (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                               tenant_id uuid NOT NULL, name text);
    CREATE TABLE public.campaigns (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                                   tenant_id uuid NOT NULL, owner_id text, title text);
    SELECT tenant.isolate('public.notes');
    SELECT tenant.isolate('public.ev');
    -- created after isolate: 0.1.0 had no DDL hook, so this partition stays open there
    CREATE TABLE public.ev_1 PARTITION OF public.ev FOR VALUES IN (1);
    SELECT tenant.isolate('public.seats');
    SELECT tenant.isolate('public.campaigns');
    SELECT tenant.protect('public.campaigns', 'campaigns', 'owner_id');
    GRANT SELECT, INSERT, UPDATE, DELETE ON public.notes, public.ev, public.ev_1, public.seats,
        public.campaigns TO mt_it_backend, mt_it_app;
";

const DBA_STEPS: &str = r#"
    SELECT tenant.load_plan('{"name": "team", "limits": {"seats": 3, "calls": 100}}');
    SELECT tenant.audit('public.notes');
    SELECT tenant.limit_rows('public.seats', 'seats');
    SELECT tenant.add_jwt_key('k1', 'HS256', 'an-hs256-secret-of-at-least-32-bytes!!');
"#;

const BACKEND_STEPS: &str = "
    SELECT tenant.create('acme', 'Acme', 'team');
    SELECT tenant.create('globex', 'Globex', 'team');
    SELECT tenant.add_member('acme', 'alice', ARRAY['admin']);
    BEGIN; SELECT tenant.set_context('acme', 'alice');
      INSERT INTO public.notes (body) VALUES ('a1'), ('a2');
      INSERT INTO public.ev (n) VALUES (1);
      INSERT INTO public.seats (name) VALUES ('s1'), ('s2');
      SELECT tenant.consume('calls', 7);
      SELECT tenant.grant_permission('member', 'reports', 'read');
    COMMIT;
    BEGIN; SELECT tenant.set_context('globex');
      INSERT INTO public.notes (body) VALUES ('g1');
      INSERT INTO public.ev (n) VALUES (1);
    COMMIT;
";

const EXTVERSION: &str = "SELECT extversion FROM pg_extension WHERE extname = 'multitenant'";

fn build(db: &Db, version: Option<&str>) {
    let mut su = db.as_role("postgres");
    match version {
        Some(v) => su.batch_execute(&format!("CREATE EXTENSION multitenant VERSION '{v}'")),
        None => su.batch_execute("CREATE EXTENSION multitenant"),
    }
    .unwrap();
    su.batch_execute("GRANT CREATE ON SCHEMA public TO mt_it_owner")
        .unwrap();
    db.as_role("mt_it_owner").batch_execute(APP_TABLES).unwrap();
    su.batch_execute(DBA_STEPS).unwrap();
    db.as_role("mt_it_backend")
        .batch_execute(BACKEND_STEPS)
        .unwrap();
}

#[test]
fn update_from_0_1_0_with_data_equals_a_fresh_install_and_keeps_working() {
    let old = Db::bare("up_from010");
    let fresh = Db::bare("up_fresh");
    build(&old, Some("0.1.0"));
    build(&fresh, None);

    let mut su = old.as_role("postgres");
    assert_eq!(q1::<String>(&mut su, EXTVERSION), "0.1.0");
    // 0.1.0 left the partition open: the hole the update closes
    let mut app0 = old.as_role("mt_it_app");
    assert_eq!(one_i64(&mut app0, "SELECT count(*) FROM public.ev_1"), 2);
    drop(app0);

    su.batch_execute("ALTER EXTENSION multitenant UPDATE")
        .unwrap();
    assert_eq!(q1::<String>(&mut su, EXTVERSION), "0.2.0");

    // the extension's objects are those of a fresh install
    let upgraded = snapshot(&mut su);
    let mut su_fresh = fresh.as_role("postgres");
    let installed = snapshot(&mut su_fresh);
    // the snapshot sees everything: functions, grants, policies, triggers, the DDL hook
    for probe in [
        "function tenant.isolate(regclass,text)",
        "function tenant_internal._audit_link(bytea,bigint,bytea)",
        "schema tenant_internal",
        "grant tenant.current_tenant() to PUBLIC",
        "policy audit_log audit_log_auditor",
        "event trigger multitenant_isolate_children",
        "config dump tenant.audit_log_id_seq",
    ] {
        assert!(
            installed.iter().any(|l| l.starts_with(probe)),
            "snapshot lacks {probe}"
        );
    }
    assert!(installed.len() > 200, "{} lines", installed.len());
    let only_up: Vec<_> = upgraded.iter().filter(|l| !installed.contains(l)).collect();
    let only_fresh: Vec<_> = installed.iter().filter(|l| !upgraded.contains(l)).collect();
    assert!(
        only_up.is_empty() && only_fresh.is_empty(),
        "upgraded and fresh installs differ\n  only after the update: {only_up:#?}\n  only in a fresh install: {only_fresh:#?}"
    );
    // and so are the policies on the application's tables
    for t in ["notes", "ev", "ev_1", "seats", "campaigns"] {
        assert_eq!(
            policies_of(&mut su, t),
            policies_of(&mut su_fresh, t),
            "policies of public.{t}"
        );
    }

    // isolation on the data written at 0.1.0
    let mut app = old.as_role("mt_it_app");
    assert_eq!(count(&mut app), 0);
    assert_eq!(
        one_i64(&mut app, "SELECT count(*) FROM public.ev_1"),
        0,
        "the partition is isolated after the update"
    );
    let mut be = old.as_role("mt_it_backend");
    begin_in(&mut be, "acme");
    assert_eq!(bodies(&mut be), vec!["a1", "a2"]);
    assert_eq!(one_i64(&mut be, "SELECT count(*) FROM public.ev_1"), 1);
    be.batch_execute("COMMIT").unwrap();
    assert_eq!(
        batch_in(
            &mut be,
            "acme",
            "UPDATE public.notes SET body = 'x' WHERE body = 'g1'"
        ),
        Ok(())
    );
    assert_eq!(
        one_i64(
            &mut su,
            "SELECT count(*) FROM public.notes WHERE body = 'g1'"
        ),
        1,
        "acme could not touch globex's row"
    );

    // quotas: 2 seats were taken at 0.1.0, the limit is 3
    assert_eq!(
        batch_in(
            &mut be,
            "acme",
            "INSERT INTO public.seats (name) VALUES ('s3')"
        ),
        Ok(())
    );
    assert_eq!(
        batch_in(
            &mut be,
            "acme",
            "INSERT INTO public.seats (name) VALUES ('s4')"
        ),
        Err("MT010".to_string())
    );
    assert_eq!(
        batch_in(&mut be, "acme", "SELECT tenant.consume('calls', 93)"),
        Ok(()),
        "7 of 100 calls were used at 0.1.0"
    );
    assert_eq!(
        batch_in(&mut be, "acme", "SELECT tenant.consume('calls', 1)"),
        Err("MT010".to_string())
    );

    // the audit chains written at 0.1.0 go on and verify
    batch_in(
        &mut be,
        "acme",
        "INSERT INTO public.notes (body) VALUES ('a3')",
    )
    .unwrap();
    let verdict = verify(&mut su, Some("acme"));
    assert_eq!(verdict["valid"], true, "{verdict}");
    assert!(verdict["entries"].as_i64().unwrap() >= 4, "{verdict}");

    // permissions granted at 0.1.0 still answer
    begin_in(&mut be, ("acme", "alice"));
    let can: bool = q1(&mut be, "SELECT tenant.can('reports', 'read')");
    assert!(can, "alice (admin, inherits member) may read reports");
    be.batch_execute("COMMIT").unwrap();

    // the registration functions are the 0.2.0 ones
    let mut owner = old.as_role("mt_it_owner");
    owner
        .batch_execute("CREATE TABLE public.ev_2 PARTITION OF public.ev FOR VALUES IN (2)")
        .unwrap();
    let forced: bool = q1(
        &mut su,
        "SELECT relforcerowsecurity FROM pg_class WHERE oid = 'public.ev_2'::regclass",
    );
    assert!(forced, "a partition created after the update is isolated");
    let e = owner
        .batch_execute("SELECT tenant.limit_rows('public.notes', 'notes')")
        .unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "limit_rows is for tenant_admin now");
}
