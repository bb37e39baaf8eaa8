//! Quotas and features (SQL): `has_feature`, `require_feature`, `consume`, `check`,
//! `limit_rows` and its trigger. Plan administration is api/plans.rs; reports (usage,
//! invoice, maintenance) are SQL in sql/finalize.sql.

use crate::core::ddl::{qualified, quote_ident, quote_literal};
use crate::core::error::{Code, MtError, MtResult};
use crate::core::names;
use crate::core::plans::in_base_unit;
use crate::core::plans::{shard_limit, window, Period, ShardLimit};
use crate::pg::catalog::{check_table, descendants, run_all, tenant_column};
use crate::pg::convert::from_pg_uuid;
use crate::pg::owner::{as_owner, pinned};
use crate::pg::raise::boundary;
use crate::pg::raise::required;
use crate::pg::roles::require_any_role;
use crate::pg::spi::read_one;
use crate::state::context::{verified, writable_tenant, writes_for};
use crate::state::plans::with_entitlements;
use crate::state::quota::{
    consume_key, count_row, count_shard_row, current_used, limit_for, release_key, row_limit_of,
    set_usage_key, RowLimit,
};
use crate::state::registry::{detach_triggers, trigger_schema};
use pgrx::pg_sys;
use pgrx::prelude::*;

/// Consume `amount` of `resource` for the current tenant in the current window; returns the
/// remaining allowance (NULL when unlimited). Raises MT010 and consumes nothing when a hard
/// limit would be passed. With `key` (an endpoint), the key has its own counter under the
/// same limit. A size (`storage_mb`) is counted in bytes (`storage_bytes`).
#[pg_extern(volatile, parallel_unsafe, name = "consume")]
fn consume_v2(
    resource: Option<&str>,
    amount: default!(Option<i64>, 1),
    key: default!(Option<&str>, "NULL"),
) -> Option<i64> {
    boundary(|| {
        let (resource, amount) =
            in_base_unit(required("resource", resource)?, required("amount", amount)?)?;
        let t = writable_tenant()?;
        consume_key(t, &resource, key.unwrap_or(""), amount, None)
    })
}

/// Give back `amount` of `resource` (a cancelled job, a freed seat) in the current window,
/// never below 0; returns the remaining allowance (NULL when unlimited).
#[pg_extern(volatile, parallel_unsafe)]
fn release(
    resource: Option<&str>,
    amount: default!(Option<i64>, 1),
    key: default!(Option<&str>, "NULL"),
) -> Option<i64> {
    boundary(|| {
        let (resource, amount) =
            in_base_unit(required("resource", resource)?, required("amount", amount)?)?;
        let t = writable_tenant()?;
        release_key(t, &resource, key.unwrap_or(""), amount)
    })
}

/// Set a gauge (storage in use, seats) of the current tenant to `value` in the current
/// window: recorded as measured, not refused past the limit (alerts tell); returns the
/// remaining allowance (0 past the limit, NULL when unlimited).
#[pg_extern(volatile, parallel_unsafe)]
fn set_usage(
    resource: Option<&str>,
    value: Option<i64>,
    key: default!(Option<&str>, "NULL"),
) -> Option<i64> {
    boundary(|| {
        let (resource, value) =
            in_base_unit(required("resource", resource)?, required("value", value)?)?;
        let t = writable_tenant()?;
        set_usage_key(t, &resource, key.unwrap_or(""), value)
    })
}

fn check_impl(resource: &str, amount: i64) -> MtResult<bool> {
    if amount <= 0 {
        return Err(MtError::invalid("amount must be positive"));
    }
    let (resource, amount) = in_base_unit(resource, amount)?;
    let resource = resource.as_str();
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
    boundary(|| with_entitlements(t, |e| e.has_feature(feature)))
}

/// Does the current tenant's plan carry `restriction` (e.g. `no_custom_branding`), not lifted
/// by an override? False without context.
#[pg_extern(stable, parallel_restricted)]
fn has_restriction(restriction: &str) -> bool {
    let Ok(t) = verified(|c| c.t) else {
        return false;
    };
    boundary(|| with_entitlements(t, |e| e.restrictions.contains(restriction)))
}

