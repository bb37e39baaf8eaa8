// `#[pg_test]`s: the SQL functions inside a real backend. Each test runs in its own
// transaction as the test superuser; RLS is exercised after `SET ROLE` to a plain role.
use pgrx::prelude::*;

fn run(sql: &str) {
    Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn one<T: pgrx::FromDatum + pgrx::IntoDatum>(sql: &str) -> Option<T> {
    Spi::get_one::<T>(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Two tenants, an isolated table with one row each, and a plain role `mt_t_app` that is a
/// member of tenant_service.
fn fixture() {
    run("CREATE ROLE mt_t_app NOSUPERUSER");
    run("GRANT tenant_service TO mt_t_app");
    run("CREATE TABLE public.notes (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, body text)");
    run("GRANT SELECT, INSERT, UPDATE, DELETE ON public.notes TO mt_t_app");
    run("GRANT USAGE ON SEQUENCE public.notes_id_seq TO mt_t_app");
    run("SELECT tenant.create('acme', 'Acme')");
    run("SELECT tenant.create('globex', 'Globex')");
    run("SELECT tenant.isolate('public.notes')");
    run("SELECT tenant.set_context('acme')");
    run("INSERT INTO public.notes (body) VALUES ('acme note')");
    run("SELECT tenant.set_context('globex')");
    run("INSERT INTO public.notes (body) VALUES ('globex note')");
    run("SELECT tenant.clear_context()");
}

#[pg_test]
fn secret_exists_once() {
    assert_eq!(one::<i64>("SELECT count(*) FROM tenant.secret"), Some(1));
    assert_eq!(one::<i32>("SELECT length(key) FROM tenant.secret"), Some(32));
}

#[pg_test(error = "permission denied for table secret")]
fn secret_not_readable_by_app_roles() {
    run("CREATE ROLE mt_t_reader");
    run("GRANT tenant_service, tenant_user TO mt_t_reader");
    run("SET ROLE mt_t_reader");
    run("SELECT key FROM tenant.secret");
}

#[pg_test]
fn context_round_trip() {
    let id = one::<pgrx::Uuid>("SELECT tenant.create('acme', 'Acme')").unwrap();
    assert_eq!(one::<pgrx::Uuid>("SELECT tenant.current_tenant()"), None);
    let set = one::<pgrx::Uuid>("SELECT tenant.set_context('acme', 'alice')").unwrap();
    assert_eq!(set, id);
    assert_eq!(one::<pgrx::Uuid>("SELECT tenant.current_tenant()"), Some(id));
    assert_eq!(one::<String>("SELECT tenant.current_user_id()"), Some("alice".into()));
    // by uuid as well
    let by_id = one::<pgrx::Uuid>(&format!("SELECT tenant.set_context('{id}')")).unwrap();
    assert_eq!(by_id, id);
    assert_eq!(one::<String>("SELECT tenant.current_user_id()"), None);
    run("SELECT tenant.clear_context()");
    assert_eq!(one::<pgrx::Uuid>("SELECT tenant.current_tenant()"), None);
}

#[pg_test]
fn isolation_as_plain_role() {
    fixture();
    run("SET ROLE mt_t_app");
    assert_eq!(one::<i64>("SELECT count(*) FROM public.notes"), Some(0), "no context, no rows");
    run("SELECT tenant.set_context('acme')");
    assert_eq!(one::<String>("SELECT string_agg(body, ',') FROM public.notes"), Some("acme note".into()));
    assert_eq!(one::<i64>("WITH d AS (UPDATE public.notes SET body = 'x' WHERE body = 'globex note' RETURNING 1) SELECT count(*) FROM d"), Some(0));
    assert_eq!(one::<i64>("WITH d AS (DELETE FROM public.notes WHERE body = 'globex note' RETURNING 1) SELECT count(*) FROM d"), Some(0));
    run("SELECT tenant.set_context('globex')");
    assert_eq!(one::<String>("SELECT string_agg(body, ',') FROM public.notes"), Some("globex note".into()));
}

#[pg_test(error = "new row violates row-level security policy \"tenant_isolation\" for table \"notes\"")]
fn cannot_insert_into_other_tenant() {
    fixture();
    let globex = one::<pgrx::Uuid>("SELECT id FROM tenant.tenants WHERE slug = 'globex'").unwrap();
    run("SET ROLE mt_t_app");
    run("SELECT tenant.set_context('acme')");
    run(&format!("INSERT INTO public.notes (tenant_id, body) VALUES ('{globex}', 'sneaky')"));
}

#[pg_test(error = "no tenant context")]
fn insert_without_context_fails() {
    fixture();
    run("SET ROLE mt_t_app");
    run("INSERT INTO public.notes (body) VALUES ('orphan')");
}

#[pg_test]
fn forged_context_is_no_context() {
    fixture();
    run("SET ROLE mt_t_app");
    run("SELECT tenant.set_context('acme')");
    let good = one::<String>("SELECT current_setting('multitenant.context')").unwrap();
    run("SELECT tenant.clear_context()");
    for forged in [
        "garbage".to_string(),
        "mt1.eyJ0IjoiMDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAwIn0.AAAA".to_string(),
        good.replacen('.', ".x", 1),
        format!("{good}A"),
    ] {
        run(&format!("SET multitenant.context = '{forged}'"));
        assert_eq!(one::<pgrx::Uuid>("SELECT tenant.current_tenant()"), None, "{forged}");
        assert_eq!(one::<i64>("SELECT count(*) FROM public.notes"), Some(0), "{forged}");
        assert_eq!(one::<bool>("SELECT (tenant.context_status()->>'valid')::boolean"), Some(false));
    }
    run(&format!("SET multitenant.context = '{good}'"));
    assert_eq!(one::<i64>("SELECT count(*) FROM public.notes"), Some(1), "the genuine token still works");
}

#[pg_test(error = "permission denied to set the tenant context")]
fn set_context_requires_tenant_service() {
    run("SELECT tenant.create('acme', 'Acme')");
    run("CREATE ROLE mt_t_plain");
    // EXECUTE is revoked from PUBLIC; grant it to show the role check inside holds too
    run("GRANT EXECUTE ON FUNCTION tenant.set_context(text, text, boolean) TO mt_t_plain");
    run("SET ROLE mt_t_plain");
    run("SELECT tenant.set_context('acme')");
}

#[pg_test(error = "tenant \"nope\" not found")]
fn unknown_tenant_is_refused() {
    run("SELECT tenant.set_context('nope')");
}

#[pg_test(error = "tenant is suspended")]
fn suspended_tenant_is_refused() {
    run("SELECT tenant.create('acme', 'Acme')");
    run("SELECT tenant.set_status('acme', 'suspended')");
    run("SELECT tenant.set_context('acme')");
}

#[pg_test]
fn suspended_read_mode_reads_but_cannot_write() {
    fixture();
    run("SELECT tenant.set_status('acme', 'suspended')");
    run("SET multitenant.suspended_access = 'read'");
    run("SET ROLE mt_t_app");
    run("SELECT tenant.set_context('acme')");
    assert_eq!(one::<i64>("SELECT count(*) FROM public.notes"), Some(1));
}

#[pg_test(error = "tenant is read-only (suspended)")]
fn suspended_read_mode_cannot_delete() {
    fixture();
    run("SELECT tenant.set_status('acme', 'suspended')");
    run("SET multitenant.suspended_access = 'read'");
    run("SET ROLE mt_t_app");
    run("SELECT tenant.set_context('acme')");
    run("DELETE FROM public.notes");
}

#[pg_test(error = "column \"body\" of \"public\".\"notes\" must be of type uuid")]
fn isolate_rejects_wrong_type() {
    run("CREATE TABLE public.notes (id bigserial PRIMARY KEY, tenant_id uuid, body text)");
    run("SELECT tenant.isolate('public.notes', 'body')");
}

#[pg_test(error = "column \"missing\" of \"public\".\"notes\" does not exist")]
fn isolate_rejects_missing_column() {
    run("CREATE TABLE public.notes (id bigserial PRIMARY KEY, tenant_id uuid, body text)");
    run("SELECT tenant.isolate('public.notes', 'missing')");
}

#[pg_test]
fn isolate_is_idempotent_and_reversible() {
    run("CREATE TABLE public.notes (id bigserial PRIMARY KEY, tenant_id uuid, body text)");
    run("SELECT tenant.isolate('public.notes')");
    run("SELECT tenant.isolate('public.notes')");
    assert_eq!(one::<i64>("SELECT count(*) FROM pg_policies WHERE tablename = 'notes'"), Some(4));
    assert_eq!(one::<i64>("SELECT count(*) FROM pg_indexes WHERE tablename = 'notes'"), Some(2));
    assert_eq!(one::<i64>("SELECT count(*) FROM tenant.isolated_tables"), Some(1));
    assert_eq!(one::<bool>("SELECT relforcerowsecurity FROM pg_class WHERE oid = 'public.notes'::regclass"), Some(true));
    assert_eq!(one::<bool>("SELECT tenant.unisolate('public.notes')"), Some(true));
    assert_eq!(one::<bool>("SELECT tenant.unisolate('public.notes')"), Some(false));
    assert_eq!(one::<i64>("SELECT count(*) FROM pg_policies WHERE tablename = 'notes'"), Some(0));
    assert_eq!(one::<i64>("SELECT count(*) FROM pg_indexes WHERE tablename = 'notes'"), Some(1));
    assert_eq!(one::<bool>("SELECT relrowsecurity FROM pg_class WHERE oid = 'public.notes'::regclass"), Some(false));
    assert_eq!(one::<String>("SELECT column_default FROM information_schema.columns WHERE table_name = 'notes' AND column_name = 'tenant_id'"), None);
}

#[pg_test]
fn transitions_follow_the_state_machine() {
    run("SELECT tenant.create('acme', 'Acme', status => 'trial')");
    assert_eq!(one::<String>("SELECT tenant.set_status('acme', 'active')"), Some("active".into()));
    assert_eq!(one::<String>("SELECT tenant.set_status('acme', 'suspended')"), Some("suspended".into()));
}

#[pg_test(error = "a tenant cannot go from suspended to purged")]
fn invalid_transition_is_refused() {
    run("SELECT tenant.create('acme', 'Acme')");
    run("SELECT tenant.set_status('acme', 'suspended')");
    run("SELECT tenant.set_status('acme', 'purged')");
}

#[pg_test]
fn explain_uses_index_and_evaluates_context_once() {
    run("CREATE ROLE mt_t_app NOSUPERUSER");
    run("GRANT tenant_service TO mt_t_app");
    run("CREATE TABLE public.events (id bigint PRIMARY KEY, tenant_id uuid NOT NULL, payload text)");
    run("SELECT tenant.isolate('public.events')");
    run("CREATE TEMP TABLE ids AS SELECT tenant.create('t' || g, 'T' || g) AS id, g FROM generate_series(1, 100) g");
    run("INSERT INTO public.events SELECT n, (SELECT id FROM ids WHERE g = 1 + n % 100), 'p' || n FROM generate_series(1, 100000) n");
    run("ANALYZE public.events");
    run("GRANT SELECT ON public.events TO mt_t_app");
    run("SET ROLE mt_t_app");
    run("SELECT tenant.set_context('t7')");
    for q in [
        "SELECT * FROM public.events WHERE id = 4242",
        "SELECT count(*) FROM public.events",
    ] {
        let plan: Vec<String> = Spi::connect(|c| {
            c.select(&format!("EXPLAIN (COSTS OFF) {q}"), None, &[])
                .unwrap()
                .map(|r| r.get::<String>(1).unwrap().unwrap())
                .collect()
        });
        let text = plan.join("\n");
        assert!(text.contains("Index") , "{q}: no index scan:\n{text}");
        assert!(text.contains("InitPlan"), "{q}: context not an InitPlan:\n{text}");
        for line in &plan {
            if line.contains("Filter") || line.contains("Cond") {
                assert!(!line.contains("current_tenant"), "{q}: per-row call in {line}\n{text}");
            }
        }
    }
    assert_eq!(one::<i64>("SELECT count(*) FROM public.events"), Some(1000));
}

#[pg_test]
fn authenticate_hs256_round_trip() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let id = one::<pgrx::Uuid>("SELECT tenant.create('acme', 'Acme')").unwrap();
    let secret = "pg-test-hmac-secret-0123456789abcdef!!";
    run(&format!("SELECT tenant.add_jwt_key('k1', 'HS256', '{secret}')"));
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 300;
    let mut h = Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = Some("k1".into());
    let claims = serde_json::json!({"tenant_id": "acme", "sub": "alice", "exp": exp});
    let token = encode(&h, &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap();
    let got = one::<pgrx::Uuid>(&format!("SELECT tenant.authenticate('{token}')")).unwrap();
    assert_eq!(got, id);
    assert_eq!(one::<pgrx::Uuid>("SELECT tenant.current_tenant()"), Some(id));
    assert_eq!(one::<String>("SELECT tenant.current_user_id()"), Some("alice".into()));
    assert_eq!(one::<String>("SELECT tenant.current_claims()->>'sub'"), Some("alice".into()));
}

#[pg_test(error = "invalid token")]
fn authenticate_rejects_garbage() {
    run("SELECT tenant.authenticate('not.a.jwt')");
}
