//! Client suite of the isolation linter `tenant.check_isolation()` (sql/check_isolation.sql),
//! against a real cluster with the extension installed (see common/ for the
//! fixtures: every test gets a fresh database with tenants acme and globex and the isolated
//! table `public.notes`, owned by mt_it_owner).
//!
//! For each kind of finding a test
//!   1. creates the problem the way it happens in practice (as the table owner, or as the
//!      superuser where only a superuser can),
//!   2. where it can be shown in a few statements, proves the hole is real (rows of another
//!      tenant read, referenced, truncated, ...),
//!   3. asserts the linter, called as mt_it_admin (a member of tenant_admin that owns
//!      nothing), reports exactly that finding: severity, kind, object, problem and fix,
//!   4. runs the `fix` text it returned, as the role that may run it,
//!   5. asserts the finding is gone and, where step 2 proved a hole, that it is closed.
//!
//! Fixes that are `--` comments (a decision no script can make) are run too, to show they
//! change nothing; the test then does what the comment says.
//!
//! Roles are cluster-wide, so the tests that need a superuser or a BYPASSRLS role create it
//! inside a transaction they roll back: no other test, running concurrently, ever sees it.
//! Findings of kind privileged_role depend on the cluster's roles, which this suite does not
//! own; the tests that compare whole reports compute those rows from pg_roles.
//!
//! Built only with `--features integration`; needs MT_PGPORT (scripts/test.sh).

use crate::common::*;
use postgres::Client;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Finding {
    severity: String,
    kind: String,
    object: String,
    problem: String,
    fix: String,
}

fn finding(severity: &str, kind: &str, object: &str, problem: &str, fix: &str) -> Finding {
    Finding {
        severity: severity.into(),
        kind: kind.into(),
        object: object.into(),
        problem: problem.into(),
        fix: fix.into(),
    }
}

const LINT: &str = "SELECT severity, kind, object, problem, fix FROM tenant.check_isolation()";

/// The report, in its order, through the given connection (as whatever role it is now).
fn lint_with(c: &mut Client) -> Vec<Finding> {
    c.query(LINT, &[])
        .unwrap()
        .iter()
        .map(|r| Finding {
            severity: r.get(0),
            kind: r.get(1),
            object: r.get(2),
            problem: r.get(3),
            fix: r.get(4),
        })
        .collect()
}

/// The report as mt_it_admin.
fn lint(db: &Db) -> Vec<Finding> {
    lint_with(&mut db.as_role("mt_it_admin"))
}

/// The findings of one kind, in report order.
fn of_kind(db: &Db, kind: &str) -> Vec<Finding> {
    lint(db).into_iter().filter(|f| f.kind == kind).collect()
}

/// The report without the privileged_role rows (cluster-wide roles this suite does not own).
fn lint_in_database(db: &Db) -> Vec<Finding> {
    lint(db)
        .into_iter()
        .filter(|f| f.kind != "privileged_role")
        .collect()
}

/// The privileged_role rows a database holding only public.notes must show: every login
/// superuser and every BYPASSRLS role with privileges on it, except the extension owner.
fn expected_privileged_roles(db: &Db) -> Vec<Finding> {
    let mut su = db.as_role("postgres");
    su.query(
        "SELECT r.rolsuper, quote_ident(r.rolname) FROM pg_catalog.pg_roles r
         WHERE ((r.rolsuper AND r.rolcanlogin)
                OR (NOT r.rolsuper AND r.rolbypassrls
                    AND has_table_privilege(r.oid, 'public.notes', 'SELECT,INSERT,UPDATE,DELETE')))
           AND r.oid <> (SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'multitenant')
         ORDER BY r.rolsuper, quote_ident(r.rolname) COLLATE \"C\"",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| {
        let superuser: bool = r.get(0);
        let name: String = r.get(1);
        if superuser {
            finding(
                "warning",
                "privileged_role",
                &name,
                &format!("{name} is a superuser that can log in: superusers bypass row level security and see every tenant's rows of public.notes"),
                "-- connect applications as a non-superuser role",
            )
        } else {
            finding(
                "high",
                "privileged_role",
                &name,
                &format!("{name} has BYPASSRLS and privileges on public.notes: row level security does not apply to it, it reaches every tenant's rows"),
                &format!("ALTER ROLE {name} NOBYPASSRLS;"),
            )
        }
    })
    .collect()
}

