//! Usage counters: atomic check-and-add under a hard limit, row-count registrations.

use crate::core::error::{Code, MtError, MtResult};
use crate::core::names;
use crate::core::plans::{remaining, window, Limit, Period};
use crate::pg::convert::{now_unix, pg_uuid};
use crate::pg::invalidation::{cached, GenMap, Kind};
use crate::pg::owner::{as_owner, as_owner_fast};
use crate::pg::spi::{read_texts, with_prepared, with_prepared_read};
use crate::state::plans::with_entitlements;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::RefCell;

pub fn limit_for(tenant: uuid::Uuid, resource: &str) -> MtResult<Limit> {
    names::resource(resource)?;
    with_entitlements(tenant, |e| e.limits.get(resource).cloned())?.ok_or_else(|| {
        MtError::invalid(format!(
            "resource \"{resource}\" has no limit in this tenant's plan"
        ))
        .hint(
            "Add it to the plan (tenant.load_plan) or as an override (tenant.set_limit_override).",
        )
    })
}

/// The hot path: the window's counter exists, add if it fits.
/// (Run by `as_owner_fast`: everything qualified, see there; `OPERATOR()` has one
/// precedence for all, hence the parentheses.)
const UPDATE: &str = "UPDATE tenant.usage_counters \
     SET used = used OPERATOR(pg_catalog.+) $5 \
     WHERE tenant_id OPERATOR(pg_catalog.=) $1 AND resource OPERATOR(pg_catalog.=) $2 \
       AND key OPERATOR(pg_catalog.=) $7 \
       AND window_start OPERATOR(pg_catalog.=) pg_catalog.to_timestamp($3) \
       AND ($6 OPERATOR(pg_catalog.<) 0::pg_catalog.int8 \
            OR used OPERATOR(pg_catalog.<=) ($6 OPERATOR(pg_catalog.-) $5)) \
       AND used OPERATOR(pg_catalog.<=) (9223372036854775807::pg_catalog.int8 OPERATOR(pg_catalog.-) $5) \
     RETURNING used";

/// The first use of a window (or a limit that did not fit): create or add, if it fits.
/// (Run by `as_owner_fast`: everything qualified, see there; `OPERATOR()` has one
/// precedence for all, hence the parentheses.)
const UPSERT: &str =
    "INSERT INTO tenant.usage_counters AS c (tenant_id, resource, window_start, window_end, used, key) \
     VALUES ($1, $2, pg_catalog.to_timestamp($3), pg_catalog.to_timestamp($4), $5, $7) \
     ON CONFLICT (tenant_id, resource, key, window_start) DO UPDATE \
     SET used = c.used OPERATOR(pg_catalog.+) EXCLUDED.used \
     WHERE ($6 OPERATOR(pg_catalog.<) 0::pg_catalog.int8 \
            OR c.used OPERATOR(pg_catalog.<=) ($6 OPERATOR(pg_catalog.-) EXCLUDED.used)) \
       AND c.used OPERATOR(pg_catalog.<=) (9223372036854775807::pg_catalog.int8 OPERATOR(pg_catalog.-) EXCLUDED.used) \
     RETURNING c.used";

/// The two statements for a database still at 0.1.0 (no `key` column until ALTER EXTENSION
/// ... UPDATE): the same without the key ($7 unused).
const UPDATE_LEGACY: &str = "UPDATE tenant.usage_counters \
     SET used = used OPERATOR(pg_catalog.+) $5 \
     WHERE tenant_id OPERATOR(pg_catalog.=) $1 AND resource OPERATOR(pg_catalog.=) $2 \
       AND window_start OPERATOR(pg_catalog.=) pg_catalog.to_timestamp($3) \
       AND ($6 OPERATOR(pg_catalog.<) 0::pg_catalog.int8 \
            OR used OPERATOR(pg_catalog.<=) ($6 OPERATOR(pg_catalog.-) $5)) \
       AND used OPERATOR(pg_catalog.<=) (9223372036854775807::pg_catalog.int8 OPERATOR(pg_catalog.-) $5) \
     RETURNING used";