fn require_feature_impl(feature: &str) -> MtResult<bool> {
    let t = verified(|c| c.t).map_err(|_| MtError::no_context())?;
    let (has, restricted, plan) = with_entitlements(t, |e| {
        (
            e.has_feature(feature),
            e.restrictions.contains(&format!("no_{feature}")),
            e.plan.clone(),
        )
    })?;
    if has {
        Ok(true)
    } else if restricted {
        Err(MtError::new(
            Code::FeatureNotInPlan,
            format!("plan \"{plan}\" has the restriction \"no_{feature}\""),
        )
        .hint("Upgrade the plan or add a feature override (tenant.set_feature_override)."))
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
        .map(from_pg_uuid)
        .ok_or_else(MtError::no_context)?;
    if delta > 0 && !writes_for(tenant) {
        return Err(MtError::new(
            Code::TenantMismatch,
            "row belongs to another tenant than the context",
        )
        .detail(format!("row tenant {tenant}"))
        .hint("Insert rows of a tenant under that tenant's context."));
    }
    if reg.on_shard {
        return count_on_shard(tenant, &reg, delta);
    }
    count_row(tenant, &reg.resource, delta)
}

/// The trigger on a Citus worker's shard: the limit comes with the context (the worker has
/// no plans), the count is the shard placement's (docs/citus.md).
fn count_on_shard(tenant: uuid::Uuid, reg: &RowLimit, delta: i64) -> MtResult<()> {
    let (has_context, system, carried) = match verified(|c| (c.t, c.o.is_some(), c.l.clone())) {
        // a context of the row's tenant (a role that bypasses row security may write rows
        // of another tenant than its context's: its limits are not the row's)
        Ok((t, system, carried)) if t == tenant => (true, system, carried),
        _ => (false, false, None),
    };
    let limit = if delta < 0 {
        -1
    } else {
        match shard_limit(carried.as_ref(), system, has_context, &reg.resource) {
            ShardLimit::Unchecked | ShardLimit::Unlimited => -1,
            ShardLimit::Max(n) => n,
            ShardLimit::NotInPlan => {
                return Err(MtError::invalid(format!(
                    "resource \"{}\" has no limit in this tenant's plan",
                    reg.resource
                ))
                .hint("Add it to the plan (tenant.load_plan) or as an override (tenant.set_limit_override)."))
            }
            ShardLimit::Unknown => {
                return Err(MtError::new(
                    Code::InvalidToken,
                    format!(
                        "the context carries no limit for \"{}\" (it was entered before the table was limited)",
                        reg.resource
                    ),
                )
                .hint("Enter the context again (tenant.set_context or tenant.authenticate)."))
            }
        }
    };
    count_shard_row(tenant, reg, delta, limit)
}

/// Row trigger (BEFORE INSERT OR DELETE) that `tenant.limit_rows` attaches. It takes no
/// arguments: what to count is read from `tenant.row_limits`, so attaching it by hand to an
/// unregistered table only raises.
#[pg_trigger(
    sql = "CREATE FUNCTION tenant_internal._limit_rows_trigger() RETURNS trigger \
           LANGUAGE c AS 'MODULE_PATHNAME', '_limit_rows_trigger_wrapper';"
)]
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
    relid: pg_sys::Oid,
    resource: &str,
    column: &str,
    legacy_trigger_args: bool,
) -> MtResult<()> {
    require_any_role(&[c"tenant_admin"], "limit rows")?;
    names::resource(resource)?;
    let info = check_table(relid, "limit rows of")?;
    let name = qualified(&info.schema, &info.table);
    tenant_column(relid, &name, column)?;
    // on a Citus table the trigger runs on every shard (docs/citus.md): the tenant column must
    // be the distribution column, so that each tenant's rows are in one shard and are counted there
    let distributed = crate::pg::citus::distributed(relid)?;
    if distributed {
        let dist = read_one::<String>(
            "SELECT pg_catalog.column_to_column_name(logicalrelid, partkey) \
             FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1",
            &[relid.into()],
        )?;
        if dist.as_deref() != Some(column) {
            return Err(MtError::new(
                Code::NotSupported,
                format!("{name} is not distributed by \"{column}\""),
            )
            .hint("On Citus, limit_rows counts the rows of tables distributed by their tenant column."));
        }
    }
    // every partition is counted by the seed below and fires the (cloned) trigger
    for member in descendants(relid)? {
        check_table(member, "limit rows of")?;
    }
    let taken = read_one::<String>(
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
    let schema = quote_ident(trigger_schema()?);
    let args = if legacy_trigger_args {
        format!("{}, {}", quote_literal(resource), quote_literal(column))
    } else {
        String::new()
    };
    let ddl = || {
        run_all(&[
            format!("DROP TRIGGER IF EXISTS \"mt_limit_rows\" ON {name}"),
            format!(
                "CREATE TRIGGER \"mt_limit_rows\" BEFORE INSERT OR DELETE ON {name} FOR EACH ROW \
                 EXECUTE FUNCTION {schema}.\"_limit_rows_trigger\"({args})"
            ),
            // existing rows count from the start; the table lock keeps the count exact
            format!("LOCK TABLE {name} IN SHARE ROW EXCLUSIVE MODE"),
        ])
    };
    crate::pg::citus::trigger_ddl(distributed, ddl)?;
    // on Citus the rows are counted on the workers, per shard placement, from the rows
    // there (count_shard_row): no counters to seed here
    if !distributed {
        seed_row_counters(&name, resource, column)?;
    }
    as_owner(|| {
        Spi::run_with_args(
            "INSERT INTO tenant.row_limits (relid, resource, tenant_column) VALUES ($1::regclass, $2, $3) \
             ON CONFLICT (relid) DO UPDATE SET resource = EXCLUDED.resource, tenant_column = EXCLUDED.tenant_column",
            &[relid.into(), resource.into(), column.into()],
        )?;
        Ok(())
    })
}

/// Count the rows already in `name` per tenant, into `resource`'s counters (its table is
/// locked by the caller, so the count stays exact).
fn seed_row_counters(name: &str, resource: &str, column: &str) -> MtResult<()> {
    let (ws, we) = window(Period::None, 0);
    // The seed reads the table as the extension owner (every tenant's rows, past RLS). Its
    // text holds only identifiers from the catalog, quoted (double quotes are not affected by
    // standard_conforming_strings, which as_owner pins anyway), the tenant column is checked
    // to be of type uuid, so grouping uses the built-in uuid operators, and the relation and
    // all its partitions are persistent ordinary tables the caller owns.
    let col = quote_ident(column);
    // a database still at 0.1.0 has no key column (until ALTER EXTENSION ... UPDATE)
    let legacy = crate::state::registry::legacy_schema()?;
    let (target, only_own) = if legacy {
        ("(tenant_id, resource, window_start)", "")
    } else {
        ("(tenant_id, resource, key, window_start)", " AND key = ''")
    };
    let seed = format!(
        "INSERT INTO tenant.usage_counters (tenant_id, resource, window_start, window_end, used) \
         SELECT {col}, $1, to_timestamp($2), to_timestamp($3), count(*) FROM {name} WHERE {col} IS NOT NULL GROUP BY {col} \
         ON CONFLICT {target} DO UPDATE SET used = EXCLUDED.used"
    );
    as_owner(|| {
        Spi::connect_mut(|c| {
            c.update(
                format!("DELETE FROM tenant.usage_counters WHERE resource = $1{only_own} AND window_start = to_timestamp($2)").as_str(),
                None,
                &[resource.into(), (ws as f64).into()],
            )?;
            c.update(
                seed.as_str(),
                None,
                &[resource.into(), (ws as f64).into(), (we as f64).into()],
            )?;
            Ok(())
        })
    })
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
fn limit_rows(tbl: pg_sys::Oid, resource: &str, tenant_column: &str) {
    boundary(|| pinned(|| limit_rows_impl(tbl, resource, tenant_column, false)))
}

pub(crate) fn unlimit_rows_impl(relid: pg_sys::Oid) -> MtResult<bool> {
    require_any_role(&[c"tenant_admin"], "unlimit rows")?;
    let detach = || detach_triggers(relid, &["mt_limit_rows"], "row_limits", "unlimit rows of");
    crate::pg::citus::trigger_ddl(crate::pg::citus::distributed(relid)?, detach)
}

/// `tenant.unlimit_rows(tbl)`: stop counting `tbl`'s rows.
#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION tenant.unlimit_rows(tbl regclass) \
           RETURNS boolean VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn unlimit_rows(tbl: pg_sys::Oid) -> bool {
    boundary(|| pinned(|| unlimit_rows_impl(tbl)))
}
