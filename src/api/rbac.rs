//! Roles, permissions, `can`/`authorize`, `protect` and invitations for the current tenant.
//! The rules are in `rbac_core` (pure); this module loads, caches and writes them.

use crate::core::ddl::{protect_statements, qualified, Protection, OWNER_FIELDS};
use crate::core::error::{Code, MtError, MtResult};
use crate::core::names;
use crate::core::rbac::{validate_condition, Subject, OWNER_ROLE};
use crate::pg::catalog::{check_table, column_exists};
use crate::pg::convert::{from_pg_uuid, pg_uuid};
use crate::pg::owner::{as_owner, pinned, quietly};
use crate::pg::raise::{boundary, required};
use crate::pg::roles::{has_role, require_any_role};
use crate::pg::spi::write_first;
use crate::state::audit::event;
use crate::state::context::verified;
use crate::state::members::{member_org, member_roles};
use crate::state::rbac::policy;
use crate::state::registry::record_protection;
use pgrx::prelude::*;
use serde_json::Value;

pub(crate) struct Caller {
    pub(crate) tenant: uuid::Uuid,
    pub(crate) user: Option<String>,
    pub(crate) roles: Vec<String>,
    /// the user's organization in the tenant (`self_org` in conditions)
    pub(crate) org: Option<String>,
    /// a read-only context (suspended tenant with `suspended_access = read`)
    ro: bool,
}

