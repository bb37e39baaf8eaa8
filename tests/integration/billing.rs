//! Plans as the design documents write them, metering of anything, alerts and billing
//! records (issue 15), as non-superuser roles, with globex trying to see or change acme's.

use crate::common::*;
use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;
use serde_json::Value;

#[test]
fn billing_the_design_documents_plans_load_as_written() {
    let db = Db::new("billing_plans");
    let mut admin = db.as_role("mt_it_admin");
    // 000's free.yaml, verbatim (YAML text)
    let free = r#"# tenants/plans/free.yaml
name: "Free"
price: 0
currency: "USD"
billing_cycle: null
limits:
  api_requests_per_hour: 1000
  storage_mb: 100
  users: 5
  campaigns: 1
  ar_anchors: 10
  missions_per_month: 100
features:
  - basic_analytics
  - community_support
restrictions:
  - no_custom_branding
  - no_api_access
  - no_priority_support
"#;
    let key: String = admin
        .query_one("SELECT tenant.load_plan($1::text)", &[&free])
        .unwrap()
        .get(0);
    assert_eq!(key, "free");
    // 002's tier, verbatim (JSON)
    let tier = r#"{
  "name": "Professional",
  "price": 49.99,
  "usage_caps": {
    "api_calls": 100000,
    "projects": 50
  },
  "feature_entitlements": ["custom_domain", "api_access"]
}"#;
    let key: String = admin
        .query_one("SELECT tenant.load_plan($1::text::jsonb)", &[&tier])
        .unwrap()
        .get(0);
    assert_eq!(key, "professional");
    let rows = texts(
        &mut admin,
        "SELECT name || '|' || display_name || '|' || billing_cycle || '|' || features::text || '|' || \
                (SELECT string_agg(k || '=' || (v->>'limit'), ',' ORDER BY k) FROM jsonb_each(limits) AS l(k, v)) \
         FROM tenant.plans() ORDER BY price",
    );
    assert_eq!(
        rows,
        vec![
            "free|Free|none|{basic_analytics,community_support}|api_requests=1000,ar_anchors=10,campaigns=1,missions=100,storage_bytes=104857600,users=5",
            "professional|Professional|month|{custom_domain,api_access}|api_calls=100000,projects=50",
        ]
    );
    // the seeded set, in one call
    let keys: Vec<String> = admin
        .query_one("SELECT tenant.install_default_plans()", &[])
        .unwrap()
        .get(0);
    assert_eq!(keys, vec!["free", "pro", "premium", "enterprise"]);
    assert_eq!(
        one_i64(&mut admin, "SELECT count(*) FROM tenant.plans() WHERE name IN ('free', 'pro', 'premium', 'enterprise')"),
        4
    );
    assert_eq!(
        su_text(
            &db,
            "SELECT limits->'users'->>'limit' FROM tenant.plans() WHERE name = 'enterprise'"
        ),
        "-1"
    );

    // bad documents: every unknown key named, nothing written
    let before = su_text(
        &db,
        "SELECT string_agg(name, ',' ORDER BY name) FROM tenant.plans",
    );
    let (code, msg) = error_of(
        &mut admin,
        "SELECT tenant.load_plan('{\"name\": \"x\", \"limts\": {}, \"featurs\": []}')",
    );
    assert_eq!(code, "MT030");
    assert!(
        msg.contains("\"limts\"") && msg.contains("\"featurs\""),
        "{msg}"
    );
    for bad in [
        "SELECT tenant.load_plan(E'name: x\nbilling_cycle: weekly')",
        "SELECT tenant.load_plan(E'name: x\nlimits: {storage_mb: 1, storage_gb: 1}')",
        "SELECT tenant.load_plan(E'name: x\nlimits: {users: -5}')",
        "SELECT tenant.load_plan(E'name: x\nlimits: {}\nusage_caps: {}')",
        "SELECT tenant.load_plan('name: [unclosed')",
        "SELECT tenant.load_plan('{\"name\": \"x\", \"price\": -1}')",
        "SELECT tenant.load_plan(E'name: x\n---\nname: y')",
    ] {
        assert_eq!(err_of(&mut admin, bad), "MT030", "{bad}");
    }
    assert_eq!(
        su_text(
            &db,
            "SELECT string_agg(name, ',' ORDER BY name) FROM tenant.plans"
        ),
        before
    );
    let mut app = db.as_role("mt_it_app");
    expect_code(
        &mut app,
        "SELECT tenant.install_default_plans()",
        "42501",
        "app installs plans",
    );
    expect_code(
        &mut app,
        "SELECT tenant.load_plan('name: x')",
        "42501",
        "app loads a plan",
    );

    // restrictions are evaluated; an override lifts one
    su_exec(
        &db,
        "SELECT tenant.set_plan('acme', 'free'); SELECT tenant.set_plan('globex', 'enterprise')",
    );
    let mut be = db.as_role("mt_it_backend");
    let gate = |c: &mut Client, t: &str| -> String {
        one_in(
            c,
            t,
            "SELECT tenant.has_feature('api_access') || ',' || tenant.has_restriction('no_api_access') || ',' || \
                    tenant.has_feature('basic_analytics') || ',' || tenant.has_restriction('no_custom_branding')",
        )
    };
    assert_eq!(gate(&mut be, "acme"), "false,true,true,true");
    assert_eq!(gate(&mut be, "globex"), "true,false,false,false");
    assert_eq!(
        err_in(
            &mut be,
            "acme",
            "SELECT tenant.require_feature('api_access')"
        ),
        "MT011"
    );
    su_exec(
        &db,
        "SELECT tenant.set_feature_override('acme', 'api_access', true)",
    );
    assert_eq!(gate(&mut be, "acme"), "true,false,true,true");
    su_exec(
        &db,
        "SELECT tenant.set_feature_override('acme', 'no_custom_branding', false)",
    );
    assert_eq!(gate(&mut be, "acme"), "true,false,true,false");
    assert!(
        !one_bool(&mut be, "SELECT tenant.has_restriction('no_api_access')"),
        "no context: false"
    );
    // sizes: storage_gb and storage_mb are one resource
    exec_in(&mut be, "acme", "SELECT tenant.consume('storage_mb', 60)");
    assert_eq!(
        err_in(
            &mut be,
            "acme",
            "SELECT tenant.consume('storage_bytes', 41943041)"
        ),
        "MT010"
    );
    let left: i64 = one_in(&mut be, "acme", "SELECT tenant.consume('storage_kb', 1024)");
    assert_eq!(left, 39 << 20);
}

