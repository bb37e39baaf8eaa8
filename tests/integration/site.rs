//! Where a request lands (issue 14): custom domains and resolution by host, branding,
//! custom fields, onboarding and the outbox, storage paths, schema-per-tenant placement.
//! Every capability as non-superuser roles, with globex trying to see or change acme's.

use crate::common::jwt::{add_keys, hs};
use crate::common::*;
use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;
use serde_json::{json, Value};

/// The database resolves `<slug>.app.test`; acme is on plan `pro` (custom domains and
/// branding, 2 custom fields, 1 MB of storage), globex on `free` (restriction
/// no_custom_branding).
fn site_db(tag: &str) -> Db {
    let db = Db::new(tag);
    su_exec(
        &db,
        &format!(
            "ALTER DATABASE {} SET multitenant.base_domain = 'App.Test.'",
            db.name
        ),
    );
    plan(
        &db,
        r#"{"name": "pro", "features": ["custom_domains", "custom_branding"],
            "limits": {"custom_fields": 2, "storage_mb": 1}}"#,
        &["acme"],
    );
    plan(
        &db,
        r#"{"name": "free", "features": ["custom_branding"], "restrictions": ["no_custom_branding"]}"#,
        &["globex"],
    );
    db
}

fn json_in(c: &mut Client, tenant: &str, sql: &str) -> Value {
    let t: String = one_in(c, tenant, &format!("SELECT x::text FROM ({sql}) s(x)"));
    serde_json::from_str(&t).unwrap()
}

fn json_of(c: &mut Client, sql: &str) -> Value {
    let t: Option<String> = q1(c, &format!("SELECT x::text FROM ({sql}) s(x)"));
    t.map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(Value::Null)
}

fn resolve(
    c: &mut Client,
    host: Option<&str>,
    header: Option<&str>,
) -> Result<Option<String>, String> {
    c.query_one("SELECT tenant.resolve($1, $2)::text", &[&host, &header])
        .map(|r| r.get(0))
        .map_err(|e| sqlstate(&e))
}

