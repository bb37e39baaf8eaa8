//! The Citus suite: multitenant on a real 3-node Citus cluster (a coordinator and two
//! workers, `scripts/citus.sh` builds Citus from ../shared/citus and starts them), reached
//! through the `postgres` client crate as real roles:
//!   postgres      superuser (set-up, and the rows of two tenants, written past RLS)
//!   mt_c_owner    owns the application tables
//!   mt_c_backend  trusted backend, member of tenant_service
//! Every test gets fresh databases on the three nodes (with different database oids on the
//! workers than on the coordinator most of the time: nothing may depend on them).
//!
//! Built only with `--features citus`; needs MT_CITUS_PORTS="coordinator worker worker".

use postgres::{Client, NoTls};
use std::sync::atomic::{AtomicUsize, Ordering};

fn ports() -> Vec<u16> {
    let p =
        std::env::var("MT_CITUS_PORTS").expect("MT_CITUS_PORTS is not set: run scripts/citus.sh");
    let v: Vec<u16> = p
        .split_whitespace()
        .map(|s| s.parse().expect("a port"))
        .collect();
    assert_eq!(v.len(), 3, "MT_CITUS_PORTS: a coordinator and two workers");
    v
}

fn connect(port: u16, db: &str, user: &str) -> Client {
    Client::connect(
        &format!("host=127.0.0.1 port={port} user={user} dbname={db}"),
        NoTls,
    )
    .unwrap_or_else(|e| panic!("connect {user}@{db}:{port}: {e}"))
}

fn code(e: &postgres::Error) -> String {
    if std::env::var("MT_CITUS_DEBUG").is_ok() {
        eprintln!("error: {e:?}");
    }
    e.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| format!("no sqlstate: {e}"))
}

#[track_caller]
fn ok(c: &mut Client, sql: &str) {
    if let Err(e) = c.batch_execute(sql) {
        panic!("{sql}: {e:?}");
    }
}

#[track_caller]
fn err(c: &mut Client, sql: &str) -> String {
    match c.batch_execute(sql) {
        Ok(()) => panic!("expected an error from {sql}"),
        Err(e) => {
            let _ = c.batch_execute("ROLLBACK");
            code(&e)
        }
    }
}

#[track_caller]
fn one_i64(c: &mut Client, sql: &str) -> i64 {
    c.query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .get(0)
}

#[track_caller]
fn one_text(c: &mut Client, sql: &str) -> String {
    c.query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .get(0)
}

