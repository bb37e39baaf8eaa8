//! Roles, permissions, `can`/`authorize`, `protect` and invitations for the current tenant.
//! The rules are in `rbac_core` (pure); this module loads, caches and writes them.

use crate::core::ddl::{qualified, quote_ident, quote_literal};
use crate::core::error::{Code, MtError, MtResult};
use crate::core::names;
use crate::core::rbac::validate_condition;
use crate::pg::catalog::{check_table, column_exists};
use crate::pg::convert::{from_pg_uuid, pg_uuid};
use crate::pg::owner::{as_owner, pinned, quietly};
use crate::pg::raise::{boundary, required};
use crate::pg::roles::{has_role, require_any_role};
use crate::pg::spi::write_first;
use crate::state::audit::event;
use crate::state::context::verified;
use crate::state::members::member_roles;
use crate::state::rbac::policy;
use pgrx::prelude::*;
use serde_json::Value;

struct Caller {
    tenant: uuid::Uuid,
    user: Option<String>,
    roles: Vec<String>,
    /// a read-only context (suspended tenant with `suspended_access = read`)
    ro: bool,
}

impl Caller {
    /// Changes to the tenant's roles, permissions and invitations need a writable context.
    fn writable(self) -> MtResult<Caller> {
        if self.ro {
            return Err(
                MtError::new(Code::TenantNotActive, "tenant is read-only (suspended)")
                    .hint("Reactivate the tenant with tenant.set_status(..., 'active')."),
            );
        }
        Ok(self)
    }
}

/// The current tenant, user and roles (membership roles plus a verified JWT's roles).
fn caller() -> MtResult<Caller> {
    let (tenant, user, mut roles, ro) =
        verified(|c| (c.t, c.u.clone(), c.r.clone(), c.ro)).map_err(|_| MtError::no_context())?;
    if let Some(u) = &user {
        roles.extend(member_roles(tenant, u)?.iter().cloned());
    }
    Ok(Caller {
        tenant,
        user,
        roles,
        ro,
    })
}

fn can_impl(resource: &str, action: &str, ctx: &Value) -> MtResult<bool> {
    let c = match caller() {
        Ok(c) => c,
        Err(_) => return Ok(false),
    };
    Ok(policy(c.tenant)?.can(&c.roles, resource, action, ctx, c.user.as_deref()))
}

/// May the current user do `action` on `resource`? `ctx` holds the fields conditions test
/// (`self` in a condition is the current user id). False without a context.
#[pg_extern(stable, parallel_restricted)]
fn can(resource: &str, action: &str, ctx: default!(pgrx::JsonB, "'{}'::jsonb")) -> bool {
    boundary(|| can_impl(resource, action, &ctx.0))
}

/// Like `can` but raises MT020 (detail: resource and action) when not allowed.
#[pg_extern(stable, parallel_restricted)]
fn authorize(resource: &str, action: &str, ctx: default!(pgrx::JsonB, "'{}'::jsonb")) -> bool {
    boundary(|| {
        if can_impl(resource, action, &ctx.0)? {
            return Ok(true);
        }
        Err(
            MtError::denied(format!("permission denied: {action} on {resource}"))
                .detail(format!("resource={resource} action={action}")),
        )
    })
}

/// Management of roles needs `tenant_service`/`tenant_admin`, or a user allowed
/// `manage` on `roles` in the current tenant.
fn require_manager() -> MtResult<uuid::Uuid> {
    let c = caller()?.writable()?;
    if has_role(c"tenant_service") || has_role(c"tenant_admin") {
        return Ok(c.tenant);
    }
    if policy(c.tenant)?.can(&c.roles, "roles", "manage", &Value::Null, c.user.as_deref()) {
        return Ok(c.tenant);
    }
    Err(MtError::denied("permission denied to manage roles")
        .hint("Needs tenant_service, tenant_admin or permission roles/manage."))
}