#[test]
fn billing_keys_are_exact_under_concurrency_and_alerts_fire_once() {
    let db = Db::new("billing_keys");
    plan(
        &db,
        r#"{"name": "metered", "limits": {"requests_per_hour": 100, "storage_mb": 10}}"#,
        &["acme", "globex"],
    );
    let mut listener = db.as_role("mt_it_backend");
    listener.batch_execute("LISTEN multitenant_alerts").unwrap();
    // 32 clients, 2 keys, 8 units each: 256 asked, 100 per key allowed
    let threads: Vec<_> = (0..32)
        .map(|i| {
            let name = db.name.clone();
            std::thread::spawn(move || {
                let mut c = connect(&name, "mt_it_app");
                let key = if i % 2 == 0 { "/search" } else { "/export" };
                let tok = {
                    let mut be = connect(&name, "mt_it_backend");
                    let mut tx = be.transaction().unwrap();
                    tx.execute("SELECT tenant.set_context('acme')", &[])
                        .unwrap();
                    let t: String = tx
                        .query_one("SELECT current_setting('multitenant.context')", &[])
                        .unwrap()
                        .get(0);
                    t
                };
                c.execute(
                    "SELECT set_config('multitenant.context', $1, false)",
                    &[&tok],
                )
                .unwrap();
                let mut ok = 0i64;
                for _ in 0..8 {
                    if c.query_one("SELECT tenant.consume('requests', 1, $1)", &[&key])
                        .is_ok()
                    {
                        ok += 1;
                    }
                }
                (key, ok)
            })
        })
        .collect();
    let mut by_key = std::collections::BTreeMap::new();
    for t in threads {
        let (k, ok) = t.join().unwrap();
        *by_key.entry(k).or_insert(0i64) += ok;
    }
    assert_eq!(by_key["/search"], 100);
    assert_eq!(by_key["/export"], 100);
    let acme = db.tenant_id("acme");
    assert_eq!(
        su_text(&db, &format!("SELECT string_agg(key || '=' || used, ',' ORDER BY key) FROM tenant.usage_counters WHERE tenant_id = '{acme}' AND resource = 'requests'")),
        "/export=100,/search=100"
    );
    // one alert per key and threshold, however many clients crossed it together
    assert_eq!(
        su_text(&db, "SELECT string_agg(key || ':' || threshold, ',' ORDER BY key, threshold) FROM tenant.usage_alerts"),
        "/export:80,/export:100,/search:80,/search:100"
    );
    listener.batch_execute("SELECT 1").unwrap();
    let notes: Vec<Value> = listener
        .notifications()
        .iter()
        .map(|n| Ok(serde_json::from_str(n.payload()).unwrap()))
        .collect()
        .unwrap();
    assert_eq!(notes.len(), 4, "{notes:?}");
    assert!(notes
        .iter()
        .all(|n| n["resource"] == "requests" && n.get("tenant_id").is_none()));
    // the tenant's own counter (no key) is still whole; globex is untouched
    let mut be = db.as_role("mt_it_backend");
    assert_eq!(
        one_in::<Option<i64>>(&mut be, "acme", "SELECT tenant.consume('requests', 100)"),
        Some(0)
    );
    assert_eq!(
        one_in::<Option<i64>>(
            &mut be,
            "globex",
            "SELECT tenant.consume('requests', 1, '/search')"
        ),
        Some(99)
    );
    assert_eq!(
        app_texts(&db, "globex", "SELECT key FROM tenant.usage_alerts"),
        Vec::<String>::new()
    );
    assert_eq!(
        app_texts(
            &db,
            "acme",
            "SELECT DISTINCT key FROM tenant.usage_alerts ORDER BY 1"
        ),
        vec!["", "/export", "/search"]
    );
    assert_eq!(
        count_as(&db, "mt_it_app", "SELECT count(*) FROM tenant.usage_alerts"),
        0
    );

    // release gives back, never below 0; set_usage records a gauge; both for the backend only
    assert_eq!(
        one_in::<Option<i64>>(
            &mut be,
            "acme",
            "SELECT tenant.release('requests', 30, '/search')"
        ),
        Some(30)
    );
    assert_eq!(
        one_in::<Option<i64>>(
            &mut be,
            "acme",
            "SELECT tenant.release('requests', 1000, '/search')"
        ),
        Some(100)
    );
    assert_eq!(
        one_in::<Option<i64>>(&mut be, "acme", "SELECT tenant.set_usage('storage_mb', 9)"),
        Some(1 << 20)
    );
    assert_eq!(
        one_in::<Option<i64>>(&mut be, "acme", "SELECT tenant.set_usage('storage_mb', 12)"),
        Some(0)
    );
    assert_eq!(
        su_text(&db, "SELECT string_agg(threshold::text, ',' ORDER BY threshold) FROM tenant.usage_alerts WHERE resource = 'storage_bytes'"),
        "80,100"
    );
    assert_eq!(
        err_in(&mut be, "acme", "SELECT tenant.consume('storage_mb', 1)"),
        "MT010"
    );
    let mut app = as_tenant(&db, "mt_it_app", "acme");
    for sql in [
        "SELECT tenant.release('requests', 1)",
        "SELECT tenant.set_usage('requests', 0)",
    ] {
        expect_code(
            &mut app,
            sql,
            "42501",
            "an application role lifting its own limit",
        );
    }
    // bad input
    for (sql, code) in [
        ("SELECT tenant.consume('requests', -1)", "MT030"),
        ("SELECT tenant.consume('requests', 0, '/x')", "MT030"),
        ("SELECT tenant.release('requests', 0)", "MT030"),
        ("SELECT tenant.set_usage('requests', -1)", "MT030"),
        ("SELECT tenant.consume('nope', 1)", "MT030"),
        (
            "SELECT tenant.consume('storage_tb', 9223372036854775807)",
            "MT030",
        ),
        (
            "SELECT tenant.consume('requests', 1, repeat('k', 201))",
            "MT030",
        ),
        ("SELECT tenant.consume(NULL, 1)", "MT030"),
    ] {
        assert_eq!(err_in(&mut be, "acme", sql), code, "{sql}");
    }
    assert_eq!(
        err_of(&mut be, "SELECT tenant.consume('requests', 1, '/x')"),
        "MT001"
    );
}

