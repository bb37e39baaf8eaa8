//! One tenant's data in and out (issue 13): export, import into another database, purge,
//! the tenant switcher and per-tenant statistics.

use crate::common::*;
use postgres::Client;
use serde_json::Value;

/// public.projects and public.tasks (a foreign key, a sensitive column), isolated, with rows
/// of acme and globex; a member, a custom role and an organization in acme.
fn schema(db: &Db) {
    db.as_role("mt_it_owner")
        .batch_execute(
            "CREATE TABLE public.projects (id bigint PRIMARY KEY, tenant_id uuid NOT NULL, name text NOT NULL);
             CREATE TABLE public.tasks (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tenant_id uuid NOT NULL,
                 project_id bigint NOT NULL REFERENCES public.projects (id), title text NOT NULL, secret text,
                 title_len int GENERATED ALWAYS AS (length(title)) STORED);
             SELECT tenant.isolate('public.projects');
             SELECT tenant.isolate('public.tasks');
             GRANT SELECT, INSERT, UPDATE, DELETE ON public.projects, public.tasks TO mt_it_backend;",
        )
        .unwrap();
}

fn fill(db: &Db) {
    let mut be = db.as_role("mt_it_backend");
    exec_in(
        &mut be,
        "acme",
        "INSERT INTO public.projects VALUES (1, DEFAULT, 'apollo'), (2, DEFAULT, 'gemini');
         INSERT INTO public.tasks (project_id, title, secret) VALUES (1, 'land', 's1'), (2, 'orbit', 's2');
         SELECT tenant.create_role('pilot');
         SELECT tenant.grant_permission('pilot', 'tasks', 'update');
         SELECT tenant.create_organization('crew', 'Crew');
         SELECT tenant.add_member('acme', 'neil', ARRAY['pilot']);
         SELECT tenant.set_member_organization('neil', 'crew')",
    );
    exec_in(
        &mut be,
        "globex",
        "INSERT INTO public.projects VALUES (10, DEFAULT, 'hank');
         INSERT INTO public.tasks (project_id, title, secret) VALUES (10, 'scorpio', 'g-secret')",
    );
}

/// The jsonb a statement returns, parsed.
fn json_of(c: &mut Client, sql: &str) -> Value {
    let t: String = q1(c, &format!("SELECT ({sql})::text"));
    serde_json::from_str(&t).unwrap()
}

/// `tenant.import(tenant, doc)`: the counts, or the SQLSTATE.
fn import(c: &mut Client, tenant: &str, doc: &Value) -> Result<Value, String> {
    c.query_one(
        "SELECT tenant.import($1, $2::text::jsonb)::text",
        &[&tenant, &doc.to_string()],
    )
    .map(|r| serde_json::from_str(r.get::<_, &str>(0)).unwrap())
    .map_err(|e| sqlstate(&e))
}

/// A tenant's rows as comparable text (without tenant ids, which differ between databases).
fn rows_of(c: &mut Client, tenant: &str) -> String {
    one_in(
        c,
        tenant,
        "SELECT coalesce((SELECT string_agg(id || ':' || body, ',' ORDER BY body) FROM public.notes), '') || '|' ||
                coalesce((SELECT string_agg(id || ':' || name, ',' ORDER BY id) FROM public.projects), '') || '|' ||
                coalesce((SELECT string_agg(id || ':' || project_id || ':' || title || ':' || title_len, ',' ORDER BY id) FROM public.tasks), '')",
    )
}

