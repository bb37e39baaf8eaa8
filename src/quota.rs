//! Plans, feature gating and quotas: `has_feature`, `require_feature`, `consume`, `check`,
//! `limit_rows`, plan loading and overrides. Reports (usage, invoice, maintenance) are SQL
//! in sql/finalize.sql.

use crate::backend;
use crate::context::verified;
use crate::ddl::{qualified, quote_ident, quote_literal};
use crate::error::{boundary, Code, MtError, MtResult};
use crate::plans::{parse_plan, remaining, validate_resource, window, Limit, Period};
use pgrx::prelude::*;

/// The tenant of a writable context (MT001 without, MT003 read-only).
fn writable_tenant() -> MtResult<uuid::Uuid> {
    match verified(|c| (c.t, c.ro)) {
        Ok((t, false)) => Ok(t),
        Ok((_, true)) => Err(MtError::new(
            Code::TenantNotActive,
            "tenant is read-only (suspended)",
        )),
        Err(crate::token::TokenError::Inactive) => {
            Err(MtError::new(Code::TenantNotActive, "tenant is not active"))
        }
        Err(_) => Err(MtError::no_context()),
    }
}

fn limit_for(tenant: uuid::Uuid, resource: &str) -> MtResult<Limit> {
    validate_resource(resource)?;
    backend::with_entitlements(tenant, |e| e.limits.get(resource).cloned())?.ok_or_else(|| {
        MtError::invalid(format!(
            "resource \"{resource}\" has no limit in this tenant's plan"
        ))
        .hint(
            "Add it to the plan (tenant.load_plan) or as an override (tenant.set_limit_override).",
        )
    })
}

/// The hot path: the window's counter exists, add if it fits.
const UPDATE: &str = "UPDATE tenant.usage_counters SET used = used + $5 \
     WHERE tenant_id = $1 AND resource = $2 AND window_start = to_timestamp($3) \
       AND ($6 < 0 OR used <= $6 - $5) AND used <= 9223372036854775807 - $5 \
     RETURNING used";

/// The first use of a window (or a limit that did not fit): create or add, if it fits.
const UPSERT: &str =
    "INSERT INTO tenant.usage_counters AS c (tenant_id, resource, window_start, window_end, used) \
     VALUES ($1, $2, to_timestamp($3), to_timestamp($4), $5) \
     ON CONFLICT (tenant_id, resource, window_start) DO UPDATE SET used = c.used + EXCLUDED.used \
     WHERE ($6 < 0 OR c.used <= $6 - EXCLUDED.used) AND c.used <= 9223372036854775807 - EXCLUDED.used \
     RETURNING c.used";

/// Atomically add `amount` to the tenant's counter of the current window unless that would
/// pass `hard_limit` (-1: no check). The row lock of the counter serializes concurrent
/// consumers, so the total never passes the limit. Returns the new total, or None when the
/// amount did not fit (nothing was consumed).
fn add_usage(
    tenant: uuid::Uuid,
    resource: &str,
    period: Period,
    amount: i64,
    hard_limit: i64,
) -> MtResult<Option<i64>> {
    use pgrx::pg_sys::PgBuiltInOids as O;
    let (ws, we) = window(period, backend::now_unix());
    let types = [
        O::UUIDOID,
        O::TEXTOID,
        O::FLOAT8OID,
        O::FLOAT8OID,
        O::INT8OID,
        O::INT8OID,
    ];
    backend::as_owner(|| {
        for sql in [UPDATE, UPSERT] {
            let args = [
                backend::pg_uuid(tenant).into(),
                resource.into(),
                (ws as f64).into(),
                (we as f64).into(),
                amount.into(),
                hard_limit.into(),
            ];
            let used =
                backend::with_prepared(sql, &types, &args, |t| match t.into_iter().next() {
                    Some(row) => Ok(row.get::<i64>(1)?),
                    None => Ok(None),
                })?;
            if used.is_some() {
                return Ok(used);
            }
        }
        Ok(None)
    })
}

fn current_used(tenant: uuid::Uuid, resource: &str, period: Period) -> MtResult<i64> {
    use pgrx::pg_sys::PgBuiltInOids as O;
    let (ws, _) = window(period, backend::now_unix());
    backend::as_owner(|| {
        backend::with_prepared_read(
            "SELECT used FROM tenant.usage_counters WHERE tenant_id = $1 AND resource = $2 AND window_start = to_timestamp($3)",
            &[O::UUIDOID, O::TEXTOID, O::FLOAT8OID],
            &[backend::pg_uuid(tenant).into(), resource.into(), (ws as f64).into()],
            |t| Ok(t.into_iter().next().map(|r| r.get::<i64>(1)).transpose()?.flatten().unwrap_or(0)),
        )
    })
}

