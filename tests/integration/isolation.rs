//! Isolation of `public.notes`: what each role sees and may write with and without a
//! context, the owner held by the forced policy, isolate/unisolate and their input checks,
//! many connections at once.

use crate::common::*;

#[test]
fn tenants_cannot_see_or_change_each_other() {
    let db = Db::new("cross");
    let globex = db.tenant_id("globex");
    let mut be = db.as_role("mt_it_backend");
    begin_in(&mut be, "acme");
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
    let st = err_in(
        &mut be,
        "acme",
        &format!("INSERT INTO public.notes (tenant_id, body) VALUES ('{globex}', 'planted')"),
    );
    assert_eq!(st, "42501");
    assert_eq!(db.all_bodies(), vec!["a1", "a2", "g1"], "nothing changed");
    // and globex sees exactly its own row
    begin_in(&mut be, "globex");
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
    let n: i64 = q1(&mut owner, "SELECT count(*) FROM tenant.isolated_tables");
    assert_eq!(n, 2);
}

#[test]
fn isolate_then_unisolate_round_trip_through_client() {
    let db = Db::new("unisolate");
    let mut owner = db.as_role("mt_it_owner");
    owner
        .batch_execute("SELECT tenant.isolate('public.notes')")
        .unwrap();
    let n: i64 = q1(
        &mut owner,
        "SELECT count(*) FROM pg_policies WHERE tablename = 'notes'",
    );
    assert_eq!(n, 4, "idempotent: still four policies");
    let done: bool = q1(&mut owner, "SELECT tenant.unisolate('public.notes')");
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
                    in_tenant_tx(&mut c, &slug, |tx| {
                        tx.execute(
                            "INSERT INTO public.notes (body) VALUES ($1)",
                            &[&format!("{slug}-{k}")],
                        )?;
                        let rows = tx.query("SELECT body FROM public.notes", &[])?;
                        assert_eq!(rows.len(), k + 1);
                        for r in rows {
                            let b: String = r.get(0);
                            assert!(b.starts_with(&format!("{slug}-")), "{slug} saw {b}");
                        }
                        Ok(())
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(db.all_bodies().len(), 3 + 8 * 25);
}