#[test]
fn site_custom_domains_resolve_only_when_verified_and_stay_with_their_tenant() {
    let db = site_db("site_domains");
    let acme = db.tenant_id("acme").to_string();
    let globex = db.tenant_id("globex").to_string();
    let mut be = db.as_role("mt_it_backend");
    let mut api = db.as_role("mt_it_backend");
    // end users do not map hosts to tenants; login pages read branding only
    expect_code(
        &mut db.as_role("mt_it_api"),
        "SELECT tenant.resolve('acme.app.test')",
        "42501",
        "tenant_user resolves",
    );

    let added = json_in(
        &mut be,
        "acme",
        "SELECT tenant.add_domain('Shop.Acme.COM.')",
    );
    assert_eq!(added["hostname"], "shop.acme.com");
    let recs = added["records"].as_array().unwrap();
    assert_eq!(recs[0]["type"], "TXT");
    assert_eq!(recs[0]["name"], "_multitenant-verify.shop.acme.com");
    let token = recs[0]["value"].as_str().unwrap().to_string();
    assert!(token.len() > 30, "a verification token: {token}");
    assert_eq!(
        recs[1],
        json!({"type": "CNAME", "name": "shop.acme.com", "value": "acme.app.test"})
    );
    // asking again gives the same record back
    let again = json_in(&mut be, "acme", "SELECT tenant.add_domain('shop.acme.com')");
    assert_eq!(again["records"][0]["value"], token.as_str());

    // globex has no custom_domains feature: MT011; with it, it may claim acme's hostname
    // too while nobody verified it (its own token): the DNS record decides
    assert_eq!(
        err_in(
            &mut be,
            "globex",
            "SELECT tenant.add_domain('www.globex.com')"
        ),
        "MT011"
    );
    su_exec(
        &db,
        "SELECT tenant.set_feature_override('globex', 'custom_domains', true)",
    );
    let squat = json_in(
        &mut be,
        "globex",
        "SELECT tenant.add_domain('SHOP.acme.com')",
    );
    let squat_token = squat["records"][0]["value"].as_str().unwrap().to_string();
    assert_ne!(squat_token, token);
    for bad in [
        "localhost",
        "a..b.com",
        "shop.acme.com:443",
        "https://x.com",
        "10.0.0.1",
        "www.app.test",
        "app.test",
        "x_y.com",
    ] {
        assert_eq!(
            err_in(
                &mut be,
                "globex",
                &format!("SELECT tenant.add_domain('{bad}')")
            ),
            "MT030",
            "hostname {bad}"
        );
    }
    exec_in(
        &mut be,
        "globex",
        "SELECT tenant.add_domain('www.globex.com')",
    );

    // not verified yet: the custom domain resolves to nothing; subdomains and headers do
    assert_eq!(
        resolve(&mut api, Some("shop.acme.com"), None).unwrap(),
        None
    );
    assert_eq!(
        resolve(&mut api, Some("ACME.app.test:8443"), None).unwrap(),
        Some(acme.clone())
    );
    assert_eq!(
        resolve(&mut api, Some("globex.app.test."), None).unwrap(),
        Some(globex.clone())
    );
    assert_eq!(
        resolve(&mut api, Some("nope.app.test"), None).unwrap(),
        None
    );
    assert_eq!(
        resolve(&mut api, Some("x.acme.app.test"), None).unwrap(),
        None
    );
    assert_eq!(resolve(&mut api, Some("unknown.com"), None).unwrap(), None);
    assert_eq!(
        resolve(&mut api, None, Some("globex")).unwrap(),
        Some(globex.clone())
    );
    assert_eq!(
        resolve(&mut api, None, Some(&acme)).unwrap(),
        Some(acme.clone())
    );
    assert_eq!(resolve(&mut api, None, Some("nope")).unwrap(), None);
    assert_eq!(
        resolve(&mut api, Some("acme.app.test"), Some(&acme)).unwrap(),
        Some(acme.clone())
    );
    assert_eq!(
        resolve(&mut api, Some("acme.app.test"), Some("globex")),
        Err("MT006".into())
    );
    assert_eq!(
        resolve(&mut api, Some("acme.app.test"), Some("nope")),
        Err("MT006".into())
    );

    // the worker: what to do, then verified and certified
    let pending = texts(&mut be, "SELECT hostname || ' ' || txt_value || ' ' || coalesce(cname_target, '') FROM tenant.pending_domains() ORDER BY 1");
    let mut want = [
        format!("shop.acme.com {token} acme.app.test"),
        format!("shop.acme.com {squat_token} globex.app.test"),
    ];
    want.sort();
    assert_eq!(pending[..2], want[..]);
    assert_eq!(
        pending[2..],
        vec![format!(
            "www.globex.com {} globex.app.test",
            su_text(
                &db,
                "SELECT verification_token FROM tenant.domains WHERE hostname = 'www.globex.com'"
            )
        )][..]
    );
    // the DNS record holds acme's token: acme owns it, globex's claim is gone; globex can
    // neither verify its token nor claim it again, and is not told whose it is
    expect_code(
        &mut be,
        "SELECT tenant.mark_domain_verified('shop.acme.com', 'mt-verify-guess')",
        "MT030",
        "a wrong token",
    );
    expect_ok(
        &mut be,
        &format!("SELECT tenant.mark_domain_verified('shop.acme.com', '{token}')"),
        "verify",
    );
    assert_eq!(
        su_i64(
            &db,
            "SELECT count(*) FROM tenant.domains WHERE hostname = 'shop.acme.com'"
        ),
        1
    );
    expect_code(
        &mut be,
        &format!("SELECT tenant.mark_domain_verified('shop.acme.com', '{squat_token}')"),
        "MT030",
        "the other claim",
    );
    begin_in(&mut be, "globex");
    let (code, msg) = error_of(&mut be, "SELECT tenant.add_domain('SHOP.acme.com')");
    assert_eq!(code, "MT030");
    assert!(
        !msg.contains(&acme) && !msg.contains("Acme"),
        "names the owner: {msg}"
    );
    assert_eq!(
        resolve(&mut api, Some("Shop.Acme.com:443"), None).unwrap(),
        Some(acme.clone())
    );
    assert_eq!(
        resolve(&mut api, Some("shop.acme.com"), Some("globex")),
        Err("MT006".into())
    );
    expect_code(
        &mut be,
        "SELECT tenant.set_tls_status('shop.acme.com', 'bogus')",
        "MT030",
        "tls status",
    );
    expect_code(
        &mut be,
        "SELECT tenant.mark_domain_verified('nope.example.com', 'x')",
        "MT030",
        "unknown domain",
    );
    expect_ok(
        &mut be,
        "SELECT tenant.set_tls_status('shop.acme.com', 'active', now() + interval '90 days')",
        "tls",
    );
    assert_eq!(
        texts(&mut be, "SELECT hostname FROM tenant.pending_domains()"),
        vec!["www.globex.com"]
    );
    assert_eq!(
        texts(
            &mut be,
            "SELECT hostname FROM tenant.pending_domains(interval '100 days')"
        )
        .len(),
        2,
        "a certificate expiring within the renewal window is pending again"
    );

    // the worker's functions are not for application roles
    let mut app = db.as_role("mt_it_app");
    for sql in [
        "SELECT * FROM tenant.pending_domains()",
        "SELECT tenant.mark_domain_verified('www.globex.com', 'x')",
        "SELECT tenant.set_tls_status('www.globex.com', 'active')",
        "SELECT * FROM tenant.take_events()",
        "SELECT tenant.set_context_for_host('acme.app.test')",
    ] {
        expect_one_of(&mut app, sql, &["42501", "MT020"], sql);
    }

    // set_context by host: the tenant's rows only
    let rows = |c: &mut Client, sql: &str| -> Result<Vec<String>, String> {
        let mut tx = c.transaction().unwrap();
        tx.execute(sql, &[]).map_err(|e| sqlstate(&e))?;
        let r = tx
            .query("SELECT body FROM public.notes ORDER BY body", &[])
            .unwrap();
        Ok(first_column(&r))
    };
    assert_eq!(
        rows(
            &mut be,
            "SELECT tenant.set_context_for_host('shop.acme.com')"
        )
        .unwrap(),
        vec!["a1", "a2"]
    );
    assert_eq!(
        rows(
            &mut be,
            "SELECT tenant.set_context_for_host('globex.app.test', 'u1')"
        )
        .unwrap(),
        vec!["g1"]
    );
    assert_eq!(
        rows(
            &mut be,
            "SELECT tenant.set_context_for_host('www.globex.com')"
        ),
        Err("MT002".into()),
        "unverified"
    );
    assert_eq!(
        rows(
            &mut be,
            "SELECT tenant.set_context_for_host('nope.app.test')"
        ),
        Err("MT002".into())
    );
    assert_eq!(
        rows(
            &mut be,
            "SELECT tenant.set_context_for_host('acme.app.test', NULL, 'globex')"
        ),
        Err("MT006".into())
    );

    // each tenant sees and removes only its own domains
    let app_in = |t: &str| -> Vec<String> {
        app_texts(&db, t, "SELECT hostname FROM tenant.domains ORDER BY 1")
    };
    assert_eq!(app_in("acme"), vec!["shop.acme.com"]);
    assert_eq!(app_in("globex"), vec!["www.globex.com"]);
    assert_eq!(
        count_as(&db, "mt_it_app", "SELECT count(*) FROM tenant.domains"),
        0,
        "no context: no domains"
    );
    assert_eq!(
        err_in(
            &mut be,
            "globex",
            "SELECT tenant.remove_domain('shop.acme.com')"
        ),
        "MT030"
    );
    assert_eq!(
        su_i64(
            &db,
            "SELECT count(*) FROM tenant.domains WHERE hostname = 'shop.acme.com'"
        ),
        1
    );
    // a viewer of acme may not manage domains
    exec_as(
        &db,
        "mt_it_backend",
        "SELECT tenant.add_member('acme', 'vic', ARRAY['viewer'])",
    );
    assert_eq!(
        err_in(
            &mut be,
            ("acme", "vic"),
            "SELECT tenant.remove_domain('shop.acme.com')"
        ),
        "MT020"
    );
    exec_in(
        &mut be,
        "acme",
        "SELECT tenant.remove_domain('shop.acme.com')",
    );
    assert_eq!(
        resolve(&mut api, Some("shop.acme.com"), None).unwrap(),
        None
    );
}