fn exceeded(resource: &str, limit: &Limit, used: i64, amount: i64) -> MtError {
    let (_, reset) = window(limit.period, backend::now_unix());
    let reset = if limit.period == Period::None {
        "never (not a windowed limit)".to_string()
    } else {
        format!("unix time {reset}")
    };
    MtError::new(
        Code::LimitExceeded,
        format!("plan limit exceeded for \"{resource}\""),
    )
    .detail(format!(
        "resource={resource} limit={} used={used} requested={amount} period={} resets={reset}",
        limit.limit,
        limit.period.as_str()
    ))
    .hint("Upgrade the plan, wait for the window to reset, or ask for an override.")
}

fn consume_for(
    tenant: uuid::Uuid,
    resource: &str,
    amount: i64,
    period_override: Option<Period>,
) -> MtResult<Option<i64>> {
    if amount <= 0 {
        return Err(MtError::invalid("amount must be positive"));
    }
    let limit = limit_for(tenant, resource)?;
    let period = period_override.unwrap_or(limit.period);
    let hard = if limit.hard() { limit.limit } else { -1 };
    if limit.hard() && amount > limit.limit {
        let used = current_used(tenant, resource, period)?;
        return Err(exceeded(resource, &limit, used, amount));
    }
    match add_usage(tenant, resource, period, amount, hard)? {
        Some(used) => Ok(remaining(&limit, used)),
        None => {
            let used = current_used(tenant, resource, period)?;
            Err(exceeded(resource, &limit, used, amount))
        }
    }
}

/// Consume `amount` of `resource` for the current tenant in the current window; returns the
/// remaining allowance (NULL when unlimited). Raises MT010 and consumes nothing when a hard
/// limit would be passed.
#[pg_extern(volatile, parallel_unsafe)]
fn consume(resource: &str, amount: default!(i64, 1)) -> Option<i64> {
    boundary(|| writable_tenant().and_then(|t| consume_for(t, resource, amount, None)))
}

fn check_impl(resource: &str, amount: i64) -> MtResult<bool> {
    if amount <= 0 {
        return Err(MtError::invalid("amount must be positive"));
    }
    let tenant = match verified(|c| c.t) {
        Ok(t) => t,
        Err(_) => return Err(MtError::no_context()),
    };
    let limit = limit_for(tenant, resource)?;
    if !limit.hard() {
        return Ok(true);
    }
    // checked: a huge amount simply does not fit
    Ok(current_used(tenant, resource, limit.period)?
        .checked_add(amount)
        .is_some_and(|total| total <= limit.limit))
}

/// Would `amount` of `resource` fit the current tenant's limit now? Consumes nothing.
#[pg_extern(volatile, parallel_restricted)]
fn check(resource: &str, amount: default!(i64, 1)) -> bool {
    boundary(|| check_impl(resource, amount))
}

/// Does the current tenant's plan (with overrides) include `feature`? False without context.
#[pg_extern(stable, parallel_restricted)]
fn has_feature(feature: &str) -> bool {
    let Ok(t) = verified(|c| c.t) else {
        return false;
    };
    boundary(|| backend::with_entitlements(t, |e| e.features.contains(feature)))
}

fn require_feature_impl(feature: &str) -> MtResult<bool> {
    let t = verified(|c| c.t).map_err(|_| MtError::no_context())?;
    let (has, plan) =
        backend::with_entitlements(t, |e| (e.features.contains(feature), e.plan.clone()))?;
    if has {
        Ok(true)
    } else {
        Err(MtError::new(
            Code::FeatureNotInPlan,
            format!("feature \"{feature}\" is not in plan \"{plan}\""),
        )
        .hint("Upgrade the plan or add a feature override (tenant.set_feature_override)."))
    }
}

/// Raise MT011 unless the current tenant has `feature`; returns true (usable in CHECKs and
/// policies: `USING (tenant.require_feature('audit_logs'))`).
#[pg_extern(stable, parallel_restricted)]
fn require_feature(feature: &str) -> bool {
    boundary(|| require_feature_impl(feature))
}