#[test]
fn a_fresh_database_reports_only_the_clusters_privileged_roles() {
    let db = Db::new("lint_fresh");
    let report = lint(&db);
    // public.notes is isolated and forced, its identity primary key is a surrogate key, the
    // extension's own tables are not the linter's business, and the superuser postgres owns
    // the extension: nothing in the database itself is reported
    assert_eq!(lint_in_database(&db), vec![]);
    assert!(
        !report.iter().any(|f| f.object == "postgres"),
        "the extension owner is not reported: {report:#?}"
    );
    // high (BYPASSRLS) before warning (superusers), each by name
    assert_eq!(report, expected_privileged_roles(&db));
}

#[test]
fn only_tenant_admin_and_tenant_service_may_run_the_linter() {
    let db = Db::new("lint_grants");
    for role in ["mt_it_evil", "mt_it_app", "mt_it_api", "mt_it_owner"] {
        assert_eq!(err_of(&mut db.as_role(role), LINT), "42501", "{role}");
    }
    let admin = lint(&db);
    let backend = lint_with(&mut db.as_role("mt_it_backend"));
    assert_eq!(
        backend, admin,
        "SECURITY INVOKER reads only public catalogs"
    );
}

#[test]
fn a_table_with_a_uuid_tenant_id_that_is_not_isolated_is_critical_until_isolated() {
    let db = Db::new("lint_noiso");
    exec_as(
        &db,
        "postgres",
        "CREATE SCHEMA \"Billing\" AUTHORIZATION mt_it_owner",
    );
    let mut owner = db.as_role("mt_it_owner");
    owner
        .batch_execute(
            "CREATE TABLE public.invoices (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                                           tenant_id uuid NOT NULL, amount int NOT NULL);
             CREATE TABLE \"Billing\".\"Old Invoices\" (tenant_id uuid NOT NULL, amount int);
             -- not reported: tenant_id is not a uuid, or the table is temporary
             CREATE TABLE public.imports (tenant_id text, payload text);
             CREATE TEMP TABLE scratch (tenant_id uuid);",
        )
        .unwrap();
    // the temporary table is checked while the session that owns it is still open
    assert_eq!(
        of_kind(&db, "not_isolated"),
        vec![
            finding(
                "critical",
                "not_isolated",
                "\"Billing\".\"Old Invoices\"",
                "\"Billing\".\"Old Invoices\" has a uuid column \"tenant_id\" but is not isolated: every role with privileges on it reads and writes the rows of every tenant",
                "SELECT tenant.isolate('\"Billing\".\"Old Invoices\"');",
            ),
            finding(
                "critical",
                "not_isolated",
                "public.invoices",
                "public.invoices has a uuid column \"tenant_id\" but is not isolated: every role with privileges on it reads and writes the rows of every tenant",
                "SELECT tenant.isolate('public.invoices');",
            ),
        ]
    );
    for f in of_kind(&db, "not_isolated") {
        exec_as(&db, "mt_it_owner", &f.fix);
    }
    assert_eq!(lint_in_database(&db), vec![]);
    let isolated = count_as(
        &db,
        "postgres",
        "SELECT count(*) FROM tenant.isolated_tables
         WHERE relid IN ('public.invoices'::regclass, '\"Billing\".\"Old Invoices\"'::regclass)",
    );
    assert_eq!(isolated, 2);
    drop(owner);
}

