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
    use crate::pg::owner::as_owner;
    use crate::state::lifecycle::{lock_status, move_status_from};
    crate::pg::roles::require_any_role(&[c"tenant_service", c"tenant_admin"], "run maintenance")?;
    let grace = crate::gucs::SUSPENSION_GRACE.get();
    let float8 = [pg_sys::PgBuiltInOids::FLOAT8OID];
    let trials = as_owner(|| {
        tenants::ids(
            "SELECT id FROM tenant.tenants WHERE status = 'trial' AND trial_ends_at < now() ORDER BY id",
            &[],
            &[],
        )
    })?;
    let graced = if grace > 0 {
        as_owner(|| {
            tenants::ids(
                "SELECT id FROM tenant.tenants WHERE status = 'suspended' \
                   AND suspended_at < now() - make_interval(secs => $1) ORDER BY id",
                &float8,
                &[(grace as f64).into()],
            )
        })?
    } else {
        vec![]
    };
    // each move re-checks the status under the row's lock (overlapping runs skip it)
    let mut moved = [0i64; 2];
    for (n, ids, from, to, reason) in [
        (
            0,
            &trials,
            Status::Trial,
            Status::Suspended,
            Reason::TrialExpired,
        ),
        (
            1,
            &graced,
            Status::Suspended,
            Status::Deleted,
            Reason::GraceExpired,
        ),
    ] {
        for id in ids {
            if as_owner(|| move_status_from(*id, Some(from), to, reason))?.is_some() {
                moved[n] += 1;
            }
        }
    }
    let expired = as_owner(|| {
        tenants::ids(
            "SELECT id FROM tenant.tenants WHERE status = 'deleted' AND purge_after <= now() ORDER BY id",
            &[],
            &[],
        )
    })?;
    let mut purged = 0;
    for id in &expired {
        // an overlapping run may have purged it since: checked under the row's lock
        if as_owner(|| lock_status(*id))? == Some(Status::Deleted) {
            crate::api::portability::purge_impl(&id.to_string(), false)?;
            purged += 1;
        }
    }
    Ok(serde_json::json!({
        "trials_expired": moved[0],
        "grace_expired": moved[1],
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