/// What `limit_rows` registered for a table: the resource its rows count against and the
/// tenant column. Cached per relation until its relcache entry changes (attaching or
/// dropping the trigger is DDL on the table, which sends that invalidation).
#[derive(Clone)]
struct RowLimit {
    resource: String,
    column: String,
}

thread_local! {
    static ROW_LIMITS: std::cell::RefCell<std::collections::HashMap<pgrx::pg_sys::Oid, Option<RowLimit>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

pub fn forget_relation(relid: pgrx::pg_sys::Oid) {
    ROW_LIMITS.with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            if relid == pgrx::pg_sys::InvalidOid {
                m.clear();
            } else {
                m.remove(&relid);
            }
        }
    });
}

/// The registration of `relid` or of the partitioned table it is a partition of (row
/// triggers on a partitioned table fire with the partition's oid).
fn row_limit_of(relid: pgrx::pg_sys::Oid) -> MtResult<Option<RowLimit>> {
    if let Some(hit) = ROW_LIMITS.with(|m| m.borrow().get(&relid).cloned()) {
        return Ok(hit);
    }
    let found = backend::as_owner(|| {
        Spi::connect(|c| {
            let t = c.select(
                "SELECT r.resource, r.tenant_column::text FROM tenant.row_limits r \
                 WHERE r.relid::oid = $1 \
                    OR r.relid::oid IN (SELECT pg_catalog.pg_partition_ancestors($1)) \
                 ORDER BY r.relid::oid = $1 DESC LIMIT 1",
                None,
                &[relid.into()],
            )?;
            match t.into_iter().next() {
                Some(r) => Ok(Some(RowLimit {
                    resource: r.get::<String>(1)?.unwrap_or_default(),
                    column: r.get::<String>(2)?.unwrap_or_default(),
                })),
                None => Ok::<_, MtError>(None),
            }
        })
    })?;
    ROW_LIMITS.with(|m| m.borrow_mut().insert(relid, found.clone()));
    Ok(found)
}

/// May the current role count or log a row of `row_tenant`? Only under that tenant's own
/// context, unless the role bypasses row level security anyway (superusers, BYPASSRLS:
/// trusted by definition). On an isolated table the policies already ensure it.
pub(crate) fn writes_for(row_tenant: uuid::Uuid) -> bool {
    if verified(|c| c.t).ok() == Some(row_tenant) {
        return true;
    }
    // SAFETY: plain catalog lookups for the current user, no pointers involved
    unsafe {
        pgrx::pg_sys::superuser()
            || pgrx::pg_sys::has_bypassrls_privilege(pgrx::pg_sys::GetUserId())
    }
}

fn limit_rows_trigger_impl(t: &PgTrigger<'_>) -> MtResult<()> {
    let relid = t.relid().map_err(|e| MtError::invalid(e.to_string()))?;
    let Some(reg) = row_limit_of(relid)? else {
        return Err(
            MtError::invalid("table is not registered with tenant.limit_rows")
                .hint("Attach the trigger with tenant.limit_rows(...), never by hand."),
        );
    };
    let (tuple, delta) = match t.op().map_err(|e| MtError::invalid(e.to_string()))? {
        PgTriggerOperation::Insert => (t.new(), 1i64),
        PgTriggerOperation::Delete => (t.old(), -1i64),
        _ => return Err(MtError::invalid("limit_rows counts INSERT and DELETE only")),
    };
    let tuple = tuple.ok_or_else(|| MtError::invalid("trigger fired without a row"))?;
    // the column is read as a uuid datum: no cast, operator or function of the table's
    // owner is evaluated
    let tenant = tuple
        .get_by_name::<pgrx::Uuid>(&reg.column)
        .map_err(|e| MtError::invalid(format!("tenant column \"{}\": {e}", reg.column)))?
        .map(backend::from_pg_uuid)
        .ok_or_else(MtError::no_context)?;
    if delta > 0 && !writes_for(tenant) {
        return Err(MtError::new(
            Code::TenantMismatch,
            "row belongs to another tenant than the context",
        )
        .detail(format!("row tenant {tenant}"))
        .hint("Insert rows of a tenant under that tenant's context."));
    }
    count_row(tenant, &reg.resource, delta)
}