#[test]
fn rls_disabled_unforced_or_a_changed_policy_is_reported_and_isolate_repairs_it() {
    let db = Db::new("lint_forced");
    let fix = "SELECT tenant.isolate('public.notes');";

    // not forced: the owner sees every tenant's rows
    exec_as(
        &db,
        "mt_it_owner",
        "ALTER TABLE public.notes NO FORCE ROW LEVEL SECURITY",
    );
    assert_eq!(count(&mut db.as_role("mt_it_owner")), 3);
    assert_eq!(
        of_kind(&db, "rls_not_forced"),
        vec![finding(
            "high",
            "rls_not_forced",
            "public.notes",
            "row level security is not forced on public.notes: its owner (and any role that is a member of the owner) sees every tenant's rows",
            fix,
        )]
    );
    exec_as(&db, "mt_it_owner", fix);
    assert_eq!(lint_in_database(&db), vec![]);
    assert_eq!(count(&mut db.as_role("mt_it_owner")), 0);

    // disabled: every role with privileges sees every tenant's rows
    exec_as(
        &db,
        "mt_it_owner",
        "ALTER TABLE public.notes DISABLE ROW LEVEL SECURITY",
    );
    assert_eq!(count(&mut db.as_role("mt_it_app")), 3);
    assert_eq!(
        of_kind(&db, "rls_not_forced"),
        vec![finding(
            "critical",
            "rls_not_forced",
            "public.notes",
            "row level security is disabled on public.notes: every role with privileges on it sees every tenant's rows",
            fix,
        )]
    );
    exec_as(&db, "mt_it_owner", fix);
    assert_eq!(lint_in_database(&db), vec![]);
    assert_eq!(count(&mut db.as_role("mt_it_app")), 0);

    // the tenant policy changed or dropped: rows are no longer filtered
    let changed = finding(
        "critical",
        "rls_not_forced",
        "public.notes",
        "the policy \"tenant_isolation\" on public.notes is missing or was changed: rows are no longer filtered by tenant",
        fix,
    );
    exec_as(
        &db,
        "mt_it_owner",
        "ALTER POLICY tenant_isolation ON public.notes USING (true)",
    );
    assert_eq!(
        texts_in(
            &mut db.as_role("mt_it_backend"),
            "acme",
            "SELECT body FROM public.notes ORDER BY body"
        ),
        vec!["a1", "a2", "g1"]
    );
    assert_eq!(of_kind(&db, "rls_not_forced"), vec![changed.clone()]);
    exec_as(&db, "mt_it_owner", fix);
    assert_eq!(lint_in_database(&db), vec![]);
    assert_eq!(
        texts_in(
            &mut db.as_role("mt_it_backend"),
            "acme",
            "SELECT body FROM public.notes ORDER BY body"
        ),
        vec!["a1", "a2"]
    );
    exec_as(
        &db,
        "mt_it_owner",
        "DROP POLICY tenant_isolation ON public.notes",
    );
    assert_eq!(of_kind(&db, "rls_not_forced"), vec![changed]);
    exec_as(&db, "mt_it_owner", fix);
    assert_eq!(lint_in_database(&db), vec![]);
}

#[test]
fn a_child_table_the_ddl_hook_never_saw_is_reported_until_isolated() {
    let db = Db::new("lint_child");
    let globex = db.tenant_id("globex");
    // session_replication_role = replica (restores, replication tools) keeps event triggers
    // from firing: the child is created as its owner, but not isolated by the hook
    exec_as(
        &db,
        "postgres",
        &format!(
            "SET session_replication_role = replica;
             SET ROLE mt_it_owner;
             CREATE TABLE public.notes_archive () INHERITS (public.notes);
             GRANT SELECT ON public.notes_archive TO mt_it_backend;
             RESET ROLE;
             RESET session_replication_role;
             INSERT INTO public.notes_archive (id, tenant_id, body) VALUES (100, '{globex}', 'archived g');"
        ),
    );
    // named directly, the child shows globex's row to acme
    let direct = "SELECT body FROM public.notes_archive ORDER BY body";
    assert_eq!(
        texts_in(&mut db.as_role("mt_it_backend"), "acme", direct),
        vec!["archived g"]
    );
    assert_eq!(
        lint_in_database(&db),
        vec![finding(
            "high",
            "partition_without_rls",
            "public.notes_archive",
            "public.notes_archive is a child table under the isolated table public.notes but has row level security disabled: queried directly, it shows every tenant's rows to roles with privileges on it",
            "SELECT tenant.isolate('public.notes_archive');",
        )]
    );
    exec_as(
        &db,
        "mt_it_owner",
        "SELECT tenant.isolate('public.notes_archive');",
    );
    assert_eq!(lint_in_database(&db), vec![]);
    assert_eq!(
        texts_in(&mut db.as_role("mt_it_backend"), "acme", direct),
        Vec::<String>::new()
    );
    assert_eq!(
        texts_in(&mut db.as_role("mt_it_backend"), "globex", direct),
        vec!["archived g"]
    );
}