const UPSERT_LEGACY: &str = "INSERT INTO tenant.usage_counters AS c (tenant_id, resource, window_start, window_end, used) \
     VALUES ($1, $2, pg_catalog.to_timestamp($3), pg_catalog.to_timestamp($4), $5) \
     ON CONFLICT (tenant_id, resource, window_start) DO UPDATE \
     SET used = c.used OPERATOR(pg_catalog.+) EXCLUDED.used \
     WHERE ($6 OPERATOR(pg_catalog.<) 0::pg_catalog.int8 \
            OR c.used OPERATOR(pg_catalog.<=) ($6 OPERATOR(pg_catalog.-) EXCLUDED.used)) \
       AND c.used OPERATOR(pg_catalog.<=) (9223372036854775807::pg_catalog.int8 OPERATOR(pg_catalog.-) EXCLUDED.used) \
     RETURNING c.used";

/// Atomically add `amount` to the tenant's counter of the current window unless that would
/// pass `hard_limit` (-1: no check). The row lock of the counter serializes concurrent
/// consumers, so the total never passes the limit. Returns the new total, or None when the
/// amount did not fit (nothing was consumed).
fn add_usage(
    tenant: uuid::Uuid,
    resource: &str,
    key: &str,
    period: Period,
    amount: i64,
    hard_limit: i64,
) -> MtResult<Option<i64>> {
    use pg_sys::PgBuiltInOids as O;
    let (ws, we) = window(period, now_unix());
    let types = [
        O::UUIDOID,
        O::TEXTOID,
        O::FLOAT8OID,
        O::FLOAT8OID,
        O::INT8OID,
        O::INT8OID,
        O::TEXTOID,
    ];
    as_owner_fast(|| {
        let statements = if crate::state::registry::legacy_schema()? {
            [UPDATE_LEGACY, UPSERT_LEGACY]
        } else {
            [UPDATE, UPSERT]
        };
        for sql in statements {
            let args = [
                pg_uuid(tenant).into(),
                resource.into(),
                (ws as f64).into(),
                (we as f64).into(),
                amount.into(),
                hard_limit.into(),
                key.into(),
            ];
            let used = with_prepared(sql, &types, &args, |t| match t.into_iter().next() {
                Some(row) => Ok(row.get::<i64>(1)?),
                None => Ok(None),
            })?;
            if used.is_some() {
                return Ok(used);
            }
            // a key without a counter yet: a tenant's keys are bounded (each is a row)
            if sql == UPDATE && !key.is_empty() {
                let keys = with_prepared_read(
                    "SELECT pg_catalog.count(*) FROM tenant.usage_counters WHERE tenant_id OPERATOR(pg_catalog.=) $1 \
                     AND resource OPERATOR(pg_catalog.=) $2 AND window_start OPERATOR(pg_catalog.=) pg_catalog.to_timestamp($3)",
                    &[O::UUIDOID, O::TEXTOID, O::FLOAT8OID],
                    &[pg_uuid(tenant).into(), resource.into(), (ws as f64).into()],
                    |t| Ok(t.into_iter().next().map(|r| r.get::<i64>(1)).transpose()?.flatten().unwrap_or(0)),
                )?;
                if keys > MAX_KEYS {
                    return Err(MtError::invalid(format!(
                        "too many keys for \"{resource}\" in this window (at most {MAX_KEYS})"
                    )));
                }
            }
        }
        Ok(None)
    })
}

pub fn current_used(tenant: uuid::Uuid, resource: &str, period: Period) -> MtResult<i64> {
    current_used_key(tenant, resource, "", period)
}

pub fn current_used_key(
    tenant: uuid::Uuid,
    resource: &str,
    key: &str,
    period: Period,
) -> MtResult<i64> {
    use pg_sys::PgBuiltInOids as O;
    let (ws, _) = window(period, now_unix());
    as_owner(|| {
        let sql = if crate::state::registry::legacy_schema()? {
            "SELECT used FROM tenant.usage_counters WHERE tenant_id = $1 AND resource = $2 AND window_start = to_timestamp($3) AND $4 = ''"
        } else {
            "SELECT used FROM tenant.usage_counters WHERE tenant_id = $1 AND resource = $2 AND key = $4 AND window_start = to_timestamp($3)"
        };
        with_prepared_read(
            sql,
            &[O::UUIDOID, O::TEXTOID, O::FLOAT8OID, O::TEXTOID],
            &[
                pg_uuid(tenant).into(),
                resource.into(),
                (ws as f64).into(),
                key.into(),
            ],
            |t| {
                Ok(t.into_iter()
                    .next()
                    .map(|r| r.get::<i64>(1))
                    .transpose()?
                    .flatten()
                    .unwrap_or(0))
            },
        )
    })
}