impl Caller {
    pub(crate) fn subject(&self) -> Subject<'_> {
        Subject {
            user: self.user.as_deref(),
            org: self.org.as_deref(),
        }
    }

    /// May the caller do `action` on `resource` (no row fields)?
    pub(crate) fn may(&self, resource: &str, action: &str) -> MtResult<bool> {
        Ok(policy(self.tenant)?.can_for(
            &self.roles,
            resource,
            action,
            &Value::Null,
            &self.subject(),
        ))
    }

    /// Changes to the tenant's roles, permissions and invitations need a writable context.
    pub(crate) fn writable(self) -> MtResult<Caller> {
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
pub(crate) fn caller() -> MtResult<Caller> {
    let (tenant, user, mut roles, ro) =
        verified(|c| (c.t, c.u.clone(), c.r.clone(), c.ro)).map_err(|_| MtError::no_context())?;
    let mut org = None;
    if let Some(u) = &user {
        roles.extend(member_roles(tenant, u)?.iter().cloned());
        org = member_org(tenant, u)?;
    }
    Ok(Caller {
        tenant,
        user,
        roles,
        org,
        ro,
    })
}

fn can_impl(resource: &str, action: &str, ctx: &Value) -> MtResult<bool> {
    if crate::state::context::acting_for_tenant() {
        return Ok(true);
    }
    // a context minted on a Citus coordinator carries the caller's permissions on the
    // protected resources, for the workers, which have no roles; where the roles are (the
    // coordinator, one node) they are read as they are now
    if crate::pg::citus::is_worker() {
        if let Ok(Some((answer, minted, tenant))) = verified(|c| {
            c.g.as_ref()
                .and_then(|g| g.decide(resource, action, ctx, c.u.as_deref()))
                .map(|a| (a, c.iat, c.t))
        }) {
            // carried before the tenant's roles, permissions or memberships last changed or
            // went (its updated_at, pushed from the coordinator): not trusted, no permission
            let fresh = crate::state::tenants::lookup(&tenant.to_string())
                .is_ok_and(|t| t.updated_at <= minted);
            return Ok(answer && fresh);
        }
    }
    let c = match caller() {
        Ok(c) => c,
        Err(_) => return Ok(false),
    };
    Ok(policy(c.tenant)?.can_for(&c.roles, resource, action, ctx, &c.subject()))
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

/// The backend itself (`tenant_service`/`tenant_admin`) with a context that names no user.
/// When the context names a user, the backend acts as that user and is held to its rights.
pub(crate) fn is_backend(c: &Caller) -> bool {
    c.user.is_none() && (has_role(c"tenant_service") || has_role(c"tenant_admin"))
}

/// The caller in a writable context, when it is the backend (`is_backend`) or a member
/// allowed `action` on `resource`; else MT020 "permission denied to {what}".
pub(crate) fn permitted(resource: &str, action: &str, what: &str) -> MtResult<Caller> {
    let c = caller()?.writable()?;
    if is_backend(&c) || c.may(resource, action)? {
        return Ok(c);
    }
    Err(MtError::denied(format!("permission denied to {what}")).hint(format!(
        "Needs tenant_service or tenant_admin without a user in the context, or permission {resource}/{action}."
    )))
}

/// Management of roles needs the backend (`is_backend`), or a user allowed `manage` on
/// `roles` in the current tenant. Returns the tenant and, for such a user, the caller: a
/// member manager can only hand out what it holds and cannot touch `owner`.
fn require_manager() -> MtResult<(uuid::Uuid, Option<Caller>)> {
    let c = caller()?.writable()?;
    if is_backend(&c) {
        return Ok((c.tenant, None));
    }
    if policy(c.tenant)?.can(&c.roles, "roles", "manage", &Value::Null, c.user.as_deref()) {
        return Ok((c.tenant, Some(c)));
    }
    Err(MtError::denied("permission denied to manage roles")
        .hint("Needs tenant_service or tenant_admin without a user in the context, or permission roles/manage."))
}

/// The owner role and every role it inherits (the built-in chain owner > admin > member >
/// viewer, and whatever else it was made to inherit): what the owner's rights rest on.
pub(crate) fn protected_roles(tenant: uuid::Uuid) -> MtResult<std::collections::HashSet<String>> {
    Ok(policy(tenant)?.expand(&[OWNER_ROLE.to_string()]))
}

/// A member manager may not redefine, drop or take rights from the owner role nor from any
/// role the owner inherits (revoking `admin`'s `*` would strip the owner too); granting to
/// them is held by `may_grant_permission` like any grant, except to `owner` itself.
fn owner_untouchable(member: &Option<Caller>, role: &str) -> MtResult<()> {
    if let Some(c) = member {
        if protected_roles(c.tenant)?.contains(role) {
            return Err(MtError::denied(format!(
                "permission denied to change the role \"{role}\""
            ))
            .hint("The owner role and the roles it inherits are changed only by tenant_service or tenant_admin."));
        }
    }
    Ok(())
}

fn create_role_impl(name: &str, inherits: Vec<String>) -> MtResult<()> {
    let (tenant, member) = require_manager()?;
    owner_untouchable(&member, name)?;
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
    if let Some(c) = &member {
        if let Some(p) = inherits.iter().find(|p| !pol.may_grant(&c.roles, p)) {
            return Err(MtError::denied(format!(
                "permission denied to make a role inherit \"{p}\""
            ))
            .hint(
                "A role manager can only hand out roles whose every permission it holds itself.",
            ));
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
    let (tenant, member) = require_manager()?;
    owner_untouchable(&member, name)?;
    let pol = policy(tenant)?;
    if let Some(c) = &member {
        if !pol.may_grant(&c.roles, name) {
            return Err(
                MtError::denied(format!("permission denied to drop the role \"{name}\"")).hint(
                    "A role manager can only drop roles whose every permission it holds itself.",
                ),
            );
        }
    }
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
    let (tenant, member) = require_manager()?;
    names::permission_part("resource", resource)?;
    names::permission_part("action", action)?;
    let condition = condition.unwrap_or(Value::Null);
    validate_condition(&condition)?;
    let pol = policy(tenant)?;
    if !pol.inherits.contains_key(role) {
        return Err(MtError::invalid(format!(
            "role \"{role}\" does not exist in this tenant"
        )));
    }
    if member.is_some() && role == OWNER_ROLE {
        return Err(
            MtError::denied("permission denied to change the role \"owner\"")
                .hint("The owner role is changed only by tenant_service or tenant_admin."),
        );
    }
    if let Some(c) = &member {
        if !pol.may_grant_permission(&c.roles, resource, action, &condition) {
            return Err(MtError::denied(format!(
                "permission denied to grant {action} on {resource}"
            ))
            .detail(format!("resource={resource} action={action}"))
            .hint("A role manager can only grant permissions it holds itself (the same or a wider one, unconditionally or under the same condition)."));
        }
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
    let (tenant, member) = require_manager()?;
    owner_untouchable(&member, role)?;
    if let Some(c) = &member {
        if !policy(tenant)?.may_grant_permission(&c.roles, resource, action, &Value::Null) {
            return Err(MtError::denied(format!(
                "permission denied to revoke {action} on {resource}"
            ))
            .hint("A role manager can only revoke permissions it holds itself."));
        }
    }
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
    columns: Option<&Value>,
) -> MtResult<()> {
    names::permission_part("resource", resource)?;
    let info = check_table(relid, "protect")?;
    let name = qualified(&info.schema, &info.table);
    let mut fields: Vec<(String, String)> = Vec::new();
    if let Some(col) = owner_column {
        fields.push(("owner_id".to_string(), col.to_string()));
    }
    match columns {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (field, col) in m {
                let Some(col) = col.as_str() else {
                    return Err(MtError::invalid(format!(
                        "columns: \"{}\" must name a column (a string)",
                        field.escape_default()
                    )));
                };
                if field.is_empty() || field.len() > 100 {
                    return Err(MtError::invalid(
                        "columns: condition fields must be 1-100 characters",
                    ));
                }
                fields.retain(|(f, _)| f != field);
                fields.push((field.clone(), col.to_string()));
            }
        }
        Some(_) => {
            return Err(MtError::invalid(
                "columns must be a JSON object of condition field: column",
            ))
        }
    }
    for (_, col) in &fields {
        column_exists(relid, &name, col)?;
    }
    // the row's owner: owner_column, or the column an owner field is mapped to
    let owner = owner_column.map(str::to_string).or_else(|| {
        fields
            .iter()
            .find(|(f, _)| OWNER_FIELDS.contains(&f.as_str()))
            .map(|(_, c)| c.clone())
    });
    let protection = Protection {
        resource: resource.to_string(),
        fields,
        owner,
    };
    // Citus copies restrictive policies to the shards as permissive: there the checks are
    // folded into isolate's per-command policies, which the table must have
    if crate::pg::citus::installed()? {
        let Some(reg) = crate::state::registry::record(relid)? else {
            return Err(MtError::invalid(format!(
                "{name} is not isolated: in a database with Citus, tenant.protect adds its checks to the tenant's policies"
            ))
            .hint("Run tenant.isolate(...) on the table first (docs/citus.md)."));
        };
        record_protection(relid, &protection)?;
        return crate::api::isolation::reisolate(relid, &reg.column);
    }
    record_protection(relid, &protection)?;
    let statements = protect_statements(&name, &protection);
    quietly(|| {
        Spi::connect_mut(|c| {
            for s in &statements {
                c.update(s.as_str(), None, &[])?;
            }
            Ok(())
        })
    })
}

/// `tenant.protect(tbl, resource, owner_column, columns)`: restrictive per-command policies
/// that call `tenant.can(resource, read|create|update|delete, ctx)` with `ctx` built from
/// the row (with Citus: the same checks ANDed into isolate's policies). Runs as the
/// table's owner.
#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION tenant.protect(tbl regclass, resource text, owner_column text DEFAULT NULL, columns jsonb DEFAULT NULL) \
           RETURNS void VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn protect(
    tbl: Option<pgrx::pg_sys::Oid>,
    resource: Option<&str>,
    owner_column: Option<&str>,
    columns: Option<pgrx::JsonB>,
) {
    boundary(|| {
        let (Some(tbl), Some(resource)) = (tbl, resource) else {
            return Err(MtError::invalid("table and resource are required"));
        };
        pinned(|| protect_impl(tbl, resource, owner_column, columns.as_ref().map(|j| &j.0)))
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
    if !is_backend(&c) && role == OWNER_ROLE {
        return Err(MtError::denied("permission denied to invite to the owner role")
            .hint("Only tenant_service or tenant_admin (without a user in the context) hand out owner."));
    }
    let allowed = if is_backend(&c) {
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

/// Every role the current user holds in the current tenant: its membership roles and the
/// JWT's, with what they inherit; sorted, empty without a context.
#[pg_extern(stable, parallel_restricted)]
fn effective_roles() -> Vec<String> {
    boundary(|| match caller() {
        Ok(c) => Ok(policy(c.tenant)?.effective(&c.roles)),
        Err(_) => Ok(Vec::new()),
    })
}

/// Does the current user hold `role` in the current tenant (directly or by inheritance)?
/// False without a context.
#[pg_extern(stable, parallel_restricted, name = "has_role")]
fn has_role_sql(role: &str) -> bool {
    boundary(|| match caller() {
        Ok(c) => Ok(policy(c.tenant)?.expand(&c.roles).contains(role)),
        Err(_) => Ok(false),
    })
}

fn can_user_impl(user_id: &str, resource: &str, action: &str, ctx: &Value) -> MtResult<bool> {
    let c = caller()?;
    let pol = policy(c.tenant)?;
    if !is_backend(&c)
        && !pol.can(
            &c.roles,
            "members",
            "manage",
            &Value::Null,
            c.user.as_deref(),
        )
    {
        return Err(MtError::denied("permission denied to check another user's permissions")
            .hint("Needs tenant_service or tenant_admin without a user in the context, or permission members/manage."));
    }
    names::user_id(user_id)?;
    let roles = member_roles(c.tenant, user_id)?;
    let org = member_org(c.tenant, user_id)?;
    let who = Subject {
        user: Some(user_id),
        org: org.as_deref(),
    };
    Ok(pol.can_for(&roles, resource, action, ctx, &who))
}

/// May `user_id` (a member of the current tenant, by its membership roles) do `action` on
/// `resource`? For the backend (`tenant_service`, `tenant_admin`) and for members allowed
/// `manage` on `members`; `self` in conditions is `user_id`.
#[pg_extern(stable, parallel_restricted)]
fn can_user(
    user_id: &str,
    resource: &str,
    action: &str,
    ctx: default!(pgrx::JsonB, "'{}'::jsonb"),
) -> bool {
    boundary(|| can_user_impl(user_id, resource, action, &ctx.0))
}

/// Who may see and change the current tenant's invitations: the backend, or members allowed
/// `invite` on `members`.
fn invitation_manager(write: bool) -> MtResult<Caller> {
    let c = caller()?;
    let c = if write { c.writable()? } else { c };
    if is_backend(&c) {
        return Ok(c);
    }
    if policy(c.tenant)?.can(
        &c.roles,
        "members",
        "invite",
        &Value::Null,
        c.user.as_deref(),
    ) {
        return Ok(c);
    }
    Err(MtError::denied("permission denied to manage invitations")
        .hint("Needs tenant_service or tenant_admin without a user in the context, or permission members/invite."))
}

type InvitationRow = (
    pgrx::Uuid,
    String,
    String,
    Option<String>,
    pgrx::datum::TimestampWithTimeZone,
    pgrx::datum::TimestampWithTimeZone,
);

fn pending_impl() -> MtResult<Vec<InvitationRow>> {
    let c = invitation_manager(false)?;
    as_owner(|| {
        crate::pg::spi::with_prepared_read(
            "SELECT id, email, role, invited_by, created_at, expires_at FROM tenant.invitations \
             WHERE tenant_id = $1 AND accepted_at IS NULL AND expires_at > now() ORDER BY created_at, id",
            &[pgrx::pg_sys::PgBuiltInOids::UUIDOID],
            &[pg_uuid(c.tenant).into()],
            |t| {
                let mut v = Vec::new();
                for r in t {
                    if let (Some(id), Some(email), Some(role), Some(at), Some(exp)) = (
                        r.get::<pgrx::Uuid>(1)?,
                        r.get::<String>(2)?,
                        r.get::<String>(3)?,
                        r.get::<pgrx::datum::TimestampWithTimeZone>(5)?,
                        r.get::<pgrx::datum::TimestampWithTimeZone>(6)?,
                    ) {
                        v.push((id, email, role, r.get::<String>(4)?, at, exp));
                    }
                }
                Ok(v)
            },
        )
    })
}

/// The current tenant's invitations that can still be accepted (never their tokens).
#[pg_extern(stable, parallel_restricted)]
fn pending_invitations() -> TableIterator<
    'static,
    (
        name!(id, pgrx::Uuid),
        name!(email, String),
        name!(role, String),
        name!(invited_by, Option<String>),
        name!(created_at, pgrx::datum::TimestampWithTimeZone),
        name!(expires_at, pgrx::datum::TimestampWithTimeZone),
    ),
> {
    TableIterator::new(boundary(pending_impl))
}

fn unknown_invitation(id: pgrx::Uuid) -> MtError {
    MtError::invalid(format!(
        "invitation {} does not exist in this tenant or was accepted",
        from_pg_uuid(id)
    ))
}

fn revoke_invitation_impl(id: pgrx::Uuid) -> MtResult<bool> {
    let c = invitation_manager(true)?;
    as_owner(|| {
        let row = write_first(
            "DELETE FROM tenant.invitations WHERE id = $1 AND tenant_id = $2 AND accepted_at IS NULL \
             RETURNING email, role",
            &[id.into(), pg_uuid(c.tenant).into()],
            |r| match r {
                Some(r) => Ok((r.get::<String>(1)?, r.get::<String>(2)?)),
                None => Ok((None, None)),
            },
        )?;
        let (Some(email), Some(role)) = row else {
            return Err(unknown_invitation(id));
        };
        event(
            Some(c.tenant),
            "invitation.revoked",
            serde_json::json!({"id": from_pg_uuid(id).to_string(), "email": email, "role": role}),
        )?;
        Ok(true)
    })
}

/// Withdraw a pending invitation of the current tenant: its token stops working.
#[pg_extern(volatile, parallel_unsafe)]
fn revoke_invitation(id: pgrx::Uuid) -> bool {
    boundary(|| revoke_invitation_impl(id))
}

fn resend_impl(id: pgrx::Uuid, ttl_hours: i32) -> MtResult<String> {
    let c = invitation_manager(true)?;
    if !(1..=24 * 90).contains(&ttl_hours) {
        return Err(MtError::invalid("ttl_hours must be between 1 and 2160"));
    }
    // the role it hands out must still be one this inviter may give
    let role = as_owner(|| {
        crate::pg::spi::with_prepared_read(
            "SELECT role FROM tenant.invitations WHERE id = $1 AND tenant_id = $2 AND accepted_at IS NULL",
            &[pgrx::pg_sys::PgBuiltInOids::UUIDOID, pgrx::pg_sys::PgBuiltInOids::UUIDOID],
            &[id.into(), pg_uuid(c.tenant).into()],
            |t| Ok(t.into_iter().next().map(|r| r.get::<String>(1)).transpose()?.flatten()),
        )
    })?
    .ok_or_else(|| unknown_invitation(id))?;
    if !is_backend(&c) && (role == OWNER_ROLE || !policy(c.tenant)?.may_grant(&c.roles, &role)) {
        return Err(MtError::denied(format!(
            "permission denied to invite to role \"{role}\""
        )));
    }
    as_owner(|| {
        let token = Spi::get_one::<String>(
            "SELECT replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', '')",
        )?
        .unwrap_or_default();
        let n = write_first(
            "UPDATE tenant.invitations SET token_hash = sha256(convert_to($3, 'UTF8')), \
                    expires_at = now() + make_interval(hours => $4) \
             WHERE id = $1 AND tenant_id = $2 AND accepted_at IS NULL RETURNING email",
            &[
                id.into(),
                pg_uuid(c.tenant).into(),
                token.as_str().into(),
                ttl_hours.into(),
            ],
            |r| Ok(r.map(|r| r.get::<String>(1)).transpose()?.flatten()),
        )?;
        let Some(email) = n else {
            return Err(unknown_invitation(id));
        };
        event(
            Some(c.tenant),
            "invitation.resent",
            serde_json::json!({"id": from_pg_uuid(id).to_string(), "email": email, "role": role}),
        )?;
        Ok(token)
    })
}

/// A new token for a pending invitation of the current tenant (the old one stops working);
/// the expiry starts again from now.
#[pg_extern(volatile, parallel_unsafe)]
fn resend_invitation(id: pgrx::Uuid, ttl_hours: default!(i32, 72)) -> String {
    boundary(|| resend_impl(id, ttl_hours))
}