#[test]
fn billing_track_records_any_metric_per_tenant() {
    let db = Db::new("billing_track");
    let mut app = as_tenant(&db, "mt_it_app", "acme");
    let id: i64 = q1(&mut app, "SELECT tenant.track('api.calls', 3, 'u1', '{\"endpoint\": \"/v1/data\", \"method\": \"GET\"}')");
    assert!(id > 0);
    app.batch_execute("SELECT tenant.track('api.calls'); SELECT tenant.track('gb_hours', 0.25)")
        .unwrap();
    let mut g = as_tenant(&db, "mt_it_app", "globex");
    g.batch_execute("SELECT tenant.track('api.calls', 7)")
        .unwrap();
    assert_eq!(
        texts(&mut app, "SELECT metric || '=' || total || '/' || events FROM tenant.metric_daily ORDER BY metric"),
        vec!["api.calls=4/2", "gb_hours=0.25/1"]
    );
    assert_eq!(
        texts(
            &mut app,
            "SELECT properties->>'endpoint' FROM tenant.usage_events WHERE user_id = 'u1'"
        ),
        vec!["/v1/data"]
    );
    assert_eq!(
        one_i64(&mut g, "SELECT count(*) FROM tenant.usage_events"),
        1,
        "globex sees its own only"
    );
    assert_eq!(
        count_as(&db, "mt_it_app", "SELECT count(*) FROM tenant.usage_events"),
        0
    );
    assert_eq!(
        count_as(&db, "mt_it_app", "SELECT count(*) FROM tenant.metric_daily"),
        0
    );
    // the partitions are not readable around the parent's policies
    expect_code(
        &mut g,
        "SELECT count(*) FROM tenant.usage_events_default",
        "42501",
        "a partition directly",
    );
    for bad in [
        "SELECT tenant.track('Bad Metric')",
        "SELECT tenant.track('x', -1)",
        "SELECT tenant.track('x', 'NaN')",
        "SELECT tenant.track('x', 1, NULL, '[1]')",
        "SELECT tenant.track('x', 1, '')",
    ] {
        assert_eq!(err_of(&mut app, bad), "MT030", "{bad}");
    }
    assert_eq!(
        err_of(&mut db.as_role("mt_it_app"), "SELECT tenant.track('x')"),
        "MT001"
    );
    // maintenance makes this month's and next month's partitions (this month's rows are in
    // the default partition already: it makes next month's only)
    let r: String = q1(
        &mut db.as_role("mt_it_admin"),
        "SELECT (tenant.run_maintenance())->>'event_partitions_created'",
    );
    assert_eq!(r, "1");
    assert_eq!(
        su_i64(
            &db,
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'tenant.usage_events'::regclass"
        ),
        2
    );
}

