//! Partitions and inheritance (V36-V43), parallel plans (V55-V56), DROP EXTENSION CASCADE
//! (V57).

use super::rls_flags;
use crate::common::*;

const PARALLEL: &str = "SET force_parallel_mode = on; SET parallel_setup_cost = 0;
     SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
     SET max_parallel_workers_per_gather = 2;";

#[test]
fn partitions_and_inheritance_are_isolated_with_the_parent() {
    let db = Db::new("hx_parts");
    let acme = db.tenant_id("acme").to_string();
    let globex = db.tenant_id("globex").to_string();
    let mut owner = db.as_role("mt_it_owner");
    expect_ok(
        &mut owner,
        "CREATE TABLE public.ev (tenant_id uuid NOT NULL, n int) PARTITION BY LIST (n);
         CREATE TABLE public.ev_1 PARTITION OF public.ev FOR VALUES IN (1);
         CREATE TABLE public.ev_2 PARTITION OF public.ev FOR VALUES IN (2);
         GRANT SELECT, INSERT ON public.ev, public.ev_1, public.ev_2 TO mt_it_app, mt_it_backend;
         SELECT tenant.isolate('public.ev');",
        "partitioned table",
    );
    let mut be = db.as_role("mt_it_backend");
    for slug in ["acme", "globex"] {
        exec_in(&mut be, slug, "INSERT INTO public.ev (n) VALUES (1), (2)");
    }
    assert_eq!(su_i64(&db, "SELECT count(*) FROM public.ev_1"), 2);
    // V36: a partition queried directly, without a context: no rows
    let mut none = db.as_role("mt_it_app");
    for rel in ["public.ev_1", "public.ev_2", "public.ev"] {
        assert_eq!(
            one_i64(&mut none, &format!("SELECT count(*) FROM {rel}")),
            0,
            "V36: {rel} without context"
        );
    }
    // V37: with acme's token: acme's rows only, through the parent and each partition
    let tok = token_for(&db, "acme");
    let mut app = with_token(&db, "mt_it_app", &tok);
    for (rel, n) in [("public.ev_1", 1), ("public.ev_2", 1), ("public.ev", 2)] {
        assert_eq!(
            one_i64(&mut app, &format!("SELECT count(*) FROM {rel}")),
            n,
            "V37: {rel} with acme's token"
        );
        assert_eq!(
            one_i64(
                &mut app,
                &format!("SELECT count(*) FROM {rel} WHERE tenant_id <> '{acme}'")
            ),
            0,
            "V37: {rel} shows another tenant's row"
        );
    }
    // V38: writing into a partition directly cannot plant a row for another tenant
    expect_code(
        &mut app,
        &format!("INSERT INTO public.ev_1 (tenant_id, n) VALUES ('{globex}', 1)"),
        "42501",
        "V38: partition insert for another tenant",
    );
    expect_one_of(
        &mut none,
        &format!("INSERT INTO public.ev_1 (tenant_id, n) VALUES ('{acme}', 1)"),
        &["MT001", "42501"],
        "V38: partition insert without context",
    );
    // V39: a partition created after isolate is isolated too
    expect_ok(
        &mut owner,
        "CREATE TABLE public.ev_3 PARTITION OF public.ev FOR VALUES IN (3);
         GRANT SELECT, INSERT ON public.ev_3 TO mt_it_app, mt_it_backend;",
        "late partition",
    );
    assert_eq!(rls_flags(&db, "public.ev_3"), (true, true), "V39: flags");
    for slug in ["acme", "globex"] {
        exec_in(&mut be, slug, "INSERT INTO public.ev (n) VALUES (3)");
    }
    assert_eq!(
        one_i64(&mut none, "SELECT count(*) FROM public.ev_3"),
        0,
        "V39"
    );
    assert_eq!(
        one_i64(&mut app, "SELECT count(*) FROM public.ev_3"),
        1,
        "V39"
    );
    // V40: a table attached as a partition after isolate (with rows of both tenants)
    expect_ok(
        &mut owner,
        &format!(
            "CREATE TABLE public.ev_4 (LIKE public.ev);
             INSERT INTO public.ev_4 VALUES ('{acme}', 4), ('{globex}', 4);
             ALTER TABLE public.ev ATTACH PARTITION public.ev_4 FOR VALUES IN (4);
             GRANT SELECT ON public.ev_4 TO mt_it_app;"
        ),
        "attached partition",
    );
    assert_eq!(rls_flags(&db, "public.ev_4"), (true, true), "V40: flags");
    assert_eq!(
        one_i64(&mut none, "SELECT count(*) FROM public.ev_4"),
        0,
        "V40"
    );
    assert_eq!(
        one_i64(&mut app, "SELECT count(*) FROM public.ev_4"),
        1,
        "V40"
    );
    assert_eq!(
        one_i64(&mut app, "SELECT count(*) FROM public.ev"),
        4,
        "V40: parent"
    );
    assert_eq!(
        one_i64(&mut owner, "SELECT count(*) FROM public.ev_4"),
        0,
        "V40: the owner is held on the attached partition"
    );
    // V41: inheritance children existing at isolate time get forced RLS too
    expect_ok(
        &mut owner,
        "CREATE TABLE public.parent (tenant_id uuid NOT NULL, x int);
         CREATE TABLE public.child () INHERITS (public.parent);
         GRANT SELECT ON public.parent, public.child TO mt_it_app;
         SELECT tenant.isolate('public.parent');",
        "inheritance",
    );
    assert_eq!(rls_flags(&db, "public.child"), (true, true), "V41: flags");
    // V42: and so does a child created later
    expect_ok(
        &mut owner,
        "CREATE TABLE public.child2 () INHERITS (public.parent);
         GRANT SELECT ON public.child2 TO mt_it_app;",
        "late child",
    );
    assert_eq!(rls_flags(&db, "public.child2"), (true, true), "V42: flags");
    su_exec(
        &db,
        &format!(
            "INSERT INTO public.child VALUES ('{acme}', 1), ('{globex}', 2);
             INSERT INTO public.child2 VALUES ('{acme}', 3), ('{globex}', 4);"
        ),
    );
    for (rel, n) in [
        ("public.child", 1),
        ("public.child2", 1),
        ("public.parent", 2),
    ] {
        assert_eq!(
            one_i64(&mut none, &format!("SELECT count(*) FROM {rel}")),
            0,
            "V41/V42: {rel} without context"
        );
        assert_eq!(
            one_i64(&mut app, &format!("SELECT count(*) FROM {rel}")),
            n,
            "V41/V42: {rel} with acme's token"
        );
    }
    // V43: unisolate of the partitioned parent clears every partition and the registry
    let done: bool = q1(&mut owner, "SELECT tenant.unisolate('public.ev')");
    assert!(done, "V43: unisolate returned false");
    for rel in [
        "public.ev",
        "public.ev_1",
        "public.ev_2",
        "public.ev_3",
        "public.ev_4",
    ] {
        assert!(!rls_flags(&db, rel).0, "V43: {rel} still has RLS enabled");
    }
    assert_eq!(
        su_i64(
            &db,
            "SELECT count(*) FROM tenant.isolated_tables WHERE relid::oid IN
               ('public.ev'::regclass, 'public.ev_1'::regclass, 'public.ev_2'::regclass,
                'public.ev_3'::regclass, 'public.ev_4'::regclass)"
        ),
        0,
        "V43: registry rows left"
    );
}