/// A database on every node with citus and multitenant, the workers registered, the
/// coordinator's secret and registry given to them; tenants acme and globex with one row
/// each in `public.events`, distributed by tenant_id and isolated (`order`: which first).
struct Cluster {
    db: String,
    coord: u16,
    workers: [u16; 2],
    acme: String,
    globex: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Order {
    DistributeThenIsolate,
    IsolateThenDistribute,
}

impl Cluster {
    fn new(tag: &str, order: Order) -> Cluster {
        static N: AtomicUsize = AtomicUsize::new(0);
        let db = format!(
            "mt_citus_{tag}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let p = ports();
        let (coord, workers) = (p[0], [p[1], p[2]]);
        for (i, port) in p.iter().enumerate() {
            let mut su = connect(*port, "postgres", "postgres");
            ok(
                &mut su,
                &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
            );
            // another oid on the workers than on the coordinator: tokens must not care
            if i > 0 {
                ok(&mut su, &format!("CREATE DATABASE {db}_pad{i}"));
            }
            ok(&mut su, &format!("CREATE DATABASE {db}"));
            if i > 0 {
                ok(&mut su, &format!("DROP DATABASE {db}_pad{i}"));
            }
            ok(
                &mut connect(*port, &db, "postgres"),
                "CREATE EXTENSION citus",
            );
        }
        let mut su = connect(coord, &db, "postgres");
        ok(
            &mut su,
            &format!("SELECT citus_set_coordinator_host('127.0.0.1', {coord})"),
        );
        for w in workers {
            // a worker busy with another test's metadata sync can drop the connection
            // ("failure on connection marked as essential"): try again, a few times
            let add = format!("SELECT citus_add_node('127.0.0.1', {w})");
            let mut tries = 0;
            while let Err(e) = su.batch_execute(&add) {
                tries += 1;
                assert!(tries < 5, "{add}: {e:?}");
                std::thread::sleep(std::time::Duration::from_millis(500 * tries));
            }
        }
        ok(
            &mut su,
            "CREATE EXTENSION multitenant;
             DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mt_c_owner') THEN CREATE ROLE mt_c_owner LOGIN; END IF;
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mt_c_backend') THEN CREATE ROLE mt_c_backend LOGIN; END IF;
             END $$;
             GRANT tenant_service TO mt_c_backend;
             GRANT CREATE ON SCHEMA public TO mt_c_owner;",
        );
        assert_eq!(
            one_i64(&mut su, "SELECT tenant.citus_sync()::bigint"),
            2,
            "both workers synced"
        );
        let acme = one_text(&mut su, "SELECT tenant.create('acme', 'Acme')::text");
        let globex = one_text(&mut su, "SELECT tenant.create('globex', 'Globex')::text");
        let mut owner = connect(coord, &db, "mt_c_owner");
        let table = "CREATE TABLE public.events (id bigserial, tenant_id uuid NOT NULL, kind text, PRIMARY KEY (tenant_id, id))";
        let distribute = "SELECT create_distributed_table('public.events', 'tenant_id')";
        let isolate = "SELECT tenant.isolate('public.events')";
        ok(&mut owner, table);
        if order == Order::DistributeThenIsolate {
            ok(&mut owner, &format!("{distribute}; {isolate}"));
        } else {
            ok(&mut owner, &format!("{isolate}; {distribute}"));
        }
        // isolate set the distribution column's default with DDL propagation off, and only then
        assert_eq!(
            one_text(&mut owner, "SHOW citus.enable_ddl_propagation"),
            "on",
            "isolate puts citus.enable_ddl_propagation back"
        );
        ok(
            &mut owner,
            "GRANT SELECT, INSERT, UPDATE, DELETE ON public.events TO mt_c_backend;
             GRANT USAGE ON SEQUENCE public.events_id_seq TO mt_c_backend;",
        );
        ok(
            &mut su,
            &format!("INSERT INTO public.events (tenant_id, kind) VALUES ('{acme}', 'acme'), ('{globex}', 'globex')"),
        );
        Cluster {
            db,
            coord,
            workers,
            acme,
            globex,
        }
    }

    fn coordinator(&self, user: &str) -> Client {
        connect(self.coord, &self.db, user)
    }

    /// The shards of `table` that live on `worker`, as names to query there directly.
    fn shards_on(&self, worker: u16, table: &str) -> Vec<String> {
        let mut su = connect(worker, &self.db, "postgres");
        ok(&mut su, "SET citus.override_table_visibility = off");
        su.query(
            &format!(
                "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(shard_name('{table}'::regclass, s.shardid)) \
                 FROM pg_dist_shard s JOIN pg_class c ON c.oid = s.logicalrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE s.logicalrelid = '{table}'::regclass \
                   AND to_regclass(pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(shard_name('{table}'::regclass, s.shardid))) IS NOT NULL"
            ),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    }

    /// Every shard of `table` on every worker, read directly on the worker as the backend
    /// role with `setup` run first: the total number of rows seen.
    fn rows_on_shards(&self, table: &str, setup: &str) -> i64 {
        let mut total = 0;
        for w in self.workers {
            let shards = self.shards_on(w, table);
            assert!(!shards.is_empty(), "worker {w} holds shards of {table}");
            let mut c = connect(w, &self.db, "mt_c_backend");
            ok(&mut c, "SET citus.override_table_visibility = off");
            ok(&mut c, &format!("BEGIN; {setup}"));
            for s in shards {
                total += one_i64(&mut c, &format!("SELECT count(*) FROM {s}"));
            }
            ok(&mut c, "COMMIT");
        }
        total
    }

    /// [`Cluster::rows_on_shards`] of `public.events` under the context `token`.
    fn events_with_token(&self, token: &str) -> i64 {
        self.rows_on_shards(
            "public.events",
            &format!("SET LOCAL multitenant.context = '{token}'"),
        )
    }

    /// Move the shard `shard` (as the superuser, writes blocked) to the worker that does not
    /// hold it; that worker's port.
    fn move_to_other_worker(&self, shard: i64) -> u16 {
        let mut su = self.coordinator("postgres");
        let from = one_i64(
            &mut su,
            &format!("SELECT nodeport::bigint FROM citus_shards WHERE shardid = {shard}"),
        ) as u16;
        let to = if from == self.workers[0] {
            self.workers[1]
        } else {
            self.workers[0]
        };
        ok(
            &mut su,
            &format!("SELECT citus_move_shard_placement({shard}, '127.0.0.1', {from}, '127.0.0.1', {to}, 'block_writes')"),
        );
        to
    }

    /// A context token minted on the coordinator for `slug`.
    fn token(&self, slug: &str) -> String {
        self.user_token(slug, None)
    }

    /// A context token minted on the coordinator for `slug`, as `user` when given.
    fn user_token(&self, slug: &str, user: Option<&str>) -> String {
        let mut c = self.coordinator("mt_c_backend");
        let user = user.map(|u| format!(", '{u}'")).unwrap_or_default();
        ok(
            &mut c,
            &format!("BEGIN; SELECT tenant.set_context('{slug}'{user})"),
        );
        let t = one_text(&mut c, "SELECT current_setting('multitenant.context')");
        ok(&mut c, "ROLLBACK");
        t
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for port in std::iter::once(self.coord).chain(self.workers) {
            if let Ok(mut su) = Client::connect(
                &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
                NoTls,
            ) {
                let _ =
                    su.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db));
            }
        }
    }
}

/// The policies on the shards: no RESTRICTIVE one turned PERMISSIVE, no catch-all.
fn assert_shard_policies(cl: &Cluster, table: &str) {
    for w in cl.workers {
        let mut su = connect(w, &cl.db, "postgres");
        ok(&mut su, "SET citus.override_table_visibility = off");
        let open = one_i64(
            &mut su,
            &format!(
                "SELECT count(*) FROM pg_policies WHERE tablename LIKE '{table}\\_%' \
                 AND (coalesce(qual, '') NOT LIKE '%tenant_id = tenant.%' AND cmd <> 'INSERT' \
                      OR cmd = 'ALL' OR coalesce(with_check, 'tenant_id = tenant.') NOT LIKE '%tenant_id = tenant.%')"
            ),
        );
        assert_eq!(
            open, 0,
            "worker {w}: a shard policy that does not test the tenant"
        );
        let policies = one_i64(
            &mut su,
            &format!("SELECT count(*) FROM pg_policies WHERE tablename LIKE '{table}\\_%'"),
        );
        assert!(
            policies >= 4,
            "worker {w}: shards carry the four policies ({policies})"
        );
    }
}

fn isolation_holds(order: Order) {
    let cl = Cluster::new(
        if order == Order::DistributeThenIsolate {
            "dti"
        } else {
            "itd"
        },
        order,
    );
    assert_shard_policies(&cl, "events");
    // no context: no rows through the coordinator, none on any shard read directly
    let mut b = cl.coordinator("mt_c_backend");
    assert_eq!(one_i64(&mut b, "SELECT count(*) FROM public.events"), 0);
    assert_eq!(
        cl.rows_on_shards("public.events", "SELECT 1"),
        0,
        "shards closed without a context"
    );
    assert_eq!(
        err(&mut b, "INSERT INTO public.events (kind) VALUES ('x')"),
        "MT001"
    );
    assert_eq!(
        err(
            &mut b,
            &format!(
                "INSERT INTO public.events (tenant_id, kind) VALUES ('{}', 'x')",
                cl.acme
            )
        ),
        "MT001"
    );
    assert_eq!(err(&mut b, "UPDATE public.events SET kind = 'x'"), "MT001");
    assert_eq!(err(&mut b, "DELETE FROM public.events"), "MT001");
    // acme's context: acme's row only, through the coordinator and on the shards
    ok(&mut b, "BEGIN; SELECT tenant.set_context('acme')");
    assert_eq!(
        one_text(&mut b, "SELECT string_agg(kind, ',') FROM public.events"),
        "acme"
    );
    ok(&mut b, "INSERT INTO public.events (kind) VALUES ('acme2')");
    assert_eq!(
        one_i64(
            &mut b,
            &format!(
                "SELECT count(*) FROM public.events WHERE tenant_id = '{}'",
                cl.acme
            )
        ),
        2,
        "the default fills in the context's tenant"
    );
    assert_eq!(
        one_i64(
            &mut b,
            &format!(
                "SELECT count(*) FROM public.events WHERE tenant_id = '{}'",
                cl.globex
            )
        ),
        0
    );
    assert_eq!(
        one_i64(&mut b, "WITH u AS (UPDATE public.events SET kind = 'hit' WHERE kind = 'globex' RETURNING 1) SELECT count(*) FROM u"),
        0,
        "globex's row cannot be updated"
    );
    assert_eq!(
        one_i64(&mut b, "WITH d AS (DELETE FROM public.events WHERE kind = 'globex' RETURNING 1) SELECT count(*) FROM d"),
        0
    );
    ok(&mut b, "COMMIT");
    assert_eq!(
        err(&mut b, &format!("BEGIN; SELECT tenant.set_context('acme'); INSERT INTO public.events (tenant_id, kind) VALUES ('{}', 'evil')", cl.globex)),
        "42501",
        "a row for another tenant is refused"
    );
    let token = cl.token("acme");
    assert_eq!(
        cl.events_with_token(&token),
        2,
        "the coordinator's token opens acme's rows on the workers, and only those"
    );
    // the superuser sees that globex's row is untouched
    let mut su = cl.coordinator("postgres");
    assert_eq!(
        one_i64(
            &mut su,
            "SELECT count(*) FROM public.events WHERE kind = 'globex'"
        ),
        1
    );
}

#[test]
fn distribute_then_isolate_closes_every_shard() {
    isolation_holds(Order::DistributeThenIsolate);
}

#[test]
fn isolate_then_distribute_closes_every_shard() {
    isolation_holds(Order::IsolateThenDistribute);
}

#[test]
fn partitions_of_a_distributed_table_are_closed() {
    let cl = Cluster::new("part", Order::DistributeThenIsolate);
    let mut owner = cl.coordinator("mt_c_owner");
    ok(
        &mut owner,
        "CREATE TABLE public.metrics (tenant_id uuid NOT NULL, at date NOT NULL, v int, PRIMARY KEY (tenant_id, at)) PARTITION BY RANGE (at);
         CREATE TABLE public.metrics_2026 PARTITION OF public.metrics FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
         SELECT create_distributed_table('public.metrics', 'tenant_id');
         SELECT tenant.isolate('public.metrics');
         CREATE TABLE public.metrics_2027 PARTITION OF public.metrics FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
         GRANT SELECT, INSERT ON public.metrics, public.metrics_2026, public.metrics_2027 TO mt_c_backend;",
    );
    let mut su = cl.coordinator("postgres");
    ok(
        &mut su,
        &format!(
            "INSERT INTO public.metrics VALUES ('{a}', '2026-05-01', 1), ('{g}', '2026-05-01', 2), ('{a}', '2027-05-01', 3), ('{g}', '2027-05-01', 4)",
            a = cl.acme,
            g = cl.globex
        ),
    );
    let mut b = cl.coordinator("mt_c_backend");
    for t in [
        "public.metrics",
        "public.metrics_2026",
        "public.metrics_2027",
    ] {
        assert_eq!(
            one_i64(&mut b, &format!("SELECT count(*) FROM {t}")),
            0,
            "{t} without a context"
        );
        assert_eq!(
            cl.rows_on_shards(t, "SELECT 1"),
            0,
            "{t}'s shards without a context"
        );
    }
    ok(&mut b, "BEGIN; SELECT tenant.set_context('globex')");
    assert_eq!(one_i64(&mut b, "SELECT sum(v) FROM public.metrics"), 6);
    assert_eq!(one_i64(&mut b, "SELECT sum(v) FROM public.metrics_2027"), 4);
    ok(&mut b, "COMMIT");
}

#[test]
fn contexts_verify_on_workers_and_forgeries_do_not() {
    let cl = Cluster::new("tok", Order::DistributeThenIsolate);
    let token = cl.token("acme");
    let w = cl.workers[0];
    let mut on_worker = connect(w, &cl.db, "mt_c_backend");
    ok(
        &mut on_worker,
        &format!("SET multitenant.context = '{token}'"),
    );
    assert_eq!(
        one_text(&mut on_worker, "SELECT tenant.current_tenant()::text"),
        cl.acme,
        "one secret and one key id on every node"
    );
    // a forged signature, and a token of another database (its own secret), fail everywhere
    let (head, sig) = token.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    let forged = format!("{head}.{flipped}{}", &sig[1..]);
    let other = Cluster::new("tok2", Order::DistributeThenIsolate);
    let foreign = other.token("acme");
    for bad in [&forged, &foreign] {
        ok(
            &mut on_worker,
            &format!("SET multitenant.context = '{bad}'"),
        );
        assert_eq!(
            one_text(
                &mut on_worker,
                "SELECT coalesce(tenant.current_tenant()::text, 'none')"
            ),
            "none"
        );
        assert_eq!(cl.events_with_token(bad), 0);
        let mut b = cl.coordinator("mt_c_backend");
        ok(&mut b, &format!("SET citus.propagate_set_commands = 'local'; BEGIN; SET LOCAL multitenant.context = '{bad}'"));
        assert_eq!(
            one_i64(&mut b, "SELECT count(*) FROM public.events"),
            0,
            "through the coordinator"
        );
        ok(&mut b, "ROLLBACK");
    }
    // a session-wide context is not propagated: a warning, and nothing on the shards
    let mut b = cl.coordinator("mt_c_backend");
    ok(&mut b, "SELECT tenant.set_context('acme', NULL, false)");
    assert_eq!(one_i64(&mut b, "SELECT count(*) FROM public.events"), 0);
    assert_eq!(
        err(&mut b, "INSERT INTO public.events (kind) VALUES ('x')"),
        "MT001"
    );
}

#[test]
fn rotation_and_registry_changes_reach_every_worker() {
    let cl = Cluster::new("rot", Order::DistributeThenIsolate);
    let old = cl.token("acme");
    let mut su = cl.coordinator("postgres");
    ok(&mut su, "SELECT tenant.rotate_context_secret()");
    let ids: Vec<String> = std::iter::once(cl.coord)
        .chain(cl.workers)
        .map(|p| {
            one_text(
                &mut connect(p, &cl.db, "postgres"),
                "SELECT key_id::text || md5(key) FROM tenant.secret",
            )
        })
        .collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "one secret on every node after rotation: {ids:?}"
    );
    assert_eq!(cl.events_with_token(&old), 0, "old tokens die");
    let new = cl.token("acme");
    assert_eq!(cl.events_with_token(&new), 1);
    // suspending acme on the coordinator closes its rows on the workers at once, even for
    // a context minted before
    ok(&mut su, "SELECT tenant.set_status('acme', 'suspended')");
    for w in cl.workers {
        assert_eq!(
            one_text(
                &mut connect(w, &cl.db, "postgres"),
                "SELECT status FROM tenant.tenants WHERE slug = 'acme'"
            ),
            "suspended"
        );
    }
    assert_eq!(cl.events_with_token(&new), 0);
    // new tenants, several changed by one statement, several deleted by one: the same on
    // the workers
    ok(
        &mut su,
        "SELECT tenant.create('initech', 'Initech'); SELECT tenant.create('hooli', 'Hooli')",
    );
    let on_workers = |sql: &str| -> Vec<String> {
        cl.workers
            .iter()
            .map(|w| one_text(&mut connect(*w, &cl.db, "postgres"), sql))
            .collect()
    };
    let slugs = "SELECT string_agg(slug || ':' || coalesce(region, '-'), ',' ORDER BY slug) FROM tenant.tenants";
    assert_eq!(
        on_workers(slugs),
        vec!["acme:-,globex:-,hooli:-,initech:-"; 2]
    );
    ok(
        &mut su,
        "UPDATE tenant.tenants SET region = 'eu' WHERE slug <> 'globex'",
    );
    assert_eq!(
        on_workers(slugs),
        vec!["acme:eu,globex:-,hooli:eu,initech:eu"; 2]
    );
    ok(
        &mut su,
        "DELETE FROM tenant.tenants WHERE slug IN ('initech', 'hooli')",
    );
    assert_eq!(on_workers(slugs), vec!["acme:eu,globex:-"; 2]);
    // run on a worker, the sync is refused
    assert_eq!(
        err(
            &mut connect(cl.workers[0], &cl.db, "postgres"),
            "SELECT tenant.citus_sync()"
        ),
        "0A000"
    );
    assert_eq!(
        err(
            &mut connect(cl.workers[0], &cl.db, "mt_c_backend"),
            "SELECT tenant.rotate_context_secret()"
        ),
        "42501",
        "only the superuser rotates"
    );
}