fn exceeded(resource: &str, limit: &Limit, used: i64, amount: i64) -> MtError {
    let (_, reset) = window(limit.period, now_unix());
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

pub fn consume_for(
    tenant: uuid::Uuid,
    resource: &str,
    amount: i64,
    period_override: Option<Period>,
) -> MtResult<Option<i64>> {
    consume_key(tenant, resource, "", amount, period_override)
}

/// A key (one endpoint of a rate limit) has its own counter under the resource's limit;
/// only hard limits take keys (an overage is billed per tenant, not per key).
fn check_key(limit: &Limit, key: &str) -> MtResult<()> {
    if key.is_empty() {
        return Ok(());
    }
    if key.len() > 200 || key.contains('\0') {
        return Err(MtError::invalid("key must be 1-200 characters"));
    }
    if limit.overage_price.is_some() {
        return Err(MtError::invalid(format!(
            "\"{}\" has an overage price: keys apply to hard limits",
            limit.resource
        )));
    }
    Ok(())
}

/// The most one call may consume, release or set (a quadrillion units: bytes of a petabyte).
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;
/// Distinct keys a tenant may use per resource and window (each is a counter row).
pub const MAX_KEYS: i64 = 1000;

fn check_amount(amount: i64, what: &str) -> MtResult<()> {
    if amount <= 0 || amount > MAX_AMOUNT {
        return Err(MtError::invalid(format!(
            "{what} must be positive and at most {MAX_AMOUNT}"
        )));
    }
    Ok(())
}

pub fn consume_key(
    tenant: uuid::Uuid,
    resource: &str,
    key: &str,
    amount: i64,
    period_override: Option<Period>,
) -> MtResult<Option<i64>> {
    check_amount(amount, "amount")?;
    let limit = limit_for(tenant, resource)?;
    check_key(&limit, key)?;
    let period = period_override.unwrap_or(limit.period);
    let hard = if limit.hard() { limit.limit } else { -1 };
    if limit.hard() && amount > limit.limit {
        let used = current_used_key(tenant, resource, key, period)?;
        return Err(exceeded(resource, &limit, used, amount));
    }
    match add_usage(tenant, resource, key, period, amount, hard)? {
        Some(used) => {
            // the one consumer whose amount crosses a threshold raises its alert
            crate::state::alerts::crossed(tenant, &limit, key, period, used - amount, used)?;
            Ok(remaining(&limit, used))
        }
        None => {
            let used = current_used_key(tenant, resource, key, period)?;
            Err(exceeded(resource, &limit, used, amount))
        }
    }
}

/// Give back `amount` of `resource` in the current window (never below 0); returns the
/// remaining allowance (None: unlimited).
pub fn release_key(
    tenant: uuid::Uuid,
    resource: &str,
    key: &str,
    amount: i64,
) -> MtResult<Option<i64>> {
    check_amount(amount, "amount")?;
    let limit = limit_for(tenant, resource)?;
    check_key(&limit, key)?;
    let (ws, _) = window(limit.period, now_unix());
    let used = as_owner(|| {
        crate::pg::spi::write_first(
            "UPDATE tenant.usage_counters SET used = greatest(used - $5, 0) \
             WHERE tenant_id = $1 AND resource = $2 AND key = $3 AND window_start = to_timestamp($4) RETURNING used",
            &[
                pg_uuid(tenant).into(),
                resource.into(),
                key.into(),
                (ws as f64).into(),
                amount.into(),
            ],
            |r| Ok(r.map(|r| r.get::<i64>(1)).transpose()?.flatten().unwrap_or(0)),
        )
    })?;
    Ok(remaining(&limit, used))
}

/// Set a gauge (storage in use, seats) to `value` in the current window: it records what is,
/// so it is not refused past the limit; thresholds crossed upwards raise their alerts.
/// Returns the remaining allowance (0 past the limit, None: unlimited).
pub fn set_usage_key(
    tenant: uuid::Uuid,
    resource: &str,
    key: &str,
    value: i64,
) -> MtResult<Option<i64>> {
    if !(0..=MAX_AMOUNT).contains(&value) {
        return Err(MtError::invalid(format!("value must be 0 to {MAX_AMOUNT}")));
    }
    let limit = limit_for(tenant, resource)?;
    check_key(&limit, key)?;
    let (ws, we) = window(limit.period, now_unix());
    let (old, new) = as_owner(|| {
        crate::pg::spi::write_first(
            "WITH old AS (SELECT used FROM tenant.usage_counters WHERE tenant_id = $1 AND resource = $2 \
                            AND key = $3 AND window_start = to_timestamp($4) FOR UPDATE), \
                  up AS (INSERT INTO tenant.usage_counters AS c (tenant_id, resource, key, window_start, window_end, used) \
                         VALUES ($1, $2, $3, to_timestamp($4), to_timestamp($5), $6) \
                         ON CONFLICT (tenant_id, resource, key, window_start) DO UPDATE SET used = EXCLUDED.used \
                         RETURNING c.used) \
             SELECT coalesce((SELECT used FROM old), 0), (SELECT used FROM up)",
            &[
                pg_uuid(tenant).into(),
                resource.into(),
                key.into(),
                (ws as f64).into(),
                (we as f64).into(),
                value.into(),
            ],
            |r| match r {
                Some(r) => Ok((r.get::<i64>(1)?.unwrap_or(0), r.get::<i64>(2)?.unwrap_or(value))),
                None => Ok((0, value)),
            },
        )
    })?;
    crate::state::alerts::crossed(tenant, &limit, key, limit.period, old, new)?;
    Ok(remaining(&limit, new))
}

/// What `limit_rows` registered for a table: the resource its rows count against and the
/// tenant column. Cached per relation until its relcache entry changes (attaching or
/// dropping the trigger is DDL on the table, which sends that invalidation).
#[derive(Clone)]
pub struct RowLimit {
    pub resource: String,
    pub column: String,
    /// the registered table (for a partition, its partitioned table)
    pub relid: pg_sys::Oid,
    /// on a Citus worker, the trigger fired on a shard of a distributed table: its rows are
    /// counted per shard placement there (`count_shard_row`)
    pub on_shard: bool,
}

thread_local! {
    static ROW_LIMITS: RefCell<GenMap<pg_sys::Oid, Option<RowLimit>>> = RefCell::new(GenMap::new(&[Kind::Relations]));
    /// the resources `limit_rows` counts on Citus distributed tables
    static SHARD_RESOURCES: RefCell<GenMap<(), std::rc::Rc<Vec<String>>>> = RefCell::new(GenMap::new(&[Kind::Relations]));
}

fn shard_resources() -> MtResult<std::rc::Rc<Vec<String>>> {
    cached(&SHARD_RESOURCES, (), || {
        as_owner(|| {
            if !crate::pg::citus::installed()? {
                return Ok(std::rc::Rc::default());
            }
            Ok(std::rc::Rc::new(read_texts(
                "SELECT DISTINCT r.resource FROM tenant.row_limits r \
                 WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = r.relid) \
                 ORDER BY 1",
                &[],
            )?))
        })
    })
}

/// The row-count limits a context of `tenant` carries to the Citus workers (`Claims::l`):
/// None when no distributed table is row-limited (the usual case: nothing is added).
pub fn shard_limits(
    tenant: uuid::Uuid,
) -> MtResult<Option<std::collections::BTreeMap<String, Option<i64>>>> {
    let resources = shard_resources()?;
    if resources.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        resources
            .iter()
            .map(|r| {
                (
                    r.clone(),
                    limit_for(tenant, r)
                        .ok()
                        .map(|l| crate::core::plans::carried_limit(&l)),
                )
            })
            .collect(),
    ))
}