fn create_role_impl(name: &str, inherits: Vec<String>) -> MtResult<()> {
    let tenant = require_manager()?;
    names::permission_part("role", name)?;
    if name.contains('*') {
        return Err(MtError::invalid("role names cannot contain '*'"));
    }
    let pol = policy(tenant)?;
    for p in &inherits {
        if !pol.inherits.contains_key(p) {
            return Err(MtError::invalid(format!(
                "role \"{p}\" does not exist in this tenant"
            )));
        }
    }
    if pol.creates_cycle(name, &inherits) {
        return Err(
            MtError::invalid(format!("role \"{name}\" would inherit from itself"))
                .hint("Inheritance must not form a cycle."),
        );
    }
    as_owner(|| {
        Spi::run_with_args(
            "INSERT INTO tenant.roles (tenant_id, name, inherits) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET inherits = EXCLUDED.inherits",
            &[pg_uuid(tenant).into(), name.into(), inherits.clone().into()],
        )?;
        event(
            Some(tenant),
            "role.defined",
            serde_json::json!({"role": name, "inherits": inherits}),
        )
    })
}

/// Create (or redefine) a role of the current tenant that inherits `inherits`.
#[pg_extern(volatile, parallel_unsafe)]
fn create_role(name: &str, inherits: default!(Vec<String>, "'{}'::text[]")) {
    boundary(|| create_role_impl(name, inherits))
}

fn drop_role_impl(name: &str) -> MtResult<bool> {
    let tenant = require_manager()?;
    let pol = policy(tenant)?;
    if let Some((child, _)) = pol
        .inherits
        .iter()
        .find(|(_, ps)| ps.iter().any(|p| p == name))
    {
        return Err(MtError::invalid(format!(
            "role \"{child}\" inherits from \"{name}\""
        )));
    }
    as_owner(|| {
        let n = Spi::get_one_with_args::<i64>(
            "WITH d AS (DELETE FROM tenant.roles WHERE tenant_id = $1 AND name = $2 RETURNING 1) SELECT count(*) FROM d",
            &[pg_uuid(tenant).into(), name.into()],
        )?;
        Ok(n.unwrap_or(0) > 0)
    })
}

/// Drop a role of the current tenant (and its permissions).
#[pg_extern(volatile, parallel_unsafe)]
fn drop_role(name: &str) -> bool {
    boundary(|| drop_role_impl(name))
}

fn grant_impl(role: &str, resource: &str, action: &str, condition: Option<Value>) -> MtResult<()> {
    let tenant = require_manager()?;
    names::permission_part("resource", resource)?;
    names::permission_part("action", action)?;
    let condition = condition.unwrap_or(Value::Null);
    validate_condition(&condition)?;
    if !policy(tenant)?.inherits.contains_key(role) {
        return Err(MtError::invalid(format!(
            "role \"{role}\" does not exist in this tenant"
        )));
    }
    as_owner(|| {
        Spi::run_with_args(
            "INSERT INTO tenant.permissions (tenant_id, role, resource, action, condition) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, role, resource, action, coalesce(condition, 'null'::jsonb)) DO NOTHING",
            &[
                pg_uuid(tenant).into(),
                role.into(),
                resource.into(),
                action.into(),
                (!condition.is_null()).then(|| pgrx::JsonB(condition.clone())).into(),
            ],
        )?;
        event(
            Some(tenant),
            "permission.granted",
            serde_json::json!({"role": role, "resource": resource, "action": action, "condition": condition}),
        )
    })
}

/// Let `role` do `action` on `resource` (wildcards `*` and `prefix.*`), when `condition` holds.
#[pg_extern(volatile, parallel_unsafe)]
fn grant_permission(
    role: Option<&str>,
    resource: Option<&str>,
    action: Option<&str>,
    condition: default!(Option<pgrx::JsonB>, "NULL"),
) {
    boundary(|| {
        grant_impl(
            required("role", role)?,
            required("resource", resource)?,
            required("action", action)?,
            condition.map(|j| j.0),
        )
    })
}