#[test]
fn quotas_roles_and_refusals_on_citus() {
    let cl = Cluster::new("quota", Order::DistributeThenIsolate);
    let mut su = cl.coordinator("postgres");
    ok(
        &mut su,
        "SELECT tenant.load_plan('{\"name\": \"small\", \"price\": 1, \"limits\": {\"api_requests_per_hour\": 100}, \"features\": [\"exports\"]}');
         SELECT tenant.set_plan('acme', 'small');
         SELECT tenant.add_member('acme', 'a-viewer', ARRAY['viewer']);",
    );
    // 32 clients racing at the limit through the coordinator: exactly the limit passes
    let (coord, db) = (cl.coord, cl.db.clone());
    let handles: Vec<_> = (0..32)
        .map(|_| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut c = connect(coord, &db, "mt_c_backend");
                let mut granted = 0;
                for _ in 0..5 {
                    match c.batch_execute("BEGIN; SELECT tenant.set_context('acme'); SELECT tenant.consume('api_requests'); COMMIT") {
                        Ok(()) => granted += 1,
                        Err(e) => {
                            assert_eq!(code(&e), "MT010");
                            let _ = c.batch_execute("ROLLBACK");
                        }
                    }
                }
                granted
            })
        })
        .collect();
    let granted: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(granted, 100, "32 clients x 5 consumes at a limit of 100");
    // features and permissions are checked on the coordinator
    let mut b = cl.coordinator("mt_c_backend");
    ok(
        &mut b,
        "BEGIN; SELECT tenant.set_context('acme', 'a-viewer')",
    );
    assert_eq!(
        one_text(&mut b, "SELECT tenant.has_feature('exports')::text"),
        "true"
    );
    assert_eq!(
        one_text(&mut b, "SELECT tenant.can('events', 'read')::text"),
        "true"
    );
    assert_eq!(
        one_text(&mut b, "SELECT tenant.can('events', 'create')::text"),
        "false"
    );
    assert_eq!(
        err(&mut b, "SELECT tenant.authorize('events', 'create')"),
        "MT020"
    );
}

/// The audit entries of `public.events` on each worker: (worker port, count) for the chains
/// matching `chains` (a LIKE pattern).
fn worker_entries(cl: &Cluster, chains: &str) -> Vec<(u16, i64)> {
    cl.workers
        .iter()
        .map(|w| {
            (
                *w,
                one_i64(
                    &mut connect(*w, &cl.db, "postgres"),
                    &format!(
                        "SELECT count(*) FROM tenant.audit_log WHERE table_name = 'public.events' AND chain LIKE '{chains}'"
                    ),
                ),
            )
        })
        .collect()
}

fn total(v: &[(u16, i64)]) -> i64 {
    v.iter().map(|(_, n)| n).sum()
}

/// `tenant.verify_audit(slug)` on the coordinator as the superuser, as JSON.
fn verify(cl: &Cluster, tenant: &str) -> serde_json::Value {
    let arg = if tenant == "NULL" {
        "NULL".to_string()
    } else {
        format!("'{tenant}'")
    };
    serde_json::from_str(&one_text(
        &mut cl.coordinator("postgres"),
        &format!("SELECT tenant.verify_audit({arg})::text"),
    ))
    .unwrap()
}

#[test]
fn audit_of_a_distributed_table_lands_on_the_workers_and_verifies_from_the_coordinator() {
    let cl = Cluster::new("audit", Order::DistributeThenIsolate);
    let mut su = cl.coordinator("postgres");
    ok(&mut su, "GRANT tenant_admin TO mt_c_owner");
    let mut owner = cl.coordinator("mt_c_owner");
    ok(
        &mut owner,
        "SELECT tenant.audit('public.events', ARRAY['kind_note'])",
    );
    // every worker registered the table (the shards' trigger reads it there)
    for w in cl.workers {
        assert_eq!(
            one_text(
                &mut connect(w, &cl.db, "postgres"),
                "SELECT string_agg(relid::text || ':' || ignore_columns::text, ',') FROM tenant.audited_tables"
            ),
            "events:{kind_note}"
        );
    }
    let mut b = cl.coordinator("mt_c_backend");
    ok(
        &mut b,
        "BEGIN; SELECT tenant.set_context('acme');
         INSERT INTO public.events (kind) VALUES ('a1'), ('a2');
         UPDATE public.events SET kind = 'a3' WHERE kind = 'a1';
         COMMIT;
         BEGIN; SELECT tenant.set_context('globex');
         INSERT INTO public.events (kind) VALUES ('g1');
         DELETE FROM public.events WHERE kind = 'g1';
         COMMIT;",
    );
    let acme = format!("{}/%", cl.acme);
    let globex = format!("{}/%", cl.globex);
    assert_eq!(
        total(&worker_entries(&cl, &acme)),
        3,
        "acme's 2 inserts and 1 update"
    );
    assert_eq!(total(&worker_entries(&cl, &globex)), 2);
    assert_eq!(
        one_i64(
            &mut su,
            "SELECT count(*) FROM tenant.audit_log WHERE table_name = 'public.events'"
        ),
        0,
        "the shards' entries are on the workers, not on the coordinator"
    );
    // a rolled-back change leaves no entry
    ok(
        &mut b,
        "BEGIN; SELECT tenant.set_context('acme'); INSERT INTO public.events (kind) VALUES ('gone'); ROLLBACK",
    );
    assert_eq!(total(&worker_entries(&cl, &acme)), 3);
    // verify_audit on the coordinator counts and verifies every node's chains
    let on_coordinator = |pattern: &str| {
        one_i64(
            &mut cl.coordinator("postgres"),
            &format!("SELECT count(*) FROM tenant.audit_log WHERE chain LIKE '{pattern}'"),
        )
    };
    let v = verify(&cl, "acme");
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["nodes"], 3, "{v}");
    assert_eq!(v["entries"], on_coordinator(&acme) + 3, "{v}");
    // TRUNCATE: one entry, the coordinator's, not one per shard
    let truncates = "SELECT count(*) FROM tenant.audit_log WHERE operation = 'TRUNCATE'";
    ok(
        &mut owner,
        "CREATE TABLE public.scratch (tenant_id uuid NOT NULL, n int, PRIMARY KEY (tenant_id, n));
         SELECT create_distributed_table('public.scratch', 'tenant_id');
         SELECT tenant.audit('public.scratch'); TRUNCATE public.scratch;",
    );
    assert_eq!(one_i64(&mut su, truncates), 1);
    for w in cl.workers {
        assert_eq!(one_i64(&mut connect(w, &cl.db, "postgres"), truncates), 0);
    }

    // the tenant moves to a shard of its own, and that shard to the other worker: no entry
    // is written by the move, new ones land on the new node, and every chain still verifies
    let acme_rows = format!(
        "SELECT count(*) FROM public.events WHERE tenant_id = '{}'",
        cl.acme
    );
    let rows_before = one_i64(&mut su, &acme_rows);
    let shard = one_i64(
        &mut su,
        &format!(
            "SELECT isolate_tenant_to_new_shard('public.events', '{}'::uuid, 'CASCADE', 'block_writes')",
            cl.acme
        ),
    );
    assert_eq!(
        total(&worker_entries(&cl, &acme)),
        3,
        "the move logs nothing"
    );
    assert_eq!(
        one_i64(&mut su, &acme_rows),
        rows_before,
        "the move keeps every row"
    );
    let to = cl.move_to_other_worker(shard);
    ok(
        &mut b,
        "BEGIN; SELECT tenant.set_context('acme'); INSERT INTO public.events (kind) VALUES ('moved'); COMMIT",
    );
    let per_worker = worker_entries(&cl, &acme);
    assert_eq!(total(&per_worker), 4);
    assert!(
        per_worker.iter().any(|(w, n)| *w == to && *n >= 1),
        "the new entry is on the node the shard moved to: {per_worker:?}"
    );
    let v = verify(&cl, "acme");
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["entries"], on_coordinator(&acme) + 4, "{v}");

    // a forged entry on a worker breaks the chain, and the report names the node
    let mut on_to = connect(to, &cl.db, "postgres");
    ok(
        &mut on_to,
        &format!(
            "SET session_replication_role = replica;
             UPDATE tenant.audit_log SET new_data = '{{\"kind\": \"forged\"}}'
             WHERE chain LIKE '{acme}' AND table_name = 'public.events' AND operation = 'INSERT';
             RESET session_replication_role;"
        ),
    );
    let v = verify(&cl, "acme");
    assert_eq!(v["valid"], false, "{v}");
    assert_eq!(v["node"], format!("127.0.0.1:{to}"), "{v}");

    // retention: entries past it go on every node (here acme's, dated back on that worker,
    // forged one included), and what stays verifies again
    ok(
        &mut on_to,
        &format!(
            "SET session_replication_role = replica;
             UPDATE tenant.audit_log SET at = at - interval '400 days' WHERE chain LIKE '{acme}';
             RESET session_replication_role;"
        ),
    );
    let dated = one_i64(
        &mut on_to,
        &format!("SELECT count(*) FROM tenant.audit_log WHERE chain LIKE '{acme}'"),
    );
    assert!(dated >= 1);
    assert_eq!(
        one_i64(&mut owner, "SELECT tenant.purge_audit(30, 365)"),
        dated,
        "purge_audit removes the worker's expired entries"
    );
    assert_eq!(verify(&cl, "acme")["valid"], true);

    // a purged tenant's chains are erased on the workers too
    ok(
        &mut su,
        "SELECT tenant.set_status('globex', 'deleted'); SELECT tenant.purge('globex', true)",
    );
    assert_eq!(total(&worker_entries(&cl, &globex)), 0);
    let v = verify(&cl, &cl.globex);
    assert_eq!(v["valid"], true, "{v}");

    // unaudit: the workers forget the table, and write no more entries
    ok(&mut owner, "SELECT tenant.unaudit('public.events')");
    for w in cl.workers {
        assert_eq!(
            one_i64(
                &mut connect(w, &cl.db, "postgres"),
                "SELECT count(*) FROM tenant.audited_tables WHERE relid = 'public.events'::regclass"
            ),
            0
        );
    }
    let before = total(&worker_entries(&cl, "%"));
    ok(
        &mut b,
        "BEGIN; SELECT tenant.set_context('acme'); INSERT INTO public.events (kind) VALUES ('quiet'); COMMIT",
    );
    assert_eq!(total(&worker_entries(&cl, "%")), before);
}

