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
