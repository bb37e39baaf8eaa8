//! Role templates: roles defined once for every tenant (the design documents' permission
//! matrix is global), copied into each new tenant by `tenant.create` and into existing ones by
//! `tenant.apply_role_templates`.

use crate::core::error::{MtError, MtResult};
use crate::core::names;
use crate::core::rbac::{template_permissions, Policy, BUILTIN_ROLE_NAMES};
use crate::pg::owner::as_owner;
use crate::pg::raise::boundary;
use crate::pg::roles::require_any_role;
use crate::pg::spi::with_prepared_read;
use crate::state::audit::event;
use crate::state::rbac::install_templates;
use crate::state::tenants;
use pgrx::prelude::*;
use serde_json::Value;

/// The templates' inheritance graph, with the built-in roles (which inherit in a chain).
fn template_graph() -> MtResult<Policy> {
    let mut pol = Policy::default();
    for (name, inherits, _) in crate::core::rbac::builtin_roles() {
        pol.inherits.insert(
            name.to_string(),
            inherits.into_iter().map(str::to_string).collect(),
        );
    }
    as_owner(|| {
        with_prepared_read(
            "SELECT name, inherits FROM tenant.role_templates",
            &[],
            &[],
            |t| {
                for r in t {
                    if let Some(name) = r.get::<String>(1)? {
                        pol.inherits
                            .insert(name, r.get::<Vec<String>>(2)?.unwrap_or_default());
                    }
                }
                Ok(())
            },
        )
    })?;
    Ok(pol)
}

fn define_impl(name: &str, inherits: Vec<String>, permissions: &Value) -> MtResult<()> {
    require_any_role(&[c"tenant_admin"], "define role templates")?;
    names::permission_part("role", name)?;
    if name.contains('*') {
        return Err(MtError::invalid("role names cannot contain '*'"));
    }
    if BUILTIN_ROLE_NAMES.contains(&name) {
        return Err(MtError::invalid(format!(
            "\"{name}\" is a built-in role; templates cannot redefine it"
        )));
    }
    let perms = template_permissions(permissions)?;
    let graph = template_graph()?;
    if let Some(p) = inherits
        .iter()
        .find(|p| !graph.inherits.contains_key(p.as_str()))
    {
        return Err(MtError::invalid(format!(
            "role template \"{}\" does not exist",
            p.escape_default()
        ))
        .hint("Define the templates it inherits first (or inherit a built-in role)."));
    }
    if graph.creates_cycle(name, &inherits) {
        return Err(MtError::invalid(format!(
            "role template \"{name}\" would inherit from itself"
        ))
        .hint("Inheritance must not form a cycle."));
    }
    let stored: Vec<Value> = perms
        .iter()
        .map(|(r, a, c)| serde_json::json!({"resource": r, "action": a, "condition": c}))
        .collect();
    as_owner(|| {
        Spi::run_with_args(
            "INSERT INTO tenant.role_templates (name, inherits, permissions) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET inherits = EXCLUDED.inherits, \
               permissions = EXCLUDED.permissions, updated_at = now()",
            &[
                name.into(),
                inherits.clone().into(),
                pgrx::JsonB(Value::Array(stored.clone())).into(),
            ],
        )?;
        event(
            None,
            "role_template.defined",
            serde_json::json!({"role": name, "inherits": inherits, "permissions": stored}),
        )
    })
}

/// Define (or redefine) a role template: copied into every tenant created from now on, and
/// into existing ones by `tenant.apply_role_templates`. For `tenant_admin`.
#[pg_extern(volatile, parallel_unsafe)]
fn define_role_template(
    name: &str,
    inherits: default!(Vec<String>, "'{}'::text[]"),
    permissions: default!(pgrx::JsonB, "'[]'::jsonb"),
) {
    boundary(|| define_impl(name, inherits, &permissions.0))
}

fn drop_impl(name: &str) -> MtResult<bool> {
    require_any_role(&[c"tenant_admin"], "drop role templates")?;
    let graph = template_graph()?;
    if let Some((child, _)) = graph
        .inherits
        .iter()
        .find(|(_, ps)| ps.iter().any(|p| p == name))
    {
        return Err(MtError::invalid(format!(
            "role template \"{child}\" inherits from \"{name}\""
        )));
    }
    as_owner(|| {
        let gone = crate::pg::spi::write_first(
            "DELETE FROM tenant.role_templates WHERE name = $1 RETURNING 1",
            &[name.into()],
            |r| Ok(r.is_some()),
        )?;
        if gone {
            event(
                None,
                "role_template.dropped",
                serde_json::json!({"role": name}),
            )?;
        }
        Ok(gone)
    })
}

/// Drop a role template (tenants keep the roles it gave them). For `tenant_admin`.
#[pg_extern(volatile, parallel_unsafe)]
fn drop_role_template(name: &str) -> bool {
    boundary(|| drop_impl(name))
}

fn apply_impl(tenant: Option<&str>) -> MtResult<i64> {
    require_any_role(
        &[c"tenant_service", c"tenant_admin"],
        "apply role templates",
    )?;
    let ids: Vec<uuid::Uuid> = match tenant {
        Some(t) => vec![tenants::lookup(t)?.id],
        None => as_owner(|| {
            tenants::ids(
                "SELECT id FROM tenant.tenants WHERE status <> 'purged' ORDER BY created_at, id",
                &[],
                &[],
            )
        })?,
    };
    as_owner(|| {
        let mut total = 0;
        for id in ids {
            let n = install_templates(id)?;
            event(
                Some(id),
                "role_templates.applied",
                serde_json::json!({"roles": n}),
            )?;
            total += n;
        }
        Ok(total)
    })
}

/// Copy every role template into `tenant` (NULL: every tenant); returns how many roles were
/// applied. A template's inheritance replaces the tenant's for that role; its permissions
/// are added. For `tenant_service` and `tenant_admin`.
#[pg_extern(volatile, parallel_unsafe)]
fn apply_role_templates(tenant: default!(Option<&str>, "NULL")) -> i64 {
    boundary(|| apply_impl(tenant))
}