#[test]
fn export_and_import_round_trip_into_another_database() {
    let a = Db::new("port_export");
    schema(&a);
    fill(&a);
    // the sensitive column stays home
    a.as_role("postgres")
        .batch_execute("SELECT tenant.exclude_from_export('public.tasks', ARRAY['secret'])")
        .unwrap();
    let mut be = a.as_role("mt_it_backend");
    let doc: Value = json_of(&mut be, "SELECT tenant.export('acme')");
    let text = doc.to_string();
    assert!(
        !text.contains("s1") && !text.contains("secret"),
        "excluded column exported: {text}"
    );
    assert!(
        !text.contains("hank") && !text.contains("scorpio") && !text.contains("g1"),
        "globex's rows in acme's export"
    );
    assert!(
        !doc["tables"]
            .to_string()
            .contains(&a.tenant_id("acme").to_string()),
        "rows carry no tenant id"
    );
    assert_eq!(doc["tables"]["public.notes"].as_array().unwrap().len(), 2);
    assert_eq!(
        doc["tables"]["public.tasks"][0].get("title_len"),
        None,
        "generated columns are not exported"
    );
    assert_eq!(doc["members"][0]["user_id"], "neil");
    assert_eq!(doc["members"][0]["organization"], "crew");
    assert_eq!(doc["roles"][0]["name"], "pilot");
    assert_eq!(
        su_i64(&a, &format!("SELECT count(*) FROM tenant.audit_log WHERE tenant_id = '{}' AND record_id = 'tenant.exported'", a.tenant_id("acme"))),
        1,
        "each export is an audit event"
    );
    // the API role and a role without tenant_service/admin may not export
    for role in ["mt_it_api", "mt_it_app"] {
        assert_eq!(
            err_of(&mut a.as_role(role), "SELECT tenant.export('acme')"),
            "42501",
            "{role}"
        );
    }

    // into a fresh database (the same tables, no rows), under another tenant
    let b = Db::bare("port_import");
    b.as_role("postgres")
        .batch_execute(
            "CREATE EXTENSION multitenant; GRANT CREATE ON SCHEMA public TO mt_it_owner;",
        )
        .unwrap();
    b.as_role("mt_it_owner")
        .batch_execute(
            "CREATE TABLE public.notes (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                 tenant_id uuid NOT NULL, body text NOT NULL);
             SELECT tenant.isolate('public.notes');
             GRANT SELECT, INSERT, UPDATE, DELETE ON public.notes TO mt_it_backend;",
        )
        .unwrap();
    schema(&b);
    let mut be_b = b.as_role("mt_it_backend");
    be_b.batch_execute(
        "SELECT tenant.create('acme2', 'Acme again'); SELECT tenant.create('globex', 'Globex');",
    )
    .unwrap();
    exec_in(
        &mut be_b,
        "globex",
        "INSERT INTO public.notes (id, body) VALUES (100, 'g-b')",
    );
    let before_globex = rows_of(&mut be_b, "globex");
    let counts = import(&mut be_b, "acme2", &doc).unwrap();
    assert_eq!(counts["tables"]["public.tasks"], 2);
    assert_eq!(counts["members"], 1);
    // identical rows (the excluded column left out, the generated one computed again)
    assert_eq!(rows_of(&mut be_b, "acme2"), rows_of(&mut be, "acme"));
    let secret: Option<String> = one_in(&mut be_b, "acme2", "SELECT max(secret) FROM public.tasks");
    assert_eq!(secret, None);
    assert_eq!(
        rows_of(&mut be_b, "globex"),
        before_globex,
        "another tenant untouched"
    );
    // roles, permissions, organizations and memberships came along
    let neil: bool = one_in(
        &mut be_b,
        ("acme2", "neil"),
        "SELECT tenant.can('tasks', 'update') AND tenant.current_organization() IS NOT NULL",
    );
    assert!(neil);

    // bad documents: MT030, nothing written
    let total = |db: &Db| {
        su_i64(db, "SELECT (SELECT count(*) FROM public.notes) + (SELECT count(*) FROM public.tasks) + (SELECT count(*) FROM tenant.members)")
    };
    let n = total(&b);
    let mut bad = doc.clone();
    bad["tables"]["public.nosuch"] = serde_json::json!([]);
    let mut bad_col = doc.clone();
    bad_col["tables"]["public.tasks"][0]["hacked"] = serde_json::json!(1);
    let mut bad_format = doc.clone();
    bad_format["format"] = serde_json::json!("other");
    let mut bad_key = doc.clone();
    bad_key["extra"] = serde_json::json!(1);
    let mut widen = doc.clone();
    widen["permissions"] = serde_json::json!([{"role": "viewer", "resource": "*", "action": "*"}]);
    let mut redefine = doc.clone();
    redefine["roles"] = serde_json::json!([{"name": "viewer", "inherits": ["owner"]}]);
    for (d, what) in [
        (bad, "unknown table"),
        (bad_col, "unknown column"),
        (bad_format, "format"),
        (bad_key, "unknown key"),
        (widen, "permissions for a built-in role"),
        (redefine, "a built-in role redefined"),
    ] {
        assert_eq!(
            import(&mut be_b, "globex", &d),
            Err("MT030".into()),
            "{what}"
        );
    }
    assert_eq!(total(&b), n, "nothing written");
    assert_eq!(
        err_of(
            &mut b.as_role("mt_it_api"),
            "SELECT tenant.import('globex', '{}')"
        ),
        "42501"
    );
}