#[test]
fn site_a_token_for_another_tenant_than_the_request_is_refused() {
    let db = site_db("site_mismatch");
    add_keys(&db, &[]);
    let acme = db.tenant_id("acme").to_string();
    let mut api = db.as_role("mt_it_api");
    let tok = hs(
        "hs1",
        &json!({"tenant_id": acme, "sub": "u1", "exp": unix_now() + 600}),
    );
    let auth = |c: &mut Client, expected: Option<&str>| -> Result<String, String> {
        let mut tx = c.transaction().unwrap();
        let r = tx
            .query_one(
                "SELECT tenant.authenticate($1, $2)::text",
                &[&tok, &expected],
            )
            .map_err(|e| sqlstate(&e))?;
        let n: i64 = tx
            .query_one("SELECT count(*) FROM public.notes", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 2);
        Ok(r.get(0))
    };
    assert_eq!(auth(&mut api, None).unwrap(), acme);
    assert_eq!(auth(&mut api, Some("acme")).unwrap(), acme);
    assert_eq!(auth(&mut api, Some(&acme)).unwrap(), acme);
    assert_eq!(auth(&mut api, Some("globex")), Err("MT006".into()));
    assert_eq!(auth(&mut api, Some("nope")), Err("MT006".into()));
    assert!(one_bool(&mut api, "SELECT tenant.current_tenant() IS NULL"));

    // set_context can require membership, like authenticate
    let mut be = db.as_role("mt_it_backend");
    assert!(
        batch_in(&mut be, ("acme", "stranger"), "SELECT 1").is_ok(),
        "off by default"
    );
    su_exec(
        &db,
        &format!(
            "ALTER DATABASE {} SET multitenant.context_membership = 'required'",
            db.name
        ),
    );
    let mut be = db.as_role("mt_it_backend");
    assert_eq!(
        batch_in(&mut be, ("acme", "stranger"), "SELECT 1"),
        Err("MT005".into())
    );
    exec_as(
        &db,
        "mt_it_backend",
        "SELECT tenant.add_member('acme', 'stranger')",
    );
    assert!(batch_in(&mut be, ("acme", "stranger"), "SELECT 1").is_ok());
    assert_eq!(
        batch_in(&mut be, ("globex", "stranger"), "SELECT 1"),
        Err("MT005".into())
    );
    assert!(
        batch_in(&mut be, "globex", "SELECT 1").is_ok(),
        "no user: the backend itself"
    );
}

#[test]
fn site_branding_is_checked_gated_notified_and_shown_by_host() {
    let db = site_db("site_branding");
    let mut be = db.as_role("mt_it_backend");
    let mut listener = db.as_role("mt_it_backend");
    listener.batch_execute("LISTEN multitenant_events").unwrap();

    let set = json_in(
        &mut be,
        "acme",
        r##"SELECT tenant.set_branding('{"primary_color": "#0a84ff", "logo_url": "https://cdn.acme.com/logo.png",
                                        "color_scheme": "dark", "white_label": true, "custom_css": ".btn{color:#fff}",
                                        "email_from_address": "hello@acme.com"}')"##,
    );
    assert_eq!(set["primary_color"], "#0a84ff");
    // a later change keeps the other keys; null removes one
    let set = json_in(
        &mut be,
        "acme",
        r#"SELECT tenant.set_branding('{"white_label": null, "font_family": "Inter, sans-serif"}')"#,
    );
    assert_eq!(set["logo_url"], "https://cdn.acme.com/logo.png");
    assert!(set.get("white_label").is_none());
    assert_eq!(set["font_family"], "Inter, sans-serif");

    listener.batch_execute("SELECT 1").unwrap();
    let notes: Vec<Value> = listener
        .notifications()
        .iter()
        .map(|n| Ok(serde_json::from_str(n.payload()).unwrap()))
        .collect()
        .unwrap();
    assert_eq!(
        notes
            .iter()
            .filter(|n| n["event"] == "branding.changed")
            .count(),
        2,
        "{notes:?}"
    );
    // a notification names the outbox row, never the tenant (anyone may LISTEN)
    assert!(
        notes
            .iter()
            .all(|n| n.get("tenant_id").is_none() && n["id"].is_i64()),
        "{notes:?}"
    );

    // every bad key named, nothing written
    begin_in(&mut be, "acme");
    let (code, msg) = error_of(
        &mut be,
        r##"SELECT tenant.set_branding('{"primary_color": "blue", "logo_url": "http://x.com/a.png", "colour": "#000000",
                                       "custom_css": "</style><script>alert(1)</script>", "color_scheme": "neon"}')"##,
    );
    assert_eq!(code, "MT030");
    for part in [
        "primary_color",
        "logo_url",
        "colour",
        "custom_css",
        "color_scheme",
    ] {
        assert!(msg.contains(part), "{part} missing from: {msg}");
    }
    let big = format!(
        r#"SELECT tenant.set_branding('{{"custom_css": "{}"}}')"#,
        "a".repeat(40_000)
    );
    assert_eq!(err_in(&mut be, "acme", &big), "MT030");
    assert_eq!(
        json_in(&mut be, "acme", "SELECT branding FROM tenant.branding")["primary_color"],
        "#0a84ff"
    );

    // globex: the plan's restriction refuses it, an override lifts it
    assert_eq!(
        err_in(
            &mut be,
            "globex",
            r##"SELECT tenant.set_branding('{"primary_color": "#000000"}')"##
        ),
        "MT011"
    );
    su_exec(
        &db,
        "SELECT tenant.set_feature_override('globex', 'custom_branding', true)",
    );
    exec_in(
        &mut be,
        "globex",
        r##"SELECT tenant.set_branding('{"primary_color": "#00ff00"}')"##,
    );
    // a viewer may not change it
    exec_as(
        &db,
        "mt_it_backend",
        "SELECT tenant.add_member('acme', 'vic', ARRAY['viewer'])",
    );
    assert_eq!(
        err_in(
            &mut be,
            ("acme", "vic"),
            r##"SELECT tenant.set_branding('{"primary_color": "#000000"}')"##
        ),
        "MT020"
    );

    // the login page: by host, before any context
    let mut api = db.as_role("mt_it_api");
    let page = json_of(&mut api, "SELECT tenant.get_branding('acme.app.test')");
    assert_eq!(page["slug"], "acme");
    assert_eq!(page["name"], "Acme");
    assert_eq!(page["branding"]["primary_color"], "#0a84ff");
    let page = json_of(
        &mut api,
        "SELECT tenant.get_branding('GLOBEX.app.test:443')",
    );
    assert_eq!(page["branding"], json!({"primary_color": "#00ff00"}));
    assert!(one_bool(
        &mut api,
        "SELECT tenant.get_branding('nope.app.test') IS NULL"
    ));
    assert!(one_bool(
        &mut api,
        "SELECT tenant.get_branding('evil.com') IS NULL"
    ));
    // each tenant reads only its own record
    assert_eq!(
        app_texts(
            &db,
            "globex",
            "SELECT branding->>'primary_color' FROM tenant.branding"
        ),
        vec!["#00ff00"]
    );
    assert_eq!(
        count_as(&db, "mt_it_app", "SELECT count(*) FROM tenant.branding"),
        0
    );
    // a deleted tenant has no login page
    su_exec(&db, "SELECT tenant.set_status('globex', 'deleted')");
    assert!(one_bool(
        &mut api,
        "SELECT tenant.get_branding('globex.app.test') IS NULL"
    ));
}

