//! Memberships (SQL): who belongs to which tenant. Roles and permissions build on them.

use crate::core::error::{MtError, MtResult};
use crate::core::names;
use crate::pg::convert::pg_uuid;
use crate::pg::owner::as_owner;
use crate::pg::raise::boundary;
use crate::pg::roles::require_any_role;
use crate::state::audit::event;
use crate::state::tenants;
use pgrx::prelude::*;

fn add_member_impl(tenant: &str, user_id: &str, roles: Vec<String>) -> MtResult<()> {
    require_any_role(&[c"tenant_service", c"tenant_admin"], "manage members")?;
    names::user_id(user_id)?;
    let row = tenants::lookup(tenant)?;
    let pol = crate::state::rbac::policy(row.id)?;
    if let Some(r) = roles
        .iter()
        .find(|r| !pol.inherits.contains_key(r.as_str()))
    {
        return Err(MtError::invalid(format!(
            "role \"{}\" does not exist in tenant {tenant}",
            r.escape_default()
        ))
        .hint("Define it first with tenant.create_role (in the tenant's context)."));
    }
    as_owner(|| {
        Spi::run_with_args(
            "INSERT INTO tenant.members (tenant_id, user_id, roles) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, user_id) DO UPDATE SET roles = EXCLUDED.roles, status = 'active'",
            &[pg_uuid(row.id).into(), user_id.into(), roles.clone().into()],
        )?;
        event(
            Some(row.id),
            "member.added",
            serde_json::json!({"user_id": user_id, "roles": roles}),
        )?;
        Ok(())
    })
}

/// Make `user_id` an active member of `tenant` with `roles` (insert or update).
#[pg_extern(volatile, parallel_unsafe)]
fn add_member(tenant: &str, user_id: &str, roles: default!(Vec<String>, "ARRAY['member']")) {
    boundary(|| add_member_impl(tenant, user_id, roles))
}

fn remove_member_impl(tenant: &str, user_id: &str) -> MtResult<bool> {
    require_any_role(&[c"tenant_service", c"tenant_admin"], "manage members")?;
    let row = tenants::lookup(tenant)?;
    as_owner(|| {
        let n = Spi::get_one_with_args::<i64>(
            "WITH d AS (DELETE FROM tenant.members WHERE tenant_id = $1 AND user_id = $2 RETURNING 1) \
             SELECT count(*) FROM d",
            &[pg_uuid(row.id).into(), user_id.into()],
        )?;
        let done = n.unwrap_or(0) > 0;
        if done {
            event(
                Some(row.id),
                "member.removed",
                serde_json::json!({"user_id": user_id}),
            )?;
        }
        Ok(done)
    })
}

/// Remove `user_id` from `tenant`; returns whether a membership was removed.
#[pg_extern(volatile, parallel_unsafe)]
fn remove_member(tenant: &str, user_id: &str) -> bool {
    boundary(|| remove_member_impl(tenant, user_id))
}