#[test]
fn a_bypassrls_role_with_privileges_is_high_and_nobypassrls_fixes_it() {
    let db = Db::new("lint_bypass");
    let role = format!("mt_lint_bypass_{}", std::process::id());
    let idle = format!("mt_lint_idle_{}", std::process::id());
    let mut su = db.as_role("postgres");
    // the roles live only inside this transaction (roles are cluster-wide)
    su.batch_execute(&format!(
        "BEGIN;
         CREATE ROLE {role} LOGIN BYPASSRLS;
         GRANT SELECT ON public.notes TO {role};
         CREATE ROLE {idle} LOGIN BYPASSRLS;  -- no privilege on an isolated table: not reported"
    ))
    .unwrap();
    let as_role = |su: &mut Client, r: &str| -> i64 {
        su.batch_execute(&format!("SET ROLE {r}")).unwrap();
        let n = count(su);
        su.batch_execute("RESET ROLE").unwrap();
        n
    };
    // without any context, it reads every tenant's rows
    assert_eq!(as_role(&mut su, &role), 3);
    let lint_as_admin = |su: &mut Client| -> Vec<Finding> {
        su.batch_execute("SET ROLE mt_it_admin").unwrap();
        let v = lint_with(su);
        su.batch_execute("RESET ROLE").unwrap();
        v.into_iter()
            .filter(|f| f.object == role || f.object == idle)
            .collect()
    };
    let expected = finding(
        "high",
        "privileged_role",
        &role,
        &format!("{role} has BYPASSRLS and privileges on public.notes: row level security does not apply to it, it reaches every tenant's rows"),
        &format!("ALTER ROLE {role} NOBYPASSRLS;"),
    );
    assert_eq!(lint_as_admin(&mut su), vec![expected.clone()]);
    su.batch_execute(&expected.fix).unwrap();
    assert_eq!(lint_as_admin(&mut su), vec![]);
    assert_eq!(as_role(&mut su, &role), 0);
    su.batch_execute("ROLLBACK").unwrap();
}

#[test]
fn a_second_login_superuser_is_a_warning_and_nologin_superusers_are_not_reported() {
    let db = Db::new("lint_super");
    let su_login = format!("mt_lint_su_{}", std::process::id());
    let su_nologin = format!("mt_lint_su_nologin_{}", std::process::id());
    let mut su = db.as_role("postgres");
    su.batch_execute(&format!(
        "BEGIN;
         CREATE ROLE {su_login} SUPERUSER LOGIN;
         CREATE ROLE {su_nologin} SUPERUSER NOLOGIN;"
    ))
    .unwrap();
    let lint_as_admin = |su: &mut Client| -> Vec<Finding> {
        su.batch_execute("SET ROLE mt_it_admin").unwrap();
        let v = lint_with(su);
        su.batch_execute("RESET ROLE").unwrap();
        v.into_iter()
            .filter(|f| f.object == su_login || f.object == su_nologin)
            .collect()
    };
    let expected = finding(
        "warning",
        "privileged_role",
        &su_login,
        &format!("{su_login} is a superuser that can log in: superusers bypass row level security and see every tenant's rows of public.notes"),
        "-- connect applications as a non-superuser role",
    );
    assert_eq!(lint_as_admin(&mut su), vec![expected.clone()]);
    // the fix is advice: running it changes nothing
    su.batch_execute(&expected.fix).unwrap();
    assert_eq!(lint_as_admin(&mut su), vec![expected]);
    // what it advises: applications do not log in as that superuser
    su.batch_execute(&format!("ALTER ROLE {su_login} NOLOGIN"))
        .unwrap();
    assert_eq!(lint_as_admin(&mut su), vec![]);
    su.batch_execute("ROLLBACK").unwrap();
}

#[test]
fn views_without_security_invoker_are_reported_and_the_fix_makes_them_filter_by_tenant() {
    let db = Db::new("lint_views");
    exec_as(
        &db,
        "postgres",
        "CREATE VIEW public.all_notes AS SELECT body FROM public.notes;
         CREATE VIEW public.invoker_notes WITH (security_invoker = true) AS SELECT body FROM public.notes;
         CREATE VIEW public.nested_notes AS SELECT body FROM public.invoker_notes;
         GRANT SELECT ON public.all_notes, public.invoker_notes, public.nested_notes TO mt_it_backend;",
    );
    exec_as(
        &db,
        "mt_it_owner",
        "CREATE VIEW public.owner_notes AS SELECT id, body FROM public.notes;
         GRANT SELECT ON public.owner_notes TO mt_it_backend;",
    );
    let read = |v: &str| {
        texts_in(
            &mut db.as_role("mt_it_backend"),
            "acme",
            &format!("SELECT body FROM public.{v} ORDER BY body"),
        )
    };
    // owned by a superuser, the view shows globex's row to acme; the owner's view does not
    // (the owner is held by the forced policy), so it is only a warning. A definer view over
    // a security_invoker view is not reported: the tables under the invoker view are checked
    // as the querying user.
    assert_eq!(read("all_notes"), vec!["a1", "a2", "g1"]);
    assert_eq!(read("nested_notes"), vec!["a1", "a2"]);
    assert_eq!(read("owner_notes"), vec!["a1", "a2"]);
    assert_eq!(read("invoker_notes"), vec!["a1", "a2"]);
    let by_superuser = |v: &str| -> Finding {
        finding(
            "critical",
            "view_without_security_invoker",
            &format!("public.{v}"),
            &format!("view public.{v} reads public.notes with the rights of its owner postgres, not of its reader (security_invoker is not set): that owner bypasses row level security, so the view shows every tenant's rows"),
            &format!("ALTER VIEW public.{v} SET (security_invoker = true);"),
        )
    };
    let by_owner = finding(
        "warning",
        "view_without_security_invoker",
        "public.owner_notes",
        "view public.owner_notes reads public.notes with the rights of its owner mt_it_owner, not of its reader (security_invoker is not set)",
        "ALTER VIEW public.owner_notes SET (security_invoker = true);",
    );
    assert_eq!(
        lint_in_database(&db),
        vec![by_superuser("all_notes"), by_owner.clone()]
    );
    exec_as(&db, "postgres", &by_superuser("all_notes").fix);
    exec_as(&db, "mt_it_owner", &by_owner.fix);
    assert_eq!(lint_in_database(&db), vec![]);
    for v in ["all_notes", "nested_notes", "owner_notes", "invoker_notes"] {
        assert_eq!(read(v), vec!["a1", "a2"], "{v}");
    }
}