#[test]
fn site_custom_fields_are_per_tenant_validated_and_enforced() {
    let db = site_db("site_fields");
    let mut be = db.as_role("mt_it_backend");
    exec_in(
        &mut be,
        "acme",
        "SELECT tenant.define_custom_field('deal', 'size', 'number', true);
         SELECT tenant.define_custom_field('deal', 'tier', 'select', options => ARRAY['gold', 'silver'], label => 'Tier')",
    );
    exec_in(
        &mut be,
        "globex",
        "SELECT tenant.define_custom_field('deal', 'color', 'text')",
    );
    // the plan allows 2 fields to acme (redefining one is not a new one)
    exec_in(
        &mut be,
        "acme",
        "SELECT tenant.define_custom_field('deal', 'size', 'number', false)",
    );
    assert_eq!(
        err_in(
            &mut be,
            "acme",
            "SELECT tenant.define_custom_field('deal', 'due', 'date')"
        ),
        "MT010"
    );
    for bad in [
        "SELECT tenant.define_custom_field('deal', 'x', 'blob')",
        "SELECT tenant.define_custom_field('deal', 'Bad Name', 'text')",
        "SELECT tenant.define_custom_field('Deal!', 'x', 'text')",
        "SELECT tenant.define_custom_field('deal', 'x', 'select')",
        "SELECT tenant.define_custom_field('deal', 'x', 'text', options => ARRAY['a'])",
    ] {
        assert_eq!(err_in(&mut be, "globex", bad), "MT030", "{bad}");
    }
    exec_in(
        &mut be,
        "acme",
        "SELECT tenant.define_custom_field('deal', 'size', 'number', true)",
    );

    // validation against the context's own definitions
    assert!(one_in::<bool>(
        &mut be,
        "acme",
        r#"SELECT tenant.validate_custom_fields('deal', '{"size": 3, "tier": "gold"}')"#
    ));
    begin_in(&mut be, "acme");
    let (code, msg) = error_of(
        &mut be,
        r#"SELECT tenant.validate_custom_fields('deal', '{"tier": "bronze", "color": "red"}')"#,
    );
    assert_eq!(code, "MT030");
    for part in [
        "tier: must be one of gold, silver",
        "color: unknown field",
        "size: required",
    ] {
        assert!(msg.contains(part), "{part} missing from: {msg}");
    }
    assert_eq!(
        err_in(
            &mut be,
            "globex",
            r#"SELECT tenant.validate_custom_fields('deal', '{"size": 3}')"#
        ),
        "MT030",
        "acme's field is unknown to globex"
    );
    assert!(one_in::<bool>(
        &mut be,
        "globex",
        r#"SELECT tenant.validate_custom_fields('deal', '{"color": "red"}')"#
    ));
    assert_eq!(
        err_of(
            &mut be,
            r#"SELECT tenant.validate_custom_fields('deal', '{}')"#
        ),
        "MT001"
    );

    // enforced on a table: a tenant_admin member that owns it registers the column
    let owner = TempRole::new(
        &db,
        "fields_owner",
        "GRANT tenant_admin TO {r}; GRANT CREATE ON SCHEMA public TO {r}",
    );
    let mut o = owner.connect();
    o.batch_execute(
        "CREATE TABLE public.deals (id serial PRIMARY KEY, tenant_id uuid NOT NULL, title text, fields jsonb NOT NULL DEFAULT '{}');
         SELECT tenant.isolate('public.deals');
         SELECT tenant.enforce_custom_fields('public.deals', 'fields', 'deal');
         GRANT SELECT, INSERT, UPDATE ON public.deals TO mt_it_backend;
         GRANT USAGE ON SEQUENCE public.deals_id_seq TO mt_it_backend;",
    )
    .unwrap();
    exec_in(
        &mut be,
        "acme",
        r#"INSERT INTO public.deals (title, fields) VALUES ('big', '{"size": 10, "tier": "gold"}')"#,
    );
    assert_eq!(
        err_in(
            &mut be,
            "acme",
            r#"INSERT INTO public.deals (title, fields) VALUES ('bad', '{"size": "ten"}')"#
        ),
        "MT030"
    );
    assert_eq!(
        err_in(
            &mut be,
            "acme",
            "INSERT INTO public.deals (title) VALUES ('missing size')"
        ),
        "MT030"
    );
    assert_eq!(
        err_in(
            &mut be,
            "acme",
            r#"UPDATE public.deals SET fields = '{"size": 1, "tier": "tin"}'"#
        ),
        "MT030"
    );
    exec_in(&mut be, "acme", "UPDATE public.deals SET title = 'renamed'");
    exec_in(
        &mut be,
        "globex",
        r#"INSERT INTO public.deals (title, fields) VALUES ('g', '{"color": "red"}')"#,
    );
    assert_eq!(
        err_in(
            &mut be,
            "globex",
            r#"INSERT INTO public.deals (title, fields) VALUES ('g', '{"size": 1}')"#
        ),
        "MT030"
    );
    assert_eq!(
        su_i64(&db, "SELECT count(*) FROM public.deals"),
        2,
        "nothing partial written"
    );
    // the trigger cannot be attached by hand to another table
    assert_eq!(
        err_of(
            &mut o,
            "SELECT tenant.enforce_custom_fields('public.deals', 'title', 'deal')"
        ),
        "MT030",
        "not jsonb"
    );

    // definitions are per tenant: globex sees and drops only its own
    assert_eq!(
        app_texts(
            &db,
            "globex",
            "SELECT name FROM tenant.custom_fields ORDER BY 1"
        ),
        vec!["color"]
    );
    assert!(!one_in::<bool>(
        &mut be,
        "globex",
        "SELECT tenant.drop_custom_field('deal', 'size')"
    ));
    assert_eq!(
        su_i64(
            &db,
            "SELECT count(*) FROM tenant.custom_fields WHERE name = 'size'"
        ),
        1
    );
    exec_as(
        &db,
        "mt_it_backend",
        "SELECT tenant.add_member('acme', 'mem', ARRAY['member'])",
    );
    assert_eq!(
        err_in(
            &mut be,
            ("acme", "mem"),
            "SELECT tenant.define_custom_field('deal', 'x', 'text')"
        ),
        "MT020"
    );
    assert!(one_in::<bool>(
        &mut be,
        "acme",
        "SELECT tenant.drop_custom_field('deal', 'tier')"
    ));
    o.batch_execute("SELECT tenant.unenforce_custom_fields('public.deals')")
        .unwrap();
    exec_in(
        &mut be,
        "acme",
        r#"INSERT INTO public.deals (title, fields) VALUES ('free form', '{"anything": 1}')"#,
    );
}

