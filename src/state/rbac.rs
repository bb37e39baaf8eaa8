//! A tenant's roles and permissions, cached per backend until they change, and the built-in
//! roles every tenant starts with.

use crate::core::error::MtResult;
use crate::core::rbac::{builtin_roles, Permission, Policy};
use crate::pg::convert::pg_uuid;
use crate::pg::invalidation::{GenMap, Kind};
use crate::pg::owner::as_owner;
use crate::pg::spi::with_prepared_read;
use pgrx::pg_sys::PgBuiltInOids as O;
use pgrx::prelude::*;
use serde_json::Value;
use std::cell::RefCell;
use std::rc::Rc;

thread_local! {
    static POLICIES: RefCell<GenMap<uuid::Uuid, Rc<Policy>>> = RefCell::new(GenMap::new(&[Kind::Rbac]));
}

/// The tenant's role graph and permissions.
pub fn policy(tenant: uuid::Uuid) -> MtResult<Rc<Policy>> {
    if let Some(p) = POLICIES.with(|p| p.borrow_mut().fresh().get(&tenant).cloned()) {
        return Ok(p);
    }
    let loaded_at = POLICIES.with(|p| p.borrow().now());
    let json = as_owner(|| {
        with_prepared_read(
            "SELECT jsonb_build_object( \
               'roles', coalesce((SELECT jsonb_object_agg(name, inherits) FROM tenant.roles WHERE tenant_id = $1), '{}'), \
               'permissions', coalesce((SELECT jsonb_agg(jsonb_build_array(role, resource, action, condition)) \
                                        FROM tenant.permissions WHERE tenant_id = $1), '[]'))",
            &[O::UUIDOID],
            &[pg_uuid(tenant).into()],
            |t| Ok(t.into_iter().next().map(|r| r.get::<pgrx::JsonB>(1)).transpose()?.flatten()),
        )
    })?;
    let mut pol = Policy::default();
    if let Some(pgrx::JsonB(v)) = json {
        if let Some(Value::Object(roles)) = v.get("roles") {
            for (name, parents) in roles {
                let ps = parents.as_array().map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                });
                pol.inherits.insert(name.clone(), ps.unwrap_or_default());
            }
        }
        if let Some(Value::Array(perms)) = v.get("permissions") {
            for p in perms {
                let s = |i: usize| {
                    p.get(i)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                pol.permissions.push(Permission {
                    role: s(0),
                    resource: s(1),
                    action: s(2),
                    condition: p.get(3).cloned().unwrap_or(Value::Null),
                });
            }
        }
    }
    let pol = Rc::new(pol);
    POLICIES.with(|p| p.borrow_mut().insert(loaded_at, tenant, pol.clone()));
    Ok(pol)
}

/// Copy the built-in roles into a new tenant (called by `tenant.create`, as the owner).
pub fn install_builtins(tenant: uuid::Uuid) -> MtResult<()> {
    for (role, inherits, perms) in builtin_roles() {
        let inherits: Vec<String> = inherits.into_iter().map(str::to_string).collect();
        Spi::run_with_args(
            "INSERT INTO tenant.roles (tenant_id, name, inherits, builtin) VALUES ($1, $2, $3, true)",
            &[pg_uuid(tenant).into(), role.into(), inherits.into()],
        )?;
        for (res, act, cond) in perms {
            Spi::run_with_args(
                "INSERT INTO tenant.permissions (tenant_id, role, resource, action, condition) VALUES ($1, $2, $3, $4, $5)",
                &[
                    pg_uuid(tenant).into(),
                    role.into(),
                    res.into(),
                    act.into(),
                    (!cond.is_null()).then(|| pgrx::JsonB(cond.clone())).into(),
                ],
            )?;
        }
    }
    Ok(())
}

/// Copy every role template into `tenant` (called by `tenant.create` and
/// `tenant.apply_role_templates`, as the owner): a template's inheritance replaces the
/// tenant's for that role, its permissions are added. Returns how many roles were applied.
pub fn install_templates(tenant: uuid::Uuid) -> MtResult<i64> {
    if crate::state::registry::legacy_schema()? {
        return Ok(0); // still at 0.1.0: no templates table until ALTER EXTENSION ... UPDATE
    }
    let n = crate::pg::spi::write_count(
        "WITH r AS ( \
           INSERT INTO tenant.roles (tenant_id, name, inherits) \
           SELECT $1, t.name, t.inherits FROM tenant.role_templates t \
           ON CONFLICT (tenant_id, name) DO UPDATE SET inherits = EXCLUDED.inherits \
           RETURNING 1) \
         SELECT count(*) FROM r",
        &[pg_uuid(tenant).into()],
    )?;
    if n > 0 {
        Spi::run_with_args(
            "INSERT INTO tenant.permissions (tenant_id, role, resource, action, condition) \
             SELECT $1, t.name, p->>'resource', p->>'action', nullif(p->'condition', 'null'::jsonb) \
             FROM tenant.role_templates t, jsonb_array_elements(t.permissions) p \
             ON CONFLICT (tenant_id, role, resource, action, coalesce(condition, 'null'::jsonb)) DO NOTHING",
            &[pg_uuid(tenant).into()],
        )?;
    }
    Ok(n)
}

/// On a Citus coordinator with protected tables, what a context of `tenant` for `user`
/// (with a JWT's `jwt_roles`) carries to the workers: the caller's permissions on the
/// protected resources (`Claims::g`). None otherwise: nothing is added.
pub fn carried(
    tenant: uuid::Uuid,
    user: Option<&str>,
    jwt_roles: &[String],
) -> MtResult<Option<crate::core::rbac::Carried>> {
    let resources = crate::state::registry::protected_resources()?;
    if resources.is_empty() {
        return Ok(None);
    }
    let mut roles = jwt_roles.to_vec();
    let mut org = None;
    if let Some(u) = user {
        roles.extend(
            crate::state::members::member_roles(tenant, u)?
                .iter()
                .cloned(),
        );
        org = crate::state::members::member_org(tenant, u)?;
    }
    Ok(Some(policy(tenant)?.carried(&roles, &resources, org)))
}
