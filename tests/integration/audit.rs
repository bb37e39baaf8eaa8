//! The audit trail: what is logged, tenant scope, append-only and tamper evidence, concurrent
//! writers, retention.

use crate::common::*;

#[test]
fn audit_logs_every_operation_with_tenant_user_and_data() {
    let db = Db::new("audit_ops");
    audited(&db);
    let mut be = db.as_role("mt_it_backend");
    exec_in(
        &mut be,
        ("acme", "alice"),
        "INSERT INTO public.notes (body, secret) VALUES ('n1', 's1');
         UPDATE public.notes SET body = 'n1b', secret = 's2' WHERE body = 'n1';
         UPDATE public.notes SET secret = 's3' WHERE body = 'n1b';
         DELETE FROM public.notes WHERE body = 'n1b';",
    );
    begin_in(&mut be, ("acme", "alice"));
    be.batch_execute("INSERT INTO public.notes (body) VALUES ('rolled back'); ROLLBACK;")
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
    let ops = first_column(&rows);
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
    let t: i64 = q1(
        &mut su,
        "SELECT count(*) FROM tenant.audit_log WHERE operation = 'TRUNCATE'",
    );
    assert_eq!(t, 1);
    // management events are in the same log
    let ev = first_column(
        &su.query("SELECT record_id FROM tenant.audit_log WHERE operation = 'EVENT' AND tenant_id::text = $1 ORDER BY seq", &[&acme])
            .unwrap(),
    );
    assert_eq!(ev, vec!["tenant.created"]);
    su.batch_execute(
        "SELECT tenant.set_status('acme', 'suspended'); SELECT tenant.add_member('globex', 'gina')",
    )
    .unwrap();
    let n: i64 = q1(&mut su, "SELECT count(*) FROM tenant.audit_log WHERE operation = 'EVENT' AND record_id IN ('tenant.status_changed', 'member.added')");
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
        exec_in(
            &mut be,
            slug,
            &format!("INSERT INTO public.notes (body) VALUES ('{body}')"),
        );
    }
    // an application role in acme's context reads acme's entries only
    let mut app = db.as_role("mt_it_app");
    let tok = token_for(&db, "acme");
    set_token(&mut app, &tok);
    let rows = app
        .query("SELECT DISTINCT tenant_id::text FROM tenant.audit_log", &[])
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].get::<_, Option<String>>(0),
        Some(db.tenant_id("acme").to_string())
    );
    let globex_rows: i64 = q1(
        &mut app,
        "SELECT count(*) FROM tenant.audit_log WHERE new_data->>'body' = 'g9'",
    );
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
    let id: i64 = q1(
        &mut su,
        "SELECT id FROM tenant.audit_log WHERE new_data->>'body' = 'a9'",
    );
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
                    in_tenant_tx(&mut c, &slug, |tx| {
                        tx.execute(
                            "INSERT INTO public.notes (body) VALUES ($1)",
                            &[&format!("w{i}-{k}")],
                        )?;
                        tx.execute(
                            "UPDATE public.notes SET body = body || '!' WHERE body = $1",
                            &[&format!("w{i}-{k}")],
                        )
                    })
                    .unwrap();
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
    let logged: i64 = q1(
        &mut su,
        "SELECT count(*) FROM tenant.audit_log WHERE chain NOT LIKE 'global/%'",
    );
    assert_eq!(total, logged);
    assert!(logged >= 16 * 30 * 2);
    assert_eq!(verify(&mut su, None)["valid"], true, "global chain");
}