#[test]
fn a_materialized_view_over_an_isolated_table_is_high_until_dropped() {
    let db = Db::new("lint_matview");
    exec_as(
        &db,
        "postgres",
        "CREATE MATERIALIZED VIEW public.note_bodies AS SELECT body FROM public.notes;
         GRANT SELECT ON public.note_bodies TO mt_it_backend;
         -- through a view, even a security_invoker one: refreshed as its owner, a superuser
         CREATE VIEW public.invoker_notes WITH (security_invoker = true) AS SELECT body FROM public.notes;
         CREATE MATERIALIZED VIEW public.note_count AS SELECT count(*) AS n FROM public.invoker_notes;
         GRANT SELECT ON public.note_count TO mt_it_backend;",
    );
    assert_eq!(
        texts_in(
            &mut db.as_role("mt_it_backend"),
            "acme",
            "SELECT body FROM public.note_bodies ORDER BY body"
        ),
        vec!["a1", "a2", "g1"]
    );
    assert_eq!(
        count_as(&db, "mt_it_backend", "SELECT n FROM public.note_count"),
        3
    );
    let matview = |m: &str| -> Finding {
        finding(
            "high",
            "view_without_security_invoker",
            &format!("public.{m}"),
            &format!("materialized view public.{m} stores rows of public.notes: its readers' row level security is never applied"),
            "-- materialized views ignore RLS of their readers; drop it or refresh per tenant",
        )
    };
    let expected = vec![matview("note_bodies"), matview("note_count")];
    assert_eq!(lint_in_database(&db), expected);
    // the fix is advice: running it changes nothing
    exec_as(&db, "postgres", &expected[0].fix);
    assert_eq!(lint_in_database(&db), expected);
    exec_as(
        &db,
        "postgres",
        "DROP MATERIALIZED VIEW public.note_bodies; DROP MATERIALIZED VIEW public.note_count",
    );
    assert_eq!(lint_in_database(&db), vec![]);
}

#[test]
fn security_definer_functions_over_an_isolated_table_are_reported_and_the_fix_applies_rls() {
    let db = Db::new("lint_secdef");
    exec_as(
        &db,
        "postgres",
        "CREATE FUNCTION public.note_bodies() RETURNS SETOF text LANGUAGE sql STABLE SECURITY DEFINER
             AS $$ SELECT body FROM public.notes ORDER BY body $$;
         -- not reported: names no isolated table, or is not SECURITY DEFINER
         CREATE FUNCTION public.answer() RETURNS int LANGUAGE sql SECURITY DEFINER AS $$ SELECT 42 $$;
         CREATE FUNCTION public.my_notes() RETURNS SETOF text LANGUAGE sql STABLE
             AS $$ SELECT body FROM public.notes ORDER BY body $$;",
    );
    exec_as(
        &db,
        "mt_it_owner",
        "CREATE FUNCTION public.note_count() RETURNS bigint LANGUAGE sql STABLE SECURITY DEFINER
             AS $$ SELECT count(*) FROM public.notes $$;",
    );
    let call = "SELECT * FROM public.note_bodies()";
    // without any context, any caller gets every tenant's rows
    let rows = |db: &Db| -> Vec<String> { texts(&mut db.as_role("mt_it_app"), call) };
    assert_eq!(rows(&db), vec!["a1", "a2", "g1"]);
    let by_superuser = finding(
        "high",
        "security_definer_function",
        "public.note_bodies()",
        "public.note_bodies() is SECURITY DEFINER, owned by postgres who bypasses row level security there, and uses public.notes: it runs with its owner's rights for every caller",
        "ALTER FUNCTION public.note_bodies() SECURITY INVOKER;",
    );
    let by_owner = finding(
        "warning",
        "security_definer_function",
        "public.note_count()",
        "public.note_count() is SECURITY DEFINER, owned by mt_it_owner (the table owner), and uses public.notes: it runs with its owner's rights for every caller",
        "ALTER FUNCTION public.note_count() SECURITY INVOKER;",
    );
    assert_eq!(
        lint_in_database(&db),
        vec![by_superuser.clone(), by_owner.clone()]
    );
    exec_as(&db, "postgres", &by_superuser.fix);
    exec_as(&db, "mt_it_owner", &by_owner.fix);
    assert_eq!(lint_in_database(&db), vec![]);
    assert_eq!(rows(&db), Vec::<String>::new());
}

