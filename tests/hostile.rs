//! Hostile client suite: a real cluster reached through the `postgres` crate by the roles of
//! tests/common (mt_it_evil is the attacker: only PUBLIC's CONNECT and TEMP), each test in a
//! fresh database. Every attack vector is numbered `// Vn:` so that the docs can cite it, and
//! each asserts its exact outcome (rows, values, SQLSTATE). Vector classes:
//!
//! - execute surface: exactly the documented functions are executable by PUBLIC; internal
//!   helpers, counters and management functions are not (V1-V6);
//! - registration: isolate/unisolate/protect need ownership, limit_rows/audit need
//!   tenant_admin and ownership, extension and catalog tables are refused (V7-V12);
//! - temporary tables and foreign chains: refused everywhere, nothing lands in any tenant's
//!   counters or audit chain (V13-V18);
//! - borrowed trigger functions: the extension's trigger functions attached by an attacker
//!   to an unregistered table refuse to run (V19-V23);
//! - privilege escalation: hostile column and resource names under both
//!   `standard_conforming_strings` values, user-defined casts to json/jsonb/text reached from
//!   the row triggers, shadowing functions, operators and tables in `public` and `pg_temp`
//!   (V24-V35);
//! - partitions and inheritance (V36-V43);
//! - audit log reads: an entry is only as readable as its table (V44-V47);
//! - stale tokens of suspended and deleted tenants, read-only contexts (V48-V54);
//! - parallel plans (V55-V56); DROP EXTENSION CASCADE fails closed (V57);
//! - quota arithmetic: overflow, zero and negative amounts (V58-V61);
//! - context forgery: garbage, tampering, splicing, foreign, guessed keys, expiry (V62-V72);
//! - session tricks: placeholders before the library loads, RESET/DISCARD, SET ROLE,
//!   savepoints, superuser-only settings (V73-V82);
//! - hostile identifiers, NUL bytes and overlong arguments (V83-V87);
//! - JWT attacks (V88-V95); invitations (V96-V100); concurrency (V101);
//! - cross-tenant reads through the extension's own functions and tables (V102-V106);
//! - RLS side channels and write tricks: permissive policies, definer views, leaky functions,
//!   error probes, statistics, COPY, ON CONFLICT, writable CTEs, TRUNCATE, direct writes to
//!   the extension's tables and DDL by the attacker (V107-V117).
//!
//! Built only with `--features integration` like tests/integration.rs; needs MT_PGPORT.

mod common;
use common::*;
use postgres::Client;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde_json::json;
use std::collections::BTreeSet;
use std::io::{Read, Write};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn short(sql: &str) -> String {
    let s: String = sql.chars().take(200).collect();
    if sql.chars().count() > 200 {
        format!("{s}…")
    } else {
        s
    }
}

/// Run statements with the simple protocol; on error roll back and return the SQLSTATE.
fn run(c: &mut Client, sql: &str) -> Result<(), String> {
    match c.batch_execute(sql) {
        Ok(()) => Ok(()),
        Err(e) => {
            let code = sqlstate(&e);
            eprintln!("[hostile] {code} from `{}`: {e:?}", short(sql));
            let _ = c.batch_execute("ROLLBACK");
            Err(code)
        }
    }
}

#[track_caller]
fn expect_code(c: &mut Client, sql: &str, code: &str, what: &str) {
    match run(c, sql) {
        Ok(()) => panic!(
            "{what}: expected SQLSTATE {code}, but it succeeded: {}",
            short(sql)
        ),
        Err(got) => assert_eq!(got, code, "{what}: wrong SQLSTATE for {}", short(sql)),
    }
}

#[track_caller]
fn expect_one_of(c: &mut Client, sql: &str, codes: &[&str], what: &str) -> String {
    match run(c, sql) {
        Ok(()) => panic!(
            "{what}: expected one of {codes:?}, but it succeeded: {}",
            short(sql)
        ),
        Err(got) => {
            assert!(
                codes.contains(&got.as_str()),
                "{what}: got SQLSTATE {got}, expected one of {codes:?}: {}",
                short(sql)
            );
            got
        }
    }
}

#[track_caller]
fn expect_ok(c: &mut Client, sql: &str, what: &str) {
    if let Err(code) = run(c, sql) {
        panic!(
            "{what}: expected success, got SQLSTATE {code}: {}",
            short(sql)
        );
    }
}

/// Success or one of `codes`; returns the code on failure.
#[track_caller]
fn ok_or_one_of(c: &mut Client, sql: &str, codes: &[&str], what: &str) -> Option<String> {
    match run(c, sql) {
        Ok(()) => None,
        Err(got) => {
            assert!(
                codes.contains(&got.as_str()),
                "{what}: got SQLSTATE {got}, expected success or one of {codes:?}: {}",
                short(sql)
            );
            Some(got)
        }
    }
}

/// The SQLSTATE of a failed parameterized call (printing the error for diagnosis).
fn code_of<T>(r: Result<T, postgres::Error>, what: &str) -> Result<T, String> {
    r.map_err(|e| {
        eprintln!("[hostile] {what}: {e:?}");
        sqlstate(&e)
    })
}

#[track_caller]
fn q1<T: for<'a> postgres::types::FromSql<'a>>(c: &mut Client, sql: &str) -> T {
    match c.query_one(sql, &[]) {
        Ok(row) => row.get(0),
        Err(e) => panic!("`{}` failed: {e:?}", short(sql)),
    }
}

#[track_caller]
fn one_i64(c: &mut Client, sql: &str) -> i64 {
    q1(c, sql)
}

#[track_caller]
fn one_bool(c: &mut Client, sql: &str) -> bool {
    q1(c, sql)
}

#[track_caller]
fn texts(c: &mut Client, sql: &str) -> Vec<String> {
    match c.query(sql, &[]) {
        Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
        Err(e) => panic!("`{}` failed: {e:?}", short(sql)),
    }
}

/// As the superuser (who bypasses RLS): the ground truth.
#[track_caller]
fn su_i64(db: &Db, sql: &str) -> i64 {
    let mut su = db.as_role("postgres");
    one_i64(&mut su, sql)
}

#[track_caller]
fn su_text(db: &Db, sql: &str) -> String {
    let mut su = db.as_role("postgres");
    q1(&mut su, sql)
}

#[track_caller]
fn su_exec(db: &Db, sql: &str) {
    let mut su = db.as_role("postgres");
    expect_ok(&mut su, sql, "setup as postgres");
}

fn sq(s: &str) -> String {
    s.replace('\'', "''")
}

/// A double-quoted identifier (safe under both standard_conforming_strings values).
fn qi(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Carry a minted token the way a pooler does: a plain session-level SET.
fn set_token(c: &mut Client, token: &str) {
    c.batch_execute(&format!("SET multitenant.context = '{}'", sq(token)))
        .unwrap_or_else(|e| panic!("SET multitenant.context: {e:?}"));
}

/// Set any value (garbage included) through set_config and a parameter.
fn set_ctx(c: &mut Client, value: &str) {
    c.execute(
        "SELECT set_config('multitenant.context', $1, false)",
        &[&value],
    )
    .unwrap_or_else(|e| panic!("set_config(multitenant.context): {e:?}"));
}

fn with_token(db: &Db, role: &str, token: &str) -> Client {
    let mut c = db.as_role(role);
    set_token(&mut c, token);
    c
}

/// A connection as `role` carrying a token of `slug` minted by the backend.
fn as_tenant(db: &Db, role: &str, slug: &str) -> Client {
    let tok = token_for(db, slug);
    with_token(db, role, &tok)
}

#[track_caller]
fn current_tenant(c: &mut Client) -> Option<String> {
    q1(c, "SELECT tenant.current_tenant()::text")
}

/// No context: NULL tenant, no rows, a write raises MT001 (the role needs the app grants).
#[track_caller]
fn assert_no_context(c: &mut Client, what: &str) {
    assert_eq!(current_tenant(c), None, "{what}: current_tenant()");
    assert_eq!(count(c), 0, "{what}: rows of public.notes");
    expect_code(
        c,
        "INSERT INTO public.notes (body) VALUES ('forged')",
        "MT001",
        what,
    );
}

#[track_caller]
fn assert_not_superuser(db: &Db, c: &mut Client, role: &str, what: &str) {
    let me = one_bool(
        c,
        "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
    );
    assert!(!me, "{what}: the session's role became superuser");
    let mut su = db.as_role("postgres");
    let s: bool = su
        .query_one("SELECT rolsuper FROM pg_roles WHERE rolname = $1", &[&role])
        .unwrap()
        .get(0);
    assert!(!s, "{what}: role {role} became superuser");
}

/// Every usage counter, as one comparable string.
fn counters(db: &Db) -> String {
    su_text(
        db,
        "SELECT coalesce(string_agg(tenant_id::text || '/' || resource || '/' || used::text, ','
                 ORDER BY tenant_id, resource, window_start), '') FROM tenant.usage_counters",
    )
}

fn audit_rows(db: &Db) -> i64 {
    su_i64(db, "SELECT count(*) FROM tenant.audit_log")
}

#[track_caller]
fn audit_valid(c: &mut Client, slug: &str) -> bool {
    let v: Option<String> = c
        .query_one("SELECT tenant.verify_audit($1)->>'valid'", &[&slug])
        .unwrap_or_else(|e| panic!("verify_audit({slug}): {e:?}"))
        .get(0);
    v.as_deref() == Some("true")
}

/// Load a plan (JSON passed as a parameter) and move `tenants` to it, as the superuser.
fn plan(db: &Db, doc: &str, tenants: &[&str]) {
    let mut su = db.as_role("postgres");
    let name: String = su
        .query_one("SELECT tenant.load_plan($1::text::jsonb)", &[&doc])
        .unwrap_or_else(|e| panic!("load_plan {doc}: {e:?}"))
        .get(0);
    for t in tenants {
        su.execute("SELECT tenant.set_plan($1, $2)", &[t, &name])
            .unwrap_or_else(|e| panic!("set_plan {t} {name}: {e:?}"));
    }
}

fn consume(c: &mut Client, resource: &str, amount: i64) -> Result<Option<i64>, String> {
    code_of(
        c.query_one("SELECT tenant.consume($1, $2)", &[&resource, &amount]),
        "consume",
    )
    .map(|r| r.get(0))
}

fn db_oid(c: &mut Client) -> u32 {
    one_i64(
        c,
        "SELECT oid::int8 FROM pg_database WHERE datname = current_database()",
    ) as u32
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A context token minted by the test itself (same format as src/token.rs) with any key.
fn mint_with(secret: &[u8], payload: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut out = String::from("mt1.");
    out.push_str(&B64.encode(payload));
    let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret).unwrap();
    m.update(out.as_bytes());
    let tag = m.finalize().into_bytes();
    out.push('.');
    out.push_str(&B64.encode(tag));
    out
}

fn mint_claims(secret: &[u8], tenant: &str, db: u32) -> String {
    let now = unix_now();
    let claims = json!({"t": tenant, "iat": now, "exp": now + 600, "db": db});
    mint_with(secret, &serde_json::to_vec(&claims).unwrap())
}

/// Replace the character at `idx` by another base64url character.
fn flip_char(s: &str, idx: usize) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    chars[idx] = if chars[idx] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

fn copy_out(c: &mut Client, sql: &str) -> String {
    let mut r = c.copy_out(sql).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    let mut s = String::new();
    r.read_to_string(&mut s).unwrap();
    s
}

fn copy_in(c: &mut Client, sql: &str, data: &str) -> Result<u64, String> {
    let mut w = match c.copy_in(sql) {
        Ok(w) => w,
        Err(e) => return Err(sqlstate(&e)),
    };
    if let Err(e) = w.write_all(data.as_bytes()) {
        return Err(format!("io: {e}"));
    }
    w.finish().map_err(|e| sqlstate(&e))
}

/// A role created for one test only (roles are cluster-wide), dropped with what it owns in
/// the test's database when the test ends (declare it after the Db so that it drops first).
struct TempRole {
    db: String,
    name: String,
}

impl TempRole {
    /// `setup` runs as postgres in the test database; `{r}` stands for the role's name.
    fn new(db: &Db, suffix: &str, setup: &str) -> TempRole {
        let name = format!("{}_{suffix}", db.name);
        let mut su = db.as_role("postgres");
        su.batch_execute(&format!(
            "CREATE ROLE {name} LOGIN; {}",
            setup.replace("{r}", &name)
        ))
        .unwrap_or_else(|e| panic!("create role {name}: {e:?}"));
        TempRole {
            db: db.name.clone(),
            name,
        }
    }

    fn connect(&self) -> Client {
        connect(&self.db, &self.name)
    }
}