#[test]
fn import_honours_row_limits() {
    let a = Db::new("port_limits");
    let mut be = a.as_role("mt_it_backend");
    let mut doc = json_of(&mut be, "SELECT tenant.export('acme')");
    // new ids in globex (acme's would collide with acme's own rows: see the next check)
    let with_ids = doc.clone();
    for r in doc["tables"]["public.notes"].as_array_mut().unwrap() {
        r.as_object_mut().unwrap().remove("id");
    }
    // globex may hold 2 notes and has 1: the 2 of acme's document do not fit
    plan(
        &a,
        r#"{"name": "tiny", "limits": {"notes": 2}}"#,
        &["globex"],
    );
    a.as_role("postgres")
        .batch_execute("SELECT tenant.limit_rows('public.notes', 'notes')")
        .unwrap();
    let before = su_i64(&a, "SELECT count(*) FROM public.notes");
    assert_eq!(import(&mut be, "globex", &doc), Err("MT010".into()));
    assert_eq!(su_i64(&a, "SELECT count(*) FROM public.notes"), before);
    // rows whose keys another tenant's rows hold: MT030, nothing written
    assert_eq!(import(&mut be, "globex", &with_ids), Err("MT030".into()));
    assert_eq!(su_i64(&a, "SELECT count(*) FROM public.notes"), before);
}

#[test]
fn purge_erases_one_tenant_and_leaves_a_receipt() {
    let db = Db::new("port_purge");
    schema(&db);
    fill(&db);
    audited(&db);
    let mut be = db.as_role("mt_it_backend");
    exec_in(
        &mut be,
        "acme",
        "INSERT INTO public.notes (body) VALUES ('audited')",
    );
    exec_in(
        &mut be,
        "globex",
        "INSERT INTO public.notes (body) VALUES ('g-audited')",
    );
    let acme = db.tenant_id("acme");
    let globex_rows = rows_of(&mut be, "globex");
    let globex_audit = su_i64(
        &db,
        &format!(
            "SELECT count(*) FROM tenant.audit_log WHERE tenant_id = '{}'",
            db.tenant_id("globex")
        ),
    );
    let mut admin = db.as_role("mt_it_admin");
    // only a deleted tenant, and only tenant_admin
    assert_eq!(err_of(&mut admin, "SELECT tenant.purge('acme')"), "MT040");
    assert_eq!(err_of(&mut be, "SELECT tenant.purge('acme')"), "42501");
    be.batch_execute("SELECT tenant.set_status('acme', 'deleted')")
        .unwrap();
    // not before the retention period is over (30 days by default), unless forced
    assert_eq!(err_of(&mut admin, "SELECT tenant.purge('acme')"), "MT040");
    su_exec(
        &db,
        &format!("UPDATE tenant.tenants SET purge_after = now() - interval '1 second' WHERE id = '{acme}'"),
    );
    let receipt = json_of(&mut admin, "SELECT tenant.purge('acme')");
    assert_eq!(receipt["removed"]["tables"]["public.tasks"], 2);
    assert_eq!(receipt["removed"]["members"], 1);
    assert!(receipt["removed"]["audit_entries"].as_i64().unwrap() > 0);
    // nothing of acme is left in any table; the tenant row is anonymised
    for t in [
        "public.notes",
        "public.projects",
        "public.tasks",
        "tenant.members",
        "tenant.roles",
        "tenant.organizations",
        "tenant.audit_log",
        "tenant.usage_counters",
    ] {
        assert_eq!(
            su_i64(
                &db,
                &format!("SELECT count(*) FROM {t} WHERE tenant_id = '{acme}'")
            ),
            0,
            "{t}"
        );
    }
    assert_eq!(
        su_text(&db, &format!("SELECT status || ':' || name || ':' || (slug LIKE 'purged-%')::text FROM tenant.tenants WHERE id = '{acme}'")),
        "purged:purged tenant:true"
    );
    // its emptied chains still verify; globex is untouched
    let v = verify(&mut be, Some(&acme.to_string()));
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(rows_of(&mut be, "globex"), globex_rows);
    assert_eq!(
        su_i64(
            &db,
            &format!(
                "SELECT count(*) FROM tenant.audit_log WHERE tenant_id = '{}'",
                db.tenant_id("globex")
            )
        ),
        globex_audit
    );
    assert!(audit_valid(&mut be, "globex"));
    // the receipt is in the global chain, and a second purge is refused
    assert_eq!(
        su_i64(&db, "SELECT count(*) FROM tenant.audit_log WHERE tenant_id IS NULL AND record_id = 'tenant.purged'"),
        1
    );
    assert_eq!(
        err_of(&mut admin, &format!("SELECT tenant.purge('{acme}')")),
        "MT040"
    );
}