#[test]
fn export_import_and_purge_reach_the_shards() {
    let cl = Cluster::new("port", Order::DistributeThenIsolate);
    let mut su = cl.coordinator("postgres");
    ok(&mut su, "GRANT tenant_admin TO mt_c_owner");
    let mut b = cl.coordinator("mt_c_backend");
    ok(
        &mut b,
        "BEGIN; SELECT tenant.set_context('acme');
         INSERT INTO public.events (kind) VALUES ('acme'), ('acme'), ('acme');
         COMMIT;",
    );
    // export reads the tenant's rows on the shards (they are closed to anything else)
    let mut owner = cl.coordinator("mt_c_owner");
    ok(&mut owner, "BEGIN");
    let exported = one_text(
        &mut owner,
        "SELECT (SELECT string_agg(r->>'kind', ',') FROM jsonb_array_elements(tenant.export('acme')->'tables'->'public.events') r)",
    );
    assert_eq!(exported, "acme,acme,acme,acme");
    assert_eq!(
        one_i64(
            &mut owner,
            "SELECT count(*) FROM tenant.export_rows('acme', 'public.events') r WHERE r->>'kind' = 'acme'"
        ),
        4
    );
    // afterwards the transaction holds no context again, on the workers either: the
    // owner (the role the export's context was for) sees nothing
    assert_eq!(one_i64(&mut owner, "SELECT count(*) FROM public.events"), 0);
    assert_eq!(
        one_text(&mut owner, "SELECT current_setting('multitenant.context')"),
        ""
    );
    ok(&mut owner, "COMMIT");
    // a context set before an export is the one in force after it
    ok(&mut b, "BEGIN; SELECT tenant.set_context('globex')");
    let before = one_text(&mut b, "SELECT current_setting('multitenant.context')");
    ok(&mut b, "SELECT tenant.export('acme')");
    assert_eq!(
        one_text(&mut b, "SELECT current_setting('multitenant.context')"),
        before
    );
    assert_eq!(
        one_text(&mut b, "SELECT string_agg(kind, ',') FROM public.events"),
        "globex",
        "back in globex's context on every shard"
    );
    ok(&mut b, "COMMIT");

    // import into another tenant: the rows land on its shard, under its id
    // (outside BEGIN too: one statement, whose one-shard reads Citus sends without a
    // transaction block unless the export makes it a coordinated one)
    let doc = one_text(&mut su, "SELECT tenant.export('acme')::text");
    assert_eq!(
        one_i64(
            &mut su,
            &format!(
                "SELECT jsonb_array_length(('{}'::jsonb)->'tables'->'public.events')::bigint",
                doc.replace('\'', "''")
            )
        ),
        4,
        "an export outside BEGIN reads the shards too"
    );
    assert_eq!(
        one_i64(
            &mut su,
            "SELECT count(*) FROM tenant.export_rows('acme', 'public.events')"
        ),
        4
    );
    ok(&mut su, "SELECT tenant.create('initech', 'Initech')");
    let initech = one_text(
        &mut su,
        "SELECT id::text FROM tenant.tenants WHERE slug = 'initech'",
    );
    ok(
        &mut su,
        &format!(
            "SELECT tenant.import('initech', jsonb_set('{}'::jsonb, '{{tables,public.events}}', \
               (SELECT jsonb_agg(r - 'id') FROM jsonb_array_elements(('{}'::jsonb)->'tables'->'public.events') r)))",
            doc.replace('\'', "''"),
            doc.replace('\'', "''")
        ),
    );
    let mut on_shards = 0;
    for w in cl.workers {
        for shard in cl.shards_on(w, "public.events") {
            let mut c = connect(w, &cl.db, "postgres");
            ok(&mut c, "SET citus.override_table_visibility = off");
            on_shards += one_i64(
                &mut c,
                &format!("SELECT count(*) FROM {shard} WHERE tenant_id = '{initech}'"),
            );
        }
    }
    assert_eq!(on_shards, 4, "the imported rows are on the workers' shards");

    // purge deletes the tenant's rows on the shards, and only them
    ok(
        &mut su,
        "SELECT tenant.set_status('globex', 'deleted'); SELECT tenant.purge('globex', true)",
    );
    assert_eq!(
        one_i64(
            &mut su,
            &format!(
                "SELECT count(*) FROM public.events WHERE tenant_id = '{}'",
                cl.globex
            )
        ),
        0
    );
    assert_eq!(
        one_i64(
            &mut su,
            &format!(
                "SELECT count(*) FROM public.events WHERE tenant_id = '{}'",
                cl.acme
            )
        ),
        4
    );
}

/// Insert one `public.events` row as the backend in `slug`'s context: Ok, or the SQLSTATE.
fn insert_event(c: &mut Client, slug: &str) -> Result<(), String> {
    match c.batch_execute(&format!(
        "BEGIN; SELECT tenant.set_context('{slug}'); INSERT INTO public.events (kind) VALUES ('{slug}'); COMMIT"
    )) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = c.batch_execute("ROLLBACK");
            Err(code(&e))
        }
    }
}

#[test]
fn limit_rows_on_a_distributed_table_is_exact_across_the_cluster() {
    let cl = Cluster::new("rows", Order::DistributeThenIsolate);
    let old_token = cl.token("acme");
    let mut su = cl.coordinator("postgres");
    ok(
        &mut su,
        "SELECT tenant.load_plan('{\"name\": \"small\", \"price\": 1, \"limits\": {\"events\": 5}}');
         SELECT tenant.load_plan('{\"name\": \"big\", \"price\": 2, \"limits\": {\"events\": -1}}');
         SELECT tenant.set_plan('acme', 'small'); SELECT tenant.set_plan('globex', 'big');
         GRANT tenant_admin TO mt_c_owner;",
    );
    let mut owner = cl.coordinator("mt_c_owner");
    ok(
        &mut owner,
        "SELECT tenant.limit_rows('public.events', 'events')",
    );
    // every worker registered the table
    for w in cl.workers {
        assert_eq!(
            one_text(
                &mut connect(w, &cl.db, "postgres"),
                "SELECT string_agg(relid::text || ':' || resource, ',') FROM tenant.row_limits"
            ),
            "events:events"
        );
    }
    // a context entered before the table was limited carries no limit for it: refused
    let mut b = cl.coordinator("mt_c_backend");
    ok(&mut b, "BEGIN");
    ok(&mut b, "SET LOCAL citus.propagate_set_commands = 'local'");
    ok(
        &mut b,
        &format!("SET LOCAL multitenant.context = '{old_token}'"),
    );
    assert_eq!(
        err(&mut b, "INSERT INTO public.events (kind) VALUES ('stale')"),
        "MT004"
    );
    // 32 clients race for acme's 4 free rows (one exists): exactly 4 get in
    let (coord, db) = (cl.coord, cl.db.clone());
    let handles: Vec<_> = (0..32)
        .map(|_| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut c = connect(coord, &db, "mt_c_backend");
                let mut n = 0;
                for _ in 0..2 {
                    match c.batch_execute(
                        "BEGIN; SELECT tenant.set_context('acme'); INSERT INTO public.events (kind) VALUES ('race'); COMMIT",
                    ) {
                        Ok(()) => n += 1,
                        Err(e) => {
                            assert_eq!(code(&e), "MT010", "{e:?}");
                            let _ = c.batch_execute("ROLLBACK");
                        }
                    }
                }
                n
            })
        })
        .collect();
    let granted: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(
        granted, 4,
        "32 clients x 2 inserts at a limit of 5 with 1 row"
    );
    let acme_rows = format!(
        "SELECT count(*) FROM public.events WHERE tenant_id = '{}'",
        cl.acme
    );
    assert_eq!(one_i64(&mut su, &acme_rows), 5);
    // a deletion frees a row
    ok(
        &mut b,
        "BEGIN; SELECT tenant.set_context('acme'); DELETE FROM public.events WHERE kind = 'acme'; COMMIT",
    );
    assert_eq!(insert_event(&mut b, "acme"), Ok(()));
    assert_eq!(insert_event(&mut b, "acme"), Err("MT010".into()));
    // globex is unlimited
    for _ in 0..7 {
        assert_eq!(insert_event(&mut b, "globex"), Ok(()));
    }
    // the tenant moves to a shard of its own, on the other worker: its count goes with its
    // rows (moved by the superuser: see docs/citus.md on moves run by the table owner)
    let shard = one_i64(
        &mut su,
        &format!(
            "SELECT isolate_tenant_to_new_shard('public.events', '{}'::uuid, 'CASCADE', 'block_writes')",
            cl.acme
        ),
    );
    cl.move_to_other_worker(shard);
    assert_eq!(one_i64(&mut su, &acme_rows), 5, "the move keeps every row");
    assert_eq!(insert_event(&mut b, "acme"), Err("MT010".into()));
    ok(
        &mut b,
        "BEGIN; SELECT tenant.set_context('acme');
         DELETE FROM public.events WHERE id IN (SELECT id FROM public.events ORDER BY id LIMIT 2); COMMIT",
    );
    assert_eq!(insert_event(&mut b, "acme"), Ok(()));
    assert_eq!(insert_event(&mut b, "acme"), Ok(()));
    assert_eq!(insert_event(&mut b, "acme"), Err("MT010".into()));
    assert_eq!(one_i64(&mut su, &acme_rows), 5);
    // a plan change takes effect with the next context
    ok(&mut su, "SELECT tenant.set_plan('acme', 'big')");
    assert_eq!(insert_event(&mut b, "acme"), Ok(()));
    ok(&mut su, "SELECT tenant.set_plan('acme', 'small')");
    assert_eq!(insert_event(&mut b, "acme"), Err("MT010".into()));
    // unlimit: the workers forget the table, inserts are not counted any more
    ok(&mut owner, "SELECT tenant.unlimit_rows('public.events')");
    for w in cl.workers {
        assert_eq!(
            one_i64(
                &mut connect(w, &cl.db, "postgres"),
                "SELECT count(*) FROM tenant.row_limits"
            ),
            0
        );
    }
    assert_eq!(insert_event(&mut b, "acme"), Ok(()));
}