#[test]
fn a_foreign_key_without_the_tenant_column_crosses_tenants_and_the_fix_closes_it() {
    let db = Db::new("lint_fk");
    exec_as(
        &db,
        "mt_it_owner",
        "CREATE TABLE public.projects (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                                       tenant_id uuid NOT NULL, name text NOT NULL);
         CREATE TABLE public.tasks (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                                    tenant_id uuid NOT NULL,
                                    project_id bigint NOT NULL REFERENCES public.projects (id) ON DELETE CASCADE,
                                    title text NOT NULL);
         SELECT tenant.isolate('public.projects');
         SELECT tenant.isolate('public.tasks');
         GRANT SELECT, INSERT, DELETE ON public.projects, public.tasks TO mt_it_backend;",
    );
    let acme_project: i64 = one_in(
        &mut db.as_role("mt_it_backend"),
        "acme",
        "INSERT INTO public.projects (name) VALUES ('acme secret') RETURNING id",
    );
    // globex cannot see acme's project, yet can point at it: the key check skips RLS
    assert_eq!(
        texts_in(
            &mut db.as_role("mt_it_backend"),
            "globex",
            "SELECT name FROM public.projects"
        ),
        Vec::<String>::new()
    );
    exec_in(
        &mut db.as_role("mt_it_backend"),
        "globex",
        &format!("INSERT INTO public.tasks (project_id, title) VALUES ({acme_project}, 'probe')"),
    );

    let expected = finding(
        "critical",
        "fk_without_tenant",
        "public.tasks.tasks_project_id_fkey",
        "foreign key tasks_project_id_fkey on public.tasks references public.projects without the tenant column on both sides: a row can reference another tenant's row, and cascades cross tenants",
        "SET row_security = off; \
         ALTER TABLE public.projects ADD UNIQUE (tenant_id, id); \
         ALTER TABLE public.tasks DROP CONSTRAINT tasks_project_id_fkey, \
         ADD CONSTRAINT tasks_project_id_fkey FOREIGN KEY (tenant_id, project_id) \
         REFERENCES public.projects (tenant_id, id) MATCH SIMPLE ON DELETE CASCADE; \
         RESET row_security;",
    );
    assert_eq!(lint_in_database(&db), vec![expected.clone()]);

    // the table owner is held by the forced policy and could not check every tenant's rows:
    // with row_security off the fix refuses to run as the owner instead of passing unchecked
    assert_eq!(
        err_of(&mut db.as_role("mt_it_owner"), &expected.fix),
        "42501"
    );
    // run by a role that bypasses RLS, the new key finds the cross-tenant row
    assert_eq!(err_of(&mut db.as_role("postgres"), &expected.fix), "23503");
    assert_eq!(lint_in_database(&db), vec![expected.clone()]);

    // ON DELETE CASCADE crosses too: acme deleting its project deletes globex's task
    exec_in(
        &mut db.as_role("mt_it_backend"),
        "acme",
        &format!("DELETE FROM public.projects WHERE id = {acme_project}"),
    );
    assert_eq!(
        count_as(&db, "postgres", "SELECT count(*) FROM public.tasks"),
        0
    );

    exec_as(&db, "postgres", &expected.fix);
    assert_eq!(lint_in_database(&db), vec![]);
    let acme_project: i64 = one_in(
        &mut db.as_role("mt_it_backend"),
        "acme",
        "INSERT INTO public.projects (name) VALUES ('acme secret 2') RETURNING id",
    );
    let globex_project: i64 = one_in(
        &mut db.as_role("mt_it_backend"),
        "globex",
        "INSERT INTO public.projects (name) VALUES ('globex plan') RETURNING id",
    );
    assert_eq!(
        err_in(
            &mut db.as_role("mt_it_backend"),
            "globex",
            &format!(
                "INSERT INTO public.tasks (project_id, title) VALUES ({acme_project}, 'probe')"
            )
        ),
        "23503"
    );
    exec_in(
        &mut db.as_role("mt_it_backend"),
        "globex",
        &format!("INSERT INTO public.tasks (project_id, title) VALUES ({globex_project}, 'own')"),
    );
    assert_eq!(
        texts_in(
            &mut db.as_role("mt_it_backend"),
            "globex",
            "SELECT title FROM public.tasks"
        ),
        vec!["own"]
    );
    // and acme deleting its project no longer reaches globex's rows
    exec_in(
        &mut db.as_role("mt_it_backend"),
        "acme",
        &format!("DELETE FROM public.projects WHERE id = {acme_project}"),
    );
    assert_eq!(
        count_as(&db, "postgres", "SELECT count(*) FROM public.tasks"),
        1
    );
}

