//! Organizations inside a tenant (B2B: a user belongs to one organization of the tenant),
//! for conditions (`{"org_id": "self_org"}`) and for applications that group members.

use crate::api::rbac::{caller, is_backend, permitted, Caller};
use crate::core::error::{MtError, MtResult};
use crate::core::names;
use crate::pg::convert::{from_pg_uuid, pg_uuid};
use crate::pg::owner::as_owner;
use crate::pg::raise::{boundary, required};
use crate::pg::spi::{with_prepared_read, write_first};
use crate::state::audit::event;
use pgrx::pg_sys::PgBuiltInOids as O;
use pgrx::prelude::*;

fn manager() -> MtResult<Caller> {
    permitted("organizations", "manage", "manage organizations")
}

/// An organization of `tenant` by slug or id.
fn find(tenant: uuid::Uuid, org: &str) -> MtResult<uuid::Uuid> {
    let id = as_owner(|| {
        with_prepared_read(
            "SELECT id FROM tenant.organizations WHERE tenant_id = $1 AND (slug = $2 OR id::text = lower($2))",
            &[O::UUIDOID, O::TEXTOID],
            &[pg_uuid(tenant).into(), org.into()],
            |t| Ok(t.into_iter().next().map(|r| r.get::<pgrx::Uuid>(1)).transpose()?.flatten()),
        )
    })?;
    id.map(from_pg_uuid).ok_or_else(|| {
        MtError::invalid(format!(
            "organization \"{}\" does not exist in this tenant",
            org.escape_default()
        ))
    })
}

fn create_impl(slug: &str, name: &str) -> MtResult<pgrx::Uuid> {
    let c = manager()?;
    names::plain("organization", slug)?;
    if name.trim().is_empty() || name.len() > 200 {
        return Err(MtError::invalid(
            "organization name must be 1-200 characters",
        ));
    }
    as_owner(|| {
        let id = write_first(
            "INSERT INTO tenant.organizations (tenant_id, slug, name) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, slug) DO NOTHING RETURNING id",
            &[pg_uuid(c.tenant).into(), slug.into(), name.into()],
            |r| Ok(r.map(|r| r.get::<pgrx::Uuid>(1)).transpose()?.flatten()),
        )?
        .ok_or_else(|| {
            MtError::invalid(format!(
                "organization \"{slug}\" already exists in this tenant"
            ))
        })?;
        event(
            Some(c.tenant),
            "organization.created",
            serde_json::json!({"id": from_pg_uuid(id).to_string(), "slug": slug, "name": name}),
        )?;
        Ok(id)
    })
}

/// Create an organization in the current tenant; returns its id.
#[pg_extern(volatile, parallel_unsafe)]
fn create_organization(slug: &str, name: &str) -> pgrx::Uuid {
    boundary(|| create_impl(slug, name))
}

fn drop_impl(org: &str) -> MtResult<bool> {
    let c = manager()?;
    let id = find(c.tenant, org)?;
    as_owner(|| {
        // members of it are left without an organization (ON DELETE SET NULL)
        Spi::run_with_args(
            "DELETE FROM tenant.organizations WHERE tenant_id = $1 AND id = $2",
            &[pg_uuid(c.tenant).into(), pg_uuid(id).into()],
        )?;
        event(
            Some(c.tenant),
            "organization.dropped",
            serde_json::json!({"id": id.to_string()}),
        )?;
        Ok(true)
    })
}

/// Drop an organization of the current tenant (its members keep their membership, without
/// an organization).
#[pg_extern(volatile, parallel_unsafe)]
fn drop_organization(organization: &str) -> bool {
    boundary(|| drop_impl(organization))
}

fn set_member_impl(user_id: &str, organization: Option<&str>) -> MtResult<()> {
    let c = manager()?;
    names::user_id(user_id)?;
    if !is_backend(&c) {
        // a member manager moves others, never itself (self_org conditions would follow it)
        // and never an owner
        if c.user.as_deref() == Some(user_id) {
            return Err(
                MtError::denied("permission denied to move yourself to an organization")
                    .hint("Another organization manager or the backend does that."),
            );
        }
        let theirs = crate::state::members::member_roles(c.tenant, user_id)?;
        if theirs.iter().any(|r| r == crate::core::rbac::OWNER_ROLE) {
            return Err(MtError::denied("permission denied to move an owner")
                .hint("Only the backend (without a user in the context) moves owners."));
        }
    }
    let org = organization.map(|o| find(c.tenant, o)).transpose()?;
    as_owner(|| {
        let found = write_first(
            "UPDATE tenant.members SET organization_id = $3 WHERE tenant_id = $1 AND user_id = $2 RETURNING 1",
            &[pg_uuid(c.tenant).into(), user_id.into(), org.map(pg_uuid).into()],
            |r| Ok(r.is_some()),
        )?;
        if !found {
            return Err(MtError::invalid(format!(
                "user \"{}\" is not a member of this tenant",
                user_id.escape_default()
            )));
        }
        event(
            Some(c.tenant),
            "member.organization_set",
            serde_json::json!({"user_id": user_id, "organization": org.map(|o| o.to_string())}),
        )
    })
}

/// Put a member of the current tenant into an organization (slug or id; NULL: none).
#[pg_extern(volatile, parallel_unsafe)]
fn set_member_organization(user_id: Option<&str>, organization: default!(Option<&str>, "NULL")) {
    boundary(|| set_member_impl(required("user_id", user_id)?, organization))
}

/// The organization the current user belongs to in the current tenant, or NULL.
#[pg_extern(stable, parallel_restricted)]
fn current_organization() -> Option<pgrx::Uuid> {
    boundary(|| {
        let Ok(c) = caller() else { return Ok(None) };
        Ok(c.org
            .as_deref()
            .and_then(|o| uuid::Uuid::parse_str(o).ok())
            .map(pg_uuid))
    })
}