fn revoke_impl(role: &str, resource: &str, action: &str) -> MtResult<i64> {
    let tenant = require_manager()?;
    as_owner(|| {
        let n = Spi::get_one_with_args::<i64>(
            "WITH d AS (DELETE FROM tenant.permissions WHERE tenant_id = $1 AND role = $2 AND resource = $3 AND action = $4 \
             RETURNING 1) SELECT count(*) FROM d",
            &[pg_uuid(tenant).into(), role.into(), resource.into(), action.into()],
        )?
        .unwrap_or(0);
        event(
            Some(tenant),
            "permission.revoked",
            serde_json::json!({"role": role, "resource": resource, "action": action}),
        )?;
        Ok(n)
    })
}

/// Remove `role`'s permissions for `action` on `resource`; returns how many were removed.
#[pg_extern(volatile, parallel_unsafe)]
fn revoke_permission(role: &str, resource: &str, action: &str) -> i64 {
    boundary(|| revoke_impl(role, resource, action))
}

pub(crate) fn protect_impl(
    relid: pgrx::pg_sys::Oid,
    resource: &str,
    owner_column: Option<&str>,
) -> MtResult<()> {
    names::permission_part("resource", resource)?;
    let info = check_table(relid, "protect")?;
    let name = qualified(&info.schema, &info.table);
    let ctx = match owner_column {
        Some(col) => {
            column_exists(relid, &name, col)?;
            format!("jsonb_build_object('owner_id', {}::text)", quote_ident(col))
        }
        None => "'{}'::jsonb".to_string(),
    };
    let res = quote_literal(resource);
    let can = |action: &str| format!("\"tenant\".\"can\"({res}, '{action}', {ctx})");
    let mut statements = Vec::new();
    for p in [
        "tenant_protect_read",
        "tenant_protect_create",
        "tenant_protect_update",
        "tenant_protect_delete",
    ] {
        statements.push(format!(
            "DROP POLICY IF EXISTS {} ON {name}",
            quote_ident(p)
        ));
    }
    statements.push(format!("ALTER TABLE {name} ENABLE ROW LEVEL SECURITY"));
    statements.push(format!("ALTER TABLE {name} FORCE ROW LEVEL SECURITY"));
    statements.push(format!(
        "CREATE POLICY \"tenant_protect_read\" ON {name} AS RESTRICTIVE FOR SELECT USING ({})",
        can("read")
    ));
    statements.push(format!(
        "CREATE POLICY \"tenant_protect_create\" ON {name} AS RESTRICTIVE FOR INSERT WITH CHECK ({})",
        can("create")
    ));
    statements.push(format!(
        "CREATE POLICY \"tenant_protect_update\" ON {name} AS RESTRICTIVE FOR UPDATE USING ({}) WITH CHECK ({})",
        can("update"),
        can("update")
    ));
    statements.push(format!(
        "CREATE POLICY \"tenant_protect_delete\" ON {name} AS RESTRICTIVE FOR DELETE USING ({})",
        can("delete")
    ));
    quietly(|| {
        Spi::connect_mut(|c| {
            for s in &statements {
                c.update(s.as_str(), None, &[])?;
            }
            Ok(())
        })
    })
}

/// `tenant.protect(tbl, resource, owner_column)`: restrictive per-command policies that call
/// `tenant.can(resource, read|create|update|delete, {owner_id})`. Runs as the table's owner.
#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION tenant.protect(tbl regclass, resource text, owner_column text DEFAULT NULL) \
           RETURNS void VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn protect(tbl: Option<pgrx::pg_sys::Oid>, resource: Option<&str>, owner_column: Option<&str>) {
    boundary(|| {
        let (Some(tbl), Some(resource)) = (tbl, resource) else {
            return Err(MtError::invalid("table and resource are required"));
        };
        pinned(|| protect_impl(tbl, resource, owner_column))
    })
}