/// Count one row in (`delta` > 0: consumes a slot of the row-count limit, MT010 when full)
/// or out (frees it) for `tenant`.
pub(crate) fn count_row(tenant: uuid::Uuid, resource: &str, delta: i64) -> MtResult<()> {
    if delta > 0 {
        return consume_for(tenant, resource, 1, Some(Period::None)).map(|_| ());
    }
    let (ws, _) = window(Period::None, 0);
    backend::as_owner(|| {
        backend::with_prepared(
            "UPDATE tenant.usage_counters SET used = greatest(used - 1, 0) \
             WHERE tenant_id = $1 AND resource = $2 AND window_start = to_timestamp($3)",
            &[
                pgrx::pg_sys::PgBuiltInOids::UUIDOID,
                pgrx::pg_sys::PgBuiltInOids::TEXTOID,
                pgrx::pg_sys::PgBuiltInOids::FLOAT8OID,
            ],
            &[
                backend::pg_uuid(tenant).into(),
                resource.into(),
                (ws as f64).into(),
            ],
            |_| Ok(()),
        )
    })
}

/// Row trigger (BEFORE INSERT OR DELETE) that `tenant.limit_rows` attaches. It takes no
/// arguments: what to count is read from `tenant.row_limits`, so attaching it by hand to an
/// unregistered table only raises.
#[pg_trigger]
fn _limit_rows_trigger<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, pgrx::PgTriggerError> {
    boundary(|| limit_rows_trigger_impl(trigger));
    Ok(match trigger.op()? {
        PgTriggerOperation::Delete => trigger.old(),
        _ => trigger.new(),
    })
}

/// `legacy_trigger_args`: attach the trigger the way 0.1.0 did, with the resource and column
/// as arguments, for a database whose `_limit_rows_trigger` is still 0.1.0's (see compat.rs).
pub(crate) fn limit_rows_impl(
    relid: pgrx::pg_sys::Oid,
    resource: &str,
    column: &str,
    legacy_trigger_args: bool,
) -> MtResult<()> {
    backend::require_any_role(&[c"tenant_admin"], "limit rows")?;
    validate_resource(resource)?;
    let info = crate::isolation::check_table(relid, "limit rows of")?;
    let name = qualified(&info.schema, &info.table);
    crate::isolation::tenant_column(relid, &name, column)?;
    // every partition is counted by the seed below and fires the (cloned) trigger
    for member in crate::isolation::descendants(relid)? {
        crate::isolation::check_table(member, "limit rows of")?;
    }
    let taken = backend::read_one::<String>(
        "SELECT relid::text FROM tenant.row_limits WHERE resource = $1 AND relid::oid <> $2",
        &[resource.into(), relid.into()],
    )?;
    if let Some(other) = taken {
        return Err(MtError::invalid(format!(
            "resource \"{resource}\" already counts the rows of {other}"
        ))
        .hint("Use one resource per table, or tenant.unlimit_rows(...) the other table first."));
    }
    // DDL on the table runs as the caller (its owner); the trigger has no arguments (the
    // legacy ones are quoted literals, read with standard_conforming_strings pinned on)
    let args = if legacy_trigger_args {
        format!("{}, {}", quote_literal(resource), quote_literal(column))
    } else {
        String::new()
    };
    crate::isolation::run_all(&[
        format!("DROP TRIGGER IF EXISTS \"mt_limit_rows\" ON {name}"),
        format!(
            "CREATE TRIGGER \"mt_limit_rows\" BEFORE INSERT OR DELETE ON {name} FOR EACH ROW \
             EXECUTE FUNCTION \"tenant\".\"_limit_rows_trigger\"({args})"
        ),
        // existing rows count from the start; the table lock keeps the count exact
        format!("LOCK TABLE {name} IN SHARE ROW EXCLUSIVE MODE"),
    ])?;
    let (ws, we) = window(Period::None, 0);
    // The seed reads the table as the extension owner (every tenant's rows, past RLS). Its
    // text holds only identifiers from the catalog, quoted (double quotes are not affected by
    // standard_conforming_strings, which as_owner pins anyway), the tenant column is checked
    // to be of type uuid, so grouping uses the built-in uuid operators, and the relation and
    // all its partitions are persistent ordinary tables the caller owns.
    let col = quote_ident(column);
    let seed = format!(
        "INSERT INTO tenant.usage_counters (tenant_id, resource, window_start, window_end, used) \
         SELECT {col}, $1, to_timestamp($2), to_timestamp($3), count(*) FROM {name} WHERE {col} IS NOT NULL GROUP BY {col} \
         ON CONFLICT (tenant_id, resource, window_start) DO UPDATE SET used = EXCLUDED.used"
    );
    backend::as_owner(|| {
        Spi::connect_mut(|c| {
            c.update(
                "DELETE FROM tenant.usage_counters WHERE resource = $1 AND window_start = to_timestamp($2)",
                None,
                &[resource.into(), (ws as f64).into()],
            )?;
            c.update(
                seed.as_str(),
                None,
                &[resource.into(), (ws as f64).into(), (we as f64).into()],
            )?;
            c.update(
                "INSERT INTO tenant.row_limits (relid, resource, tenant_column) VALUES ($1::regclass, $2, $3) \
                 ON CONFLICT (relid) DO UPDATE SET resource = EXCLUDED.resource, tenant_column = EXCLUDED.tenant_column",
                None,
                &[relid.into(), resource.into(), column.into()],
            )?;
            Ok(())
        })
    })?;
    forget_relation(pgrx::pg_sys::InvalidOid);
    Ok(())
}

