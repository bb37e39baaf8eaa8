//! Fixtures of plans and quotas and of the audit trail, shared by several topics.

use super::{code_of, Db};
use postgres::Client;

/// Load a plan (JSON passed as a parameter) and move `tenants` to it, as the superuser.
pub fn plan(db: &Db, doc: &str, tenants: &[&str]) {
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

/// The plans `free` (acme and globex are on it) and `enterprise`.
pub fn load_plans(db: &Db) {
    plan(
        db,
        r#"{"name": "free", "price": 0, "currency": "USD",
            "limits": {"api_calls_per_month": 5000, "users": 20, "campaigns": 1,
                       "requests_per_minute": 100, "missions_per_month": 10},
            "features": ["basic_analytics"], "restrictions": ["no_custom_branding"],
            "overage": {"missions": 0.5}}"#,
        &["acme", "globex"],
    );
    plan(
        db,
        r#"{"name": "enterprise", "price": 499, "currency": "USD",
            "limits": {"api_calls_per_month": -1, "users": -1, "campaigns": -1},
            "features": ["basic_analytics", "sso_integration", "audit_logs"]}"#,
        &[],
    );
}

/// `tenant.consume(resource, amount)` in the connection's context: what is left, or the
/// SQLSTATE.
pub fn consume(c: &mut Client, resource: &str, amount: i64) -> Result<Option<i64>, String> {
    code_of(
        c.query_one("SELECT tenant.consume($1, $2)", &[&resource, &amount]),
        "consume",
    )
    .map(|r| r.get(0))
}

/// public.notes audited (ignoring the column `secret`, which it then gets).
pub fn audited(db: &Db) {
    // audit is for tenant_admin members who own the table: the superuser here
    db.as_role("postgres")
        .batch_execute("SELECT tenant.audit('public.notes', ignore_columns => ARRAY['secret'])")
        .unwrap();
    let mut owner = db.as_role("mt_it_owner");
    owner
        .batch_execute("ALTER TABLE public.notes ADD COLUMN secret text")
        .unwrap();
}

/// `tenant.verify_audit(tenant)`: the verdict (`valid`, `entries`, `entry_id`, ...).
pub fn verify(c: &mut Client, tenant: Option<&str>) -> serde_json::Value {
    let s: String = c
        .query_one("SELECT tenant.verify_audit($1)::text", &[&tenant])
        .unwrap_or_else(|e| panic!("verify_audit({tenant:?}): {e:?}"))
        .get(0);
    serde_json::from_str(&s).unwrap()
}

/// Whether the audit chain of `slug` verifies.
#[track_caller]
pub fn audit_valid(c: &mut Client, slug: &str) -> bool {
    verify(c, Some(slug))["valid"] == true
}