fn invite_impl(email: &str, role: &str, ttl_hours: i32) -> MtResult<String> {
    let c = caller()?.writable()?;
    if !(1..=24 * 90).contains(&ttl_hours) {
        return Err(MtError::invalid("ttl_hours must be between 1 and 2160"));
    }
    if email.len() > 320 || !email.contains('@') || email.starts_with('@') || email.ends_with('@') {
        return Err(MtError::invalid(format!(
            "invalid email \"{}\"",
            email.escape_default()
        )));
    }
    let pol = policy(c.tenant)?;
    if !pol.inherits.contains_key(role) {
        return Err(MtError::invalid(format!(
            "role \"{role}\" does not exist in this tenant"
        )));
    }
    let service = has_role(c"tenant_service") || has_role(c"tenant_admin");
    let allowed = if c.user.is_none() && service {
        true
    } else {
        pol.can(
            &c.roles,
            "members",
            "invite",
            &Value::Null,
            c.user.as_deref(),
        ) && pol.may_grant(&c.roles, role)
    };
    if !allowed {
        return Err(
            MtError::denied(format!("permission denied to invite to role \"{role}\"")).hint(
                "An inviter needs members/invite and every permission of the role it hands out.",
            ),
        );
    }
    as_owner(|| {
        let token = Spi::get_one::<String>(
            "SELECT replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', '')",
        )?
        .unwrap_or_default();
        Spi::run_with_args(
            "INSERT INTO tenant.invitations (tenant_id, email, role, token_hash, invited_by, expires_at) \
             VALUES ($1, $2, $3, sha256(convert_to($4, 'UTF8')), $5, now() + make_interval(hours => $6))",
            &[pg_uuid(c.tenant).into(), email.into(), role.into(), token.as_str().into(), c.user.clone().into(), ttl_hours.into()],
        )?;
        event(
            Some(c.tenant),
            "member.invited",
            serde_json::json!({"email": email, "role": role}),
        )?;
        Ok(token)
    })
}

/// Invite `email` to the current tenant with `role`; returns the single-use token (only its
/// hash is stored). The inviter must hold every permission of the role.
#[pg_extern(volatile, parallel_unsafe)]
fn invite(email: &str, role: &str, ttl_hours: default!(i32, 72)) -> String {
    boundary(|| invite_impl(email, role, ttl_hours))
}

fn accept_impl(token: &str, user_id: &str) -> MtResult<pgrx::Uuid> {
    require_any_role(&[c"tenant_service", c"tenant_admin"], "accept invitations")?;
    names::user_id(user_id)?;
    let bad = || MtError::new(Code::InvalidToken, "invalid, expired or used invitation");
    if token.len() > 200 {
        return Err(bad());
    }
    as_owner(|| {
        let row = write_first(
            "UPDATE tenant.invitations SET accepted_at = now(), accepted_by = $2 \
             WHERE token_hash = sha256(convert_to($1, 'UTF8')) AND accepted_at IS NULL AND expires_at > now() \
             RETURNING tenant_id, role",
            &[token.into(), user_id.into()],
            |r| match r {
                Some(r) => Ok((r.get::<pgrx::Uuid>(1)?, r.get::<String>(2)?)),
                None => Ok((None, None)),
            },
        )?;
        let (Some(tenant), Some(role)) = row else {
            return Err(bad());
        };
        Spi::run_with_args(
            "INSERT INTO tenant.members (tenant_id, user_id, roles) VALUES ($1, $2, ARRAY[$3]) \
             ON CONFLICT (tenant_id, user_id) DO UPDATE SET status = 'active', \
               roles = (SELECT array_agg(DISTINCT r) FROM unnest(tenant.members.roles || EXCLUDED.roles) r)",
            &[tenant.into(), user_id.into(), role.as_str().into()],
        )?;
        event(
            Some(from_pg_uuid(tenant)),
            "member.joined",
            serde_json::json!({"user_id": user_id, "role": role}),
        )?;
        Ok(tenant)
    })
}

/// Redeem an invitation token for `user_id` (once, before it expires); returns the tenant.
#[pg_extern(volatile, parallel_unsafe)]
fn accept_invitation(token: &str, user_id: &str) -> pgrx::Uuid {
    boundary(|| accept_impl(token, user_id))
}