#[test]
fn site_onboarding_and_the_outbox() {
    let db = site_db("site_onboarding");
    let mut admin = db.as_role("mt_it_admin");
    admin
        .batch_execute(
            "SELECT tenant.define_onboarding_step('profile', 'Complete Profile', 'Add company information and branding', true, 1);
             SELECT tenant.define_onboarding_step('payment', 'Set up Billing', 'Add payment method for paid plans', false, 2);
             SELECT tenant.define_onboarding_step('integration', 'API Integration', 'Set up API keys and webhooks', false, 3);",
        )
        .unwrap();
    let mut app = db.as_role("mt_it_app");
    expect_one_of(
        &mut app,
        "SELECT tenant.define_onboarding_step('x', 'X')",
        &["42501", "MT020"],
        "app defines steps",
    );
    expect_code(
        &mut admin,
        "SELECT tenant.define_onboarding_step('Bad Step', 'X')",
        "MT030",
        "bad step name",
    );

    let mut be = db.as_role("mt_it_backend");
    exec_in(
        &mut be,
        "acme",
        r#"SELECT tenant.complete_step('profile', '{"company": "Acme"}')"#,
    );
    let list = |c: &mut Client, t: &str| {
        texts_in(
            c,
            t,
            "SELECT step || ':' || completed || ':' || required FROM tenant.onboarding()",
        )
    };
    assert_eq!(
        list(&mut be, "acme"),
        vec![
            "profile:true:true",
            "payment:false:false",
            "integration:false:false"
        ]
    );
    assert_eq!(
        list(&mut be, "globex"),
        vec![
            "profile:false:true",
            "payment:false:false",
            "integration:false:false"
        ]
    );
    assert_eq!(
        err_in(&mut be, "acme", "SELECT tenant.complete_step('nope')"),
        "MT030"
    );
    assert_eq!(
        err_of(&mut be, "SELECT tenant.complete_step('payment')"),
        "MT001"
    );
    exec_as(
        &db,
        "mt_it_backend",
        "SELECT tenant.add_member('globex', 'vic', ARRAY['viewer'])",
    );
    assert_eq!(
        err_in(
            &mut be,
            ("globex", "vic"),
            "SELECT tenant.complete_step('payment')"
        ),
        "MT020"
    );
    assert_eq!(
        count_as(
            &db,
            "mt_it_app",
            "SELECT count(*) FROM tenant.onboarding_progress"
        ),
        0
    );
    assert_eq!(
        app_texts(&db, "globex", "SELECT step FROM tenant.onboarding_progress"),
        Vec::<String>::new()
    );

    // the welcome e-mail: tenant.created with the owner, taken by a worker in its transaction
    let mut worker = db.as_role("mt_it_backend");
    worker
        .batch_execute("SELECT count(*) FROM tenant.take_events()")
        .unwrap();
    exec_as(
        &db,
        "mt_it_backend",
        "SELECT tenant.create('initech', 'Initech', owner_user_id => 'peter@initech.com')",
    );
    let take = |c: &mut postgres::Transaction<'_>| -> Vec<(String, Value)> {
        c.query(
            "SELECT event, payload::text FROM tenant.take_events(10)",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), serde_json::from_str(r.get::<_, &str>(1)).unwrap()))
        .collect()
    };
    let mut tx = worker.transaction().unwrap();
    let got = take(&mut tx);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "tenant.created");
    assert_eq!(got[0].1["owner_user_id"], "peter@initech.com");
    assert_eq!(got[0].1["slug"], "initech");
    // a second worker meanwhile takes nothing (skip locked); a failed delivery rolls back
    let mut other = db.as_role("mt_it_backend");
    assert_eq!(
        one_i64(&mut other, "SELECT count(*) FROM tenant.take_events()"),
        0
    );
    tx.rollback().unwrap();
    let mut tx = worker.transaction().unwrap();
    assert_eq!(take(&mut tx).len(), 1, "back after the rollback");
    tx.commit().unwrap();
    assert_eq!(
        one_i64(&mut other, "SELECT count(*) FROM tenant.take_events()"),
        0,
        "delivered once"
    );
    expect_code(
        &mut worker,
        "SELECT * FROM tenant.take_events(0)",
        "MT030",
        "max 0",
    );
    expect_code(
        &mut app,
        "SELECT count(*) FROM tenant.outbox",
        "42501",
        "app reads the outbox",
    );
}

