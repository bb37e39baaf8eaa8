//! The C entry points of 0.1.0 that 0.2.0 no longer declares in SQL (`sql = false`).
//!
//! After the 0.2.0 library is installed, a database still at 0.1.0 keeps calling them
//! through its 0.1.0 SQL functions until `ALTER EXTENSION multitenant UPDATE` drops those
//! (sql/multitenant--0.1.0--0.2.0.sql). They run the 0.2.0 code with its checks (temporary
//! tables refused, tenant_admin for limit_rows and audit, partitions covered); only the
//! row-count trigger keeps 0.1.0's shape, because the 0.1.0 trigger function that calls
//! `_count_row` reads its settings from trigger arguments. Nothing grants them: only the SQL
//! functions of a 0.1.0 install (whose grants the upgrade revokes) can reach them.

use crate::core::error::MtError;
use crate::pg::convert::from_pg_uuid;
use crate::pg::owner::pinned;
use crate::pg::raise::boundary;
use pgrx::pg_sys;
use pgrx::prelude::*;

#[pg_extern(sql = false)]
fn _isolate(relid: pg_sys::Oid, tenant_column: &str) {
    boundary(|| pinned(|| crate::api::isolation::isolate_tree(relid, tenant_column)))
}

#[pg_extern(sql = false)]
fn _unisolate(relid: pg_sys::Oid) -> bool {
    boundary(|| pinned(|| crate::api::isolation::unisolate_tree(relid)))
}

#[pg_extern(sql = false)]
fn _limit_rows(relid: pg_sys::Oid, resource: &str, tenant_column: &str) {
    boundary(|| pinned(|| crate::api::quota::limit_rows_impl(relid, resource, tenant_column, true)))
}

#[pg_extern(sql = false)]
fn _unlimit_rows(relid: pg_sys::Oid) -> bool {
    boundary(|| pinned(|| crate::api::quota::unlimit_rows_impl(relid)))
}

/// Called by 0.1.0's PL/pgSQL row-count trigger (SECURITY DEFINER, so as the extension owner).
#[pg_extern(sql = false)]
fn _count_row(tenant: Option<pgrx::Uuid>, resource: &str, delta: i32) {
    boundary(|| {
        let tenant = tenant.ok_or_else(MtError::no_context)?;
        crate::state::quota::count_row(from_pg_uuid(tenant), resource, delta as i64)
    })
}

#[pg_extern(sql = false)]
fn _audit(relid: pg_sys::Oid, ignore_columns: Vec<String>, changed_only: bool) {
    boundary(|| pinned(|| crate::api::audit::audit_impl(relid, ignore_columns, changed_only)))
}

#[pg_extern(sql = false)]
fn _unaudit(relid: pg_sys::Oid) -> bool {
    boundary(|| pinned(|| crate::api::audit::unaudit_impl(relid)))
}

#[pg_extern(sql = false)]
fn _protect(relid: pg_sys::Oid, resource: &str, owner_column: Option<&str>) {
    boundary(|| pinned(|| crate::api::rbac::protect_impl(relid, resource, owner_column, None)))
}

/// 0.1.0's `tenant.consume(text, bigint)` (0.2.0 adds `key`, under the C name
/// `consume_v2_wrapper`).
#[pg_extern(sql = false)]
fn consume(resource: &str, amount: i64) -> Option<i64> {
    boundary(|| {
        let (resource, amount) = crate::core::plans::in_base_unit(resource, amount)?;
        crate::state::context::writable_tenant()
            .and_then(|t| crate::state::quota::consume_for(t, &resource, amount, None))
    })
}

/// 0.1.0's `tenant.authenticate(text)` (0.2.0 adds `expected_tenant`, under the C name
/// `authenticate_v2_wrapper`).
#[pg_extern(sql = false)]
fn authenticate(token: &str) -> pgrx::Uuid {
    boundary(|| crate::api::auth::authenticate_impl(token, None).map(crate::pg::convert::pg_uuid))
}

/// 0.1.0's `tenant.set_context(text, text, boolean)` (0.2.0 adds `client_ip`, under the C
/// name `set_context_v2_wrapper`).
#[pg_extern(sql = false)]
fn set_context(tenant: &str, user_id: Option<&str>, is_local: bool) -> pgrx::Uuid {
    boundary(|| {
        crate::api::context::set_context_impl(tenant, user_id, is_local, None)
            .map(crate::pg::convert::pg_uuid)
    })
}

/// 0.1.0's `tenant.create(text, text, text, text, jsonb)` (0.2.0 adds `region` and
/// `owner_user_id`, under the C name `create_v2_wrapper`).
#[pg_extern(sql = false)]
fn create(slug: &str, name: &str, plan: &str, status: &str, settings: pgrx::JsonB) -> pgrx::Uuid {
    boundary(|| {
        crate::api::registry::create_impl(slug, name, plan, status, &settings.0, None, None)
    })
}
