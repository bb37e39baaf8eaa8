//! Storage paths (SQL): a tenant's prefix for objects kept outside the database, and a
//! registry of those objects whose bytes count against the plan's storage limit.

use crate::api::rbac::permitted;
use crate::core::error::{Code, MtError, MtResult};
use crate::core::plans::{window, Period};
use crate::core::site;
use crate::pg::convert::pg_uuid;
use crate::pg::owner::as_owner;
use crate::pg::raise::boundary;
use crate::pg::spi::{read_one, write_count};
use crate::state::audit::event;
use crate::state::context::verified;
use crate::state::site::plan_limit;
use pgrx::prelude::*;
use serde_json::json;

/// The resource storage is counted as (bytes; a plan may also say storage_mb or storage_gb).
pub const STORAGE: &str = "storage_bytes";

/// The tenant's storage limit in bytes (None: unlimited).
fn storage_limit(tenant: uuid::Uuid) -> MtResult<Option<i64>> {
    for (resource, unit) in [
        (STORAGE, 1i64),
        ("storage_mb", 1 << 20),
        ("storage_gb", 1 << 30),
    ] {
        if let Some(l) = plan_limit(tenant, resource)? {
            return Ok(Some(l.saturating_mul(unit)));
        }
    }
    Ok(None)
}

/// Set the tenant's object `path` to `bytes` (None: remove it) under the storage limit.
/// The tenant's storage counter is locked first: concurrent registrations of one tenant
/// take turns, so the total never passes the limit. Returns the tenant's new total.
fn put(tenant: uuid::Uuid, path: &str, bytes: Option<i64>) -> MtResult<i64> {
    let limit = storage_limit(tenant)?;
    let (ws, we) = window(Period::None, 0);
    as_owner(|| {
        let t = pg_uuid(tenant);
        Spi::run_with_args(
            "INSERT INTO tenant.usage_counters (tenant_id, resource, window_start, window_end, used) \
             VALUES ($1, $2, to_timestamp($3), to_timestamp($4), 0) ON CONFLICT DO NOTHING",
            &[t.into(), STORAGE.into(), (ws as f64).into(), (we as f64).into()],
        )?;
        let used = read_one::<i64>(
            "SELECT used FROM tenant.usage_counters WHERE tenant_id = $1 AND resource = $2 AND key = '' \
             AND window_start = to_timestamp($3) FOR UPDATE",
            &[t.into(), STORAGE.into(), (ws as f64).into()],
        )?
        .unwrap_or(0);
        let old = read_one::<i64>(
            "SELECT bytes FROM tenant.storage_objects WHERE tenant_id = $1 AND path = $2",
            &[t.into(), path.into()],
        )?;
        let total = used
            .checked_sub(old.unwrap_or(0))
            .and_then(|u| u.checked_add(bytes.unwrap_or(0)))
            .ok_or_else(|| MtError::invalid("bytes out of range"))?
            .max(0);
        if let (Some(limit), Some(b)) = (limit, bytes) {
            if total > limit && b > old.unwrap_or(0) {
                return Err(MtError::new(
                    Code::LimitExceeded,
                    format!("plan limit exceeded for storage ({total} of {limit} bytes)"),
                )
                .detail(format!("resource={STORAGE} limit={limit} used={used}"))
                .hint("Remove objects (tenant.unregister_object) or upgrade the plan."));
            }
        }
        match bytes {
            Some(b) => Spi::run_with_args(
                "INSERT INTO tenant.storage_objects (tenant_id, path, bytes) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant_id, path) DO UPDATE SET bytes = EXCLUDED.bytes, registered_at = now()",
                &[t.into(), path.into(), b.into()],
            )?,
            None => {
                write_count(
                    "WITH d AS (DELETE FROM tenant.storage_objects WHERE tenant_id = $1 AND path = $2 RETURNING 1) \
                     SELECT pg_catalog.count(*) FROM d",
                    &[t.into(), path.into()],
                )?;
            }
        }
        Spi::run_with_args(
            "UPDATE tenant.usage_counters SET used = $4 WHERE tenant_id = $1 AND resource = $2 AND key = '' \
             AND window_start = to_timestamp($3)",
            &[t.into(), STORAGE.into(), (ws as f64).into(), total.into()],
        )?;
        Ok(total)
    })
}

/// The object `path` must be under the current tenant's prefix: MT030 when it is no storage
/// path, MT020 when it is another tenant's.
fn own_path(tenant: uuid::Uuid, path: &str) -> MtResult<()> {
    let owner = site::path_owner(path)?;
    if owner != tenant {
        return Err(MtError::new(
            Code::PermissionDenied,
            "permission denied: the path is under another tenant's prefix",
        )
        .hint("Build paths with tenant.storage_path(filename) in the tenant's own context."));
    }
    Ok(())
}

/// Where the current tenant keeps `filename`: `tenants/<tenant id>/<sanitised name>`
/// (characters other than A-Z a-z 0-9 . _ - become '_'; '..' is refused). MT001 without a
/// context.
#[pg_extern(stable, parallel_restricted)]
fn storage_path(filename: &str) -> String {
    boundary(|| {
        let t = verified(|c| c.t).map_err(|_| MtError::no_context())?;
        site::storage_path(t, filename)
    })
}

/// Record an object the current tenant stored at `path` (from tenant.storage_path) with its
/// size; registering it again replaces the size. Its bytes count against the plan's storage
/// limit (storage_bytes, storage_mb or storage_gb): MT010 and nothing recorded past it.
/// Returns the tenant's total bytes. For the backend and members allowed storage/create.
#[pg_extern(volatile, parallel_unsafe)]
fn register_object(path: &str, bytes: i64) -> i64 {
    boundary(|| {
        let c = permitted("storage", "create", "register storage objects")?;
        own_path(c.tenant, path)?;
        if bytes < 0 {
            return Err(MtError::invalid("bytes must not be negative"));
        }
        let total = put(c.tenant, path, Some(bytes))?;
        event(
            Some(c.tenant),
            "storage.registered",
            json!({"path": path, "bytes": bytes}),
        )?;
        Ok(total)
    })
}

/// Forget an object of the current tenant; its bytes no longer count. Returns the tenant's
/// total bytes. For the backend and members allowed storage/delete.
#[pg_extern(volatile, parallel_unsafe)]
fn unregister_object(path: &str) -> i64 {
    boundary(|| {
        let c = permitted("storage", "delete", "unregister storage objects")?;
        own_path(c.tenant, path)?;
        let total = put(c.tenant, path, None)?;
        event(
            Some(c.tenant),
            "storage.unregistered",
            json!({"path": path}),
        )?;
        Ok(total)
    })
}