#[test]
fn site_storage_paths_and_objects_stay_under_the_tenants_prefix() {
    let db = site_db("site_storage");
    let acme = db.tenant_id("acme").to_string();
    let mut be = db.as_role("mt_it_backend");
    let p: String = one_in(
        &mut be,
        "acme",
        "SELECT tenant.storage_path('/invoices//2024 Q1/r\u{e9}sum\u{e9}.pdf')",
    );
    assert_eq!(p, format!("tenants/{acme}/invoices/2024_Q1/r_sum_.pdf"));
    for bad in ["../globex/x", "a/./b", "", "///"] {
        assert_eq!(
            err_in(
                &mut be,
                "acme",
                &format!("SELECT tenant.storage_path('{bad}')")
            ),
            "MT030",
            "{bad:?}"
        );
    }
    assert_eq!(err_of(&mut be, "SELECT tenant.storage_path('x')"), "MT001");

    // 1 MB for acme: what fits is recorded, what does not is refused whole
    let reg = |c: &mut Client, t: &str, name: &str, bytes: i64| -> Result<i64, String> {
        in_tenant_tx(c, t, |tx| {
            tx.query_one(
                "SELECT tenant.register_object(tenant.storage_path($1), $2)",
                &[&name, &bytes],
            )
        })
        .map(|r| r.get(0))
        .map_err(|e| sqlstate(&e))
    };
    assert_eq!(reg(&mut be, "acme", "a.bin", 600_000), Ok(600_000));
    assert_eq!(reg(&mut be, "acme", "b.bin", 600_000), Err("MT010".into()));
    assert_eq!(
        reg(&mut be, "acme", "a.bin", 100_000),
        Ok(100_000),
        "a smaller size replaces"
    );
    assert_eq!(reg(&mut be, "acme", "b.bin", 600_000), Ok(700_000));
    assert_eq!(reg(&mut be, "acme", "neg", -1), Err("MT030".into()));
    assert_eq!(
        su_i64(&db, "SELECT count(*) FROM tenant.storage_objects"),
        2
    );

    // globex can neither register nor remove under acme's prefix
    let acme_path = format!("tenants/{acme}/a.bin");
    assert_eq!(
        err_in(
            &mut be,
            "globex",
            &format!("SELECT tenant.register_object('{acme_path}', 1)")
        ),
        "MT020"
    );
    assert_eq!(
        err_in(
            &mut be,
            "globex",
            &format!("SELECT tenant.unregister_object('{acme_path}')")
        ),
        "MT020"
    );
    assert_eq!(
        err_in(
            &mut be,
            "globex",
            "SELECT tenant.register_object('elsewhere/a.bin', 1)"
        ),
        "MT030"
    );
    assert_eq!(
        err_in(
            &mut be,
            "globex",
            &format!("SELECT tenant.register_object('tenants/{acme}/../x', 1)")
        ),
        "MT030"
    );
    assert_eq!(
        app_texts(&db, "globex", "SELECT path FROM tenant.storage_objects"),
        Vec::<String>::new()
    );
    assert_eq!(
        count_as(
            &db,
            "mt_it_app",
            "SELECT count(*) FROM tenant.storage_objects"
        ),
        0
    );
    let total: i64 = one_in(
        &mut be,
        "acme",
        &format!("SELECT tenant.unregister_object('{acme_path}')"),
    );
    assert_eq!(total, 600_000);

    // 8 concurrent registrations of 200,000 bytes on 600,000 used of 1,048,576: 2 fit
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let name = db.name.clone();
            std::thread::spawn(move || {
                let mut c = connect(&name, "mt_it_backend");
                in_tenant_tx(&mut c, "acme", |tx| {
                    tx.query_one(
                        "SELECT tenant.register_object(tenant.storage_path($1), 200000)",
                        &[&format!("c{i}.bin")],
                    )
                })
                .is_ok()
            })
        })
        .collect();
    let ok = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|b| *b)
        .count();
    assert_eq!(ok, 2);
    let acme_id = db.tenant_id("acme");
    assert_eq!(
        su_i64(&db, &format!("SELECT sum(bytes)::bigint FROM tenant.storage_objects WHERE tenant_id = '{acme_id}'")),
        1_000_000
    );
    assert_eq!(
        su_i64(&db, &format!("SELECT used FROM tenant.usage_counters WHERE tenant_id = '{acme_id}' AND resource = 'storage_bytes'")),
        1_000_000
    );
    // a viewer cannot register
    exec_as(
        &db,
        "mt_it_backend",
        "SELECT tenant.add_member('acme', 'vic', ARRAY['viewer'])",
    );
    assert_eq!(
        err_in(
            &mut be,
            ("acme", "vic"),
            "SELECT tenant.register_object(tenant.storage_path('v'), 1)"
        ),
        "MT020"
    );
}