#[test]
fn my_tenants_lists_the_users_tenants_and_stats_estimate_per_tenant() {
    let db = Db::new("port_switcher");
    let mut be = db.as_role("mt_it_backend");
    be.batch_execute(
        "SELECT tenant.create('initech', 'Initech');
         SELECT tenant.add_member('acme', 'bob', ARRAY['admin']);
         SELECT tenant.add_member('globex', 'bob', ARRAY['viewer']);
         SELECT tenant.add_member('initech', 'bob', ARRAY['member']);
         SELECT tenant.add_member('acme', 'ann', ARRAY['member']);
         SELECT tenant.set_status('initech', 'deleted');",
    )
    .unwrap();
    let list = texts_in(
        &mut be,
        ("acme", "bob"),
        "SELECT slug || ':' || status || ':' || array_to_string(roles, '+') FROM tenant.my_tenants()",
    );
    assert_eq!(
        list,
        ["acme:active:admin", "globex:active:viewer"],
        "deleted tenants are not listed"
    );
    let ann = texts_in(&mut be, "acme", "SELECT slug FROM tenant.my_tenants('ann')");
    assert_eq!(ann, ["acme"]);
    // the API role: its own user only, from its context
    let mut api = db.as_role("mt_it_api");
    assert_eq!(
        err_of(&mut api, "SELECT * FROM tenant.my_tenants()"),
        "MT001"
    );
    assert_eq!(
        err_of(&mut api, "SELECT * FROM tenant.my_tenants('bob')"),
        "MT020"
    );
    // stats: estimates from the planner's statistics, audit volume from the chain heads
    db.as_role("postgres")
        .batch_execute("ANALYZE public.notes")
        .unwrap();
    let mut admin = db.as_role("mt_it_admin");
    let rows = texts(
        &mut admin,
        "SELECT slug || ':' || estimated_rows || ':' || (audit_entries > 0)::text FROM tenant.tenant_stats() WHERE slug IN ('acme', 'globex')",
    );
    assert_eq!(rows, ["acme:2:true", "globex:1:true"]);
    assert_eq!(
        err_of(&mut api, "SELECT * FROM tenant.tenant_stats()"),
        "42501"
    );
}