#[test]
fn audit_chains_survive_concurrent_rollbacks_and_savepoint_rollbacks() {
    // 8 writers of one tenant: every transaction writes, a savepoint writes and is rolled
    // back, and every third transaction is rolled back whole. The chains must neither fork nor
    // keep an entry of a rolled-back write, and hold exactly the committed rows' entries.
    let db = Db::new("audit_abort");
    audited(&db);
    let acme = db.tenant_id("acme").to_string();
    let before: i64 = q1(
        &mut db.as_role("postgres"),
        &format!("SELECT count(*) FROM tenant.audit_log WHERE tenant_id = '{acme}'"),
    );
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let name = db.name.clone();
            std::thread::spawn(move || {
                let mut c = connect(&name, "mt_it_backend");
                let mut committed = 0i64;
                for k in 0..24 {
                    let mut tx = c.transaction().unwrap();
                    tx.execute("SELECT tenant.set_context('acme')", &[])
                        .unwrap();
                    tx.execute(
                        "INSERT INTO public.notes (body) VALUES ($1)",
                        &[&format!("kept {i}-{k}")],
                    )
                    .unwrap();
                    tx.batch_execute("SAVEPOINT s").unwrap();
                    tx.execute(
                        "INSERT INTO public.notes (body) VALUES ($1)",
                        &[&format!("undone {i}-{k}")],
                    )
                    .unwrap();
                    tx.batch_execute("ROLLBACK TO SAVEPOINT s").unwrap();
                    if k % 3 == 2 {
                        tx.rollback().unwrap();
                    } else {
                        tx.commit().unwrap();
                        committed += 1;
                    }
                }
                committed
            })
        })
        .collect();
    let committed: i64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let mut su = db.as_role("postgres");
    let v = verify(&mut su, Some("acme"));
    assert_eq!(v["valid"], true, "{v}");
    let after: i64 = q1(
        &mut su,
        &format!("SELECT count(*) FROM tenant.audit_log WHERE tenant_id = '{acme}'"),
    );
    assert_eq!(after - before, committed, "one entry per committed insert");
    assert_eq!(committed, 8 * 16);
    let undone: i64 = q1(
        &mut su,
        "SELECT count(*) FROM tenant.audit_log WHERE new_data->>'body' LIKE 'undone %'",
    );
    assert_eq!(undone, 0, "no entry of a rolled-back savepoint");
    // every chain's head is its last entry: no gap, no fork
    let gaps: i64 = q1(
        &mut su,
        "SELECT count(*) FROM tenant.audit_heads h
          WHERE h.seq <> (SELECT max(l.seq) FROM tenant.audit_log l WHERE l.chain = h.chain)
             OR (SELECT count(*) FROM tenant.audit_log l WHERE l.chain = h.chain) <> h.seq - h.base_seq",
    );
    assert_eq!(gaps, 0, "chain heads and entries agree");
}

#[test]
fn every_column_of_an_entry_is_covered_by_its_hash() {
    // Edits by a superuser with triggers off, one column at a time: each is found, and
    // putting the value back makes the chain verify again (so it was that column).
    let db = Db::new("audit_cover");
    audited(&db);
    let mut be = db.as_role("mt_it_backend");
    in_tenant_tx(&mut be, "acme", |tx| {
        tx.batch_execute("SET LOCAL application_name = 'billing-worker'")?;
        tx.execute("INSERT INTO public.notes (body) VALUES ('covered')", &[])
    })
    .unwrap();
    let mut su = db.as_role("postgres");
    let id: i64 = q1(
        &mut su,
        "SELECT id FROM tenant.audit_log WHERE new_data->>'body' = 'covered'",
    );
    assert_eq!(
        q1::<String>(
            &mut su,
            &format!("SELECT application_name FROM tenant.audit_log WHERE id = {id}")
        ),
        "billing-worker"
    );
    assert_eq!(verify(&mut su, Some("acme"))["valid"], true);
    for (column, forged) in [
        ("application_name", "'someone-else'"),
        ("client_addr", "'10.9.8.7'::inet"),
        ("table_oid", "(table_oid::bigint + 1)::text::oid"),
        ("db_role", "'postgres'"),
        ("hash_format", "1"),
    ] {
        su.batch_execute(&format!(
            "SET session_replication_role = replica;
             CREATE TEMP TABLE keep AS SELECT {column} AS v FROM tenant.audit_log WHERE id = {id};
             UPDATE tenant.audit_log SET {column} = {forged} WHERE id = {id};
             RESET session_replication_role;"
        ))
        .unwrap();
        let v = verify(&mut su, Some("acme"));
        assert_eq!(v["valid"], false, "{column} edited: {v}");
        assert_eq!(v["entry_id"], id, "{column}: {v}");
        su.batch_execute(&format!(
            "SET session_replication_role = replica;
             UPDATE tenant.audit_log SET {column} = (SELECT v FROM keep) WHERE id = {id};
             DROP TABLE keep;
             RESET session_replication_role;"
        ))
        .unwrap();
        assert_eq!(
            verify(&mut su, Some("acme"))["valid"],
            true,
            "{column} put back"
        );
    }
}

#[test]
fn purge_audit_removes_old_entries_and_chains_still_verify() {
    let db = Db::new("audit_purge");
    audited(&db);
    let mut be = db.as_role("mt_it_backend");
    for k in 0..6 {
        exec_in(
            &mut be,
            "acme",
            &format!("INSERT INTO public.notes (body) VALUES ('p{k}')"),
        );
    }
    let mut su = db.as_role("postgres");
    assert_eq!(
        err_of(&mut be, "SELECT tenant.purge_audit()"),
        "42501",
        "tenant_admin only"
    );
    assert_eq!(err_of(&mut su, "SELECT tenant.purge_audit(0, 1)"), "MT030");
    let n: i64 = q1(&mut su, "SELECT tenant.purge_audit()");
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
    let n: i64 = q1(&mut su, "SELECT tenant.purge_audit(30, 365)");
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