#[test]
fn parallel_plans_keep_isolation() {
    let db = Db::new("hx_parallel");
    plan(
        &db,
        r#"{"name": "hx-par", "limits": {"seats": 5}}"#,
        &["acme"],
    );
    let acme = db.tenant_id("acme").to_string();
    su_exec(
        &db,
        &format!(
            "INSERT INTO public.notes (tenant_id, body)
             SELECT '{acme}', 'p' || g FROM generate_series(1, 200000) g;
             ANALYZE public.notes;"
        ),
    );
    // V55: forced parallel plans: each tenant still counts its own rows exactly
    for (slug, n) in [("acme", 200_002), ("globex", 1)] {
        let mut c = as_tenant(&db, "mt_it_app", slug);
        c.batch_execute(PARALLEL).unwrap();
        assert_eq!(count(&mut c), n, "V55: {slug} under a parallel plan");
        assert_eq!(
            one_i64(
                &mut c,
                "SELECT count(*) FROM public.notes WHERE body LIKE 'p%' OR body LIKE 'g%'"
            ),
            n - if slug == "acme" { 2 } else { 0 },
            "V55: {slug} filtered"
        );
    }
    let mut none = db.as_role("mt_it_app");
    none.batch_execute(PARALLEL).unwrap();
    assert_eq!(count(&mut none), 0, "V55: no context under a parallel plan");
    // V56: the stable context functions under force_parallel_mode: right answers, no XX000
    let mut c = as_tenant(&db, "mt_it_app", "acme");
    c.batch_execute(PARALLEL).unwrap();
    assert_eq!(
        current_tenant(&mut c).as_deref(),
        Some(acme.as_str()),
        "V56"
    );
    assert!(
        one_bool(&mut c, "SELECT tenant.check('seats', 1)"),
        "V56: check"
    );
    assert!(
        !one_bool(&mut c, "SELECT tenant.check('seats', 6)"),
        "V56: check"
    );
    assert!(
        !one_bool(&mut c, "SELECT tenant.has_feature('nope')"),
        "V56"
    );
    assert_eq!(
        one_i64(&mut c, "SELECT count(*) FROM tenant.usage_report()"),
        1,
        "V56: usage_report"
    );
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM public.notes WHERE tenant_id = tenant.current_tenant()"
        ),
        200_002,
        "V56: current_tenant() per row in a worker"
    );
}

#[test]
fn drop_extension_cascade_fails_closed() {
    let db = Db::new("hx_dropext");
    let tok = token_for(&db, "acme");
    su_exec(&db, "DROP EXTENSION multitenant CASCADE");
    // V57: RLS stays enabled and forced with no policy left: nobody but the superuser sees a
    // row and every write is refused
    assert_eq!(rls_flags(&db, "public.notes"), (true, true), "V57: flags");
    let mut app = db.as_role("mt_it_app");
    assert_eq!(count(&mut app), 0, "V57: app");
    expect_code(
        &mut app,
        "INSERT INTO public.notes (tenant_id, body) VALUES (gen_random_uuid(), 'x')",
        "42501",
        "V57: insert",
    );
    let mut carried = with_token(&db, "mt_it_app", &tok);
    assert_eq!(count(&mut carried), 0, "V57: old token");
    let mut owner = db.as_role("mt_it_owner");
    assert_eq!(count(&mut owner), 0, "V57: owner");
    assert_eq!(db.all_bodies(), vec!["a1", "a2", "g1"], "V57: rows kept");
}