/// `tenant.limit_rows(tbl, resource, tenant_column)`: count each tenant's rows of `tbl`
/// against the limit of `resource`; an INSERT past it raises MT010. For tenant_admin
/// members who own the table.
#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION tenant.limit_rows(tbl regclass, resource text, tenant_column text DEFAULT 'tenant_id') \
           RETURNS void VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn limit_rows(tbl: pgrx::pg_sys::Oid, resource: &str, tenant_column: &str) {
    boundary(|| backend::quietly(|| limit_rows_impl(tbl, resource, tenant_column, false)))
}

pub(crate) fn unlimit_rows_impl(relid: pgrx::pg_sys::Oid) -> MtResult<bool> {
    backend::require_any_role(&[c"tenant_admin"], "unlimit rows")?;
    let done = crate::isolation::detach_triggers(
        relid,
        &["mt_limit_rows"],
        "row_limits",
        "unlimit rows of",
    )?;
    forget_relation(pgrx::pg_sys::InvalidOid);
    Ok(done)
}

/// `tenant.unlimit_rows(tbl)`: stop counting `tbl`'s rows.
#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION tenant.unlimit_rows(tbl regclass) \
           RETURNS boolean VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn unlimit_rows(tbl: pgrx::pg_sys::Oid) -> bool {
    boundary(|| backend::quietly(|| unlimit_rows_impl(tbl)))
}

fn load_plan_impl(doc: &serde_json::Value) -> MtResult<String> {
    backend::require_any_role(&[c"tenant_admin"], "define plans")?;
    let p = parse_plan(doc)?;
    backend::as_owner(|| {
        Spi::connect_mut(|c| {
            c.update(
                "INSERT INTO tenant.plans (name, price, currency, billing_cycle, features, restrictions, definition, updated_at) \
                 VALUES ($1, $2::numeric, $3, $4, $5, $6, $7, now()) \
                 ON CONFLICT (name) DO UPDATE SET price = EXCLUDED.price, currency = EXCLUDED.currency, \
                   billing_cycle = EXCLUDED.billing_cycle, features = EXCLUDED.features, \
                   restrictions = EXCLUDED.restrictions, definition = EXCLUDED.definition, updated_at = now()",
                None,
                &[
                    p.name.as_str().into(),
                    p.price.into(),
                    p.currency.as_str().into(),
                    p.billing_cycle.as_str().into(),
                    p.features.clone().into(),
                    p.restrictions.clone().into(),
                    pgrx::JsonB(doc.clone()).into(),
                ],
            )?;
            c.update(
                "DELETE FROM tenant.plan_limits WHERE plan = $1",
                None,
                &[p.name.as_str().into()],
            )?;
            for l in &p.limits {
                c.update(
                    "INSERT INTO tenant.plan_limits (plan, resource, limit_value, period, overage_price) \
                     VALUES ($1, $2, $3, $4, $5::numeric)",
                    None,
                    &[
                        p.name.as_str().into(),
                        l.resource.as_str().into(),
                        l.limit.into(),
                        l.period.as_str().into(),
                        l.overage_price.into(),
                    ],
                )?;
            }
            Ok(p.name.clone())
        })
    })
}

/// Create or replace a plan from a JSON document (see docs/reference.md). For tenant_admin.
#[pg_extern(volatile, parallel_unsafe)]
fn load_plan(definition: pgrx::JsonB) -> String {
    boundary(|| load_plan_impl(&definition.0))
}