impl Drop for TempRole {
    fn drop(&mut self) {
        if let Ok(mut su) = Client::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname={}",
                port().unwrap_or(5432),
                self.db
            ),
            postgres::NoTls,
        ) {
            let _ = su.batch_execute(&format!(
                "DROP OWNED BY {n} CASCADE; DROP ROLE IF EXISTS {n}",
                n = self.name
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Execute surface and registration
// ---------------------------------------------------------------------------------------

/// The functions of schema tenant that PUBLIC may execute, as regprocedure text.
const PUBLIC_FUNCTIONS: [&str; 24] = [
    "tenant.current_tenant()",
    "tenant.require_tenant()",
    "tenant.current_user_id()",
    "tenant.context_status()",
    "tenant.clear_context()",
    "tenant.current_claims()",
    "tenant.current_roles()",
    "tenant.has_feature(text)",
    "tenant.require_feature(text)",
    "tenant.consume(text,bigint)",
    "tenant.check(text,bigint)",
    "tenant.usage_report(timestamp with time zone,timestamp with time zone)",
    "tenant.can(text,text,jsonb)",
    "tenant.authorize(text,text,jsonb)",
    "tenant.create_role(text,text[])",
    "tenant.drop_role(text)",
    "tenant.grant_permission(text,text,text,jsonb)",
    "tenant.revoke_permission(text,text,text)",
    "tenant.invite(text,text,integer)",
    "tenant.verify_audit(text)",
    "tenant.isolate(regclass,text)",
    "tenant.unisolate(regclass)",
    "tenant.protect(regclass,text,text)",
    "tenant._allow()",
];

#[test]
fn public_execute_surface_is_exactly_the_documented_list() {
    let db = Db::new("hx_surface");
    // V1: exactly the documented functions are executable by PUBLIC (NULL proacl counts as
    // PUBLIC-executable: that is the default for a new function)
    let mut su = db.as_role("postgres");
    su.batch_execute("SELECT pg_catalog.set_config('search_path', '', false)")
        .unwrap();
    let actual: BTreeSet<String> = texts(
        &mut su,
        "SELECT p.oid::pg_catalog.regprocedure::pg_catalog.text
           FROM pg_catalog.pg_proc p
          WHERE p.pronamespace = 'tenant'::pg_catalog.regnamespace
            AND (p.proacl IS NULL
                 OR EXISTS (SELECT 1 FROM pg_catalog.aclexplode(p.proacl) a
                             WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'))",
    )
    .into_iter()
    .map(|s| s.replace('"', "")) // tenant."check"(...) prints quoted
    .collect();
    let expected: BTreeSet<String> = PUBLIC_FUNCTIONS.iter().map(|s| s.to_string()).collect();
    let extra: Vec<&String> = actual.difference(&expected).collect();
    let missing: Vec<&String> = expected.difference(&actual).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "V1: PUBLIC-executable functions differ from the documented list\n  executable by PUBLIC but not documented: {extra:#?}\n  documented but not executable by PUBLIC: {missing:#?}"
    );

    let mut evil = db.as_role("mt_it_evil");
    // V2: the audit hash helper is not callable by the attacker
    expect_one_of(
        &mut evil,
        "SELECT tenant._audit_content(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
        &["42501", "42883"],
        "V2: tenant._audit_content",
    );
    // V3: nor the cache invalidation hook
    expect_one_of(
        &mut evil,
        "SELECT tenant._invalidate(0)",
        &["42501", "42883"],
        "V3: tenant._invalidate",
    );
    // V4: nor the row counter behind limit_rows (burning or freeing another tenant's slots)
    expect_one_of(
        &mut evil,
        "SELECT tenant._count_row(NULL, 'x', 1)",
        &["42501", "42883"],
        "V4: tenant._count_row",
    );
    // V5: nor the internal registration helpers behind the SQL wrappers
    for sql in [
        "SELECT tenant._isolate('public.notes'::regclass::oid, 'tenant_id')",
        "SELECT tenant._unisolate('public.notes'::regclass::oid)",
        "SELECT tenant._limit_rows('public.notes'::regclass::oid, 'seats', 'tenant_id')",
        "SELECT tenant._unlimit_rows('public.notes'::regclass::oid)",
        "SELECT tenant._audit('public.notes'::regclass::oid, '{}'::text[], false)",
        "SELECT tenant._unaudit('public.notes'::regclass::oid)",
        "SELECT tenant._protect('public.notes'::regclass::oid, 'docs', NULL)",
    ] {
        expect_one_of(&mut evil, sql, &["42501", "42883"], "V5: internal helper");
    }
    // V6: nor any management function
    for sql in [
        "SELECT tenant.set_context('acme')",
        "SELECT tenant.create('evilcorp', 'Evil')",
        "SELECT tenant.set_status('globex', 'suspended')",
        "SELECT tenant.add_member('acme', 'mallory')",
        "SELECT tenant.remove_member('acme', 'alice')",
        "SELECT tenant.set_plan('acme', 'free')",
        "SELECT tenant.load_plan('{\"name\": \"evil\", \"limits\": {\"seats\": -1}}')",
        "SELECT tenant.set_limit_override('acme', 'seats', -1)",
        "SELECT tenant.set_feature_override('acme', 'sso', true)",
        "SELECT tenant.add_jwt_key('evil', 'HS256', repeat('x', 40))",
        "SELECT tenant.deactivate_jwt_key('k1')",
        "SELECT tenant.rotate_jwt_key('k1', 'k2', 'HS256', repeat('y', 40))",
        "SELECT tenant.purge_audit(0, 0)",
        "SELECT tenant.run_maintenance()",
        "SELECT * FROM tenant.invoice('acme')",
        "SELECT tenant.accept_invitation('x', 'mallory')",
        "SELECT tenant.authenticate('x.y.z')",
        "SELECT tenant.limit_rows('public.notes', 'seats')",
        "SELECT tenant.audit('public.notes')",
    ] {
        expect_code(&mut evil, sql, "42501", "V6: management function");
    }
    assert_eq!(db.all_bodies(), vec!["a1", "a2", "g1"]);
}

#[test]
fn registration_needs_ownership_and_tenant_admin() {
    let db = Db::new("hx_register");
    let relations = "('public.notes'::regclass, 'tenant.audit_log'::regclass, 'tenant.secret'::regclass, \
                     'tenant.tenants'::regclass, 'tenant.members'::regclass, 'pg_catalog.pg_class'::regclass, \
                     'pg_catalog.pg_authid'::regclass)";
    let snapshot = |db: &Db| -> String {
        su_text(
            db,
            &format!(
                "SELECT (SELECT count(*) FROM pg_trigger WHERE tgrelid IN {relations})::text || '/' ||
                        (SELECT count(*) FROM pg_policy WHERE polrelid IN {relations})::text || '/' ||
                        (SELECT count(*) FROM tenant.isolated_tables)::text || '/' ||
                        (SELECT count(*) FROM tenant.audited_tables)::text || '/' ||
                        (SELECT count(*) FROM tenant.row_limits)::text"
            ),
        )
    };
    let before = snapshot(&db);
    let mut evil = db.as_role("mt_it_evil");
    // V7: the attacker cannot attach or detach row limits and audit (EXECUTE is tenant_admin's)
    for sql in [
        "SELECT tenant.limit_rows('public.notes', 'seats')",
        "SELECT tenant.unlimit_rows('public.notes')",
        "SELECT tenant.audit('public.notes')",
        "SELECT tenant.unaudit('public.notes')",
    ] {
        expect_code(&mut evil, sql, "42501", "V7: mt_it_evil");
    }
    // V8: isolate/unisolate/protect are executable by PUBLIC but need the table's owner
    for sql in [
        "SELECT tenant.isolate('public.notes')",
        "SELECT tenant.unisolate('public.notes')",
        "SELECT tenant.protect('public.notes', 'notes')",
    ] {
        expect_code(&mut evil, sql, "MT020", "V8: mt_it_evil, not the owner");
    }
    // V9: a tenant_admin that does not own the table is refused by the ownership check
    let mut admin = db.as_role("mt_it_admin");
    for sql in [
        "SELECT tenant.limit_rows('public.notes', 'seats')",
        "SELECT tenant.unlimit_rows('public.notes')",
        "SELECT tenant.audit('public.notes')",
        "SELECT tenant.unaudit('public.notes')",
        "SELECT tenant.unisolate('public.notes')",
    ] {
        expect_code(&mut admin, sql, "MT020", "V9: tenant_admin, not the owner");
    }
    // V10: the owner that is not tenant_admin may isolate but not limit or audit
    let mut owner = db.as_role("mt_it_owner");
    for sql in [
        "SELECT tenant.limit_rows('public.notes', 'seats')",
        "SELECT tenant.audit('public.notes')",
    ] {
        expect_code(&mut owner, sql, "42501", "V10: owner without tenant_admin");
    }
    expect_ok(
        &mut owner,
        "SELECT tenant.isolate('public.notes')",
        "V10: the owner re-isolates its table (idempotent)",
    );
    // V11: the extension's own tables and the catalogs are refused to everyone, the
    // superuser included
    let mut su = db.as_role("postgres");
    for (who, c) in [
        ("mt_it_evil", &mut evil),
        ("mt_it_owner", &mut owner),
        ("mt_it_admin", &mut admin),
        ("postgres", &mut su),
    ] {
        for (tbl, col) in [
            ("tenant.audit_log", "tenant_id"),
            ("tenant.secret", "id"),
            ("tenant.tenants", "id"),
            ("tenant.members", "tenant_id"),
            ("pg_catalog.pg_class", "oid"),
            ("pg_catalog.pg_authid", "oid"),
        ] {
            for sql in [
                format!("SELECT tenant.isolate('{tbl}', '{col}')"),
                format!("SELECT tenant.unisolate('{tbl}')"),
                format!("SELECT tenant.protect('{tbl}', 'x')"),
                format!("SELECT tenant.limit_rows('{tbl}', 'seats', '{col}')"),
                format!("SELECT tenant.audit('{tbl}')"),
            ] {
                expect_one_of(
                    c,
                    &sql,
                    &["MT020", "MT030", "42501"],
                    &format!("V11: {who} on {tbl}"),
                );
            }
        }
    }
    // V12: none of the refused calls left a trigger, policy or registry row behind, and
    // notes is still isolated
    assert_eq!(
        snapshot(&db),
        before,
        "V12: triggers/policies/registries changed"
    );
    assert!(
        one_bool(
            &mut su,
            "SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE oid = 'public.notes'::regclass"
        ),
        "V12: notes lost its RLS flags"
    );
    assert_eq!(
        count(&mut db.as_role("mt_it_app")),
        0,
        "V12: still fail closed"
    );
}

#[test]
fn temporary_tables_are_refused_and_leave_no_trace() {
    let db = Db::new("hx_temp");
    plan(
        &db,
        r#"{"name": "hx-temp", "limits": {"seats": 10}}"#,
        &["acme", "globex"],
    );
    su_exec(&db, "SELECT tenant.limit_rows('public.notes', 'seats')");
    su_exec(&db, "SELECT tenant.audit('public.notes')");
    // some usage and audit entries exist for acme before the attack
    let mut be = db.as_role("mt_it_backend");
    expect_ok(
        &mut be,
        "BEGIN; SELECT tenant.set_context('acme'); INSERT INTO public.notes (body) VALUES ('a3'); COMMIT;",
        "setup",
    );
    let counters_before = counters(&db);
    let audit_before = audit_rows(&db);
    assert!(counters_before.contains("/seats/3"), "{counters_before}");
    let acme = db.tenant_id("acme").to_string();
    let globex = db.tenant_id("globex").to_string();

    let mut evil = as_tenant(&db, "mt_it_evil", "acme");
    expect_ok(
        &mut evil,
        "CREATE TEMP TABLE t (tenant_id uuid, body text)",
        "temp table",
    );
    // V13: limit_rows on the attacker's temp table: not tenant_admin
    expect_code(
        &mut evil,
        "SELECT tenant.limit_rows('pg_temp.t', 'seats')",
        "42501",
        "V13",
    );
    // V14: audit and the detach functions: not tenant_admin either
    for sql in [
        "SELECT tenant.audit('pg_temp.t')",
        "SELECT tenant.unaudit('pg_temp.t')",
        "SELECT tenant.unlimit_rows('pg_temp.t')",
    ] {
        expect_code(&mut evil, sql, "42501", "V14");
    }
    // V15: isolate of a temporary table (the owner is the attacker): MT030
    expect_code(&mut evil, "SELECT tenant.isolate('t')", "MT030", "V15");
    // V16: protect and unisolate of a temporary table: MT030
    expect_code(
        &mut evil,
        "SELECT tenant.protect('pg_temp.t', 'docs')",
        "MT030",
        "V16: protect",
    );
    expect_code(
        &mut evil,
        "SELECT tenant.unisolate('pg_temp.t')",
        "MT030",
        "V16: unisolate",
    );
    // V17: a tenant_admin on its own temporary table: MT030
    let mut admin = as_tenant(&db, "mt_it_admin", "acme");
    expect_ok(
        &mut admin,
        "CREATE TEMP TABLE t (tenant_id uuid NOT NULL, body text)",
        "temp table",
    );
    expect_code(
        &mut admin,
        "SELECT tenant.limit_rows('pg_temp.t', 'seats')",
        "MT030",
        "V17: limit_rows",
    );
    expect_code(
        &mut admin,
        "SELECT tenant.audit('pg_temp.t')",
        "MT030",
        "V17: audit",
    );
    expect_code(
        &mut admin,
        "SELECT tenant.isolate('pg_temp.t')",
        "MT030",
        "V17: isolate",
    );
    // V18: rows the attackers write into their temporary tables, for any tenant, land in no
    // counter and no audit chain; every chain still verifies
    for c in [&mut evil, &mut admin] {
        expect_ok(
            c,
            &format!(
                "INSERT INTO pg_temp.t VALUES ('{acme}', 'x'), ('{globex}', 'y');
                 UPDATE pg_temp.t SET body = 'z'; DELETE FROM pg_temp.t;"
            ),
            "V18: writes to a temp table",
        );
    }
    assert_eq!(
        counters(&db),
        counters_before,
        "V18: usage counters changed"
    );
    assert_eq!(audit_rows(&db), audit_before, "V18: audit log changed");
    let mut su = db.as_role("postgres");
    assert!(audit_valid(&mut su, "acme"), "V18: acme's chain");
    assert!(audit_valid(&mut su, "globex"), "V18: globex's chain");
    assert_eq!(
        su_i64(&db, "SELECT count(*) FROM tenant.audited_tables"),
        1,
        "V18: only notes is audited"
    );
    assert_eq!(
        su_i64(&db, "SELECT count(*) FROM tenant.row_limits"),
        1,
        "V18: only notes is limited"
    );
}

#[test]
fn extension_trigger_functions_cannot_be_borrowed() {
    let db = Db::new("hx_borrow");
    plan(
        &db,
        r#"{"name": "hx-borrow", "limits": {"seats": 10}}"#,
        &["acme", "globex"],
    );
    su_exec(&db, "SELECT tenant.limit_rows('public.notes', 'seats')");
    su_exec(&db, "SELECT tenant.audit('public.notes')");
    let acme = db.tenant_id("acme").to_string();
    let globex = db.tenant_id("globex").to_string();
    let counters_before = counters(&db);
    let audit_before = audit_rows(&db);
    assert!(
        counters_before.contains(&format!("{acme}/seats/2")),
        "{counters_before}"
    );

    let mut evil = as_tenant(&db, "mt_it_evil", "acme");
    expect_ok(
        &mut evil,
        "CREATE TEMP TABLE t (tenant_id uuid, body text)",
        "temp table",
    );
    // V19: the audit trigger function attached to the attacker's temp table: either the
    // trigger cannot be created or it refuses to run (the table is not registered)
    if run(
        &mut evil,
        "CREATE TRIGGER x AFTER INSERT OR UPDATE OR DELETE ON pg_temp.t FOR EACH ROW EXECUTE FUNCTION tenant._audit_trigger()",
    )
    .is_ok()
    {
        expect_code(
            &mut evil,
            &format!("INSERT INTO pg_temp.t VALUES ('{globex}', 'planted')"),
            "MT030",
            "V19: borrowed audit trigger",
        );
        expect_ok(&mut evil, "DROP TRIGGER x ON pg_temp.t", "drop trigger");
    }
    assert_eq!(audit_rows(&db), audit_before, "V19: audit log changed");
    // V20: the row-limit trigger function on the attacker's temp table, aimed at acme's seats
    if run(
        &mut evil,
        "CREATE TRIGGER y AFTER INSERT OR DELETE ON pg_temp.t FOR EACH ROW EXECUTE FUNCTION tenant._limit_rows_trigger('seats', 'tenant_id')",
    )
    .is_ok()
    {
        expect_code(
            &mut evil,
            &format!("INSERT INTO pg_temp.t VALUES ('{acme}', 'burn')"),
            "MT030",
            "V20: borrowed limit trigger",
        );
    }
    assert_eq!(counters(&db), counters_before, "V20: counters changed");

    // the owner of an ordinary, unregistered table tries the same
    let mut owner = db.as_role("mt_it_owner");
    expect_ok(
        &mut owner,
        "CREATE TABLE public.fake (tenant_id uuid, body text)",
        "fake table",
    );
    // V21: audit trigger on an unregistered permanent table
    if run(
        &mut owner,
        "CREATE TRIGGER x AFTER INSERT ON public.fake FOR EACH ROW EXECUTE FUNCTION tenant._audit_trigger()",
    )
    .is_ok()
    {
        expect_code(
            &mut owner,
            &format!("INSERT INTO public.fake VALUES ('{acme}', 'forged entry')"),
            "MT030",
            "V21: audit trigger on an unregistered table",
        );
        expect_ok(&mut owner, "DROP TRIGGER x ON public.fake", "drop trigger");
    }
    assert_eq!(audit_rows(&db), audit_before, "V21: audit log changed");
    // V22: limit trigger on INSERT to burn acme's seats
    if run(
        &mut owner,
        "CREATE TRIGGER y AFTER INSERT ON public.fake FOR EACH ROW EXECUTE FUNCTION tenant._limit_rows_trigger('seats', 'tenant_id')",
    )
    .is_ok()
    {
        expect_code(
            &mut owner,
            &format!("INSERT INTO public.fake SELECT '{acme}', 'burn' FROM generate_series(1, 8)"),
            "MT030",
            "V22: burning another tenant's slots",
        );
        expect_ok(&mut owner, "DROP TRIGGER y ON public.fake", "drop trigger");
    }
    assert_eq!(counters(&db), counters_before, "V22: counters changed");
    // V23: limit trigger on DELETE to free acme's slots
    expect_ok(
        &mut owner,
        &format!("INSERT INTO public.fake SELECT '{acme}', 'free' FROM generate_series(1, 2)"),
        "rows without trigger",
    );
    if run(
        &mut owner,
        "CREATE TRIGGER z AFTER DELETE ON public.fake FOR EACH ROW EXECUTE FUNCTION tenant._limit_rows_trigger('seats', 'tenant_id')",
    )
    .is_ok()
    {
        expect_code(
            &mut owner,
            "DELETE FROM public.fake",
            "MT030",
            "V23: freeing another tenant's slots",
        );
    }
    assert_eq!(counters(&db), counters_before, "V23: counters changed");
    let mut su = db.as_role("postgres");
    assert!(audit_valid(&mut su, "acme"), "V19-V23: acme's chain");
}

// ---------------------------------------------------------------------------------------
// Privilege escalation
// ---------------------------------------------------------------------------------------

/// A per-test attacker that is a member of tenant_admin and may create tables in public.
fn admin_attacker(db: &Db, suffix: &str) -> TempRole {
    TempRole::new(
        db,
        suffix,
        "GRANT tenant_admin TO {r}; GRANT CREATE ON SCHEMA public TO {r};",
    )
}

#[test]
fn hostile_column_and_resource_names_never_escalate() {
    let db = Db::new("hx_escnames");
    plan(
        &db,
        r#"{"name": "hx-esc", "limits": {"seats": 100, "docs": 100}}"#,
        &["acme"],
    );
    let r = admin_attacker(&db, "esc");
    let me = r.name.clone();
    let mut c = r.connect();
    let names: Vec<String> = vec![
        format!("x\\'); ALTER ROLE {me} SUPERUSER; --"),
        format!("x'); ALTER ROLE {me} SUPERUSER; --"),
        format!("x\"); ALTER ROLE {me} SUPERUSER; --"),
        format!("x$$; ALTER ROLE {me} SUPERUSER; --"),
        format!("x%I%L%s'; ALTER ROLE {me} SUPERUSER; --"),
        "a\"b".to_string(),
        "a\\b".to_string(),
        "a;b".to_string(),
        "trailing\\".to_string(),
    ];
    let calls = [
        (
            "isolate",
            "SELECT tenant.isolate($1::text::regclass, $2::text)",
        ),
        (
            "limit_rows",
            "SELECT tenant.limit_rows($1::text::regclass, 'seats', $2::text)",
        ),
        (
            "audit",
            "SELECT tenant.audit($1::text::regclass, ARRAY[$2::text], true)",
        ),
        (
            "protect",
            "SELECT tenant.protect($1::text::regclass, 'docs', $2::text)",
        ),
    ];
    // V24: with standard_conforming_strings = off, a uuid column whose name is an injection
    // attempt, passed as the tenant column, the ignored column and the owner column
    // V25: the same with standard_conforming_strings = on
    for (vector, scs) in [("V24", "off"), ("V25", "on")] {
        c.batch_execute(&format!("SET standard_conforming_strings = {scs}"))
            .unwrap();
        for (i, col) in names.iter().enumerate() {
            let tbl = format!("public.esc_{scs}_{i}");
            expect_ok(
                &mut c,
                &format!(
                    "CREATE TABLE {tbl} (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, {} uuid NOT NULL, body text)",
                    qi(col)
                ),
                "attacker's table",
            );
            for (what, sql) in calls {
                let res = c.execute(sql, &[&tbl, col]);
                if let Err(e) = res {
                    assert_eq!(
                        sqlstate(&e),
                        "MT030",
                        "{vector}: {what} on column {col:?}: {e:?}"
                    );
                }
                assert_not_superuser(&db, &mut c, &me, &format!("{vector}: {what} {col:?}"));
            }
        }
    }
    // V26: the resource name is the injection attempt (limit_rows, protect)
    expect_ok(
        &mut c,
        "CREATE TABLE public.esc_res (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, tenant_id uuid NOT NULL)",
        "attacker's table",
    );
    for scs in ["off", "on"] {
        c.batch_execute(&format!("SET standard_conforming_strings = {scs}"))
            .unwrap();
        for res in &names {
            for sql in [
                "SELECT tenant.limit_rows('public.esc_res', $1::text)",
                "SELECT tenant.protect('public.esc_res', $1::text)",
            ] {
                if let Err(e) = c.execute(sql, &[res]) {
                    assert_eq!(sqlstate(&e), "MT030", "V26: {sql} {res:?}: {e:?}");
                }
                assert_not_superuser(&db, &mut c, &me, &format!("V26: resource {res:?}"));
            }
        }
    }
}

#[test]
fn casts_reached_from_row_triggers_never_run_as_superuser() {
    let db = Db::new("hx_casts");
    plan(
        &db,
        r#"{"name": "hx-cast", "limits": {"seats": 100, "seats_e": 100}}"#,
        &["acme"],
    );
    let acme = db.tenant_id("acme").to_string();
    let r = admin_attacker(&db, "cast");
    let me = r.name.clone();
    let mut c = r.connect();
    let setup = r#"
        CREATE TABLE public.evil_calls (fn text, who text, su boolean);
        GRANT SELECT, INSERT ON public.evil_calls TO PUBLIC;
        CREATE FUNCTION public.evil_fire(fn text) RETURNS void LANGUAGE plpgsql AS $f$
        BEGIN
            INSERT INTO public.evil_calls
                SELECT fn, current_user::text, r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user;
            BEGIN
                EXECUTE 'ALTER ROLE @ME@ SUPERUSER';
            EXCEPTION WHEN OTHERS THEN NULL;
            END;
        END $f$;
        CREATE TYPE public.evil_c AS (a int);
        CREATE TYPE public.evil_e AS ENUM ('x', 'y');
        CREATE FUNCTION public.evil_c_json(public.evil_c) RETURNS json LANGUAGE plpgsql AS $f$
            BEGIN PERFORM public.evil_fire('evil_c::json'); RETURN '{}'::json; END $f$;
        CREATE FUNCTION public.evil_c_jsonb(public.evil_c) RETURNS jsonb LANGUAGE plpgsql AS $f$
            BEGIN PERFORM public.evil_fire('evil_c::jsonb'); RETURN '{}'::jsonb; END $f$;
        CREATE FUNCTION public.evil_c_text(public.evil_c) RETURNS text LANGUAGE plpgsql AS $f$
            BEGIN PERFORM public.evil_fire('evil_c::text'); RETURN 'c'; END $f$;
        CREATE FUNCTION public.evil_e_json(public.evil_e) RETURNS json LANGUAGE plpgsql AS $f$
            BEGIN PERFORM public.evil_fire('evil_e::json'); RETURN '"e"'::json; END $f$;
        CREATE FUNCTION public.evil_e_jsonb(public.evil_e) RETURNS jsonb LANGUAGE plpgsql AS $f$
            BEGIN PERFORM public.evil_fire('evil_e::jsonb'); RETURN '"e"'::jsonb; END $f$;
        CREATE FUNCTION public.evil_e_text(public.evil_e) RETURNS text LANGUAGE plpgsql AS $f$
            BEGIN PERFORM public.evil_fire('evil_e::text'); RETURN 'e'; END $f$;
        CREATE CAST (public.evil_c AS json) WITH FUNCTION public.evil_c_json(public.evil_c);
        CREATE CAST (public.evil_c AS jsonb) WITH FUNCTION public.evil_c_jsonb(public.evil_c);
        CREATE CAST (public.evil_c AS text) WITH FUNCTION public.evil_c_text(public.evil_c);
        CREATE CAST (public.evil_e AS json) WITH FUNCTION public.evil_e_json(public.evil_e);
        CREATE CAST (public.evil_e AS jsonb) WITH FUNCTION public.evil_e_jsonb(public.evil_e);
        CREATE CAST (public.evil_e AS text) WITH FUNCTION public.evil_e_text(public.evil_e);
        CREATE TABLE public.loot_c (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                                    tenant_id uuid NOT NULL, v public.evil_c, note text);
        CREATE TABLE public.loot_e (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                                    tenant_id uuid NOT NULL, v public.evil_e, note text);
    "#
    .replace("@ME@", &me);
    expect_ok(&mut c, &setup, "attacker's types, casts and tables");
    // V27: a composite type with casts to json/jsonb/text in a table registered with
    // limit_rows and audit (changed_only: compares old and new rows) by its tenant_admin
    // owner; every write runs the extension's triggers
    // V28: the same with an enum type (to_json/to_jsonb do convert enums through a cast)
    // The writes run in acme's context: a limit_rows table takes a tenant's rows only under
    // that tenant's context (MT005 otherwise, checked in V22b below)
    let acme_token = token_for(&db, "acme");
    for (vector, tbl, v1, v2, resource) in [
        ("V27", "public.loot_c", "ROW(1)", "ROW(2)", "seats"),
        ("V28", "public.loot_e", "'x'", "'y'", "seats_e"),
    ] {
        c.batch_execute("RESET multitenant.context").unwrap();
        for sql in [
            format!("SELECT tenant.limit_rows('{tbl}', '{resource}')"),
            format!("SELECT tenant.audit('{tbl}', '{{}}', true)"),
        ] {
            ok_or_one_of(&mut c, &sql, &["MT030"], vector);
            assert_not_superuser(&db, &mut c, &me, &format!("{vector}: {sql}"));
        }
        // V22b: without the context, a row of acme's is refused (MT005), nothing counted
        expect_code(
            &mut c,
            &format!("INSERT INTO {tbl} (tenant_id, v, note) VALUES ('{acme}', {v1}, 'n0')"),
            "MT005",
            &format!("{vector}: row of another tenant than the context"),
        );
        set_token(&mut c, &acme_token);
        for sql in [
            format!("INSERT INTO {tbl} (tenant_id, v, note) VALUES ('{acme}', {v1}, 'n1'), ('{acme}', {v1}, 'n2')"),
            format!("UPDATE {tbl} SET v = {v2}, note = 'n3'"),
            format!("UPDATE {tbl} SET note = 'n4'"),
            format!("DELETE FROM {tbl} WHERE note = 'n4' AND id = (SELECT min(id) FROM {tbl})"),
            format!("DELETE FROM {tbl}"),
        ] {
            expect_ok(&mut c, &sql, &format!("{vector}: write"));
            assert_not_superuser(&db, &mut c, &me, &format!("{vector}: {sql}"));
        }
    }
    // V29: no attacker cast ran under any identity but the attacker's own
    let foreign = su_text(
        &db,
        &format!(
            "SELECT coalesce(string_agg(fn || ' as ' || who || CASE WHEN su THEN ' (superuser)' ELSE '' END, ', '), '')
               FROM public.evil_calls WHERE who <> '{me}' OR su"
        ),
    );
    assert_eq!(
        foreign, "",
        "V29: the attacker's cast functions ran with another role's privileges"
    );
    assert_not_superuser(&db, &mut c, &me, "V29");
}

#[test]
fn shadowing_functions_operators_and_tables_are_ignored() {
    let db = Db::new("hx_shadow");
    plan(
        &db,
        r#"{"name": "hx-shadow", "limits": {"seats": 5}}"#,
        &["acme", "globex"],
    );
    let acme = db.tenant_id("acme").to_string();
    let globex = db.tenant_id("globex").to_string();
    let mut owner = db.as_role("mt_it_owner");
    // shadows in public (mt_it_owner may create there); each logs who called it and returns
    // a value that would hand out globex's rows or break the extension
    let shadows = r#"
        CREATE TABLE public.evil_log (fn text, who text);
        GRANT SELECT, INSERT ON public.evil_log TO PUBLIC;
        CREATE FUNCTION public.evil_note(fn text) RETURNS void LANGUAGE sql
            AS $f$ INSERT INTO public.evil_log VALUES (fn, current_user::text) $f$;
        CREATE FUNCTION public.current_tenant() RETURNS uuid LANGUAGE plpgsql
            AS $f$ BEGIN PERFORM public.evil_note('current_tenant'); RETURN 'GLOBEX'::uuid; END $f$;
        CREATE FUNCTION public.require_tenant() RETURNS uuid LANGUAGE plpgsql
            AS $f$ BEGIN PERFORM public.evil_note('require_tenant'); RETURN 'GLOBEX'::uuid; END $f$;
        CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql
            AS $f$ BEGIN PERFORM public.evil_note('now'); RETURN '2000-01-01 00:00:00+00'; END $f$;
        CREATE FUNCTION public.count(text) RETURNS bigint LANGUAGE plpgsql
            AS $f$ BEGIN PERFORM public.evil_note('count(text)'); RETURN 0; END $f$;
        CREATE FUNCTION public.count(uuid) RETURNS bigint LANGUAGE plpgsql
            AS $f$ BEGIN PERFORM public.evil_note('count(uuid)'); RETURN 0; END $f$;
        CREATE FUNCTION public.current_setting(text) RETURNS text LANGUAGE plpgsql
            AS $f$ BEGIN PERFORM public.evil_note('current_setting'); RETURN 'mt1.forged.x'; END $f$;
        CREATE FUNCTION public.current_setting(text, boolean) RETURNS text LANGUAGE plpgsql
            AS $f$ BEGIN PERFORM public.evil_note('current_setting/2'); RETURN 'mt1.forged.x'; END $f$;
        CREATE FUNCTION public.set_config(text, text, boolean) RETURNS text LANGUAGE plpgsql
            AS $f$ BEGIN PERFORM public.evil_note('set_config'); RETURN $2; END $f$;
        CREATE FUNCTION public.format(text, VARIADIC text[]) RETURNS text LANGUAGE plpgsql
            AS $f$ BEGIN PERFORM public.evil_note('format'); RETURN $1; END $f$;
        CREATE FUNCTION public.quote_ident(text) RETURNS text LANGUAGE plpgsql
            AS $f$ BEGIN PERFORM public.evil_note('quote_ident'); RETURN $1; END $f$;
        CREATE FUNCTION public.quote_literal(text) RETURNS text LANGUAGE plpgsql
            AS $f$ BEGIN PERFORM public.evil_note('quote_literal'); RETURN $1; END $f$;
        CREATE FUNCTION public.lower(text) RETURNS text LANGUAGE plpgsql
            AS $f$ BEGIN PERFORM public.evil_note('lower'); RETURN 'globex'; END $f$;
        CREATE FUNCTION public.gen_random_uuid() RETURNS uuid LANGUAGE plpgsql
            AS $f$ BEGIN PERFORM public.evil_note('gen_random_uuid'); RETURN 'GLOBEX'::uuid; END $f$;
        CREATE FUNCTION public.jsonb_build_object(VARIADIC text[]) RETURNS jsonb LANGUAGE plpgsql
            AS $f$ BEGIN PERFORM public.evil_note('jsonb_build_object'); RETURN '{}'::jsonb; END $f$;
        CREATE FUNCTION public.to_jsonb(anyelement) RETURNS jsonb LANGUAGE plpgsql
            AS $f$ BEGIN PERFORM public.evil_note('to_jsonb'); RETURN '{}'::jsonb; END $f$;
        CREATE FUNCTION public.evil_uuid_eq(uuid, uuid) RETURNS boolean LANGUAGE plpgsql
            AS $f$ BEGIN PERFORM public.evil_note('uuid ='); RETURN true; END $f$;
        CREATE OPERATOR public.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = public.evil_uuid_eq);
        CREATE FUNCTION public.evil_text_eq(text, text) RETURNS boolean LANGUAGE plpgsql
            AS $f$ BEGIN PERFORM public.evil_note('text ='); RETURN true; END $f$;
        CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.evil_text_eq);
    "#
    .replace("GLOBEX", &globex);
    expect_ok(&mut owner, &shadows, "shadows in public");
    let shadow_path = "SET search_path = public, pg_catalog";

    // V30: an application role with the shadows first in its search_path (and, through the
    // exact-type matches format(text, text[]), count(text), jsonb_build_object(text[]),
    // even with the default path): the tenant functions and policies still answer for acme
    let tok = token_for(&db, "acme");
    let mut app = with_token(&db, "mt_it_app", &tok);
    app.batch_execute(shadow_path).unwrap();
    assert_eq!(bodies(&mut app), vec!["a1", "a2"], "V30: rows");
    assert_eq!(
        current_tenant(&mut app).as_deref(),
        Some(acme.as_str()),
        "V30"
    );
    expect_ok(
        &mut app,
        "INSERT INTO public.notes (body) VALUES ('shadow-a')",
        "V30: insert",
    );
    assert_eq!(consume(&mut app, "seats", 1), Ok(Some(4)), "V30: consume");
    assert!(
        one_bool(&mut app, "SELECT tenant.check('seats', 4)"),
        "V30: check"
    );
    assert!(
        !one_bool(&mut app, "SELECT tenant.check('seats', 5)"),
        "V30: check"
    );
    assert!(
        !one_bool(&mut app, "SELECT tenant.has_feature('nope')"),
        "V30"
    );
    assert!(
        !one_bool(&mut app, "SELECT tenant.can('docs', 'read')"),
        "V30: can"
    );
    assert!(audit_valid(&mut app, "acme"), "V30: verify_audit");
    let status: Option<String> = q1(&mut app, "SELECT tenant.context_status()->>'valid'");
    assert_eq!(status.as_deref(), Some("true"), "V30: context_status");
    // V31: the trusted backend under the same path: set_context and create do their job
    let mut be = db.as_role("mt_it_backend");
    be.batch_execute(shadow_path).unwrap();
    expect_ok(
        &mut be,
        "BEGIN; SELECT tenant.set_context('globex'); INSERT INTO public.notes (body) VALUES ('shadow-g'); COMMIT;",
        "V31: set_context under shadows",
    );
    let created: String = q1(
        &mut be,
        "SELECT tenant.create('shadowco', 'Shadow Co')::text",
    );
    assert_ne!(
        created, globex,
        "V31: create used the shadow gen_random_uuid"
    );
    let mut su = db.as_role("postgres");
    let owner_of = |su: &mut Client, body: &str| -> String {
        su.query_one(
            "SELECT t.slug FROM public.notes n JOIN tenant.tenants t ON t.id = n.tenant_id WHERE n.body = $1",
            &[&body],
        )
        .unwrap()
        .get(0)
    };
    assert_eq!(
        owner_of(&mut su, "shadow-a"),
        "acme",
        "V30: tenant of the insert"
    );
    assert_eq!(
        owner_of(&mut su, "shadow-g"),
        "globex",
        "V31: tenant of the insert"
    );
    assert_eq!(
        texts(
            &mut su,
            &format!("SELECT slug FROM tenant.tenants WHERE id = '{created}'")
        ),
        vec!["shadowco"],
        "V31"
    );
    // V32: the owner isolates a new table with the always-true `=` operators first in its
    // path: the generated policies still compare with the real operator
    owner.batch_execute(shadow_path).unwrap();
    expect_ok(
        &mut owner,
        "CREATE TABLE public.shadowed (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, tenant_id uuid NOT NULL, body text);
         GRANT SELECT, INSERT ON public.shadowed TO mt_it_backend, mt_it_app;
         SELECT tenant.isolate('public.shadowed');",
        "V32: isolate under shadows",
    );
    let mut be2 = db.as_role("mt_it_backend");
    expect_ok(
        &mut be2,
        "BEGIN; SELECT tenant.set_context('acme'); INSERT INTO public.shadowed (body) VALUES ('sa'); COMMIT;
         BEGIN; SELECT tenant.set_context('globex'); INSERT INTO public.shadowed (body) VALUES ('sg'); COMMIT;",
        "V32: rows",
    );
    assert_eq!(
        texts(&mut app, "SELECT body FROM public.shadowed ORDER BY body"),
        vec!["sa"],
        "V32: acme under shadows"
    );
    let mut plain = with_token(&db, "mt_it_app", &tok);
    assert_eq!(
        texts(&mut plain, "SELECT body FROM public.shadowed ORDER BY body"),
        vec!["sa"],
        "V32: acme with the default path"
    );
    assert_eq!(
        one_i64(
            &mut db.as_role("mt_it_app"),
            "SELECT count(*) FROM public.shadowed"
        ),
        0,
        "V32: no context"
    );
    // V33: temporary tables named like the extension's and temporary functions, first in
    // the path: ignored (the extension qualifies everything and never searches pg_temp)
    let mut tmp = with_token(&db, "mt_it_app", &tok);
    let temp_shadows = r#"
        SET search_path = pg_temp, public, pg_catalog;
        CREATE TEMP TABLE tenants (id uuid, slug text, name text, plan text, status text);
        INSERT INTO pg_temp.tenants VALUES ('GLOBEX', 'acme', 'Fake', 'hx-shadow', 'active'),
                                           ('ACME', 'globex', 'Fake', 'hx-shadow', 'active');
        CREATE TEMP TABLE secret (id int, key bytea, created_at timestamptz);
        INSERT INTO pg_temp.secret VALUES (1, pg_catalog.decode(pg_catalog.repeat('00', 32), 'hex'), NULL);
        CREATE TEMP TABLE isolated_tables (relid oid, tenant_column name);
        CREATE TEMP TABLE members (tenant_id uuid, user_id text, roles text[], status text);
        CREATE TEMP TABLE plans (name text);
        CREATE TEMP TABLE plan_limits (plan text, resource text, limit_value bigint, period text);
        INSERT INTO pg_temp.plan_limits VALUES ('hx-shadow', 'seats', -1, 'none');
        CREATE TEMP TABLE usage_counters (tenant_id uuid, resource text, used bigint);
        CREATE FUNCTION pg_temp.current_tenant() RETURNS uuid LANGUAGE sql
            AS $f$ INSERT INTO public.evil_log VALUES ('pg_temp.current_tenant', current_user::text) RETURNING 'GLOBEX'::uuid $f$;
        CREATE FUNCTION pg_temp.now() RETURNS timestamptz LANGUAGE sql
            AS $f$ INSERT INTO public.evil_log VALUES ('pg_temp.now', current_user::text) RETURNING '2000-01-01'::timestamptz $f$;
    "#
    .replace("GLOBEX", &globex)
    .replace("ACME", &acme);
    expect_ok(&mut tmp, &temp_shadows, "V33: temp shadows");
    assert_eq!(bodies(&mut tmp), vec!["a1", "a2", "shadow-a"], "V33: rows");
    assert_eq!(
        current_tenant(&mut tmp).as_deref(),
        Some(acme.as_str()),
        "V33"
    );
    assert_eq!(consume(&mut tmp, "seats", 1), Ok(Some(3)), "V33: consume");
    assert_eq!(
        consume(&mut tmp, "seats", 4),
        Err("MT010".into()),
        "V33: limit"
    );
    // V34: a token signed with the key of the shadow pg_temp.secret (32 zero bytes)
    let oid = db_oid(&mut db.as_role("postgres"));
    set_token(&mut tmp, &mint_claims(&[0u8; 32], &globex, oid));
    assert_no_context(&mut tmp, "V34: token signed with the shadow secret");
    // V35: none of the attacker's functions or operators ever ran
    let calls = su_text(
        &db,
        "SELECT coalesce(string_agg(fn || ' as ' || who, ', '), '') FROM public.evil_log",
    );
    assert_eq!(calls, "", "V30-V35: shadow functions were called");
}

// ---------------------------------------------------------------------------------------
// Partitions and inheritance
// ---------------------------------------------------------------------------------------

#[track_caller]
fn rls_flags(db: &Db, rel: &str) -> (bool, bool) {
    let mut su = db.as_role("postgres");
    let row = su
        .query_one(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = $1::text::regclass",
            &[&rel],
        )
        .unwrap_or_else(|e| panic!("flags of {rel}: {e:?}"));
    (row.get(0), row.get(1))
}

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
    expect_ok(
        &mut be,
        "BEGIN; SELECT tenant.set_context('acme'); INSERT INTO public.ev (n) VALUES (1), (2); COMMIT;
         BEGIN; SELECT tenant.set_context('globex'); INSERT INTO public.ev (n) VALUES (1), (2); COMMIT;",
        "rows",
    );
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
    expect_ok(
        &mut be,
        "BEGIN; SELECT tenant.set_context('acme'); INSERT INTO public.ev (n) VALUES (3); COMMIT;
         BEGIN; SELECT tenant.set_context('globex'); INSERT INTO public.ev (n) VALUES (3); COMMIT;",
        "rows",
    );
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

// ---------------------------------------------------------------------------------------
// Audit log reads
// ---------------------------------------------------------------------------------------

#[test]
fn audit_log_reads_need_select_on_the_audited_table() {
    let db = Db::new("hx_auditread");
    let globex = db.tenant_id("globex").to_string();
    let auditor = TempRole::new(&db, "aud", "GRANT tenant_auditor TO {r};");
    let mut owner = db.as_role("mt_it_owner");
    expect_ok(
        &mut owner,
        "CREATE TABLE public.salaries (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, tenant_id uuid NOT NULL, amount int);
         SELECT tenant.isolate('public.salaries');
         GRANT SELECT, INSERT ON public.salaries TO mt_it_backend;",
        "salaries",
    );
    su_exec(&db, "SELECT tenant.audit('public.salaries')");
    let mut be = db.as_role("mt_it_backend");
    expect_ok(
        &mut be,
        "BEGIN; SELECT tenant.set_context('acme'); INSERT INTO public.salaries (amount) VALUES (100); COMMIT;
         BEGIN; SELECT tenant.set_context('globex'); INSERT INTO public.salaries (amount) VALUES (200); COMMIT;",
        "salaries rows",
    );
    assert_eq!(
        su_i64(
            &db,
            "SELECT count(*) FROM tenant.audit_log WHERE table_name = 'public.salaries'"
        ),
        2
    );
    let q = "SELECT count(*) FROM tenant.audit_log WHERE table_name = 'public.salaries'";
    let tok = token_for(&db, "acme");
    let mut app = with_token(&db, "mt_it_app", &tok);
    let mut api = with_token(&db, "mt_it_api", &tok);
    // V44: in acme's context, roles without SELECT on the table read none of its entries
    assert_eq!(one_i64(&mut app, q), 0, "V44: mt_it_app");
    assert_eq!(one_i64(&mut api, q), 0, "V44: mt_it_api");
    // V45: SELECT on the table makes its entries (of the current tenant) readable
    expect_ok(
        &mut owner,
        "GRANT SELECT ON public.salaries TO mt_it_app",
        "grant",
    );
    assert_eq!(one_i64(&mut app, q), 1, "V45: mt_it_app after GRANT SELECT");
    assert_eq!(one_i64(&mut api, q), 0, "V45: mt_it_api still without");
    // V46: tenant_auditor reads its context's entries without SELECT on the table, never
    // another tenant's, and still cannot read the table itself
    let mut aud = auditor.connect();
    set_token(&mut aud, &tok);
    assert_eq!(one_i64(&mut aud, q), 1, "V46: auditor in acme's context");
    assert_eq!(
        one_i64(
            &mut aud,
            &format!("SELECT count(*) FROM tenant.audit_log WHERE tenant_id IS NOT DISTINCT FROM '{globex}'")
        ),
        0,
        "V46: auditor sees globex's entries"
    );
    expect_code(
        &mut aud,
        "SELECT * FROM public.salaries",
        "42501",
        "V46: auditor reading the table",
    );
    set_token(&mut aud, &token_for(&db, "globex"));
    assert_eq!(one_i64(&mut aud, q), 1, "V46: auditor in globex's context");
    // V47: without a context nobody of these roles reads any entry at all
    let aud_name = auditor.name.clone();
    for role in ["mt_it_app", "mt_it_api", "mt_it_evil", aud_name.as_str()] {
        let mut c = db.as_role(role);
        assert_eq!(
            one_i64(&mut c, "SELECT count(*) FROM tenant.audit_log"),
            0,
            "V47: {role} without context"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Stale tokens, read-only contexts
// ---------------------------------------------------------------------------------------

#[test]
fn stale_tokens_of_suspended_and_deleted_tenants() {
    let db = Db::new("hx_stale");
    plan(
        &db,
        r#"{"name": "hx-stale", "limits": {"seats": 50}}"#,
        &["acme"],
    );
    let acme = db.tenant_id("acme").to_string();
    let tok = token_for(&db, "acme");
    // an application connection opened while acme is active
    let mut open = with_token(&db, "mt_it_app", &tok);
    assert_eq!(count(&mut open), 2);
    su_exec(&db, "SELECT tenant.set_status('acme', 'suspended')");
    // V48: the open connection sees the suspension at its next statement
    assert_eq!(count(&mut open), 0, "V48: open connection after suspension");
    assert_eq!(current_tenant(&mut open), None, "V48");
    // V49: a new connection carrying the old token: nothing
    let check_dead = |db: &Db, what: &str| {
        let mut c = with_token(db, "mt_it_app", &tok);
        assert_eq!(count(&mut c), 0, "{what}: rows");
        assert!(
            one_bool(&mut c, "SELECT tenant.current_tenant() IS NULL"),
            "{what}: current_tenant"
        );
        expect_code(
            &mut c,
            "INSERT INTO public.notes (body) VALUES ('stale')",
            "MT003",
            what,
        );
        expect_one_of(
            &mut c,
            "SELECT tenant.consume('seats', 1)",
            &["MT003", "MT001"],
            what,
        );
    };
    check_dead(&db, "V49: suspended");
    // V50: the same after deletion
    su_exec(&db, "SELECT tenant.set_status('acme', 'deleted')");
    check_dead(&db, "V50: deleted");
    assert_eq!(count(&mut open), 0, "V50: open connection");
    // V51: with suspended_access = read, a suspended tenant's old token reads but never writes
    su_exec(&db, "SELECT tenant.set_status('acme', 'suspended')");
    su_exec(
        &db,
        &format!(
            "ALTER DATABASE {} SET multitenant.suspended_access = 'read'",
            db.name
        ),
    );
    let mut ro = with_token(&db, "mt_it_app", &tok);
    assert_eq!(bodies(&mut ro), vec!["a1", "a2"], "V51: reads");
    assert_eq!(
        current_tenant(&mut ro).as_deref(),
        Some(acme.as_str()),
        "V51"
    );
    expect_code(
        &mut ro,
        "INSERT INTO public.notes (body) VALUES ('ro')",
        "MT003",
        "V51: insert",
    );
    expect_code(
        &mut ro,
        "UPDATE public.notes SET body = 'ro'",
        "MT003",
        "V51: update",
    );
    expect_code(&mut ro, "DELETE FROM public.notes", "MT003", "V51: delete");
    expect_code(
        &mut ro,
        "SELECT tenant.consume('seats', 1)",
        "MT003",
        "V51: consume",
    );
    // V52: after reactivation the same old token writes again (new and open connections)
    su_exec(&db, "SELECT tenant.set_status('acme', 'active')");
    let mut back = with_token(&db, "mt_it_app", &tok);
    expect_ok(
        &mut back,
        "INSERT INTO public.notes (body) VALUES ('back')",
        "V52: write after reactivation",
    );
    assert_eq!(count(&mut back), 3, "V52");
    assert_eq!(count(&mut open), 3, "V52: the open connection");
    assert_eq!(db.all_bodies(), vec!["a1", "a2", "back", "g1"]);
}

#[test]
fn read_only_context_cannot_manage_or_write() {
    let db = Db::new("hx_readonly");
    plan(
        &db,
        r#"{"name": "hx-ro", "limits": {"seats": 50}}"#,
        &["acme"],
    );
    let mut be = db.as_role("mt_it_backend");
    expect_ok(
        &mut be,
        "BEGIN; SELECT tenant.set_context('acme');
         SELECT tenant.create_role('editor');
         SELECT tenant.grant_permission('editor', 'doc', 'update');
         SELECT tenant.invite('old@example.com', 'member', 24);
         COMMIT;",
        "setup",
    );
    su_exec(
        &db,
        &format!(
            "ALTER DATABASE {} SET multitenant.suspended_access = 'read';
             SELECT tenant.set_status('acme', 'suspended');",
            db.name
        ),
    );
    let snapshot = |db: &Db| -> String {
        su_text(
            db,
            "SELECT (SELECT count(*) FROM tenant.roles)::text || '/' ||
                    (SELECT count(*) FROM tenant.permissions)::text || '/' ||
                    (SELECT count(*) FROM tenant.invitations)::text || '/' ||
                    (SELECT count(*) FROM tenant.members)::text || '/' ||
                    (SELECT coalesce(sum(used), 0) FROM tenant.usage_counters)::text || '/' ||
                    (SELECT string_agg(body, ',' ORDER BY body) FROM public.notes)",
        )
    };
    let before = snapshot(&db);
    let mut be = db.as_role("mt_it_backend");
    // set_context works for a suspended tenant and gives a read-only context
    expect_ok(
        &mut be,
        "BEGIN; SELECT tenant.set_context('acme')",
        "read-only set_context",
    );
    assert_eq!(bodies(&mut be), vec!["a1", "a2"]);
    be.batch_execute("COMMIT").unwrap();
    // V53: no role, permission or invitation management in a read-only context
    for sql in [
        "SELECT tenant.create_role('x', '{}')",
        "SELECT tenant.grant_permission('member', 'doc', 'read', NULL)",
        "SELECT tenant.revoke_permission('editor', 'doc', 'update')",
        "SELECT tenant.drop_role('viewer')",
        "SELECT tenant.drop_role('editor')",
        "SELECT tenant.invite('a@b.c', 'member', 24)",
    ] {
        expect_code(
            &mut be,
            &format!("BEGIN; SELECT tenant.set_context('acme'); {sql}"),
            "MT003",
            &format!("V53: {sql}"),
        );
    }
    // V54: nor writes or consumption
    for sql in [
        "INSERT INTO public.notes (body) VALUES ('ro')",
        "UPDATE public.notes SET body = 'ro'",
        "DELETE FROM public.notes",
        "SELECT tenant.consume('seats', 1)",
    ] {
        expect_code(
            &mut be,
            &format!("BEGIN; SELECT tenant.set_context('acme'); {sql}"),
            "MT003",
            &format!("V54: {sql}"),
        );
    }
    assert_eq!(snapshot(&db), before, "V53/V54: something changed");
}

// ---------------------------------------------------------------------------------------
// Parallel plans, DROP EXTENSION, quota arithmetic
// ---------------------------------------------------------------------------------------

const PARALLEL: &str = "SET force_parallel_mode = on; SET parallel_setup_cost = 0;
     SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
     SET max_parallel_workers_per_gather = 2;";

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

#[test]
fn quota_arithmetic_cannot_overflow_or_go_negative() {
    let db = Db::new("hx_arith");
    plan(
        &db,
        r#"{"name": "p1", "limits": {"seats": 5, "calls": -1}}"#,
        &["acme"],
    );
    let acme = db.tenant_id("acme").to_string();
    let mut c = as_tenant(&db, "mt_it_app", "acme");
    // V58: a check of i64::MAX units never overflows into "fits"
    let fits: bool = c
        .query_one("SELECT tenant.check('seats', $1)", &[&i64::MAX])
        .unwrap()
        .get(0);
    assert!(!fits, "V58: check('seats', i64::MAX)");
    // V59: i64::MAX twice on an unlimited resource: the second is refused as a limit
    // (MT010), never a numeric overflow (22003)
    match consume(&mut c, "calls", i64::MAX) {
        Ok(_) => {}
        Err(code) => assert_eq!(code, "MT010", "V59: first consume"),
    }
    assert_eq!(
        consume(&mut c, "calls", i64::MAX),
        Err("MT010".to_string()),
        "V59: second consume"
    );
    // V60: zero and negative amounts are invalid
    for n in [0, -1, i64::MIN] {
        assert_eq!(
            consume(&mut c, "seats", n),
            Err("MT030".to_string()),
            "V60: consume('seats', {n})"
        );
    }
    // V61: i64::MAX on a limited resource, then exact filling
    assert_eq!(
        consume(&mut c, "seats", i64::MAX),
        Err("MT010".to_string()),
        "V61"
    );
    assert_eq!(consume(&mut c, "seats", 5), Ok(Some(0)), "V61: fill");
    assert_eq!(
        consume(&mut c, "seats", 1),
        Err("MT010".to_string()),
        "V61: over"
    );
    assert_eq!(
        su_i64(
            &db,
            &format!("SELECT sum(used)::int8 FROM tenant.usage_counters WHERE tenant_id = '{acme}' AND resource = 'seats'")
        ),
        5,
        "V61: the stored counter"
    );
}

// ---------------------------------------------------------------------------------------
// Context forgery and session tricks
// ---------------------------------------------------------------------------------------

#[test]
fn forged_context_tokens_are_no_context() {
    let db = Db::new("hx_forge");
    let other = Db::new("hx_forge_other");
    let acme = db.tenant_id("acme").to_string();
    let globex = db.tenant_id("globex").to_string();
    let tok = token_for(&db, "acme");
    let gtok = token_for(&db, "globex");
    let parts: Vec<&str> = tok.split('.').collect();
    assert_eq!(parts.len(), 3, "token format mt1.<payload>.<mac>: {tok}");
    let gparts: Vec<&str> = gtok.split('.').collect();
    let oid = db_oid(&mut db.as_role("postgres"));
    let mut app = db.as_role("mt_it_app");
    let mut check = |value: &str, what: &str| {
        set_ctx(&mut app, value);
        assert_no_context(&mut app, what);
    };
    // V62: garbage, wrong prefixes
    check("garbage", "V62: garbage");
    check(&format!("mt2.{}.{}", parts[1], parts[2]), "V62: mt2 prefix");
    check(
        &format!("MT1.{}.{}", parts[1], parts[2]),
        "V62: upper-case prefix",
    );
    check("mt1..", "V62: empty parts");
    check("mt1.e30.", "V62: empty mac");
    // V63: one character of the payload changed; payload of one token with the mac of another
    check(
        &format!(
            "mt1.{}.{}",
            flip_char(parts[1], parts[1].len() / 2),
            parts[2]
        ),
        "V63: payload character changed",
    );
    check(
        &format!("mt1.{}.{}", gparts[1], parts[2]),
        "V63: globex's payload with acme's mac",
    );
    // V64: the mac changed, truncated or extended
    check(
        &format!("mt1.{}.{}", parts[1], flip_char(parts[2], 0)),
        "V64: mac changed",
    );
    check(
        &format!("mt1.{}.{}", parts[1], &parts[2][..parts[2].len() - 4]),
        "V64: mac truncated",
    );
    check(&format!("{tok}.AAAA"), "V64: segment appended");
    check(&format!("{tok}AAAA"), "V64: mac extended");
    // V65: a valid token of another database (same slugs, another secret and oid)
    check(&token_for(&other, "acme"), "V65: foreign database");
    // V66: empty
    check("", "V66: empty");
    // V67: one megabyte
    check(
        &format!("mt1.{}.{}", "A".repeat(1 << 20), parts[2]),
        "V67: 1 MB token",
    );
    // V68: a payload that is not UTF-8 (NUL-free), with a mac-shaped tail
    let bin = mint_with(
        &[7u8; 32],
        &[0xff, 0xfe, 0xfd, 0xc3, 0x28, 0xa0, 0xa1, 0x80, 0xf0],
    );
    check(&bin, "V68: non-UTF-8 payload");
    // V69: well-formed claims for globex signed with guessed keys
    for (what, key) in [
        ("V69: zero key", vec![0u8; 32]),
        ("V69: empty key", Vec::new()),
        ("V69: key 'secret'", b"secret".to_vec()),
    ] {
        check(&mint_claims(&key, &globex, oid), what);
    }
    // control for V62-V69: the same minting with the real secret is accepted, so the
    // refusals above are due to the key, not to the harness
    let secret: Vec<u8> = {
        let mut su = db.as_role("postgres");
        su.query_one("SELECT key FROM tenant.secret", &[])
            .unwrap()
            .get(0)
    };
    set_token(&mut app, &mint_claims(&secret, &globex, oid));
    assert_eq!(bodies(&mut app), vec!["g1"], "control: the real secret");
    // V70: set_config(..., is_local => true) with a forged value inside a transaction
    app.batch_execute("RESET multitenant.context").unwrap();
    {
        let mut tx = app.transaction().unwrap();
        tx.execute(
            "SELECT set_config('multitenant.context', $1, true)",
            &[&format!("mt1.{}.{}", gparts[1], parts[2])],
        )
        .unwrap();
        let n: i64 = tx
            .query_one("SELECT count(*) FROM public.notes", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "V70: set_config local");
        let cur: Option<String> = tx
            .query_one("SELECT tenant.current_tenant()::text", &[])
            .unwrap()
            .get(0);
        assert_eq!(cur, None, "V70");
        tx.rollback().unwrap();
    }
    // V71: the attacker carrying acme's copied token gets acme's context exactly (carrying
    // is by design) and still no table it has no privilege on
    let mut evil = with_token(&db, "mt_it_evil", &tok);
    assert_eq!(
        current_tenant(&mut evil).as_deref(),
        Some(acme.as_str()),
        "V71"
    );
    assert_eq!(
        texts(&mut evil, "SELECT slug FROM tenant.tenants ORDER BY slug"),
        vec!["acme"],
        "V71: tenants visible with acme's token"
    );
    expect_code(
        &mut evil,
        "SELECT * FROM public.notes",
        "42501",
        "V71: no SELECT on notes",
    );
    // V72: an expired token (context_ttl = 1 s)
    su_exec(
        &db,
        &format!("ALTER DATABASE {} SET multitenant.context_ttl = 1", db.name),
    );
    let short_lived = token_for(&db, "acme");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let mut late = with_token(&db, "mt_it_app", &short_lived);
    assert_no_context(&mut late, "V72: expired token");
    assert_eq!(db.all_bodies(), vec!["a1", "a2", "g1"]);
}

#[test]
fn session_tricks_do_not_cross_tenants() {
    let db = Db::new("hx_session");
    let acme = db.tenant_id("acme").to_string();
    let tok = token_for(&db, "acme");
    let gtok = token_for(&db, "globex");
    // V73: a forged value SET before the library is loaded (a placeholder) is no context
    let mut app = db.as_role("mt_it_app");
    app.batch_execute("SET multitenant.context = 'forged'")
        .unwrap();
    assert_no_context(&mut app, "V73: forged placeholder (app)");
    let mut evil = db.as_role("mt_it_evil");
    let payload = tok.split('.').nth(1).unwrap();
    let mac = tok.rsplit('.').next().unwrap();
    evil.batch_execute(&format!(
        "SET multitenant.context = 'mt1.{}.{mac}'",
        flip_char(payload, payload.len() / 2)
    ))
    .unwrap();
    assert_eq!(
        texts(&mut evil, "SELECT slug FROM tenant.tenants"),
        Vec::<String>::new(),
        "V73: tampered placeholder (evil) sees a tenant row"
    );
    // V74: a valid token SET before the library is loaded still works (what poolers do)
    let mut app = db.as_role("mt_it_app");
    app.batch_execute(&format!("SET multitenant.context = '{tok}'"))
        .unwrap();
    assert_eq!(bodies(&mut app), vec!["a1", "a2"], "V74");
    // V75: RESET ALL and DISCARD ALL drop the context
    let mut be = db.as_role("mt_it_backend");
    for reset in ["RESET ALL", "DISCARD ALL", "RESET multitenant.context"] {
        expect_ok(
            &mut be,
            "SELECT tenant.set_context('acme', NULL, false)",
            "session context",
        );
        assert_eq!(count(&mut be), 2, "V75: before {reset}");
        be.batch_execute(reset).unwrap();
        assert_eq!(count(&mut be), 0, "V75: after {reset}");
    }
    app.batch_execute("RESET ALL").unwrap();
    assert_eq!(count(&mut app), 0, "V75: carried token after RESET ALL");
    // V76: the superuser switching to an application role is held like the role
    let mut su = db.as_role("postgres");
    su.batch_execute("SET SESSION AUTHORIZATION mt_it_app")
        .unwrap();
    assert_eq!(count(&mut su), 0, "V76: SESSION AUTHORIZATION, no context");
    set_token(&mut su, &gtok);
    assert_eq!(
        bodies(&mut su),
        vec!["g1"],
        "V76: SESSION AUTHORIZATION, globex"
    );
    let mut su = db.as_role("postgres");
    set_token(&mut su, &tok);
    su.batch_execute("SET ROLE mt_it_app").unwrap();
    assert_eq!(bodies(&mut su), vec!["a1", "a2"], "V76: SET ROLE, acme");
    su.batch_execute("RESET multitenant.context").unwrap();
    assert_eq!(count(&mut su), 0, "V76: SET ROLE, no context");
    // V77: the attacker cannot become the trusted backend
    expect_code(
        &mut evil,
        "SET ROLE mt_it_backend",
        "42501",
        "V77: SET ROLE",
    );
    expect_code(
        &mut evil,
        "SET SESSION AUTHORIZATION mt_it_backend",
        "42501",
        "V77: SET SESSION AUTHORIZATION",
    );
    // V78: rolling back to a savepoint restores the outer context
    let mut be = db.as_role("mt_it_backend");
    be.batch_execute("BEGIN; SELECT tenant.set_context('acme'); SAVEPOINT s; SELECT tenant.set_context('globex')")
        .unwrap();
    assert_eq!(bodies(&mut be), vec!["g1"], "V78: inner context");
    be.batch_execute("ROLLBACK TO SAVEPOINT s").unwrap();
    assert_eq!(bodies(&mut be), vec!["a1", "a2"], "V78: after ROLLBACK TO");
    be.batch_execute("COMMIT").unwrap();
    assert_eq!(count(&mut be), 0, "V78: after COMMIT");
    // V79: a session-scoped context set in a rolled-back transaction is gone
    be.batch_execute("BEGIN; SELECT tenant.set_context('acme', NULL, false); ROLLBACK")
        .unwrap();
    assert_eq!(count(&mut be), 0, "V79: session context rolled back");
    assert_eq!(current_tenant(&mut be), None, "V79");
    // V80: only tenant_service mints
    for role in ["mt_it_app", "mt_it_api", "mt_it_evil", "mt_it_owner"] {
        let mut c = db.as_role(role);
        expect_code(
            &mut c,
            "SELECT tenant.set_context('acme')",
            "42501",
            &format!("V80: {role}"),
        );
    }
    // V81: superuser-only settings stay out of reach once the library is loaded
    let mut evil = db.as_role("mt_it_evil");
    assert_eq!(current_tenant(&mut evil), None);
    for sql in [
        "SET multitenant.context_ttl = 999999",
        "SET multitenant.suspended_access = 'read'",
        "SET multitenant.jwt_membership = 'off'",
        "SET multitenant.jwt_tenant_claim = 'sub'",
        "SET multitenant.jwt_leeway = 3600",
        "SET multitenant.postgrest_claims = on",
        "SELECT set_config('multitenant.context_ttl', '999999', false)",
    ] {
        expect_code(&mut evil, sql, "42501", &format!("V81: {sql}"));
    }
    // V82: ... and a placeholder set before the library loads is not honoured either
    su_exec(&db, "SELECT tenant.set_status('acme', 'suspended')");
    let mut app = db.as_role("mt_it_app");
    ok_or_one_of(
        &mut app,
        "SET multitenant.suspended_access = 'read'",
        &["42501"],
        "V82: placeholder",
    );
    set_token(&mut app, &tok);
    assert_eq!(
        count(&mut app),
        0,
        "V82: suspended tenant read through a placeholder"
    );
    let access: String = q1(
        &mut app,
        "SELECT current_setting('multitenant.suspended_access')",
    );
    assert_eq!(access, "none", "V82: the placeholder value survived");
    assert_ne!(
        current_tenant(&mut app).as_deref(),
        Some(acme.as_str()),
        "V82"
    );
}

// ---------------------------------------------------------------------------------------
// Hostile identifiers, NUL bytes, overlong arguments
// ---------------------------------------------------------------------------------------

#[track_caller]
fn assert_clean_error<T>(r: Result<T, postgres::Error>, what: &str) {
    match r {
        Ok(_) => panic!("{what}: a NUL byte was accepted"),
        Err(e) => {
            let text = format!("{e:?} / {e}");
            assert!(
                !text.contains("panicked") && !text.contains("RUST_BACKTRACE"),
                "{what}: the error shows a Rust panic: {text}"
            );
            assert_ne!(sqlstate(&e), "XX000", "{what}: internal error: {text}");
        }
    }
}

#[test]
fn hostile_identifiers_round_trip() {
    let db = Db::new("hx_idents");
    let mut owner = db.as_role("mt_it_owner");
    let mut be = db.as_role("mt_it_backend");
    let tok = token_for(&db, "acme");
    let mut app = with_token(&db, "mt_it_app", &tok);
    let mut none = db.as_role("mt_it_app");
    // (table, tenant column): each is used under both standard_conforming_strings values
    let long_ascii = |prefix: &str| format!("{prefix}{}", "x".repeat(63 - prefix.len()));
    let long_multibyte = |prefix: &str| {
        let mut s = prefix.to_string();
        while s.len() + 2 <= 63 {
            s.push('é');
        }
        while s.len() < 63 {
            s.push('z');
        }
        s
    };
    // V83: isolate/unisolate round trips with hostile table and column names, with
    // standard_conforming_strings = on
    // V84: the same with standard_conforming_strings = off
    for (vector, scs) in [("V83", "on"), ("V84", "off")] {
        let names: Vec<(String, String)> = vec![
            (format!("we\"ird \"tbl\" {scs}"), "te\"nant".to_string()),
            (format!("back\\slash\\ {scs}"), "col\\umn\\".to_string()),
            (format!("with space {scs}"), "tenant id".to_string()),
            (format!("ünï©ødé 表 {scs}"), "列 ténant".to_string()),
            (
                format!("semi;colon; DROP TABLE public.notes; {scs}"),
                "c;ol".to_string(),
            ),
            (format!("dash--dash {scs}"), "c--ol".to_string()),
            (format!("dollar$$q$$ {scs}"), "$$c$$".to_string()),
            (format!("sq'uo''te {scs}"), "c'ol".to_string()),
            (format!("pct%s%I%L {scs}"), "c%I".to_string()),
            (format!("MixedCase {scs}"), "TenantID".to_string()),
            // V85: names of exactly 63 bytes (NAMEDATALEN - 1), ASCII and multibyte
            (long_ascii(&format!("t{scs}")), long_ascii("c")),
            (long_multibyte(&format!("m{scs}")), long_multibyte("d")),
        ];
        for c in [&mut owner, &mut be, &mut app, &mut none] {
            c.batch_execute(&format!("SET standard_conforming_strings = {scs}"))
                .unwrap();
        }
        for (tbl, col) in &names {
            assert!(tbl.len() <= 63 && col.len() <= 63, "{tbl:?} {col:?}");
            let what = format!("{vector}: table {tbl:?} column {col:?}");
            let qt = format!("public.{}", qi(tbl));
            expect_ok(
                &mut owner,
                &format!(
                    "CREATE TABLE {qt} (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, {} uuid NOT NULL, body text NOT NULL);
                     GRANT SELECT, INSERT, UPDATE, DELETE ON {qt} TO mt_it_backend, mt_it_app;",
                    qi(col)
                ),
                &what,
            );
            code_of(
                owner.execute(
                    "SELECT tenant.isolate($1::text::regclass, $2::text)",
                    &[&qt, col],
                ),
                &what,
            )
            .unwrap_or_else(|code| panic!("{what}: isolate failed with {code}"));
            let stored: String = owner
                .query_one(
                    "SELECT tenant_column::text FROM tenant.isolated_tables WHERE relid = $1::text::regclass",
                    &[&qt],
                )
                .unwrap()
                .get(0);
            assert_eq!(&stored, col, "{what}: registered column");
            expect_ok(
                &mut be,
                &format!(
                    "BEGIN; SELECT tenant.set_context('acme'); INSERT INTO {qt} (body) VALUES ('a'); COMMIT;
                     BEGIN; SELECT tenant.set_context('globex'); INSERT INTO {qt} (body) VALUES ('g'); COMMIT;"
                ),
                &what,
            );
            assert_eq!(
                texts(&mut app, &format!("SELECT body FROM {qt} ORDER BY body")),
                vec!["a"],
                "{what}: acme's view"
            );
            assert_eq!(
                one_i64(&mut none, &format!("SELECT count(*) FROM {qt}")),
                0,
                "{what}: no context"
            );
            expect_code(
                &mut none,
                &format!("INSERT INTO {qt} (body) VALUES ('x')"),
                "MT001",
                &what,
            );
            let undone: bool = owner
                .query_one("SELECT tenant.unisolate($1::text::regclass)", &[&qt])
                .unwrap_or_else(|e| panic!("{what}: unisolate: {e:?}"))
                .get(0);
            assert!(undone, "{what}: unisolate returned false");
            assert_eq!(
                one_i64(&mut owner, &format!("SELECT count(*) FROM {qt}")),
                2,
                "{what}: the owner sees every row after unisolate"
            );
            code_of(
                owner.execute(
                    "SELECT tenant.isolate($1::text::regclass, $2::text)",
                    &[&qt, col],
                ),
                &what,
            )
            .unwrap_or_else(|code| panic!("{what}: isolate again failed with {code}"));
            assert_eq!(
                one_i64(&mut owner, &format!("SELECT count(*) FROM {qt}")),
                0,
                "{what}: isolated again"
            );
        }
    }
    assert_eq!(db.all_bodies(), vec!["a1", "a2", "g1"], "notes untouched");
    for c in [&mut owner, &mut be, &mut app, &mut none] {
        c.batch_execute("SET standard_conforming_strings = on")
            .unwrap();
    }
    // V86: NUL bytes through parameters are refused cleanly (no Rust panic, no XX000)
    assert_clean_error(
        be.execute("SELECT tenant.set_context($1)", &[&"acme\u{0}"]),
        "V86: set_context",
    );
    assert_clean_error(
        app.execute(
            "SELECT set_config('multitenant.context', $1, false)",
            &[&format!("{tok}\u{0}")],
        ),
        "V86: context",
    );
    assert_clean_error(
        owner.execute(
            "SELECT tenant.isolate('public.notes', $1)",
            &[&"tenant\u{0}id"],
        ),
        "V86: isolate column",
    );
    let mut api = db.as_role("mt_it_api");
    assert_clean_error(
        api.execute("SELECT tenant.authenticate($1)", &[&"a.b\u{0}.c"]),
        "V86: authenticate",
    );
    assert_eq!(
        bodies(&mut app),
        vec!["a1", "a2"],
        "V86: the session still works"
    );
    // V87: overlong arguments are invalid arguments, not crashes
    expect_ok(
        &mut owner,
        "CREATE TABLE public.longcol (tenant_id uuid NOT NULL)",
        "table",
    );
    expect_code(
        &mut owner,
        "SELECT tenant.isolate('public.longcol', repeat('x', 10000))",
        "MT030",
        "V87: 10000-character tenant column",
    );
    expect_code(
        &mut be,
        "SELECT tenant.create(repeat('a', 10000), 'x')",
        "MT030",
        "V87: 10000-character slug",
    );
    expect_one_of(
        &mut be,
        "SELECT tenant.set_context(repeat('a', 100000))",
        &["MT002", "MT030"],
        "V87: 100000-character tenant",
    );
    expect_code(
        &mut be,
        "BEGIN; SELECT tenant.set_context('acme', repeat('u', 100000))",
        "MT030",
        "V87: 100000-character user id",
    );
}

// ---------------------------------------------------------------------------------------
// JWT attacks
// ---------------------------------------------------------------------------------------

mod jwt {
    use super::B64;
    use base64::Engine;
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    use serde_json::{json, Value};

    pub const HS_SECRET: &str = "hostile-hmac-secret-0123456789abcdefghij";
    pub const ISS_SECRET: &str = "issuer-bound-secret-0123456789abcdefghij";

    pub fn key_file(name: &str) -> String {
        std::fs::read_to_string(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
    }

    pub fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
        let mut h = Header::new(alg);
        h.kid = kid.map(str::to_string);
        encode(&h, claims, key).unwrap()
    }

    pub fn sign_header(h: Header, key: &EncodingKey, claims: &Value) -> String {
        encode(&h, claims, key).unwrap()
    }

    pub fn hs(kid: &str, claims: &Value) -> String {
        sign(
            Algorithm::HS256,
            Some(kid),
            &EncodingKey::from_secret(HS_SECRET.as_bytes()),
            claims,
        )
    }

    pub fn claims(tenant: &str, user: &str) -> Value {
        json!({"tenant_id": tenant, "sub": user, "exp": super::unix_now() + 300})
    }

    /// A token assembled by hand: any header JSON, the claims, any signature text.
    pub fn raw(header: &str, claims: &Value, sig: &str) -> String {
        format!(
            "{}.{}.{sig}",
            B64.encode(header),
            B64.encode(serde_json::to_vec(claims).unwrap())
        )
    }
}

/// authenticate in a transaction; on failure check that nothing is left behind.
fn authenticate(c: &mut Client, token: &str) -> Result<String, String> {
    let mut tx = c.transaction().unwrap();
    let r = tx.query_one("SELECT tenant.authenticate($1)::text", &[&token]);
    match r {
        Ok(row) => {
            let id: String = row.get(0);
            let cur: Option<String> = tx
                .query_one("SELECT tenant.current_tenant()::text", &[])
                .unwrap()
                .get(0);
            tx.commit().unwrap();
            assert_eq!(cur.as_deref(), Some(id.as_str()), "authenticate's tenant");
            Ok(id)
        }
        Err(e) => {
            let code = sqlstate(&e);
            eprintln!("[hostile] authenticate refused: {e:?}");
            drop(tx);
            assert!(
                one_bool(c, "SELECT tenant.current_tenant() IS NULL"),
                "a failed authenticate left a context"
            );
            assert_eq!(count(c), 0, "a failed authenticate left rows visible");
            Err(code)
        }
    }
}

#[test]
fn jwt_attacks_are_refused_and_leave_no_context() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let db = Db::new("hx_jwt");
    let acme = db.tenant_id("acme").to_string();
    {
        let mut su = db.as_role("postgres");
        su.execute(
            "SELECT tenant.add_jwt_key('hs1', 'HS256', $1)",
            &[&jwt::HS_SECRET],
        )
        .unwrap();
        su.execute(
            "SELECT tenant.add_jwt_key('hs_iss', 'HS256', $1, issuer => 'https://id.example', audience => 'api')",
            &[&jwt::ISS_SECRET],
        )
        .unwrap();
        for (kid, alg, file) in [
            ("rs1", "RS256", "rsa_public.pem"),
            ("ps1", "PS256", "rsa_public.pem"),
            ("es1", "ES256", "ec256_public.pem"),
        ] {
            su.execute(
                "SELECT tenant.add_jwt_key($1, $2, $3)",
                &[&kid, &alg, &jwt::key_file(file)],
            )
            .unwrap();
        }
        su.batch_execute("SELECT tenant.add_member('globex', 'gina')")
            .unwrap();
    }
    let now = unix_now();
    let good = jwt::claims("acme", "alice");
    let valid = jwt::hs("hs1", &good);
    let valid_sig = valid.rsplit('.').next().unwrap().to_string();
    let hs_key = EncodingKey::from_secret(jwt::HS_SECRET.as_bytes());
    let rsa_pub = jwt::key_file("rsa_public.pem");
    let ec_pub = jwt::key_file("ec256_public.pem");
    let rsa = EncodingKey::from_rsa_pem(jwt::key_file("rsa_private.pem").as_bytes()).unwrap();
    let ec384 = EncodingKey::from_ec_pem(jwt::key_file("ec384_private.pem").as_bytes()).unwrap();
    let iss_key = EncodingKey::from_secret(jwt::ISS_SECRET.as_bytes());
    let iss =
        |claims: serde_json::Value| jwt::sign(Algorithm::HS256, Some("hs_iss"), &iss_key, &claims);
    let mut jku = Header::new(Algorithm::HS256);
    jku.kid = Some("evil".into());
    jku.jku = Some("https://evil.example/jwks.json".into());
    let cases: Vec<(&str, String, &str)> = vec![
        // V88: alg none, in every spelling, with and without a signature
        (
            "V88: alg none",
            jwt::raw(r#"{"alg":"none","typ":"JWT","kid":"hs1"}"#, &good, ""),
            "MT004",
        ),
        (
            "V88: alg None",
            jwt::raw(r#"{"alg":"None","kid":"hs1"}"#, &good, ""),
            "MT004",
        ),
        (
            "V88: alg NONE",
            jwt::raw(r#"{"alg":"NONE","kid":"hs1"}"#, &good, ""),
            "MT004",
        ),
        (
            "V88: alg nOnE",
            jwt::raw(r#"{"alg":"nOnE","kid":"hs1"}"#, &good, ""),
            "MT004",
        ),
        (
            "V88: alg none with a real signature",
            jwt::raw(r#"{"alg":"none","kid":"hs1"}"#, &good, &valid_sig),
            "MT004",
        ),
        (
            "V88: no alg",
            jwt::raw(r#"{"kid":"hs1"}"#, &good, &valid_sig),
            "MT004",
        ),
        // V89: key confusion: HMAC keyed with a public key's PEM
        (
            "V89: HS256 with the RSA public key, kid rs1",
            jwt::sign(
                Algorithm::HS256,
                Some("rs1"),
                &EncodingKey::from_secret(rsa_pub.as_bytes()),
                &good,
            ),
            "MT004",
        ),
        (
            "V89: HS256 with the RSA public key, kid ps1",
            jwt::sign(
                Algorithm::HS256,
                Some("ps1"),
                &EncodingKey::from_secret(rsa_pub.as_bytes()),
                &good,
            ),
            "MT004",
        ),
        (
            "V89: HS256 with the EC public key, kid es1",
            jwt::sign(
                Algorithm::HS256,
                Some("es1"),
                &EncodingKey::from_secret(ec_pub.as_bytes()),
                &good,
            ),
            "MT004",
        ),
        (
            "V89: HS256 with the RSA public key, no kid",
            jwt::sign(
                Algorithm::HS256,
                None,
                &EncodingKey::from_secret(rsa_pub.as_bytes()),
                &good,
            ),
            "MT004",
        ),
        // V90: unknown kids, a key URL in the header, injection through the kid
        ("V90: unknown kid", jwt::hs("nope", &good), "MT004"),
        ("V90: path in kid", jwt::hs("../hs1", &good), "MT004"),
        (
            "V90: injection in kid",
            jwt::hs("hs1' OR '1'='1", &good),
            "MT004",
        ),
        (
            "V90: jku header with the attacker's key",
            jwt::sign_header(
                jku,
                &EncodingKey::from_secret(b"attacker-secret-0123456789abcdefghijkl"),
                &good,
            ),
            "MT004",
        ),
        // V91: a kid naming a key of another algorithm
        (
            "V91: RS256 signature for the PS256 key",
            jwt::sign(Algorithm::RS256, Some("ps1"), &rsa, &good),
            "MT004",
        ),
        (
            "V91: RS256 for the HS256 key",
            jwt::sign(Algorithm::RS256, Some("hs1"), &rsa, &good),
            "MT004",
        ),
        (
            "V91: HS384 with the HS256 key's secret",
            jwt::sign(Algorithm::HS384, Some("hs1"), &hs_key, &good),
            "MT004",
        ),
        (
            "V91: HS512 with the HS256 key's secret",
            jwt::sign(Algorithm::HS512, Some("hs1"), &hs_key, &good),
            "MT004",
        ),
        (
            "V91: ES384 for the ES256 key",
            jwt::sign(Algorithm::ES384, Some("es1"), &ec384, &good),
            "MT004",
        ),
        // V92: issuer and audience of an issuer-bound key
        (
            "V92: wrong iss",
            iss(
                json!({"tenant_id": "acme", "sub": "a", "exp": now + 300, "iss": "https://evil.example", "aud": "api"}),
            ),
            "MT004",
        ),
        (
            "V92: wrong aud",
            iss(
                json!({"tenant_id": "acme", "sub": "a", "exp": now + 300, "iss": "https://id.example", "aud": "other"}),
            ),
            "MT004",
        ),
        (
            "V92: aud list without api",
            iss(
                json!({"tenant_id": "acme", "sub": "a", "exp": now + 300, "iss": "https://id.example", "aud": ["other", "apix"]}),
            ),
            "MT004",
        ),
        (
            "V92: missing iss and aud",
            iss(json!({"tenant_id": "acme", "sub": "a", "exp": now + 300})),
            "MT004",
        ),
        // V93: expired (beyond the 30 s leeway)
        (
            "V93: exp 120 s ago",
            jwt::hs(
                "hs1",
                &json!({"tenant_id": "acme", "sub": "a", "exp": now - 120}),
            ),
            "MT004",
        ),
        (
            "V93: exp a day ago",
            jwt::hs(
                "hs1",
                &json!({"tenant_id": "acme", "sub": "a", "exp": now - 86400}),
            ),
            "MT004",
        ),
        // V94: not yet valid
        (
            "V94: nbf in 5 minutes",
            jwt::hs(
                "hs1",
                &json!({"tenant_id": "acme", "sub": "a", "exp": now + 600, "nbf": now + 300}),
            ),
            "MT004",
        ),
        // V95: a tenant with members refuses a user that is not one of them
        (
            "V95: not a member",
            jwt::hs("hs1", &jwt::claims("globex", "mallory")),
            "MT005",
        ),
    ];
    let mut api = db.as_role("mt_it_api");
    for (what, token, code) in cases {
        assert_eq!(
            authenticate(&mut api, &token),
            Err(code.to_string()),
            "{what}"
        );
    }
    // control: the untampered token and the member enter their tenants
    assert_eq!(
        authenticate(&mut api, &valid),
        Ok(acme),
        "control: valid token"
    );
    assert!(
        authenticate(&mut api, &jwt::hs("hs1", &jwt::claims("globex", "gina"))).is_ok(),
        "control: member"
    );
}

// ---------------------------------------------------------------------------------------
// Invitations, concurrency
// ---------------------------------------------------------------------------------------

fn invite_in(c: &mut Client, slug: &str, role: &str) -> String {
    let mut tx = c.transaction().unwrap();
    tx.execute("SELECT tenant.set_context($1)", &[&slug])
        .unwrap();
    let t: String = tx
        .query_one("SELECT tenant.invite('new@example.com', $1, 24)", &[&role])
        .unwrap()
        .get(0);
    tx.commit().unwrap();
    t
}

fn accept(c: &mut Client, token: &str, user: &str) -> Result<String, String> {
    code_of(
        c.query_one(
            "SELECT tenant.accept_invitation($1, $2)::text",
            &[&token, &user],
        ),
        "accept_invitation",
    )
    .map(|r| r.get(0))
}

#[test]
fn invitations_cannot_be_replayed_or_redirected() {
    let db = Db::new("hx_invite");
    let other = Db::new("hx_invite_other");
    let acme = db.tenant_id("acme").to_string();
    let mut be = db.as_role("mt_it_backend");
    // V96: an invitation is single use
    let t1 = invite_in(&mut be, "acme", "member");
    assert_eq!(accept(&mut be, &t1, "u1"), Ok(acme.clone()), "first use");
    assert_eq!(
        accept(&mut be, &t1, "u1b"),
        Err("MT004".to_string()),
        "V96: second use"
    );
    // V97: an expired invitation
    let t2 = invite_in(&mut be, "acme", "member");
    su_exec(
        &db,
        "UPDATE tenant.invitations SET expires_at = now() - interval '1 second' WHERE accepted_at IS NULL",
    );
    assert_eq!(
        accept(&mut be, &t2, "u2"),
        Err("MT004".to_string()),
        "V97: expired"
    );
    // V98: acme's invitation redeemed while in globex's context joins acme, never globex
    let t3 = invite_in(&mut be, "acme", "member");
    let joined: String = {
        let mut tx = be.transaction().unwrap();
        tx.execute("SELECT tenant.set_context('globex')", &[])
            .unwrap();
        let j: String = tx
            .query_one("SELECT tenant.accept_invitation($1, 'u3')::text", &[&t3])
            .unwrap()
            .get(0);
        tx.commit().unwrap();
        j
    };
    assert_eq!(joined, acme, "V98: joined tenant");
    assert_eq!(
        texts(
            &mut db.as_role("postgres"),
            "SELECT t.slug FROM tenant.members m JOIN tenant.tenants t ON t.id = m.tenant_id WHERE m.user_id = 'u3'"
        ),
        vec!["acme"],
        "V98: memberships of u3"
    );
    // V99: an invitation of one database is unknown in another
    let t4 = invite_in(&mut be, "acme", "member");
    let mut obe = other.as_role("mt_it_backend");
    assert_eq!(
        accept(&mut obe, &t4, "u4"),
        Err("MT004".to_string()),
        "V99: foreign invitation"
    );
    assert_eq!(
        su_i64(
            &other,
            "SELECT count(*) FROM tenant.members WHERE user_id = 'u4'"
        ),
        0,
        "V99"
    );
    // V100: only tenant_service redeems invitations
    for role in ["mt_it_app", "mt_it_api", "mt_it_evil"] {
        let mut c = db.as_role(role);
        assert_eq!(
            accept(&mut c, &t4, "mallory"),
            Err("42501".to_string()),
            "V100: {role}"
        );
    }
    assert_eq!(
        su_i64(
            &db,
            "SELECT count(*) FROM tenant.members WHERE user_id IN ('u1b', 'u2', 'mallory')"
        ),
        0,
        "V96-V100: no membership from a refused invitation"
    );
}

#[test]
fn consume_is_exact_under_16_concurrent_connections() {
    let db = Db::new("hx_conc");
    plan(
        &db,
        r#"{"name": "hx-conc", "limits": {"calls_limited": 100}}"#,
        &["acme"],
    );
    let acme = db.tenant_id("acme").to_string();
    let tok = token_for(&db, "acme");
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(16));
    // V101: 16 connections race for the last units: exactly the limit is granted
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let name = db.name.clone();
            let tok = tok.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut c = connect(&name, "mt_it_app");
                set_token(&mut c, &tok);
                barrier.wait();
                let mut ok = 0i64;
                for _ in 0..200 {
                    match consume(&mut c, "calls_limited", 1) {
                        Ok(_) => ok += 1,
                        Err(code) => {
                            assert_eq!(code, "MT010", "V101: refusal code");
                            break;
                        }
                    }
                }
                ok
            })
        })
        .collect();
    let total: i64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, 100, "V101: successful consumes");
    assert_eq!(
        su_i64(
            &db,
            &format!("SELECT sum(used)::int8 FROM tenant.usage_counters WHERE tenant_id = '{acme}' AND resource = 'calls_limited'")
        ),
        100,
        "V101: stored counter"
    );
}

// ---------------------------------------------------------------------------------------
// Cross-tenant reads through the extension, RLS side channels and write tricks
// ---------------------------------------------------------------------------------------

#[test]
fn extension_functions_and_tables_do_not_cross_tenants() {
    let db = Db::new("hx_cross");
    plan(&db, r#"{"name": "pa1", "limits": {"seats": 5}}"#, &["acme"]);
    plan(
        &db,
        r#"{"name": "pg1", "limits": {"widgets": 7}}"#,
        &["globex"],
    );
    let acme = db.tenant_id("acme").to_string();
    let globex = db.tenant_id("globex").to_string();
    su_exec(
        &db,
        "SELECT tenant.audit('public.notes');
         SELECT tenant.set_limit_override('acme', 'seats', 9);
         SELECT tenant.set_feature_override('acme', 'beta', true);
         SELECT tenant.add_member('acme', 'alice');
         SELECT tenant.add_member('globex', 'gina');",
    );
    let mut be = db.as_role("mt_it_backend");
    expect_ok(
        &mut be,
        "BEGIN; SELECT tenant.set_context('acme');
         SELECT tenant.create_role('acme_only');
         SELECT tenant.grant_permission('acme_only', 'secret_docs', 'read');
         SELECT tenant.consume('seats', 2);
         SELECT tenant.invite('x@acme.example', 'member', 24);
         INSERT INTO public.notes (body) VALUES ('a3');
         COMMIT;
         BEGIN; SELECT tenant.set_context('globex');
         SELECT tenant.consume('widgets', 1);
         INSERT INTO public.notes (body) VALUES ('g2');
         COMMIT;",
        "setup",
    );
    let mut g = as_tenant(&db, "mt_it_app", "globex");
    // V102: another tenant's audit chain cannot be verified (or probed) from globex
    expect_code(
        &mut g,
        "SELECT tenant.verify_audit('acme')",
        "MT020",
        "V102: verify_audit('acme') as globex",
    );
    expect_code(
        &mut g,
        &format!("SELECT tenant.verify_audit('{acme}')"),
        "MT020",
        "V102: verify_audit(acme's uuid) as globex",
    );
    // V103: usage_report answers for the context's tenant only
    let report: Vec<(String, i64)> = g
        .query(
            "SELECT resource, window_used FROM tenant.usage_report()",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        report,
        vec![("widgets".to_string(), 1)],
        "V103: usage_report"
    );
    // V104: the extension's tables show globex's rows only
    assert_eq!(
        texts(&mut g, "SELECT slug FROM tenant.tenants ORDER BY slug"),
        vec!["globex"],
        "V104: tenants"
    );
    assert_eq!(
        texts(
            &mut g,
            "SELECT user_id FROM tenant.members ORDER BY user_id"
        ),
        vec!["gina"],
        "V104: members"
    );
    for table in [
        "tenant.members",
        "tenant.roles",
        "tenant.permissions",
        "tenant.usage_counters",
        "tenant.usage_daily",
        "tenant.tenant_limits",
        "tenant.tenant_features",
        "tenant.audit_log",
    ] {
        assert_eq!(
            one_i64(
                &mut g,
                &format!(
                    "SELECT count(*) FROM {table} WHERE tenant_id IS DISTINCT FROM '{globex}'"
                )
            ),
            0,
            "V104: {table} shows a row of another tenant"
        );
    }
    assert_eq!(
        one_i64(
            &mut g,
            "SELECT count(*) FROM tenant.roles WHERE name = 'acme_only'"
        ),
        0,
        "V104: acme's custom role"
    );
    assert!(
        !one_bool(&mut g, "SELECT tenant.has_feature('beta')"),
        "V104: acme's feature override leaks into globex"
    );
    // V105: invitations (token hashes) are not readable by application roles at all
    expect_code(
        &mut g,
        "SELECT count(*) FROM tenant.invitations",
        "42501",
        "V105: invitations",
    );
    // V106: management functions are refused to the application role in any context
    for sql in [
        "SELECT tenant.set_plan('acme', 'pg1')",
        "SELECT tenant.set_limit_override('acme', 'seats', 0)",
        "SELECT tenant.set_feature_override('acme', 'beta', false)",
        "SELECT tenant.load_plan('{\"name\": \"pa1\", \"limits\": {\"seats\": 0}}')",
        "SELECT tenant.set_status('acme', 'suspended')",
        "SELECT tenant.add_member('acme', 'mallory')",
        "SELECT tenant.remove_member('acme', 'alice')",
        "SELECT * FROM tenant.invoice('acme')",
        "SELECT tenant.purge_audit(0, 0)",
        "SELECT tenant.run_maintenance()",
        "SELECT tenant.create('evil2', 'Evil')",
    ] {
        expect_code(&mut g, sql, "42501", &format!("V106: {sql}"));
    }
    let mut su = db.as_role("postgres");
    assert!(audit_valid(&mut su, "acme"), "V102-V106: acme's chain");
    assert_eq!(
        su_text(
            &db,
            "SELECT status || '/' || plan FROM tenant.tenants WHERE slug = 'acme'"
        ),
        "active/pa1"
    );
}

#[test]
fn rls_side_channels_and_write_tricks() {
    let db = Db::new("hx_sidech");
    let acme = db.tenant_id("acme").to_string();
    let globex = db.tenant_id("globex").to_string();
    let g1_id = su_i64(&db, "SELECT id FROM public.notes WHERE body = 'g1'");
    let mut owner = db.as_role("mt_it_owner");
    // V107: a permissive policy added by the owner cannot widen the restrictive isolation
    expect_ok(
        &mut owner,
        "CREATE POLICY open_all ON public.notes FOR ALL USING (true) WITH CHECK (true)",
        "permissive policy",
    );
    let mut g = as_tenant(&db, "mt_it_app", "globex");
    assert_eq!(
        bodies(&mut g),
        vec!["g1"],
        "V107: globex under an open policy"
    );
    expect_code(
        &mut g,
        &format!("INSERT INTO public.notes (tenant_id, body) VALUES ('{acme}', 'planted')"),
        "42501",
        "V107: planting under an open policy",
    );
    let mut none = db.as_role("mt_it_app");
    assert_eq!(count(&mut none), 0, "V107: no context under an open policy");
    // V108: a view owned by the table owner (not security_invoker) is held like its owner
    expect_ok(
        &mut owner,
        "CREATE VIEW public.v_notes AS SELECT * FROM public.notes;
         GRANT SELECT ON public.v_notes TO mt_it_app;",
        "definer view",
    );
    assert_eq!(
        one_i64(&mut none, "SELECT count(*) FROM public.v_notes"),
        0,
        "V108: view without context"
    );
    let mut a = as_tenant(&db, "mt_it_app", "acme");
    assert_eq!(
        texts(&mut a, "SELECT body FROM public.v_notes ORDER BY body"),
        vec!["a1", "a2"],
        "V108: view with acme's token"
    );
    // V109: a leaky function in the WHERE clause only ever sees the tenant's own rows
    for c in [&mut a, &mut none] {
        expect_ok(
            c,
            "CREATE TEMP TABLE seen (b text);
             CREATE FUNCTION pg_temp.leak(text) RETURNS boolean LANGUAGE plpgsql
                 AS $f$ BEGIN INSERT INTO pg_temp.seen VALUES ($1); RETURN true; END $f$;",
            "leaky function",
        );
    }
    assert_eq!(
        one_i64(
            &mut none,
            "SELECT count(*) FROM public.notes WHERE pg_temp.leak(body)"
        ),
        0,
        "V109"
    );
    assert_eq!(
        one_i64(&mut none, "SELECT count(*) FROM pg_temp.seen"),
        0,
        "V109: the leaky function saw rows without a context"
    );
    assert_eq!(
        one_i64(
            &mut a,
            "SELECT count(*) FROM public.notes WHERE pg_temp.leak(body)"
        ),
        2,
        "V109"
    );
    assert_eq!(
        texts(&mut a, "SELECT b FROM pg_temp.seen ORDER BY b"),
        vec!["a1", "a2"],
        "V109: what the leaky function saw"
    );
    // V110: an error probe on another tenant's row is never evaluated
    assert_eq!(
        one_i64(
            &mut a,
            "SELECT count(*) FROM public.notes WHERE 1 / (CASE WHEN body = 'g1' THEN 0 ELSE 1 END) = 1"
        ),
        2,
        "V110: division-by-zero probe"
    );
    assert_eq!(
        one_i64(
            &mut a,
            &format!("SELECT count(*) FROM public.notes WHERE 1 / (CASE WHEN id = {g1_id} THEN 0 ELSE 1 END) = 1")
        ),
        2,
        "V110: probe by id"
    );
    // V111: column statistics of an RLS table are hidden from application roles
    su_exec(&db, "ANALYZE public.notes");
    assert_eq!(
        one_i64(
            &mut a,
            "SELECT count(*) FROM pg_stats WHERE schemaname = 'public' AND tablename = 'notes'"
        ),
        0,
        "V111: pg_stats"
    );
    // V112: COPY TO is filtered like SELECT; COPY FROM is refused on an RLS table
    let mut lines: Vec<String> = copy_out(&mut a, "COPY public.notes (body) TO STDOUT")
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    assert_eq!(lines, vec!["a1", "a2"], "V112: COPY TO with acme's token");
    assert_eq!(
        copy_out(&mut none, "COPY public.notes (body) TO STDOUT"),
        "",
        "V112: COPY TO without context"
    );
    assert_eq!(
        copy_in(
            &mut a,
            "COPY public.notes (tenant_id, body) FROM STDIN",
            &format!("{globex}\tplanted\n"),
        ),
        Err("0A000".to_string()),
        "V112: COPY FROM"
    );
    // (a failed COPY FROM leaves the client connection unusable: take a fresh one)
    let mut a = as_tenant(&db, "mt_it_app", "acme");
    // V113: upserts aimed at another tenant's row
    expect_code(
        &mut a,
        &format!("INSERT INTO public.notes (id, body) VALUES ({g1_id}, 'x') ON CONFLICT (id) DO UPDATE SET body = 'pwned'"),
        "42501",
        "V113: ON CONFLICT DO UPDATE",
    );
    let n = a
        .execute(
            &format!("INSERT INTO public.notes (id, body) VALUES ({g1_id}, 'x') ON CONFLICT (id) DO NOTHING"),
            &[],
        )
        .unwrap();
    assert_eq!(n, 0, "V113: ON CONFLICT DO NOTHING changed nothing");
    // V114: writable CTEs reach no row of another tenant
    for sql in [
        "WITH x AS (UPDATE public.notes SET body = 'pwned' WHERE body = 'g1' RETURNING 1) SELECT count(*) FROM x",
        "WITH x AS (DELETE FROM public.notes WHERE body = 'g1' RETURNING 1) SELECT count(*) FROM x",
        "WITH x AS (UPDATE public.notes SET tenant_id = tenant_id WHERE body = 'g1' RETURNING 1) SELECT count(*) FROM x",
    ] {
        assert_eq!(one_i64(&mut a, sql), 0, "V114: {sql}");
    }
    // V115: TRUNCATE (not subject to RLS) is not granted to the application
    expect_code(&mut a, "TRUNCATE public.notes", "42501", "V115: TRUNCATE");
    assert_eq!(
        db.all_bodies(),
        vec!["a1", "a2", "g1"],
        "V107-V115: rows changed"
    );
    // V116: the attacker cannot write the extension's tables directly
    let mut evil = as_tenant(&db, "mt_it_evil", "acme");
    for sql in [
        "UPDATE tenant.tenants SET status = 'active'".to_string(),
        "INSERT INTO tenant.tenants (slug, name) VALUES ('evil3', 'Evil')".to_string(),
        "INSERT INTO tenant.audit_log (chain, seq, operation, db_role, txid, at, hash) VALUES ('x', 1, 'X', 'x', 1, now(), '')".to_string(),
        "DELETE FROM tenant.audit_heads".to_string(),
        "DELETE FROM tenant.usage_counters".to_string(),
        format!("INSERT INTO tenant.usage_counters (tenant_id, resource, window_start, window_end, used) VALUES ('{globex}', 'seats', now(), now(), 0)"),
        "SELECT key FROM tenant.secret".to_string(),
        "UPDATE tenant.secret SET key = key".to_string(),
        "SELECT * FROM tenant.jwt_keys".to_string(),
        "UPDATE tenant.isolated_tables SET tenant_column = 'body'".to_string(),
        "DELETE FROM tenant.isolated_tables".to_string(),
        "DELETE FROM tenant.members".to_string(),
        format!("INSERT INTO tenant.permissions (tenant_id, role, resource, action) VALUES ('{acme}', 'viewer', '*', '*')"),
        "UPDATE tenant.plan_limits SET limit_value = -1".to_string(),
        "UPDATE tenant.roles SET inherits = '{owner}'".to_string(),
        "DELETE FROM tenant.invitations".to_string(),
    ] {
        expect_code(&mut evil, &sql, "42501", &format!("V116: {sql}"));
    }
    // V117: nor change the isolation of public.notes or the schema tenant by DDL
    let policy: String = su_text(
        &db,
        "SELECT polname::text FROM pg_policy WHERE polrelid = 'public.notes'::regclass AND polname <> 'open_all' ORDER BY polname LIMIT 1",
    );
    for sql in [
        "SELECT * FROM public.notes".to_string(),
        "ALTER TABLE public.notes DISABLE ROW LEVEL SECURITY".to_string(),
        "ALTER TABLE public.notes NO FORCE ROW LEVEL SECURITY".to_string(),
        "ALTER TABLE public.notes ALTER COLUMN tenant_id DROP DEFAULT".to_string(),
        "CREATE POLICY p ON public.notes USING (true)".to_string(),
        format!("DROP POLICY {} ON public.notes", qi(&policy)),
        "CREATE TRIGGER t BEFORE INSERT ON public.notes FOR EACH ROW EXECUTE FUNCTION tenant._audit_trigger()".to_string(),
        "CREATE TABLE tenant.x (a int)".to_string(),
        "CREATE FUNCTION tenant.x() RETURNS int LANGUAGE sql AS 'SELECT 1'".to_string(),
        "CREATE OR REPLACE FUNCTION tenant.current_tenant() RETURNS uuid LANGUAGE sql AS 'SELECT NULL::uuid'".to_string(),
        "ALTER FUNCTION tenant.current_tenant() OWNER TO mt_it_evil".to_string(),
        "ALTER TABLE tenant.tenants DISABLE ROW LEVEL SECURITY".to_string(),
        "DROP EXTENSION multitenant CASCADE".to_string(),
    ] {
        expect_code(&mut evil, &sql, "42501", &format!("V117: {sql}"));
    }
    assert_eq!(
        db.all_bodies(),
        vec!["a1", "a2", "g1"],
        "V116/V117: rows changed"
    );
    assert_eq!(
        rls_flags(&db, "public.notes"),
        (true, true),
        "V117: notes' RLS flags"
    );
    assert_eq!(
        count(&mut db.as_role("mt_it_app")),
        0,
        "V117: still fail closed"
    );
}