/// On a Citus worker: count one row of `tenant` in (`delta` 1, refused with MT010 beyond
/// `limit` when it is not negative) or out (`delta` -1) of the tenant's shard of `rl.relid`
/// on this node. One counter per shard placement (a tenant's rows of a distributed table
/// are all in one shard): created the first time from the rows there, so a shard moved or
/// split to another placement starts from the rows it brought; a row lock on it orders
/// concurrent writers, an advisory lock orders its creation.
pub fn count_shard_row(tenant: uuid::Uuid, rl: &RowLimit, delta: i64, limit: i64) -> MtResult<()> {
    let (ws, we) = window(Period::None, 0);
    let t = pg_uuid(tenant);
    as_owner(|| {
        let found = Spi::connect(|c| {
            let r = c.select(
                "SELECT pl.placementid, pg_catalog.shard_name($1::pg_catalog.regclass, pl.shardid, false) \
                 FROM pg_catalog.pg_dist_placement pl \
                 WHERE pl.shardid = pg_catalog.get_shard_id_for_distribution_column($1::pg_catalog.regclass, $2) \
                   AND pl.groupid = (SELECT groupid FROM pg_catalog.pg_dist_local_group)",
                None,
                &[rl.relid.into(), t.into()],
            )?;
            match r.into_iter().next() {
                Some(row) => Ok::<_, MtError>(Some((
                    row.get::<i64>(1)?.unwrap_or_default(),
                    row.get::<String>(2)?.unwrap_or_default(),
                ))),
                None => Ok(None),
            }
        })?;
        let Some((placement, shard)) = found else {
            return Err(MtError::invalid(
                "this node holds no shard of the table for the row's tenant",
            ));
        };
        let key = format!("citus:{placement}");
        let args = || -> Vec<pgrx::datum::DatumWithOid<'static>> {
            vec![
                t.into(),
                rl.resource.clone().into(),
                key.clone().into(),
                (ws as f64).into(),
                delta.into(),
                limit.into(),
            ]
        };
        let bump = || -> MtResult<Option<i64>> {
            Ok(Spi::get_one_with_args::<i64>(
                "WITH u AS (UPDATE tenant.usage_counters \
                 SET used = GREATEST(used + $5, 0) \
                 WHERE tenant_id = $1 AND resource = $2 AND key = $3 \
                   AND window_start = pg_catalog.to_timestamp($4) \
                   AND ($5 < 0 OR $6 < 0 OR used < $6) \
                 RETURNING used) SELECT pg_catalog.max(used) FROM u",
                &args(),
            )?)
        };
        if bump()?.is_some() {
            return Ok(());
        }
        let used = |()| -> MtResult<Option<i64>> {
            Ok(Spi::get_one_with_args::<i64>(
                "SELECT pg_catalog.max(used) FROM tenant.usage_counters \
                 WHERE tenant_id = $1 AND resource = $2 AND key = $3 \
                   AND window_start = pg_catalog.to_timestamp($4)",
                &args()[..4],
            )?)
        };
        if used(())?.is_none() {
            // the first row of this placement: count what it holds, once
            Spi::run_with_args(
                "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('multitenant rows ' || $1::text || ' ' || $2 || ' ' || $3))",
                &args()[..3],
            )?;
            if used(())?.is_none() {
                // the shard's name as Citus writes it, quoted and qualified; the tenant
                // column is quoted; built-in uuid equality
                let count = format!(
                    "SELECT pg_catalog.count(*) FROM {shard} WHERE {} OPERATOR(pg_catalog.=) $1",
                    crate::core::ddl::quote_ident(&rl.column)
                );
                let n = Spi::get_one_with_args::<i64>(&count, &[t.into()])?.unwrap_or(0);
                Spi::run_with_args(
                    "INSERT INTO tenant.usage_counters (tenant_id, resource, key, window_start, window_end, used) \
                     VALUES ($1, $2, $3, pg_catalog.to_timestamp($4), pg_catalog.to_timestamp($5), $6) \
                     ON CONFLICT DO NOTHING",
                    &[
                        t.into(),
                        rl.resource.clone().into(),
                        key.clone().into(),
                        (ws as f64).into(),
                        (we as f64).into(),
                        n.into(),
                    ],
                )?;
            }
            if bump()?.is_some() {
                return Ok(());
            }
        }
        let used = used(())?.unwrap_or(0);
        Err(MtError::new(
            Code::LimitExceeded,
            format!("plan limit exceeded for \"{}\"", rl.resource),
        )
        .detail(format!(
            "resource={} limit={limit} used={used} requested=1 period=none resets=never (not a windowed limit)",
            rl.resource
        ))
        .hint("Upgrade the plan, wait for the window to reset, or ask for an override."))
    })
}