#[test]
fn export_rows_streams_one_table_and_forget_user_erases_one_member() {
    let db = Db::new("port_rows");
    schema(&db);
    fill(&db);
    let mut be = db.as_role("mt_it_backend");
    let rows = texts(
        &mut be,
        "SELECT r::text FROM tenant.export_rows('acme', 'public.tasks') r ORDER BY r->>'id'",
    );
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|r| !r.contains("tenant_id") && !r.contains("title_len")),
        "{rows:?}"
    );
    assert!(rows.iter().all(|r| !r.contains("scorpio")), "globex's rows");
    assert_eq!(
        err_of(
            &mut be,
            "SELECT * FROM tenant.export_rows('acme', 'pg_class')"
        ),
        "MT030"
    );
    assert_eq!(
        err_of(
            &mut be,
            "SELECT * FROM tenant.export_rows('nosuch', 'public.tasks')"
        ),
        "MT002"
    );
    assert_eq!(
        err_of(
            &mut db.as_role("mt_it_api"),
            "SELECT * FROM tenant.export_rows('acme', 'public.tasks')"
        ),
        "42501"
    );

    // forget_user: membership, accepted invitations, the inviter's name; a hash in the trail
    exec_in(
        &mut be,
        "acme",
        "SELECT tenant.add_member('acme', 'ann', ARRAY['admin']);
         SELECT tenant.add_member('globex', 'neil', ARRAY['viewer'])",
    );
    exec_in(
        &mut be,
        ("acme", "ann"),
        "SELECT tenant.invite('y@example.com', 'viewer')",
    );
    assert_eq!(
        err_in(
            &mut be,
            ("acme", "neil"),
            "SELECT tenant.forget_user('ann')"
        ),
        "MT020"
    );
    let counts: String = one_in(&mut be, "acme", "SELECT tenant.forget_user('neil')::text");
    assert_eq!(
        counts,
        r#"{"membership": 1, "usage_events": 0, "invitations_sent": 0, "invitations_accepted": 0}"#
    );
    let acme = db.tenant_id("acme");
    assert_eq!(su_i64(&db, &format!("SELECT count(*) FROM tenant.members WHERE tenant_id = '{acme}' AND user_id = 'neil'")), 0);
    assert_eq!(
        su_i64(
            &db,
            &format!(
                "SELECT count(*) FROM tenant.members WHERE tenant_id = '{}' AND user_id = 'neil'",
                db.tenant_id("globex")
            )
        ),
        1,
        "neil stays a member of globex"
    );
    let ev = su_text(&db, &format!("SELECT new_data::text FROM tenant.audit_log WHERE tenant_id = '{acme}' AND record_id = 'member.forgotten'"));
    assert!(!ev.contains("neil") && ev.contains("user_sha256"), "{ev}");
    assert!(audit_valid(&mut be, "acme"));
    assert_eq!(
        err_of(&mut be, "SELECT tenant.forget_user('neil')"),
        "MT001"
    );
}

#[test]
fn adopt_turns_a_single_tenant_table_into_an_isolated_one() {
    let db = Db::new("port_adopt");
    // the table's owner must also administer the tenants (a superuser here; a plain table
    // owner is refused below)
    let mut plain_owner = db.as_role("mt_it_owner");
    plain_owner
        .batch_execute("CREATE TABLE public.mine (id int)")
        .unwrap();
    assert_eq!(
        err_of(
            &mut plain_owner,
            "SELECT tenant.adopt('public.mine', 'acme')"
        ),
        "MT020"
    );
    let mut owner = db.as_role("postgres");
    owner
        .batch_execute(
            "CREATE TABLE public.legacy (id int PRIMARY KEY, body text);
             INSERT INTO public.legacy SELECT g, 'row ' || g FROM generate_series(1, 25000) g;
             GRANT SELECT, INSERT ON public.legacy TO mt_it_backend;",
        )
        .unwrap();
    // only the owner; the tenant must exist
    assert_eq!(
        err_of(
            &mut db.as_role("mt_it_backend"),
            "SELECT tenant.adopt('public.legacy', 'acme')"
        ),
        "MT020"
    );
    assert_eq!(
        err_of(&mut owner, "SELECT tenant.adopt('public.legacy', 'nosuch')"),
        "MT002"
    );
    let n: i64 = q1(&mut owner, "SELECT tenant.adopt('public.legacy', 'acme')");
    assert_eq!(n, 25000);
    let mut be = db.as_role("mt_it_backend");
    assert_eq!(
        one_in::<i64>(&mut be, "acme", "SELECT count(*) FROM public.legacy"),
        25000
    );
    assert_eq!(
        one_in::<i64>(&mut be, "globex", "SELECT count(*) FROM public.legacy"),
        0
    );
    exec_in(
        &mut be,
        "globex",
        "INSERT INTO public.legacy (id, body) VALUES (0, 'globex row')",
    );
    assert_eq!(
        one_in::<i64>(&mut be, "globex", "SELECT count(*) FROM public.legacy"),
        1
    );
    assert_eq!(
        q1::<i64>(&mut be, "SELECT count(*) FROM public.legacy"),
        0,
        "no context, no rows"
    );
    assert_eq!(
        su_text(&db, "SELECT attnotnull::text FROM pg_attribute WHERE attrelid = 'public.legacy'::regclass AND attname = 'tenant_id'"),
        "true"
    );
    // a tenant column of another type is refused; the documented path maps the old keys
    // to a uuid column first, and adopt leaves rows that have a tenant alone
    owner
        .batch_execute(
            "CREATE TABLE public.legacy2 (id int, tenant_id text);
             INSERT INTO public.legacy2 VALUES (1, 'acme'), (2, 'globex'), (3, NULL);",
        )
        .unwrap();
    assert_eq!(
        err_of(&mut owner, "SELECT tenant.adopt('public.legacy2', 'acme')"),
        "MT030"
    );
    db.as_role("postgres")
        .batch_execute(
            "ALTER TABLE public.legacy2 ADD COLUMN tenant_uuid uuid;
             UPDATE public.legacy2 l SET tenant_uuid = t.id FROM tenant.tenants t WHERE t.slug = l.tenant_id;
             GRANT SELECT ON public.legacy2 TO mt_it_backend;",
        )
        .unwrap();
    let n: i64 = q1(
        &mut owner,
        "SELECT tenant.adopt('public.legacy2', 'acme', 'tenant_uuid')",
    );
    assert_eq!(n, 1, "only the row without a tenant");
    assert_eq!(
        texts_in(&mut be, "globex", "SELECT id::text FROM public.legacy2"),
        ["2"]
    );
    assert_eq!(
        texts_in(
            &mut be,
            "acme",
            "SELECT id::text FROM public.legacy2 ORDER BY id"
        ),
        ["1", "3"]
    );
}