#[test]
fn site_a_tenant_in_its_own_schema_is_closed_to_every_other_context() {
    let db = site_db("site_schema");
    let acme = db.tenant_id("acme");
    let placer = TempRole::new(
        &db,
        "placer",
        &format!(
            "GRANT tenant_admin TO {{r}}; GRANT CREATE ON DATABASE {} TO {{r}}",
            db.name
        ),
    );
    let mut p = placer.connect();
    p.batch_execute(
        "CREATE SCHEMA app_template;
         CREATE TABLE app_template.docs (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, body text NOT NULL CHECK (body <> ''));
         GRANT USAGE ON SCHEMA app_template TO mt_it_backend;
         GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, TRIGGER ON app_template.docs TO mt_it_backend;",
    )
    .unwrap();
    let mut app = db.as_role("mt_it_app");
    expect_one_of(
        &mut app,
        "SELECT tenant.provision_schema('acme', 'app_template')",
        &["42501", "MT020"],
        "app provisions",
    );
    expect_code(
        &mut p,
        "SELECT tenant.provision_schema('acme', 'nope')",
        "MT030",
        "unknown template",
    );
    expect_code(
        &mut p,
        "SELECT tenant.provision_schema('acme', 'tenant')",
        "MT030",
        "the extension's schema",
    );
    expect_code(
        &mut p,
        "SELECT tenant.provision_schema('acme', 'public')",
        "MT030",
        "public",
    );
    p.batch_execute("CREATE SCHEMA open_tpl; CREATE TABLE open_tpl.t (x int); GRANT CREATE ON SCHEMA open_tpl TO mt_it_app").unwrap();
    expect_code(
        &mut p,
        "SELECT tenant.provision_schema('acme', 'open_tpl')",
        "MT030",
        "a template others may create in",
    );
    let acme_schema: String = q1(
        &mut p,
        "SELECT tenant.provision_schema('acme', 'app_template')",
    );
    assert_eq!(acme_schema, format!("tenant_{}", acme.simple()));
    let globex_schema: String = q1(
        &mut p,
        "SELECT tenant.provision_schema('globex', 'app_template')",
    );
    expect_code(
        &mut p,
        "SELECT tenant.provision_schema('acme', 'app_template')",
        "MT030",
        "twice",
    );
    assert_eq!(
        su_text(
            &db,
            "SELECT placement FROM tenant.tenants WHERE slug = 'acme'"
        ),
        "schema"
    );

    // set_context puts the tenant's schema first: unqualified names land there
    let mut be = db.as_role("mt_it_backend");
    exec_in(
        &mut be,
        "acme",
        "INSERT INTO docs (body) VALUES ('acme plan')",
    );
    exec_in(
        &mut be,
        "globex",
        "INSERT INTO docs (body) VALUES ('globex plan')",
    );
    assert_eq!(
        texts_in(&mut be, "acme", "SELECT body FROM docs"),
        vec!["acme plan"]
    );
    assert_eq!(
        texts_in(&mut be, "globex", "SELECT body FROM docs"),
        vec!["globex plan"]
    );
    assert_eq!(
        texts_in(
            &mut be,
            "globex",
            "SELECT split_part(current_setting('search_path'), ',', 1)"
        ),
        vec![format!("\"{globex_schema}\"")],
        "one tenant schema on the path, the last one entered"
    );
    // the other schema, named outright: nothing, and nothing written
    let other = format!("{acme_schema}.docs");
    assert_eq!(
        texts_in(&mut be, "globex", &format!("SELECT body FROM {other}")),
        Vec::<String>::new()
    );
    assert_eq!(
        err_in(
            &mut be,
            "globex",
            &format!("INSERT INTO {other} (body) VALUES ('x')")
        ),
        "42501"
    );
    exec_in(
        &mut be,
        "globex",
        &format!("UPDATE {other} SET body = 'hijacked'; DELETE FROM {other}"),
    );
    assert_eq!(
        su_text(&db, &format!("SELECT string_agg(body, ',') FROM {other}")),
        "acme plan"
    );
    // without a context: no rows, no writes
    let mut be2 = db.as_role("mt_it_backend");
    assert_eq!(
        one_i64(&mut be2, &format!("SELECT count(*) FROM {other}")),
        0
    );
    assert_eq!(
        err_of(
            &mut be2,
            &format!("INSERT INTO {other} (body) VALUES ('x')")
        ),
        "MT001"
    );
    // TRUNCATE and TRIGGER of the template are not copied (TRUNCATE ignores row security)
    assert_eq!(err_of(&mut be2, &format!("TRUNCATE {other}")), "42501");
    assert_eq!(
        su_text(&db, &format!("SELECT string_agg(body, ',') FROM {other}")),
        "acme plan"
    );
    // a shared-rows tenant's context drops the tenant schema from the path
    exec_as(
        &db,
        "mt_it_backend",
        "SELECT tenant.create('initech', 'Initech')",
    );
    let path: String = in_tenant_tx(&mut be, "globex", |tx| {
        tx.execute("SELECT tenant.set_context('initech')", &[])?;
        tx.query_one("SELECT current_setting('search_path')", &[])
    })
    .unwrap()
    .get(0);
    assert!(!path.contains("tenant_"), "{path}");

    // migrations: every tenant schema once, recorded; new tables get the guard
    let mig = "ALTER TABLE docs ADD COLUMN note text; CREATE TABLE tags (name text); UPDATE docs SET note = 'migrated'";
    assert_eq!(
        one_i64(
            &mut p,
            &format!("SELECT tenant.migrate_schemas('001_notes', '{}')", sq(mig))
        ),
        2
    );
    assert_eq!(
        one_i64(
            &mut p,
            &format!("SELECT tenant.migrate_schemas('001_notes', '{}')", sq(mig))
        ),
        0
    );
    expect_code(
        &mut p,
        "SELECT tenant.migrate_schemas('001_notes', 'SELECT 1')",
        "MT030",
        "same version, other SQL",
    );
    expect_code(
        &mut p,
        "SELECT tenant.migrate_schemas('bad version!', 'SELECT 1')",
        "MT030",
        "bad version",
    );
    expect_one_of(
        &mut app,
        "SELECT tenant.migrate_schemas('002', 'SELECT 1')",
        &["42501", "MT020"],
        "app migrates",
    );
    assert_eq!(
        su_text(&db, &format!("SELECT string_agg(note, ',') FROM {other}")),
        "migrated",
        "data migrations see the tenant's rows"
    );
    assert_eq!(
        su_i64(&db, "SELECT count(*) FROM pg_policy WHERE polname = 'mt_schema_tenant' AND polrelid::regclass::text LIKE '%.tags'"),
        2
    );
    assert_eq!(
        su_i64(
            &db,
            "SELECT count(*) FROM tenant.schema_migrations WHERE version = '001_notes'"
        ),
        2
    );
    // a migration that takes the guard off gets it back
    assert_eq!(
        one_i64(&mut p, "SELECT tenant.migrate_schemas('002_sneaky', 'ALTER TABLE docs NO FORCE ROW LEVEL SECURITY; ALTER TABLE docs DISABLE ROW LEVEL SECURITY; DROP POLICY mt_schema_tenant ON docs')"),
        2
    );
    assert_eq!(
        su_i64(&db, "SELECT count(*) FROM pg_class WHERE relname = 'docs' AND relnamespace::regnamespace::text LIKE 'tenant\\_%' AND relrowsecurity AND relforcerowsecurity AND EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = pg_class.oid AND polname = 'mt_schema_tenant')"),
        2
    );
    assert_eq!(
        texts_in(&mut be, "globex", &format!("SELECT body FROM {other}")),
        Vec::<String>::new()
    );
    // a failing migration rolls back in every schema
    expect_one_of(
        &mut p,
        "SELECT tenant.migrate_schemas('002_bad', 'ALTER TABLE docs ADD COLUMN x int; SELECT 1/0')",
        &["22012"],
        "failing migration",
    );
    assert_eq!(su_i64(&db, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'x' AND table_name = 'docs'"), 0);

    // purging the tenant drops its schema
    su_exec(
        &db,
        "SELECT tenant.set_status('acme', 'deleted'); SELECT tenant.purge('acme', true)",
    );
    assert_eq!(
        su_i64(
            &db,
            &format!("SELECT count(*) FROM pg_namespace WHERE nspname = '{acme_schema}'")
        ),
        0
    );
    assert_eq!(
        su_i64(
            &db,
            &format!("SELECT count(*) FROM pg_namespace WHERE nspname = '{globex_schema}'")
        ),
        1
    );
}

#[test]
fn site_functions_give_an_attacker_nothing_even_with_a_carried_token() {
    let db = site_db("site_hostile");
    let acme = db.tenant_id("acme").to_string();
    exec_in(
        &mut db.as_role("mt_it_backend"),
        "acme",
        "SELECT tenant.define_custom_field('deal', 'size', 'number')",
    );
    let before = su_text(
        &db,
        "SELECT (SELECT count(*) FROM tenant.domains) || '/' || (SELECT count(*) FROM tenant.branding) || '/' || \
                (SELECT count(*) FROM tenant.custom_fields) || '/' || (SELECT count(*) FROM tenant.onboarding_progress) || '/' || \
                (SELECT count(*) FROM tenant.storage_objects) || '/' || (SELECT count(*) FROM tenant.outbox)",
    );
    let calls = [
        "SELECT tenant.add_domain('evil.example.com')".to_string(),
        "SELECT tenant.remove_domain('shop.acme.com')".to_string(),
        r##"SELECT tenant.set_branding('{"primary_color": "#000000"}')"##.to_string(),
        "SELECT tenant.define_custom_field('deal', 'x', 'text')".to_string(),
        "SELECT tenant.drop_custom_field('deal', 'size')".to_string(),
        "SELECT tenant.complete_step('profile')".to_string(),
        format!("SELECT tenant.register_object('tenants/{acme}/x', 1)"),
        format!("SELECT tenant.unregister_object('tenants/{acme}/x')"),
    ];
    // without a context, and with acme's context carried in the session (no user: the
    // attacker is not the backend, and holds no permission in acme)
    let mut bare = db.as_role("mt_it_evil");
    let mut carried = as_tenant(&db, "mt_it_evil", "acme");
    for sql in &calls {
        expect_one_of(&mut bare, sql, &["MT001", "MT020", "42501"], sql);
        expect_one_of(&mut carried, sql, &["MT020", "42501"], sql);
    }
    for sql in [
        "SELECT tenant.resolve('acme.app.test')",
        "SELECT tenant.get_branding('acme.app.test')",
        "SELECT tenant.set_context_for_host('acme.app.test')",
        "SELECT * FROM tenant.take_events()",
        "SELECT * FROM tenant.pending_domains()",
        "SELECT tenant.mark_domain_verified('shop.acme.com', 'x')",
        "SELECT tenant.provision_schema('acme', 'x')",
        "SELECT tenant.migrate_schemas('1', 'SELECT 1')",
        "SELECT tenant.define_onboarding_step('x', 'X')",
        "SELECT tenant.enforce_custom_fields('tenant.members', 'roles', 'x')",
        "SELECT * FROM tenant.outbox",
    ] {
        expect_code(&mut bare, sql, "42501", sql);
    }
    // its own temp objects and parsing settings change nothing
    bare.batch_execute(
        "CREATE TEMP TABLE domains (hostname text); SET search_path = pg_temp, public;
         SET standard_conforming_strings = off;",
    )
    .unwrap();
    assert_eq!(
        err_of(&mut bare, "SELECT tenant.storage_path('x')"),
        "MT001"
    );
    assert_eq!(
        err_of(
            &mut bare,
            "SELECT tenant.validate_custom_fields('deal', '{}')"
        ),
        "MT001"
    );
    assert_eq!(
        one_i64(&mut bare, "SELECT count(*) FROM tenant.custom_fields"),
        0
    );
    let after = su_text(
        &db,
        "SELECT (SELECT count(*) FROM tenant.domains) || '/' || (SELECT count(*) FROM tenant.branding) || '/' || \
                (SELECT count(*) FROM tenant.custom_fields) || '/' || (SELECT count(*) FROM tenant.onboarding_progress) || '/' || \
                (SELECT count(*) FROM tenant.storage_objects) || '/' || (SELECT count(*) FROM tenant.outbox)",
    );
    assert_eq!(before, after, "nothing written");
}