fn set_plan_impl(tenant: &str, plan: &str) -> MtResult<()> {
    backend::require_any_role(
        &[c"tenant_service", c"tenant_admin"],
        "change a tenant's plan",
    )?;
    let row = backend::lookup_tenant(tenant)?;
    backend::as_owner(|| {
        let exists = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM tenant.plans WHERE name = $1)",
            &[plan.into()],
        )?
        .unwrap_or(false);
        if !exists {
            return Err(MtError::invalid(format!("plan \"{plan}\" does not exist"))
                .hint("Define it with tenant.load_plan(...)."));
        }
        let from = Spi::get_one_with_args::<String>(
            "UPDATE tenant.tenants t SET plan = $2, updated_at = now() FROM tenant.tenants o \
             WHERE t.id = $1 AND o.id = t.id RETURNING o.plan",
            &[backend::pg_uuid(row.id).into(), plan.into()],
        )?;
        crate::audit::event(
            Some(row.id),
            "tenant.plan_changed",
            serde_json::json!({"from": from, "to": plan}),
        )?;
        Ok(())
    })
}

/// Move a tenant to another plan; the next check uses it, in every session.
#[pg_extern(volatile, parallel_unsafe)]
fn set_plan(tenant: &str, plan: &str) {
    boundary(|| set_plan_impl(tenant, plan))
}

fn set_limit_override_impl(
    tenant: &str,
    resource: &str,
    limit: i64,
    period: &str,
    overage_price: Option<f64>,
) -> MtResult<()> {
    backend::require_any_role(&[c"tenant_admin"], "override limits")?;
    validate_resource(resource)?;
    let period = Period::parse(period)?;
    if limit < -1 {
        return Err(MtError::invalid("limit must be >= -1 (-1 = unlimited)"));
    }
    if overage_price.is_some_and(|p| p < 0.0 || p.is_nan()) {
        return Err(MtError::invalid("overage_price must be >= 0"));
    }
    let row = backend::lookup_tenant(tenant)?;
    backend::as_owner(|| {
        Spi::run_with_args(
            "INSERT INTO tenant.tenant_limits (tenant_id, resource, limit_value, period, overage_price) \
             VALUES ($1, $2, $3, $4, $5::numeric) \
             ON CONFLICT (tenant_id, resource) DO UPDATE SET limit_value = EXCLUDED.limit_value, \
               period = EXCLUDED.period, overage_price = EXCLUDED.overage_price",
            &[backend::pg_uuid(row.id).into(), resource.into(), limit.into(), period.as_str().into(), overage_price.into()],
        )?;
        Ok(())
    })
}

/// Give one tenant its own limit for a resource (a custom deal); -1 = unlimited.
#[pg_extern(volatile, parallel_unsafe)]
fn set_limit_override(
    tenant: &str,
    resource: &str,
    limit_value: i64,
    period: default!(&str, "'none'"),
    overage_price: default!(Option<f64>, "NULL"),
) {
    boundary(|| set_limit_override_impl(tenant, resource, limit_value, period, overage_price))
}

fn set_feature_override_impl(tenant: &str, feature: &str, enabled: Option<bool>) -> MtResult<()> {
    backend::require_any_role(&[c"tenant_admin"], "override features")?;
    validate_resource(feature)
        .map_err(|_| MtError::invalid(format!("invalid feature name \"{feature}\"")))?;
    let row = backend::lookup_tenant(tenant)?;
    backend::as_owner(|| {
        match enabled {
            Some(on) => Spi::run_with_args(
                "INSERT INTO tenant.tenant_features (tenant_id, feature, enabled) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant_id, feature) DO UPDATE SET enabled = EXCLUDED.enabled",
                &[backend::pg_uuid(row.id).into(), feature.into(), on.into()],
            )?,
            None => Spi::run_with_args(
                "DELETE FROM tenant.tenant_features WHERE tenant_id = $1 AND feature = $2",
                &[backend::pg_uuid(row.id).into(), feature.into()],
            )?,
        }
        Ok(())
    })
}

/// Grant (true) or withhold (false) a feature for one tenant regardless of its plan;
/// NULL removes the override.
#[pg_extern(volatile, parallel_unsafe)]
fn set_feature_override(tenant: &str, feature: &str, enabled: Option<bool>) {
    boundary(|| set_feature_override_impl(tenant, feature, enabled))
}