#[test]
fn a_schema_per_tenant_is_one_shard_reached_without_the_tenant_id() {
    let cl = Cluster::new("schema", Order::DistributeThenIsolate);
    let mut su = cl.coordinator("postgres");
    ok(
        &mut su,
        &format!(
            "GRANT tenant_admin TO mt_c_owner; GRANT CREATE ON DATABASE {} TO mt_c_owner",
            cl.db
        ),
    );
    let mut owner = cl.coordinator("mt_c_owner");
    // the template stays a local schema; the tenants' schemas become distributed schemas
    ok(
        &mut owner,
        "CREATE SCHEMA app_template;
         CREATE TABLE app_template.docs (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), body text NOT NULL);
         GRANT USAGE ON SCHEMA app_template TO mt_c_backend;
         GRANT SELECT, INSERT, UPDATE, DELETE ON app_template.docs TO mt_c_backend;
         SET citus.enable_schema_based_sharding = on;
         SELECT tenant.provision_schema('acme', 'app_template');
         SELECT tenant.provision_schema('globex', 'app_template');
         RESET citus.enable_schema_based_sharding;",
    );
    let acme_schema = format!("tenant_{}", cl.acme.replace('-', ""));
    assert_eq!(
        one_i64(
            &mut su,
            &format!("SELECT count(*) FROM citus_schemas WHERE schema_name::text IN ('{acme_schema}', 'tenant_{}')", cl.globex.replace('-', ""))
        ),
        2,
        "both tenant schemas are distributed schemas"
    );
    let mut b = cl.coordinator("mt_c_backend");
    ok(
        &mut b,
        "BEGIN; SELECT tenant.set_context('acme'); INSERT INTO docs (body) VALUES ('a1'), ('a2'); COMMIT;
         BEGIN; SELECT tenant.set_context('globex'); INSERT INTO docs (body) VALUES ('g1'); COMMIT;",
    );
    // the application's query names neither the tenant nor its schema: one task, its rows
    ok(&mut b, "BEGIN; SELECT tenant.set_context('acme')");
    assert_eq!(
        one_text(
            &mut b,
            "SELECT string_agg(body, ',' ORDER BY body) FROM docs"
        ),
        "a1,a2"
    );
    let plan: Vec<String> = b
        .query("EXPLAIN SELECT body FROM docs", &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    assert!(
        plan.iter().any(|l| l.contains("Task Count: 1")),
        "a router query: {plan:?}"
    );
    // another tenant's schema, named outright, shows nothing and takes nothing
    let other = format!("tenant_{}", cl.globex.replace('-', ""));
    assert_eq!(
        one_i64(&mut b, &format!("SELECT count(*) FROM {other}.docs")),
        0
    );
    ok(&mut b, "COMMIT");
    ok(&mut b, "BEGIN; SELECT tenant.set_context('acme')");
    let e = err(
        &mut b,
        &format!("INSERT INTO {other}.docs (body) VALUES ('evil')"),
    );
    assert!(e == "42501" || e.starts_with("MT"), "{e}");
    // without a context: nothing, and no write
    assert_eq!(
        one_i64(&mut b, &format!("SELECT count(*) FROM {acme_schema}.docs")),
        0
    );
    assert_eq!(
        err(
            &mut b,
            &format!("INSERT INTO {acme_schema}.docs (body) VALUES ('x')")
        ),
        "MT001"
    );
    // the shard on its worker: closed without a context, the tenant's rows with its token,
    // and no policy there that does not test the context
    let token = cl.token("acme");
    let mut seen = 0;
    let mut closed = 0;
    for w in cl.workers {
        let mut wsu = connect(w, &cl.db, "postgres");
        ok(&mut wsu, "SET citus.override_table_visibility = off");
        let shards: Vec<String> = wsu
            .query(
                &format!(
                    "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = '{acme_schema}' AND c.relname LIKE 'docs\\_%' AND c.relkind = 'r'"
                ),
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        for shard in shards {
            let open = one_i64(
                &mut wsu,
                &format!(
                    "SELECT count(*) FROM pg_policies WHERE schemaname = '{acme_schema}' AND tablename = '{}' \
                     AND (cmd = 'ALL' OR coalesce(qual, '') || coalesce(with_check, '') NOT LIKE '%tenant.%')",
                    shard.rsplit('.').next().unwrap()
                ),
            );
            assert_eq!(
                open, 0,
                "a policy on {shard} that does not test the context"
            );
            let mut c = connect(w, &cl.db, "mt_c_backend");
            ok(&mut c, "SET citus.override_table_visibility = off");
            closed += one_i64(&mut c, &format!("SELECT count(*) FROM {shard}"));
            ok(
                &mut c,
                &format!("BEGIN; SET LOCAL multitenant.context = '{token}'"),
            );
            seen += one_i64(&mut c, &format!("SELECT count(*) FROM {shard}"));
            ok(&mut c, "COMMIT");
        }
    }
    assert_eq!(closed, 0, "no rows without a context on the worker");
    assert_eq!(seen, 2, "acme's rows with acme's token, on its one shard");

    // a migration's new table joins each tenant's shard group, guarded
    assert_eq!(
        one_i64(
            &mut owner,
            "SELECT tenant.migrate_schemas('002_tags', 'CREATE TABLE tags (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), doc_body text, name text); GRANT SELECT, INSERT ON tags TO mt_c_backend')"
        ),
        2
    );
    assert_eq!(
        one_i64(
            &mut su,
            "SELECT count(*) FROM citus_tables WHERE table_name::text LIKE 'tenant\\_%.tags' AND citus_table_type = 'schema'"
        ),
        2,
        "the new table is a schema table in both tenant schemas"
    );
    ok(
        &mut b,
        "BEGIN; SELECT tenant.set_context('acme');
         INSERT INTO tags (doc_body, name) VALUES ('a1', 't-a1'), ('a2', 't-a2'); COMMIT",
    );
    ok(&mut b, "BEGIN; SELECT tenant.set_context('acme')");
    assert_eq!(
        one_text(
            &mut b,
            "SELECT string_agg(t.name, ',' ORDER BY t.name) FROM docs d JOIN tags t ON t.doc_body = d.body"
        ),
        "t-a1,t-a2"
    );
    let plan: Vec<String> = b
        .query(
            "EXPLAIN SELECT t.name FROM docs d JOIN tags t ON t.doc_body = d.body",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    assert!(
        plan.iter().any(|l| l.contains("Task Count: 1")),
        "the join is a router query: {plan:?}"
    );
    ok(&mut b, "COMMIT");
    ok(&mut b, "BEGIN; SELECT tenant.set_context('globex')");
    assert_eq!(
        one_i64(&mut b, &format!("SELECT count(*) FROM {acme_schema}.tags")),
        0
    );
    ok(&mut b, "COMMIT");
}

#[test]
fn check_isolation_knows_the_citus_policy_shape() {
    let cl = Cluster::new("lint", Order::IsolateThenDistribute);
    let mut su = cl.coordinator("postgres");
    let findings = "SELECT count(*) FROM tenant.check_isolation() \
                    WHERE kind = 'rls_not_forced' AND object = 'public.events' AND severity = 'critical'";
    assert_eq!(
        one_i64(&mut su, findings),
        0,
        "the Citus shape is the right one here"
    );
    // a permissive policy of one's own is ORed with the tenant's: flagged
    let mut owner = cl.coordinator("mt_c_owner");
    ok(
        &mut owner,
        "CREATE POLICY open_reads ON public.events FOR SELECT USING (kind IS NOT NULL)",
    );
    assert_eq!(one_i64(&mut su, findings), 1);
    assert!(one_text(
        &mut su,
        "SELECT problem FROM tenant.check_isolation() WHERE kind = 'rls_not_forced' AND object = 'public.events'"
    )
    .contains("another permissive policy"));
    assert!(one_text(
        &mut su,
        "SELECT fix FROM tenant.check_isolation() WHERE kind = 'rls_not_forced' AND object = 'public.events'"
    )
    .contains("drop open_reads on public.events"));
    // as the fix says: drop it, and all is well
    ok(&mut owner, "DROP POLICY open_reads ON public.events");
    assert_eq!(one_i64(&mut su, findings), 0);
}

#[test]
fn a_tenant_moves_to_its_own_shard_and_stays_isolated() {
    let cl = Cluster::new("move", Order::DistributeThenIsolate);
    let mut su = cl.coordinator("postgres");
    ok(
        &mut su,
        &format!(
            "SELECT isolate_tenant_to_new_shard('public.events', '{}'::uuid, 'CASCADE')",
            cl.acme
        ),
    );
    assert_shard_policies(&cl, "events");
    let mut b = cl.coordinator("mt_c_backend");
    assert_eq!(one_i64(&mut b, "SELECT count(*) FROM public.events"), 0);
    assert_eq!(cl.rows_on_shards("public.events", "SELECT 1"), 0);
    ok(&mut b, "BEGIN; SELECT tenant.set_context('acme')");
    assert_eq!(
        one_text(&mut b, "SELECT string_agg(kind, ',') FROM public.events"),
        "acme"
    );
    ok(&mut b, "COMMIT");
}

#[test]
fn the_tenant_id_set_context_returns_makes_a_router_query() {
    let cl = Cluster::new("router", Order::DistributeThenIsolate);
    let mut b = cl.coordinator("mt_c_backend");
    let mut tx = b.transaction().unwrap();
    let tid: uuid::Uuid = tx
        .query_one("SELECT tenant.set_context('acme')", &[])
        .unwrap()
        .get(0);
    let plan: Vec<String> = tx
        .query(
            "EXPLAIN (COSTS OFF) SELECT kind FROM public.events WHERE tenant_id = $1",
            &[&tid],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(plan.iter().any(|l| l.contains("Task Count: 1")), "{plan:?}");
    let kinds: Vec<String> = tx
        .query(
            "SELECT kind FROM public.events WHERE tenant_id = $1",
            &[&tid],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(kinds, vec!["acme".to_string()]);
    // another tenant's id in the WHERE: routed to its shard, and the policy there says no
    let other: uuid::Uuid = cl.globex.parse().unwrap();
    assert_eq!(
        tx.query(
            "SELECT kind FROM public.events WHERE tenant_id = $1",
            &[&other]
        )
        .unwrap()
        .len(),
        0
    );
    tx.rollback().unwrap();
}

/// The attacker of the suite: a role with only what PUBLIC has (CONNECT, TEMP), on the
/// coordinator and directly on a worker, cannot plant a secret or a tenant, push a payload,
/// rotate or read the secret, even with its own temp `secret` table first on its path.
#[test]
fn a_connect_only_role_cannot_touch_the_cluster_registry() {
    let cl = Cluster::new("evil", Order::DistributeThenIsolate);
    let mut su = cl.coordinator("postgres");
    ok(
        &mut su,
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mt_c_evil') \
         THEN CREATE ROLE mt_c_evil LOGIN; END IF; END $$",
    );
    let planted = r#"{"secret": {"key": "00000000000000000000000000000000000000000000000000000000000000aa", "key_id": "00000000-0000-0000-0000-000000000001", "created_at": "2026-01-01"}, "full": true, "deleted": [], "tenants": []}"#;
    for port in std::iter::once(cl.coord).chain(cl.workers) {
        let mut evil = connect(port, &cl.db, "mt_c_evil");
        ok(
            &mut evil,
            "CREATE TEMP TABLE secret (id int, key bytea, created_at timestamptz, key_id uuid); \
             SET search_path = pg_temp, tenant, public",
        );
        for sql in [
            format!("SELECT tenant_internal._citus_receive('{planted}')"),
            format!("SELECT tenant_internal._citus_push('{planted}')"),
            "SELECT tenant_internal._citus_payload(NULL, true, false)".to_string(),
            "SELECT tenant.citus_sync()".to_string(),
            "SELECT tenant.rotate_context_secret()".to_string(),
            "SELECT key FROM tenant.secret".to_string(),
            "UPDATE tenant.secret SET key_id = '00000000-0000-0000-0000-000000000001'".to_string(),
            "DELETE FROM tenant.tenants".to_string(),
            // the workers' part of audit, retention and erasure; the registration pushes
            format!("SELECT tenant_internal._audit_verify_node('{}')", cl.acme),
            "SELECT tenant_internal._audit_purge_node(1, 1, '{}')".to_string(),
            format!("SELECT tenant_internal._audit_erase_node('{}')", cl.acme),
            "SELECT tenant_internal._citus_audited(NULL)".to_string(),
            "SELECT tenant_internal._citus_row_limits(NULL)".to_string(),
            "INSERT INTO tenant.audited_tables (relid) VALUES ('public.events')".to_string(),
            "INSERT INTO tenant.row_limits (relid, resource, tenant_column) VALUES ('public.events', 'x', 'tenant_id')".to_string(),
            "DELETE FROM tenant.usage_counters".to_string(),
            // what protect recorded (the resources whose permissions contexts carry)
            "SELECT * FROM tenant.protected_tables".to_string(),
            "INSERT INTO tenant.protected_tables (relid, resource) VALUES ('public.events', 'x')".to_string(),
        ] {
            assert_eq!(err(&mut evil, &sql), "42501", "port {port}: {sql}");
        }
    }
    // nothing moved: one secret everywhere, both tenants on every worker, and the
    // coordinator's tokens still open acme's rows on the shards
    let ids: Vec<String> = std::iter::once(cl.coord)
        .chain(cl.workers)
        .map(|p| {
            one_text(
                &mut connect(p, &cl.db, "postgres"),
                "SELECT key_id::text || md5(key) || (SELECT count(*) FROM tenant.tenants)::text FROM tenant.secret",
            )
        })
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    assert_eq!(cl.events_with_token(&cl.token("acme")), 1);
}

/// Rows of `table` `user` of `slug` sees through the coordinator, or the SQLSTATE.
fn seen_as(cl: &Cluster, slug: &str, user: &str, sql: &str) -> Result<i64, String> {
    let mut c = cl.coordinator("mt_c_backend");
    ok(
        &mut c,
        &format!("BEGIN; SELECT tenant.set_context('{slug}', '{user}')"),
    );
    let out = c
        .query_one(sql, &[])
        .map(|r| r.get::<_, i64>(0))
        .map_err(|e| code(&e));
    let _ = c.batch_execute("ROLLBACK");
    out
}

/// Run `sql` as `user` of `slug` through the coordinator: the rows it touched, or the SQLSTATE.
fn write_as(cl: &Cluster, slug: &str, user: &str, sql: &str) -> Result<u64, String> {
    let mut c = cl.coordinator("mt_c_backend");
    ok(
        &mut c,
        &format!("BEGIN; SELECT tenant.set_context('{slug}', '{user}')"),
    );
    match c.execute(sql, &[]) {
        Ok(n) => {
            ok(&mut c, "COMMIT");
            Ok(n)
        }
        Err(e) => {
            let _ = c.batch_execute("ROLLBACK");
            Err(code(&e))
        }
    }
}

#[test]
fn protect_on_distributed_tables_holds_on_every_shard() {
    let cl = Cluster::new("protect", Order::DistributeThenIsolate);
    let mut su = cl.coordinator("postgres");
    ok(
        &mut su,
        "SELECT set_config('multitenant.context', '', false);
         DO $$ BEGIN PERFORM tenant.set_context('acme');
           PERFORM tenant.create_role('writer');
           PERFORM tenant.create_role('reader');
           PERFORM tenant.create_role('nobody');
           PERFORM tenant.grant_permission('writer', 'docs', 'create');
           PERFORM tenant.grant_permission('writer', 'docs', 'read', '{\"owner_id\": \"self\"}');
           PERFORM tenant.grant_permission('writer', 'docs', 'update', '{\"owner_id\": \"self\"}');
           PERFORM tenant.grant_permission('reader', 'docs', 'read');
           PERFORM tenant.grant_permission('reader', 'events', 'read');
           PERFORM tenant.add_member('acme', 'ann', ARRAY['writer']);
           PERFORM tenant.add_member('acme', 'rob', ARRAY['reader']);
           PERFORM tenant.add_member('acme', 'eve', ARRAY['nobody']);
         END $$;",
    );
    let mut owner = cl.coordinator("mt_c_owner");
    // isolate, protect, then distribute: the shards get the folded policies
    ok(
        &mut owner,
        "CREATE TABLE public.docs (id bigserial, tenant_id uuid NOT NULL,
             author text NOT NULL DEFAULT tenant.current_user_id(), title text, PRIMARY KEY (tenant_id, id));
         SELECT tenant.isolate('public.docs');
         SELECT tenant.protect('public.docs', 'docs', owner_column => 'author');
         SELECT create_distributed_table('public.docs', 'tenant_id');
         GRANT SELECT, INSERT, UPDATE, DELETE ON public.docs TO mt_c_backend;
         GRANT USAGE ON SEQUENCE public.docs_id_seq TO mt_c_backend;",
    );
    // a table that is not isolated cannot be protected here (its policies carry the checks)
    ok(
        &mut owner,
        "CREATE TABLE public.loose (id bigint, tenant_id uuid NOT NULL);
         SELECT create_distributed_table('public.loose', 'tenant_id');",
    );
    assert_eq!(
        err(&mut owner, "SELECT tenant.protect('public.loose', 'loose')"),
        "MT030"
    );
    // protect after distribution, on events (one acme row, one globex row)
    ok(
        &mut owner,
        "SELECT tenant.protect('public.events', 'events')",
    );
    // no restrictive policy anywhere (Citus would make it permissive on the shards); the
    // shards' policies test the tenant and the permission
    assert_shard_policies(&cl, "docs");
    assert_shard_policies(&cl, "events");
    for w in cl.workers {
        let mut ws = connect(w, &cl.db, "postgres");
        ok(&mut ws, "SET citus.override_table_visibility = off");
        assert_eq!(
            one_i64(
                &mut ws,
                "SELECT count(*) FROM pg_policies WHERE (tablename LIKE 'docs\\_%' OR tablename LIKE 'events\\_%') \
                 AND (permissive <> 'PERMISSIVE' OR policyname LIKE 'tenant_protect%' OR coalesce(qual, with_check) NOT LIKE '%tenant.can(%')"
            ),
            0,
            "worker {w}: every shard policy is permissive and checks the permission"
        );
    }
    assert_eq!(
        one_i64(
            &mut su,
            "SELECT count(*) FROM tenant.check_isolation() WHERE severity = 'critical' AND object IN ('public.docs', 'public.events')"
        ),
        0,
        "the folded shape is the right one"
    );

    // writes through the coordinator: create needs the permission, for another owner 'assign'
    let ins = "INSERT INTO public.docs (title) VALUES ('mine')";
    assert_eq!(write_as(&cl, "acme", "ann", ins), Ok(1));
    assert_eq!(write_as(&cl, "acme", "ann", ins), Ok(1));
    assert_eq!(write_as(&cl, "acme", "rob", ins), Err("42501".into()));
    assert_eq!(
        write_as(
            &cl,
            "acme",
            "ann",
            "INSERT INTO public.docs (author, title) VALUES ('rob', 'for rob')"
        ),
        Err("42501".into()),
        "rows for another owner need assign"
    );
    ok(
        &mut su,
        &format!(
            "INSERT INTO public.docs (tenant_id, author, title) VALUES ('{}', 'zed', 'zed''s'), ('{}', 'ann', 'globex ann')",
            cl.acme, cl.globex
        ),
    );
    // reads: own rows, all of the tenant's, none; never another tenant's
    let count = "SELECT count(*) FROM public.docs";
    assert_eq!(seen_as(&cl, "acme", "ann", count), Ok(2));
    assert_eq!(seen_as(&cl, "acme", "rob", count), Ok(3));
    assert_eq!(seen_as(&cl, "acme", "eve", count), Ok(0));
    assert_eq!(
        seen_as(&cl, "globex", "ann", count),
        Ok(0),
        "ann is nobody in globex"
    );
    let events = "SELECT count(*) FROM public.events";
    assert_eq!(seen_as(&cl, "acme", "rob", events), Ok(1));
    assert_eq!(seen_as(&cl, "acme", "ann", events), Ok(0));
    // updates and deletes: only what the permission allows
    assert_eq!(
        write_as(
            &cl,
            "acme",
            "ann",
            "UPDATE public.docs SET title = title || '!'"
        ),
        Ok(2)
    );
    assert_eq!(
        write_as(
            &cl,
            "acme",
            "rob",
            "UPDATE public.docs SET title = title || '?'"
        ),
        Ok(0)
    );
    assert_eq!(
        write_as(&cl, "acme", "ann", "DELETE FROM public.docs"),
        Ok(0),
        "no delete permission"
    );

    // the shards themselves, queried on the workers with the coordinator's tokens: the
    // permissions travel in the context (the workers have no roles)
    let on_shards = |user: Option<&str>| {
        cl.rows_on_shards(
            "public.docs",
            &format!(
                "SET LOCAL multitenant.context = '{}'",
                cl.user_token("acme", user)
            ),
        )
    };
    assert_eq!(on_shards(Some("ann")), 2);
    assert_eq!(on_shards(Some("rob")), 3);
    assert_eq!(on_shards(Some("eve")), 0);
    assert_eq!(
        on_shards(None),
        0,
        "the backend without a user holds no permission"
    );
    assert_eq!(
        cl.rows_on_shards("public.docs", "SELECT 1"),
        0,
        "no context"
    );
    let globex_ann = cl.user_token("globex", Some("ann"));
    assert_eq!(
        cl.rows_on_shards(
            "public.docs",
            &format!("SET LOCAL multitenant.context = '{globex_ann}'")
        ),
        0
    );

    // a revocation holds from the next context; a token kept from before carries no
    // permission anywhere: the coordinator answers from its tables, the workers distrust
    // what it carries (minted before the tenant's roles changed; a second apart, the
    // resolution of the comparison)
    let rob_before = cl.user_token("acme", Some("rob"));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    ok(
        &mut su,
        "DO $$ BEGIN PERFORM tenant.set_context('acme');
           PERFORM tenant.revoke_permission('reader', 'docs', 'read'); END $$",
    );
    assert_eq!(seen_as(&cl, "acme", "rob", count), Ok(0));
    assert_eq!(on_shards(Some("rob")), 0);
    let mut kept = cl.coordinator("mt_c_backend");
    ok(
        &mut kept,
        &format!("BEGIN; SET LOCAL multitenant.context = '{rob_before}'"),
    );
    assert_eq!(
        one_text(&mut kept, "SELECT tenant.can('docs', 'read')::text"),
        "false"
    );
    ok(&mut kept, "ROLLBACK");
    assert_eq!(
        cl.rows_on_shards(
            "public.docs",
            &format!("SET LOCAL multitenant.context = '{rob_before}'")
        ),
        0,
        "the kept token on the shards"
    );
    // a permission granted again holds for a context minted since
    ok(
        &mut su,
        "DO $$ BEGIN PERFORM tenant.set_context('acme');
           PERFORM tenant.grant_permission('reader', 'docs', 'read'); END $$",
    );
    assert_eq!(on_shards(Some("rob")), 3);
    ok(
        &mut su,
        "DO $$ BEGIN PERFORM tenant.set_context('acme');
           PERFORM tenant.revoke_permission('reader', 'docs', 'read'); END $$",
    );

    // a table whose protect policies have no record (protected under 0.1.0): isolate on
    // Citus refuses to drop them silently, protect again records them
    ok(
        &mut su,
        "DELETE FROM tenant.protected_tables WHERE relid = 'public.events'::regclass;
         CREATE POLICY tenant_protect_read ON public.events AS RESTRICTIVE FOR SELECT USING (true);",
    );
    assert_eq!(
        err(&mut owner, "SELECT tenant.isolate('public.events')"),
        "MT030"
    );
    ok(
        &mut owner,
        "SELECT tenant.protect('public.events', 'events'); SELECT tenant.isolate('public.events')",
    );
    assert_eq!(seen_as(&cl, "acme", "rob", events), Ok(1));
    assert_eq!(seen_as(&cl, "acme", "ann", events), Ok(0));
    // isolate again keeps the checks; export (for the tenant, not a user) sees every row
    ok(&mut owner, "SELECT tenant.isolate('public.docs')");
    assert_eq!(seen_as(&cl, "acme", "ann", count), Ok(2));
    let mut be = cl.coordinator("mt_c_backend");
    assert_eq!(
        one_i64(
            &mut be,
            "SELECT jsonb_array_length(tenant.export('acme')->'tables'->'public.docs')::bigint"
        ),
        3
    );
}

/// `EXPLAIN (COSTS OFF)` of `sql` in `c`: its lines.
fn plan_of(c: &mut Client, sql: &str) -> Vec<String> {
    c.query(&format!("EXPLAIN (COSTS OFF) {sql}"), &[])
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn tasks(plan: &[String]) -> Option<i64> {
    plan.iter()
        .find_map(|l| l.trim().strip_prefix("Task Count: "))
        .and_then(|n| n.parse().ok())
}

fn kinds(c: &mut Client, sql: &str) -> Vec<String> {
    c.query(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn statements_through_the_policy_alone_are_router_queries() {
    let cl = Cluster::new("route", Order::IsolateThenDistribute);
    let mut b = cl.coordinator("mt_c_backend");
    let all = "SELECT kind FROM public.events";
    // no context: nothing to route by, every shard asked (and nothing shown)
    ok(&mut b, "BEGIN");
    assert_eq!(tasks(&plan_of(&mut b, all)), Some(32));
    assert!(kinds(&mut b, all).is_empty());
    ok(&mut b, "SELECT tenant.set_context('acme')");
    // the context's tenant: one task, for the statement without any tenant id
    assert_eq!(tasks(&plan_of(&mut b, all)), Some(1));
    assert_eq!(kinds(&mut b, all), vec!["acme".to_string()]);
    for sql in [
        "SELECT count(*) FROM public.events WHERE id > 0",
        "UPDATE public.events SET kind = kind",
        "DELETE FROM public.events WHERE kind = 'nothing'",
        "SELECT a.kind FROM public.events a JOIN public.events b USING (tenant_id, id)",
    ] {
        assert_eq!(tasks(&plan_of(&mut b, sql)), Some(1), "{sql}");
    }
    // the null side of an outer join keeps its null rows (the id goes into the ON clause)
    assert_eq!(
        kinds(
            &mut b,
            "SELECT coalesce(o.kind, 'none') FROM public.events a \
             LEFT JOIN public.events o ON o.tenant_id = a.tenant_id AND o.kind = 'no such kind'"
        ),
        vec!["none".to_string()]
    );
    // off: the same statement fans out again, and shows the same rows
    ok(&mut b, "SET LOCAL multitenant.route_by_context = off");
    assert_eq!(tasks(&plan_of(&mut b, all)), Some(32));
    assert_eq!(kinds(&mut b, all), vec!["acme".to_string()]);
    ok(&mut b, "COMMIT");

    // cached plans never carry one tenant's id into another's context: a prepared
    // statement (no parameter: a generic plan, kept) and a PL/pgSQL function's plan
    ok(
        &mut cl.coordinator("mt_c_owner"),
        "CREATE FUNCTION public.event_kinds() RETURNS text LANGUAGE plpgsql AS $$
           BEGIN RETURN (SELECT string_agg(kind, ',') FROM public.events); END $$;
         GRANT EXECUTE ON FUNCTION public.event_kinds() TO mt_c_backend;",
    );
    ok(&mut b, "PREPARE q AS SELECT kind FROM public.events");
    for (slug, want) in [
        ("acme", "acme"),
        ("acme", "acme"),
        ("globex", "globex"),
        ("acme", "acme"),
        ("globex", "globex"),
    ] {
        ok(
            &mut b,
            &format!("BEGIN; SELECT tenant.set_context('{slug}')"),
        );
        for _ in 0..3 {
            assert_eq!(kinds(&mut b, "EXECUTE q"), vec![want.to_string()], "{slug}");
            assert_eq!(
                one_text(&mut b, "SELECT public.event_kinds()"),
                want,
                "{slug}"
            );
        }
        ok(&mut b, "COMMIT");
    }
    // between transactions, no context: nothing, whatever plan is kept
    assert!(kinds(&mut b, "EXECUTE q").is_empty());
    // a token carried as it is (a pooler's SET LOCAL, not set_context): the same
    for (slug, want) in [("globex", "globex"), ("acme", "acme")] {
        let token = cl.token(slug);
        ok(
            &mut b,
            &format!("BEGIN; SET LOCAL citus.propagate_set_commands = 'local'; SET LOCAL multitenant.context = '{token}'"),
        );
        assert_eq!(kinds(&mut b, "EXECUTE q"), vec![want.to_string()]);
        ok(&mut b, "COMMIT");
    }

    // a role that row level security does not hold (the superuser) reads as before
    let mut su = cl.coordinator("postgres");
    ok(&mut su, "BEGIN; SELECT tenant.set_context('acme')");
    assert_eq!(tasks(&plan_of(&mut su, all)), Some(32));
    assert_eq!(kinds(&mut su, all).len(), 2);
    ok(&mut su, "ROLLBACK");
    // isolate's own policy changed to let more through: not routed, rows as it says
    let mut owner = cl.coordinator("mt_c_owner");
    ok(
        &mut owner,
        "ALTER POLICY tenant_isolation ON public.events USING (kind = 'globex' OR tenant_id = tenant.current_tenant())",
    );
    ok(&mut b, "BEGIN; SELECT tenant.set_context('acme')");
    assert_eq!(tasks(&plan_of(&mut b, all)), Some(32));
    assert_eq!(kinds(&mut b, all).len(), 2);
    ok(&mut b, "ROLLBACK");
    ok(&mut owner, "SELECT tenant.isolate('public.events')");
    ok(&mut b, "BEGIN; SELECT tenant.set_context('acme')");
    assert_eq!(
        tasks(&plan_of(&mut b, all)),
        Some(1),
        "isolate puts it back"
    );
    ok(&mut b, "ROLLBACK");
    // a policy of one's own on the table (ORed with the tenant's): not routed, rows as the
    // policies say
    ok(
        &mut owner,
        "CREATE POLICY shared_kinds ON public.events FOR SELECT USING (kind = 'globex')",
    );
    ok(&mut b, "BEGIN; SELECT tenant.set_context('acme')");
    assert_eq!(tasks(&plan_of(&mut b, all)), Some(32));
    let mut seen = kinds(&mut b, all);
    seen.sort();
    assert_eq!(seen, vec!["acme".to_string(), "globex".to_string()]);
    ok(&mut b, "ROLLBACK");
}

/// The rows `sql` gives `slug`'s context (sorted, as text), with routing on or off; in a
/// transaction rolled back afterwards, so writes can be compared too.
fn rows_routed(c: &mut Client, slug: &str, sql: &str, route: bool) -> Vec<String> {
    ok(
        c,
        &format!(
            "BEGIN; SET LOCAL multitenant.route_by_context = {}; SELECT tenant.set_context('{slug}')",
            if route { "on" } else { "off" }
        ),
    );
    let mut out: Vec<String> = c
        .simple_query(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .iter()
        .filter_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect();
    ok(c, "ROLLBACK");
    out.sort();
    out
}

#[test]
fn routing_by_the_context_changes_no_result() {
    let cl = Cluster::new("routediff", Order::DistributeThenIsolate);
    let mut owner = cl.coordinator("mt_c_owner");
    ok(
        &mut owner,
        "CREATE TABLE public.items (id bigserial, tenant_id uuid NOT NULL, ev_id bigint, note text, PRIMARY KEY (tenant_id, id));
         CREATE TABLE public.series (id bigint, tenant_id uuid NOT NULL, at date NOT NULL, v int, PRIMARY KEY (tenant_id, id, at)) PARTITION BY RANGE (at);
         CREATE TABLE public.series_2026 PARTITION OF public.series FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
         CREATE TABLE public.codes (code text PRIMARY KEY, label text);
         SELECT create_distributed_table('public.items', 'tenant_id', colocate_with => 'public.events');
         SELECT create_distributed_table('public.series', 'tenant_id', colocate_with => 'public.events');
         SELECT create_reference_table('public.codes');
         SELECT tenant.isolate('public.items'); SELECT tenant.isolate('public.series');
         CREATE VIEW public.events_v WITH (security_invoker = true) AS SELECT id, kind FROM public.events WHERE kind IS NOT NULL;
         GRANT SELECT, INSERT, UPDATE, DELETE ON public.items, public.series, public.series_2026, public.codes TO mt_c_backend;
         GRANT SELECT ON public.events_v TO mt_c_backend;
         GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO mt_c_backend;",
    );
    let mut su = cl.coordinator("postgres");
    ok(
        &mut su,
        "INSERT INTO public.codes VALUES ('a', 'A'), ('b', 'B');
         INSERT INTO public.events (tenant_id, kind) SELECT t.id, t.slug || '-' || g FROM tenant.tenants t, generate_series(2, 5) g;
         INSERT INTO public.items (tenant_id, ev_id, note)
           SELECT e.tenant_id, e.id, 'note ' || e.kind FROM public.events e WHERE right(e.kind, 1) IN ('2', '3', 'e', 'x');
         INSERT INTO public.series SELECT g, t.id, date '2026-03-01' + g, g FROM tenant.tenants t, generate_series(1, 4) g;",
    );
    let joined = "ON i.tenant_id = e.tenant_id AND i.ev_id = e.id";
    let queries = [
        "SELECT kind FROM public.events".to_string(),
        "SELECT count(*) FROM public.events WHERE kind LIKE '%3'".to_string(),
        format!("SELECT e.kind, i.note FROM public.events e JOIN public.items i {joined}"),
        format!("SELECT e.kind, i.note FROM public.events e LEFT JOIN public.items i {joined}"),
        format!("SELECT e.kind, i.note FROM public.items i RIGHT JOIN public.events e {joined}"),
        format!("SELECT e.kind, i.note FROM public.events e FULL JOIN public.items i {joined} AND i.note LIKE '%2'"),
        format!("SELECT count(*) FROM public.events e LEFT JOIN public.items i {joined} WHERE i.id IS NULL"),
        "SELECT kind FROM public.events e WHERE EXISTS (SELECT 1 FROM public.items i WHERE i.tenant_id = e.tenant_id AND i.ev_id = e.id)".to_string(),
        "SELECT kind FROM public.events WHERE id IN (SELECT ev_id FROM public.items)".to_string(),
        "WITH x AS (SELECT * FROM public.events WHERE kind LIKE '%2') SELECT kind FROM x".to_string(),
        "SELECT e.kind, c.label FROM public.events e JOIN public.codes c ON c.code = 'a'".to_string(),
        "SELECT kind FROM public.events_v".to_string(),
        "SELECT sum(v) FROM public.series".to_string(),
        "SELECT sum(v) FROM public.series_2026".to_string(),
        "SELECT kind, (SELECT count(*) FROM public.items i WHERE i.tenant_id = e.tenant_id) FROM public.events e".to_string(),
        "SELECT kind FROM public.events UNION ALL SELECT note FROM public.items".to_string(),
        "SELECT e.kind FROM public.events e, LATERAL (SELECT note FROM public.items i WHERE i.tenant_id = e.tenant_id AND i.ev_id = e.id LIMIT 1) l".to_string(),
        // writes, rolled back after each
        "UPDATE public.events SET kind = kind || '!' WHERE kind LIKE '%3' RETURNING kind".to_string(),
        "DELETE FROM public.items WHERE note LIKE '%2' RETURNING note".to_string(),
        "UPDATE public.items i SET note = i.note || '!' FROM public.events e WHERE e.tenant_id = i.tenant_id AND e.id = i.ev_id RETURNING i.note".to_string(),
        "WITH d AS (DELETE FROM public.events WHERE kind LIKE '%5' RETURNING kind) SELECT kind FROM d".to_string(),
        "INSERT INTO public.items (ev_id, note) SELECT id, 'copy ' || kind FROM public.events WHERE kind LIKE '%4' RETURNING note".to_string(),
    ];
    let mut b = cl.coordinator("mt_c_backend");
    for sql in &queries {
        for slug in ["acme", "globex"] {
            let routed = rows_routed(&mut b, slug, sql, true);
            let planned = rows_routed(&mut b, slug, sql, false);
            assert!(!routed.is_empty(), "{slug}: {sql} returns rows");
            assert_eq!(routed, planned, "{slug}: {sql}");
            let other = if slug == "acme" { "globex" } else { "acme" };
            assert!(
                routed.iter().all(|r| !r.contains(other)),
                "{slug}: {sql}: {routed:?}"
            );
        }
    }
}