#[test]
fn billing_invoices_once_payments_and_suspension_after_grace() {
    let db = Db::new("billing_invoices");
    plan(
        &db,
        r#"{"name": "pro", "price": 49, "billing_cycle": "monthly",
            "limits": {"missions": {"limit": 10, "period": "month", "overage_price": 0.5}}}"#,
        &["acme", "globex"],
    );
    let mut be = db.as_role("mt_it_backend");
    be.batch_execute(
        "SELECT tenant.subscribe('acme'); SELECT tenant.subscribe('globex');
         SELECT tenant.add_credit('acme', 10, 'goodwill'); SELECT tenant.add_credit('acme', 100, 'too big for one invoice');",
    )
    .unwrap();
    // last month: both subscribed since, acme used 14 missions (10 included, 0.5 each above)
    let acme_id = db.tenant_id("acme");
    su_exec(
        &db,
        &format!(
            "UPDATE tenant.subscriptions SET current_period_start = (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '1 month')::date;
             INSERT INTO tenant.usage_counters (tenant_id, resource, window_start, window_end, used)
             VALUES ('{acme_id}', 'missions', (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '1 month') AT TIME ZONE 'UTC',
                     date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', 14)"
        ),
    );
    exec_in(&mut be, "acme", "SELECT tenant.consume('missions', 3)");
    let month = "(date_trunc('month', now() AT TIME ZONE 'UTC') - interval '1 month')::date";
    // concurrently and twice: each tenant's invoice once
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let name = db.name.clone();
            let sql = format!("SELECT tenant.generate_invoices({month})::bigint");
            std::thread::spawn(move || one_i64(&mut connect(&name, "mt_it_backend"), &sql))
        })
        .collect();
    let made: i64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(made, 2);
    assert_eq!(
        one_i64(
            &mut be,
            &format!("SELECT tenant.generate_invoices({month})::bigint")
        ),
        0
    );
    assert_eq!(su_i64(&db, "SELECT count(*) FROM tenant.invoices"), 2);
    let acme = db.tenant_id("acme");
    assert_eq!(
        su_text(&db, &format!("SELECT subtotal || '/' || credits || '/' || total || '/' || status FROM tenant.invoices WHERE tenant_id = '{acme}'")),
        "51.00/10.00/41.00/open"
    );
    assert_eq!(
        su_text(&db, &format!("SELECT string_agg(line_no || ':' || description || ':' || amount, '|' ORDER BY line_no) \
                                FROM tenant.invoice_lines l JOIN tenant.invoices i ON i.id = l.invoice_id WHERE i.tenant_id = '{acme}'")),
        format!(
            "1:plan pro ({}):49.00|2:overage missions: 4 above 10:2.00",
            su_text(&db, "SELECT to_char(now() AT TIME ZONE 'UTC' - interval '1 month', 'YYYY-MM')")
        )
    );
    assert_eq!(
        su_i64(
            &db,
            "SELECT count(*) FROM tenant.credits WHERE invoice_id IS NULL"
        ),
        1,
        "the big credit waits"
    );
    // each tenant reads its own invoices and lines
    assert_eq!(
        app_texts(&db, "globex", "SELECT total::text FROM tenant.invoices"),
        vec!["49.00"]
    );
    assert_eq!(
        app_texts(
            &db,
            "globex",
            "SELECT count(*)::text FROM tenant.invoice_lines"
        ),
        vec!["1"]
    );
    assert_eq!(
        app_texts(&db, "globex", "SELECT count(*)::text FROM tenant.credits"),
        vec!["0"]
    );
    assert_eq!(
        count_as(
            &db,
            "mt_it_app",
            "SELECT count(*) FROM tenant.invoice_lines"
        ),
        0
    );

    // a failed payment: past due; past the grace the tenant is suspended, audited; a later
    // successful payment reactivates it
    let globex_inv = su_text(&db, "SELECT i.id::text FROM tenant.invoices i JOIN tenant.tenants t ON t.id = i.tenant_id WHERE t.slug = 'globex'");
    let pay = |c: &mut Client, ok: bool| -> String {
        c.query_one(
            "SELECT tenant.record_payment($1::text::uuid, $2, 'evt_1')",
            &[&globex_inv, &ok],
        )
        .unwrap()
        .get(0)
    };
    assert_eq!(pay(&mut be, false), "past_due");
    su_exec(
        &db,
        &format!(
            "ALTER DATABASE {} SET multitenant.payment_grace = '1s'",
            db.name
        ),
    );
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let mut admin = db.as_role("mt_it_admin");
    let r: String = q1(
        &mut admin,
        "SELECT (tenant.run_maintenance())->>'suspended_for_payment'",
    );
    assert_eq!(r, "1");
    assert_eq!(
        su_text(
            &db,
            "SELECT status FROM tenant.tenants WHERE slug = 'globex'"
        ),
        "suspended"
    );
    assert_eq!(
        su_text(&db, "SELECT status FROM tenant.tenants WHERE slug = 'acme'"),
        "active"
    );
    assert_eq!(
        su_i64(&db, "SELECT count(*) FROM tenant.audit_log a JOIN tenant.tenants t ON t.id = a.tenant_id \
                     WHERE t.slug = 'globex' AND a.record_id IN ('payment.failed', 'tenant.suspended_for_payment')"),
        2
    );
    assert_eq!(pay(&mut be, true), "active");
    assert_eq!(
        su_text(
            &db,
            "SELECT status FROM tenant.tenants WHERE slug = 'globex'"
        ),
        "active"
    );
    assert_eq!(
        pay(&mut be, true),
        "active",
        "a webhook delivered twice changes nothing"
    );
    expect_code(
        &mut be,
        &format!("SELECT tenant.record_payment('{globex_inv}', false)"),
        "MT040",
        "a paid invoice fails",
    );
    expect_code(
        &mut be,
        "SELECT tenant.record_payment(gen_random_uuid(), true)",
        "MT030",
        "unknown invoice",
    );

    // bad input and roles
    for (sql, code) in [
        ("SELECT tenant.generate_invoices('2026-01-15')", "MT030"),
        ("SELECT tenant.generate_invoices('2999-01-01')", "MT030"),
        (
            "SELECT tenant.generate_invoices(date_trunc('month', now())::date)",
            "MT030",
        ),
        ("SELECT tenant.run_maintenance('1 day')", "MT030"),
        ("SELECT tenant.add_credit('acme', -5)", "MT030"),
        ("SELECT tenant.add_credit('acme', 0.001)", "MT030"),
        ("SELECT tenant.add_credit('nope', 5)", "MT002"),
        (
            "SELECT tenant.subscribe('acme', status => 'past_due')",
            "MT030",
        ),
    ] {
        expect_code(&mut be, sql, code, sql);
    }
    assert_eq!(
        err_in(
            &mut be,
            "acme",
            "SELECT tenant.consume('missions', 1, 'key-on-a-soft-limit')"
        ),
        "MT030",
        "keys apply to hard limits"
    );
    let mut app = db.as_role("mt_it_app");
    for sql in [
        "SELECT tenant.generate_invoices()",
        "SELECT tenant.record_payment(gen_random_uuid(), true)",
        "SELECT tenant.add_credit('acme', 5)",
        "SELECT tenant.subscribe('acme')",
        "SELECT tenant.cancel_subscription('acme')",
    ] {
        expect_code(&mut app, sql, "42501", sql);
    }
    // a canceled subscription is not invoiced
    assert!(one_bool(
        &mut be,
        "SELECT tenant.cancel_subscription('globex')"
    ));
    assert!(!one_bool(
        &mut be,
        "SELECT tenant.cancel_subscription('globex')"
    ));
    assert_eq!(
        one_i64(&mut be, "SELECT tenant.generate_invoices((date_trunc('month', now()) - interval '1 month')::date)::bigint"),
        0,
        "canceled, and last month's invoices exist already"
    );
}