#[test]
fn activity_shows_which_tenant_each_backend_entered() {
    let db = Db::new("port_activity");
    // off by default: nothing recorded
    let mut be = db.as_role("mt_it_backend");
    exec_in(&mut be, ("acme", "ann"), "SELECT 1");
    assert_eq!(
        su_i64(&db, "SELECT count(*) FROM tenant.backend_contexts"),
        0
    );
    db.as_role("postgres")
        .batch_execute(&format!(
            "ALTER DATABASE {} SET multitenant.track_activity = on",
            db.name
        ))
        .unwrap();
    let mut be = db.as_role("mt_it_backend");
    let pid: i32 = q1(&mut be, "SELECT pg_backend_pid()");
    exec_in(&mut be, ("acme", "ann"), "SELECT 1");
    let mut g = db.as_role("mt_it_backend");
    exec_in(&mut g, "globex", "SELECT 1");
    // a read-only transaction enters without writing
    g.batch_execute("BEGIN READ ONLY; SELECT tenant.set_context('acme'); COMMIT;")
        .unwrap();
    let mut admin = db.as_role("mt_it_admin");
    let rows = texts(
        &mut admin,
        &format!(
            "SELECT tenant_slug || ':' || coalesce(user_id, '-') || ':' || (pid = {pid})::text FROM tenant.activity() \
             WHERE tenant_id IS NOT NULL ORDER BY tenant_slug"
        ),
    );
    assert_eq!(rows, ["acme:ann:true", "globex:-:false"]);
    assert_eq!(
        err_of(
            &mut db.as_role("mt_it_api"),
            "SELECT * FROM tenant.activity()"
        ),
        "42501"
    );
}

