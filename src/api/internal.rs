//! Internal SQL functions the extension's own SQL calls (not granted to anyone).

use crate::core::audit;
use crate::core::error::MtResult;
use crate::pg::convert::pg_uuid;
use crate::pg::invalidation::invalidate;
use crate::pg::raise::boundary;
use crate::state::tenants;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// The schema of the extension's internals (created in sql/bootstrap.sql; declared here so
/// that pgrx knows it for the `schema = "tenant_internal"` functions).
#[pg_schema]
mod tenant_internal {}

/// Send a relcache invalidation for `relid` to every backend (at commit): called by the
/// statement triggers on the extension's tables (`tenant_internal._tables_changed`).
#[pg_extern(volatile, parallel_unsafe, schema = "tenant_internal")]
fn _invalidate(relid: pg_sys::Oid) {
    invalidate(relid)
}

/// The hash of a chain's next entry (`core::audit::chain_hash`): the one formula, used by the
/// statement that appends entries.
#[pg_extern(immutable, strict, parallel_safe, schema = "tenant_internal")]
fn _audit_link(prev: &[u8], seq: i64, content: &[u8]) -> Vec<u8> {
    audit::chain_hash(prev, seq, content).to_vec()
}

/// The tenant (its uuid as text, or NULL for a global chain) a chain belongs to
/// (`core::audit::chain_tenant`), for sql/purge_audit.sql.
#[pg_extern(immutable, strict, parallel_safe, schema = "tenant_internal")]
fn _chain_tenant(chain: &str) -> Option<String> {
    audit::chain_tenant(chain).map(str::to_string)
}

/// The tenant resolver (`state::tenants::lookup`) for the extension's SQL functions: a
/// tenant by uuid or slug, MT002 when there is none.
#[pg_extern(stable, strict, parallel_restricted, schema = "tenant_internal")]
fn _tenant_id(tenant: &str) -> pgrx::Uuid {
    boundary(|| -> MtResult<pgrx::Uuid> { Ok(pg_uuid(tenants::lookup(tenant)?.id)) })
}

/// Log a management event in a tenant's audit chain (`state::audit::event`), for the
/// extension's own SQL functions (`tenant.run_maintenance`).
#[pg_extern(volatile, parallel_unsafe, schema = "tenant_internal")]
fn _event(tenant: Option<pgrx::Uuid>, name: &str, data: pgrx::JsonB) {
    boundary(|| {
        crate::state::audit::event(tenant.map(crate::pg::convert::from_pg_uuid), name, data.0)
    })
}

fn lifecycle_impl() -> MtResult<serde_json::Value> {
    use crate::core::lifecycle::{Reason, Status};
    crate::pg::roles::require_any_role(&[c"tenant_service", c"tenant_admin"], "run maintenance")?;
    let grace = crate::gucs::SUSPENSION_GRACE.get();
    let due = |sql: &'static str, arg: f64| -> MtResult<Vec<uuid::Uuid>> {
        crate::pg::owner::as_owner(|| {
            crate::pg::spi::with_prepared_read(
                sql,
                &[pg_sys::PgBuiltInOids::FLOAT8OID],
                &[arg.into()],
                |t| {
                    let mut v = Vec::new();
                    for r in t {
                        if let Some(id) = r.get::<pgrx::Uuid>(1)? {
                            v.push(crate::pg::convert::from_pg_uuid(id));
                        }
                    }
                    Ok(v)
                },
            )
        })
    };
    let trials = due(
        "SELECT id FROM tenant.tenants WHERE status = 'trial' AND trial_ends_at < now() AND $1 >= 0 ORDER BY id",
        0.0,
    )?;
    let mut n_trials = 0;
    for id in &trials {
        n_trials += crate::pg::owner::as_owner(|| {
            crate::state::lifecycle::move_status_from(
                *id,
                Some(Status::Trial),
                Status::Suspended,
                Reason::TrialExpired,
            )
        })?
        .map_or(0, |_| 1);
    }
    let graced = if grace > 0 {
        due(
            "SELECT id FROM tenant.tenants WHERE status = 'suspended' \
               AND suspended_at < now() - make_interval(secs => $1) ORDER BY id",
            grace as f64,
        )?
    } else {
        vec![]
    };
    let mut n_graced = 0;
    for id in &graced {
        n_graced += crate::pg::owner::as_owner(|| {
            crate::state::lifecycle::move_status_from(
                *id,
                Some(Status::Suspended),
                Status::Deleted,
                Reason::GraceExpired,
            )
        })?
        .map_or(0, |_| 1);
    }
    let expired = due(
        "SELECT id FROM tenant.tenants WHERE status = 'deleted' AND purge_after <= now() AND $1 >= 0 ORDER BY id",
        0.0,
    )?;
    let mut purged = 0;
    for id in &expired {
        // an overlapping run may have purged it since: checked under the row's lock
        let still = crate::pg::owner::as_owner(|| crate::state::lifecycle::lock_status(*id))?;
        if still == Some(Status::Deleted) {
            crate::api::portability::purge_impl(&id.to_string(), false)?;
            purged += 1;
        }
    }
    Ok(serde_json::json!({
        "trials_expired": n_trials,
        "grace_expired": n_graced,
        "retention_expired": purged,
    }))
}

/// The lifecycle part of `tenant.run_maintenance` (which calls it as the extension owner):
/// expired trials are suspended, tenants suspended past `multitenant.suspension_grace`
/// deleted, deleted ones past their `purge_after` purged, each move through the state
/// machine with its audit event and reason.
#[pg_extern(volatile, parallel_unsafe, schema = "tenant_internal")]
fn _lifecycle() -> pgrx::JsonB {
    boundary(|| lifecycle_impl().map(pgrx::JsonB))
}