#[test]
fn a_unique_key_without_the_tenant_column_leaks_through_23505_until_fixed() {
    let db = Db::new("lint_unique");
    exec_as(
        &db,
        "mt_it_owner",
        "ALTER TABLE public.notes ADD COLUMN slug text, ADD CONSTRAINT notes_slug_key UNIQUE (slug)",
    );
    exec_in(
        &mut db.as_role("mt_it_backend"),
        "acme",
        "INSERT INTO public.notes (body, slug) VALUES ('launch plan', 'launch')",
    );
    // globex learns that some other tenant uses the slug
    assert_eq!(
        err_in(
            &mut db.as_role("mt_it_backend"),
            "globex",
            "INSERT INTO public.notes (body, slug) VALUES ('x', 'launch')"
        ),
        "23505"
    );
    let expected = finding(
        "warning",
        "unique_without_tenant",
        "public.notes.notes_slug_key",
        "unique constraint notes_slug_key on public.notes (slug) does not include the tenant column tenant_id: inserting a value another tenant already uses fails with 23505 and reveals that it exists",
        "CREATE UNIQUE INDEX ON public.notes (tenant_id, slug); ALTER TABLE public.notes DROP CONSTRAINT notes_slug_key;",
    );
    assert_eq!(lint_in_database(&db), vec![expected.clone()]);
    exec_as(&db, "mt_it_owner", &expected.fix);
    assert_eq!(lint_in_database(&db), vec![]);
    exec_in(
        &mut db.as_role("mt_it_backend"),
        "globex",
        "INSERT INTO public.notes (body, slug) VALUES ('x', 'launch')",
    );
    // still unique within a tenant
    assert_eq!(
        err_in(
            &mut db.as_role("mt_it_backend"),
            "globex",
            "INSERT INTO public.notes (body, slug) VALUES ('y', 'launch')"
        ),
        "23505"
    );
}

#[test]
fn surrogate_keys_are_not_reported_but_other_single_column_keys_are() {
    let db = Db::new("lint_surrogate");
    exec_as(
        &db,
        "mt_it_owner",
        "CREATE TABLE public.docs (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                                   serial_no bigserial UNIQUE,
                                   tenant_id uuid NOT NULL,
                                   code text UNIQUE,
                                   UNIQUE (tenant_id, serial_no));
         SELECT tenant.isolate('public.docs');",
    );
    assert_eq!(
        lint_in_database(&db),
        vec![finding(
            "warning",
            "unique_without_tenant",
            "public.docs.docs_code_key",
            "unique constraint docs_code_key on public.docs (code) does not include the tenant column tenant_id: inserting a value another tenant already uses fails with 23505 and reveals that it exists",
            "CREATE UNIQUE INDEX ON public.docs (tenant_id, code); ALTER TABLE public.docs DROP CONSTRAINT docs_code_key;",
        )]
    );
}

