//! Tenant registry (SQL): `tenant.create`, `tenant.set_status`.

use crate::core::error::{MtError, MtResult};
use crate::core::lifecycle::Status;
use crate::core::names;
use crate::pg::convert::from_pg_uuid;
use crate::pg::owner::as_owner;
use crate::pg::raise::boundary;
use crate::pg::roles::require_any_role;
use crate::pg::spi::write_first;
use crate::state::audit::event;
use crate::state::tenants;
use pgrx::prelude::*;

fn create_impl(
    slug: &str,
    name: &str,
    plan: &str,
    status: &str,
    settings: &serde_json::Value,
) -> MtResult<pgrx::Uuid> {
    require_any_role(&[c"tenant_service", c"tenant_admin"], "create tenants")?;
    names::slug(slug)?;
    names::tenant_name(name)?;
    if plan.trim().is_empty() {
        return Err(MtError::invalid("plan must not be empty"));
    }
    let status = Status::parse(status)?;
    if !matches!(
        status,
        Status::Provisioning | Status::Trial | Status::Active
    ) {
        return Err(
            MtError::invalid(format!("a new tenant cannot start as {}", status.as_str()))
                .hint("Start as provisioning, trial or active."),
        );
    }
    if !settings.is_object() {
        return Err(MtError::invalid("settings must be a JSON object"));
    }
    as_owner(|| {
        // 'free', the default, may be left undefined (no features, no limits)
        let plan_known = plan == "free"
            || Spi::get_one_with_args::<bool>(
                "SELECT EXISTS (SELECT 1 FROM tenant.plans WHERE name = $1)",
                &[plan.into()],
            )?
            .unwrap_or(false);
        if !plan_known {
            return Err(MtError::invalid(format!("plan \"{plan}\" does not exist"))
                .hint("Define it with tenant.load_plan(...) first."));
        }
        let taken = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM tenant.tenants WHERE slug = $1)",
            &[slug.into()],
        )?
        .unwrap_or(false);
        if taken {
            return Err(MtError::invalid(format!(
                "a tenant with slug \"{slug}\" already exists"
            )));
        }
        let id = write_first(
            "INSERT INTO tenant.tenants (slug, name, plan, status, settings, trial_ends_at) \
             VALUES ($1, $2, $3, $4, $5, CASE WHEN $4 = 'trial' THEN now() + interval '14 days' END) \
             RETURNING id",
            &[slug.into(), name.into(), plan.into(), status.as_str().into(), pgrx::JsonB(settings.clone()).into()],
            |r| Ok(r.map(|r| r.get::<pgrx::Uuid>(1)).transpose()?.flatten()),
        )?
        .ok_or_else(|| MtError::invalid("tenant insert returned no row"))?;
        crate::state::rbac::install_builtins(from_pg_uuid(id))?;
        crate::state::rbac::install_templates(from_pg_uuid(id))?;
        event(
            Some(from_pg_uuid(id)),
            "tenant.created",
            serde_json::json!({"slug": slug, "name": name, "plan": plan, "status": status.as_str()}),
        )?;
        Ok(id)
    })
}

/// Create a tenant and return its id. For `tenant_service` and `tenant_admin`.
#[pg_extern(volatile, parallel_unsafe)]
fn create(
    slug: &str,
    name: &str,
    plan: default!(&str, "'free'"),
    status: default!(&str, "'active'"),
    settings: default!(pgrx::JsonB, "'{}'::jsonb"),
) -> pgrx::Uuid {
    boundary(|| create_impl(slug, name, plan, status, &settings.0))
}

fn set_status_impl(tenant: &str, status: &str) -> MtResult<String> {
    require_any_role(
        &[c"tenant_service", c"tenant_admin"],
        "change a tenant's status",
    )?;
    let next = Status::parse(status)?;
    if next == Status::Purged {
        // purging removes the tenant's data: tenant.purge's rules (tenant_admin, after
        // the retention period)
        crate::api::portability::purge_impl(tenant, false)?;
        return Ok(next.as_str().to_string());
    }
    let row = tenants::lookup(tenant)?;
    as_owner(|| {
        crate::state::tenants::move_status(
            row.id,
            next,
            crate::core::lifecycle::Reason::Requested,
        )?;
        Ok(next.as_str().to_string())
    })
}

/// Move a tenant along its lifecycle (provisioning, trial, active, suspended, deleted,
/// purged); raises MT040 for a transition the state machine does not allow.
#[pg_extern(volatile, parallel_unsafe)]
fn set_status(tenant: &str, status: &str) -> String {
    boundary(|| set_status_impl(tenant, status))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::api::test_support::{one, run};
    use pgrx::prelude::*;

    #[pg_test]
    fn transitions_follow_the_state_machine() {
        run("SELECT tenant.create('acme', 'Acme', status => 'trial')");
        assert_eq!(
            one::<String>("SELECT tenant.set_status('acme', 'active')"),
            Some("active".into())
        );
        assert_eq!(
            one::<String>("SELECT tenant.set_status('acme', 'suspended')"),
            Some("suspended".into())
        );
    }

    #[pg_test(error = "a tenant cannot go from suspended to purged")]
    fn invalid_transition_is_refused() {
        run("SELECT tenant.create('acme', 'Acme')");
        run("SELECT tenant.set_status('acme', 'suspended')");
        run("SELECT tenant.set_status('acme', 'purged')");
    }
}