#[test]
fn billing_concurrent_maintenance_runs_all_succeed() {
    // pg_cron may start two maintenance jobs at the same minute: creating the same event
    // partitions from both must not deadlock
    let db = Db::new("billing_maint");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let name = db.name.clone();
            std::thread::spawn(move || {
                connect(&name, "mt_it_admin")
                    .query_one("SELECT tenant.run_maintenance()::text", &[])
                    .map(|_| ())
                    .map_err(|e| format!("{e:?}"))
            })
        })
        .collect();
    for t in threads {
        t.join()
            .unwrap()
            .expect("a concurrent run_maintenance failed");
    }
    assert_eq!(
        su_i64(
            &db,
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'tenant.usage_events'::regclass"
        ),
        3,
        "default, this month, next month"
    );
}

#[test]
fn billing_functions_give_an_attacker_nothing() {
    let db = Db::new("billing_hostile");
    plan(
        &db,
        r#"{"name": "p", "limits": {"calls_per_hour": 5}}"#,
        &["acme", "globex"],
    );
    // CONNECT and TEMP only: its own temp tables shadowing the extension's, an operator of
    // its own, parsing settings changed
    let mut evil = db.as_role("mt_it_evil");
    evil.batch_execute(
        "CREATE TEMP TABLE usage_events (id int); CREATE TEMP TABLE metric_daily (id int);
         CREATE TEMP TABLE usage_counters (id int);
         SET search_path = pg_temp, public; SET standard_conforming_strings = off;",
    )
    .unwrap();
    for sql in [
        "SELECT tenant.track('x')",
        "SELECT tenant.consume('calls', 1, '/k')",
    ] {
        assert_eq!(err_of(&mut evil, sql), "MT001", "{sql} without a context");
    }
    for sql in [
        "SELECT tenant.release('calls', 1)",
        "SELECT tenant.set_usage('calls', 0)",
        "SELECT tenant.generate_invoices()",
        "SELECT tenant.record_payment(gen_random_uuid(), true)",
        "SELECT tenant.add_credit('acme', 5)",
        "SELECT tenant.subscribe('acme')",
        "SELECT tenant.install_default_plans()",
        "SELECT tenant.load_plan('name: x')",
        "SELECT count(*) FROM tenant.usage_events_default",
    ] {
        expect_code(&mut evil, sql, "42501", sql);
    }
    assert!(!one_bool(
        &mut evil,
        "SELECT tenant.has_restriction('no_x')"
    ));
    // with acme's token carried: its writes land in acme's real tables, never in its temp
    // ones nor in globex's
    let tok = token_for(&db, "acme");
    set_token(&mut evil, &tok);
    evil.batch_execute("SELECT tenant.track('x', 2); SELECT tenant.consume('calls', 5, '/k')")
        .unwrap();
    assert_eq!(
        err_of(&mut evil, "SELECT tenant.consume('calls', 1, '/k')"),
        "MT010"
    );
    assert_eq!(
        one_i64(&mut evil, "SELECT count(*) FROM pg_temp.usage_events"),
        0
    );
    let acme = db.tenant_id("acme");
    assert_eq!(
        su_text(
            &db,
            "SELECT string_agg(tenant_id::text || ':' || metric, ',') FROM tenant.usage_events"
        ),
        format!("{acme}:x")
    );
    assert_eq!(
        su_i64(
            &db,
            &format!("SELECT count(*) FROM tenant.usage_counters WHERE tenant_id <> '{acme}'")
        ),
        0
    );
}