/// The registration of `relid` or of the partitioned table it is a partition of (row
/// triggers on a partitioned table fire with the partition's oid).
pub fn row_limit_of(relid: pg_sys::Oid) -> MtResult<Option<RowLimit>> {
    if let Some(hit) = ROW_LIMITS.with(|m| m.borrow_mut().fresh().get(&relid).cloned()) {
        return Ok(hit);
    }
    let loaded_at = ROW_LIMITS.with(|m| m.borrow().now());
    let found = as_owner(|| {
        // on a Citus worker the trigger fires on a shard: its table's registration counts
        let (target, on_shard) = match crate::pg::citus::shell_of(relid)? {
            Some((shell, _)) => (shell, true),
            None => (relid, false),
        };
        Spi::connect(|c| {
            let t = c.select(
                "SELECT r.resource, r.tenant_column::text, r.relid::oid FROM tenant.row_limits r \
                 WHERE r.relid::oid = $1 \
                    OR r.relid::oid IN (SELECT pg_catalog.pg_partition_ancestors($1)) \
                 ORDER BY r.relid::oid = $1 DESC LIMIT 1",
                None,
                &[target.into()],
            )?;
            match t.into_iter().next() {
                Some(r) => Ok(Some(RowLimit {
                    resource: r.get::<String>(1)?.unwrap_or_default(),
                    column: r.get::<String>(2)?.unwrap_or_default(),
                    relid: r.get::<pg_sys::Oid>(3)?.unwrap_or(target),
                    on_shard,
                })),
                None => Ok::<_, MtError>(None),
            }
        })
    })?;
    ROW_LIMITS.with(|m| m.borrow_mut().insert(loaded_at, relid, found.clone()));
    Ok(found)
}