#[test]
fn import_and_purge_run_table_code_as_the_tables_owner_never_as_the_extensions() {
    let db = Db::new("port_hostile");
    // the table owner (not a superuser) plants a trigger that records who runs it and tries
    // to make itself superuser: during import and purge it must run as the owner
    db.as_role("mt_it_owner")
        .batch_execute(
            "CREATE TABLE public.whoran (who text, at text);
             CREATE FUNCTION public.sneaky() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 INSERT INTO public.whoran VALUES (current_user, TG_OP);
                 BEGIN
                     EXECUTE 'ALTER ROLE mt_it_owner SUPERUSER';
                 EXCEPTION WHEN OTHERS THEN NULL;
                 END;
                 RETURN coalesce(NEW, OLD);
             END $$;
             CREATE TRIGGER sneaky BEFORE INSERT OR DELETE ON public.notes
                 FOR EACH ROW EXECUTE FUNCTION public.sneaky();",
        )
        .unwrap();
    let mut be = db.as_role("mt_it_backend");
    let doc = serde_json::json!({"format": "multitenant-export", "version": 1,
                                 "tables": {"public.notes": [{"body": "imported"}]}});
    import(&mut be, "globex", &doc).unwrap();
    db.as_role("postgres")
        .batch_execute(
            "SET multitenant.deletion_retention = 0; SELECT tenant.set_status('globex', 'deleted')",
        )
        .unwrap();
    let mut admin = db.as_role("mt_it_admin");
    let receipt = json_of(&mut admin, "SELECT tenant.purge('globex')");
    assert_eq!(receipt["removed"]["tables"]["public.notes"], 2);
    assert_eq!(
        su_text(&db, "SELECT string_agg(DISTINCT who || ':' || at, ',' ORDER BY who || ':' || at) FROM public.whoran"),
        "mt_it_owner:DELETE,mt_it_owner:INSERT"
    );
    assert_eq!(
        su_text(
            &db,
            "SELECT rolsuper::text FROM pg_roles WHERE rolname = 'mt_it_owner'"
        ),
        "false"
    );
    // acme's rows were never touched
    assert_eq!(
        one_in::<i64>(&mut be, "acme", "SELECT count(*) FROM public.notes"),
        2
    );
}

#[test]
fn export_import_and_purge_carry_the_rows_of_protected_tables() {
    // protect() narrows a table to what the caller's permissions allow; export, import and
    // purge act for the tenant, not for a user: they see, write and erase every row of it
    let db = Db::new("port_protect");
    schema(&db);
    fill(&db);
    db.as_role("mt_it_owner")
        .batch_execute("SELECT tenant.protect('public.tasks', 'tasks')")
        .unwrap();
    let mut be = db.as_role("mt_it_backend");
    // the control: the backend without a user holds no permission on tasks, so it reads none
    let seen: i64 = one_in(&mut be, "acme", "SELECT count(*) FROM public.tasks");
    assert_eq!(seen, 0, "protect applies to the backend's own queries");
    let doc: Value = json_of(&mut be, "SELECT tenant.export('acme')");
    assert_eq!(
        doc["tables"]["public.tasks"].as_array().map(Vec::len),
        Some(2),
        "{doc}"
    );
    let text = doc.to_string();
    assert!(!text.contains("scorpio"), "globex's row in acme's export");
    be.batch_execute("SELECT tenant.create('acme2', 'Acme again')")
        .unwrap();
    let mut fresh = doc.clone();
    // new keys (acme's are taken in this database)
    for (t, key) in [("public.projects", 100), ("public.tasks", 200)] {
        for (i, r) in fresh["tables"][t]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .enumerate()
        {
            r["id"] = serde_json::json!(key + i as i64);
            if t == "public.tasks" {
                r["project_id"] = serde_json::json!(100 + i as i64);
            }
        }
    }
    fresh["tables"]["public.notes"] = serde_json::json!([]);
    let counts = import(&mut be, "acme2", &fresh).unwrap();
    assert_eq!(counts["tables"]["public.tasks"], 2, "{counts}");
    let acme2 = db.tenant_id("acme2");
    assert_eq!(
        su_i64(
            &db,
            &format!("SELECT count(*) FROM public.tasks WHERE tenant_id = '{acme2}'")
        ),
        2
    );
    let acme = db.tenant_id("acme");
    be.batch_execute("SELECT tenant.set_status('acme', 'deleted')")
        .unwrap();
    su_exec(
        &db,
        &format!("UPDATE tenant.tenants SET purge_after = now() - interval '1 second' WHERE id = '{acme}'"),
    );
    let receipt = json_of(
        &mut db.as_role("mt_it_admin"),
        "SELECT tenant.purge('acme')",
    );
    assert_eq!(receipt["removed"]["tables"]["public.tasks"], 2, "{receipt}");
    assert_eq!(
        su_i64(
            &db,
            &format!("SELECT count(*) FROM public.tasks WHERE tenant_id = '{acme}'")
        ),
        0,
        "a protected table keeps nothing of a purged tenant"
    );
    assert_eq!(
        su_i64(
            &db,
            &format!("SELECT count(*) FROM public.tasks WHERE tenant_id = '{acme2}'")
        ),
        2,
        "another tenant untouched"
    );
}