#[test]
fn truncate_granted_to_other_roles_is_critical_and_revoke_fixes_it() {
    let db = Db::new("lint_truncate");
    exec_as(
        &db,
        "mt_it_owner",
        "GRANT TRUNCATE ON public.notes TO mt_it_app, PUBLIC",
    );
    // TRUNCATE ignores RLS: without any context it would empty every tenant's rows
    let mut app = db.as_role("mt_it_app");
    app.batch_execute("BEGIN; TRUNCATE public.notes; ROLLBACK")
        .unwrap();
    let problem = |who: &str| {
        format!("{who} has TRUNCATE on public.notes: TRUNCATE ignores row level security and removes every tenant's rows")
    };
    let expected = vec![
        finding(
            "critical",
            "truncate_granted",
            "public.notes",
            &problem("PUBLIC"),
            "REVOKE TRUNCATE ON public.notes FROM PUBLIC;",
        ),
        finding(
            "critical",
            "truncate_granted",
            "public.notes",
            &problem("mt_it_app"),
            "REVOKE TRUNCATE ON public.notes FROM mt_it_app;",
        ),
    ];
    assert_eq!(lint_in_database(&db), expected);
    for f in &expected {
        exec_as(&db, "mt_it_owner", &f.fix);
    }
    assert_eq!(lint_in_database(&db), vec![]);
    assert_eq!(err_of(&mut app, "TRUNCATE public.notes"), "42501");
    assert_eq!(db.all_bodies(), vec!["a1", "a2", "g1"]);
}

#[test]
fn a_policy_calling_a_function_that_is_not_leakproof_is_a_warning() {
    let db = Db::new("lint_leaky");
    exec_as(
        &db,
        "mt_it_owner",
        "CREATE FUNCTION public.body_is_short(b text) RETURNS boolean LANGUAGE sql IMMUTABLE
             AS $$ SELECT length(b) < 1000 $$;
         CREATE POLICY notes_short ON public.notes AS RESTRICTIVE FOR SELECT
             USING (public.body_is_short(body));
         -- not reported: pg_catalog functions
         CREATE POLICY notes_not_empty ON public.notes AS RESTRICTIVE FOR SELECT
             USING (length(body) > 0);",
    );
    let expected = finding(
        "warning",
        "leaky_policy_function",
        "public.body_is_short(text)",
        "public.body_is_short(text) is not LEAKPROOF and is called by policy notes_short on public.notes: it may run on other tenants' rows and reveal them through errors or side effects",
        "-- mark it LEAKPROOF after review (as a superuser: ALTER FUNCTION public.body_is_short(text) LEAKPROOF;), or move the check into a tenant.* function",
    );
    assert_eq!(lint_in_database(&db), vec![expected.clone()]);
    // the fix is advice: running it changes nothing
    exec_as(&db, "postgres", &expected.fix);
    assert_eq!(lint_in_database(&db), vec![expected]);
    // what it advises, after review: only a superuser may mark a function LEAKPROOF
    assert_eq!(
        err_of(
            &mut db.as_role("mt_it_owner"),
            "ALTER FUNCTION public.body_is_short(text) LEAKPROOF"
        ),
        "42501"
    );
    exec_as(
        &db,
        "postgres",
        "ALTER FUNCTION public.body_is_short(text) LEAKPROOF",
    );
    assert_eq!(lint_in_database(&db), vec![]);
}

#[test]
fn findings_are_ordered_by_severity_then_kind_then_object() {
    let db = Db::new("lint_order");
    exec_as(
        &db,
        "mt_it_owner",
        "CREATE TABLE public.ledger (tenant_id uuid NOT NULL, amount int);
         CREATE VIEW public.b_view AS SELECT body FROM public.notes;
         CREATE VIEW public.a_view AS SELECT body FROM public.notes;
         ALTER TABLE public.notes ADD COLUMN code text UNIQUE;",
    );
    exec_as(
        &db,
        "postgres",
        "CREATE FUNCTION public.dump_notes() RETURNS SETOF text LANGUAGE sql SECURITY DEFINER
             AS $$ SELECT body FROM public.notes $$;",
    );
    let got: Vec<(String, String, String)> = lint_in_database(&db)
        .into_iter()
        .map(|f| (f.severity, f.kind, f.object))
        .collect();
    let want: Vec<(String, String, String)> = [
        ("critical", "not_isolated", "public.ledger"),
        ("high", "security_definer_function", "public.dump_notes()"),
        (
            "warning",
            "unique_without_tenant",
            "public.notes.notes_code_key",
        ),
        ("warning", "view_without_security_invoker", "public.a_view"),
        ("warning", "view_without_security_invoker", "public.b_view"),
    ]
    .iter()
    .map(|(s, k, o)| (s.to_string(), k.to_string(), o.to_string()))
    .collect();
    assert_eq!(got, want);
}