/// Count one row in (`delta` > 0: consumes a slot of the row-count limit, MT010 when full)
/// or out (frees it) for `tenant`.
pub fn count_row(tenant: uuid::Uuid, resource: &str, delta: i64) -> MtResult<()> {
    if delta > 0 {
        return consume_for(tenant, resource, 1, Some(Period::None)).map(|_| ());
    }
    let (ws, _) = window(Period::None, 0);
    as_owner(|| {
        let sql = if crate::state::registry::legacy_schema()? {
            "UPDATE tenant.usage_counters SET used = greatest(used - 1, 0) \
             WHERE tenant_id = $1 AND resource = $2 AND window_start = to_timestamp($3)"
        } else {
            "UPDATE tenant.usage_counters SET used = greatest(used - 1, 0) \
             WHERE tenant_id = $1 AND resource = $2 AND key = '' AND window_start = to_timestamp($3)"
        };
        with_prepared(
            sql,
            &[
                pg_sys::PgBuiltInOids::UUIDOID,
                pg_sys::PgBuiltInOids::TEXTOID,
                pg_sys::PgBuiltInOids::FLOAT8OID,
            ],
            &[pg_uuid(tenant).into(), resource.into(), (ws as f64).into()],
            |_| Ok(()),
        )
    })
}

/// Would `n` more rows of `relid` fit `tenant`'s row-count limit? MT010 when not: checked
/// up front by bulk writers (`tenant.import`), so that the error keeps its SQLSTATE (the
/// row trigger's own would surface through the caller's SPI as an internal error).
pub fn ensure_rows_fit(relid: pg_sys::Oid, tenant: uuid::Uuid, n: i64) -> MtResult<()> {
    let Some(rl) = row_limit_of(relid)? else {
        return Ok(());
    };
    let limit = match limit_for(tenant, &rl.resource) {
        Ok(l) => l,
        Err(_) => return Ok(()), // no limit for it in the plan: the trigger decides
    };
    if !limit.hard() {
        return Ok(());
    }
    // a Citus table's rows are counted on the workers' shards: count them here
    let used = if crate::pg::citus::distributed(rl.relid)? {
        as_owner(|| {
            let name = crate::pg::spi::read_one::<String>(
                "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
                &[rl.relid.into()],
            )?
            .ok_or_else(|| MtError::invalid("row-limited table not found"))?;
            Ok(crate::pg::spi::read_one::<i64>(
                &format!(
                    "SELECT pg_catalog.count(*) FROM {name} WHERE {} OPERATOR(pg_catalog.=) $1",
                    crate::core::ddl::quote_ident(&rl.column)
                ),
                &[pg_uuid(tenant).into()],
            )?
            .unwrap_or(0))
        })?
    } else {
        current_used(tenant, &rl.resource, Period::None)?
    };
    if used.saturating_add(n) > limit.limit {
        return Err(exceeded(&rl.resource, &limit, used, n));
    }
    Ok(())
}
