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

pub(crate) fn create_impl(
    slug: &str,
    name: &str,
    plan: &str,
    status: &str,
    settings: &serde_json::Value,
    region: Option<&str>,
    owner_user_id: Option<&str>,
) -> MtResult<pgrx::Uuid> {
    require_any_role(&[c"tenant_service", c"tenant_admin"], "create tenants")?;
    if let Some(r) = region {
        names::region(r)?;
    }
    if let Some(u) = owner_user_id {
        names::user_id(u)?;
    }
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
        // the defaults (tenant.setting_defaults) under the given settings (a database still
        // at 0.1.0 has none)
        let sql = if crate::state::registry::legacy_schema()? {
            "INSERT INTO tenant.tenants (slug, name, plan, status, settings, trial_ends_at, region) \
             VALUES ($1, $2, $3, $4, $5, CASE WHEN $4 = 'trial' THEN now() + interval '14 days' END, $6) \
             RETURNING id"
        } else {
            "INSERT INTO tenant.tenants (slug, name, plan, status, settings, trial_ends_at, region) \
             VALUES ($1, $2, $3, $4, \
                     coalesce((SELECT jsonb_object_agg(d.key, d.value) FROM tenant.setting_defaults d), '{}') || $5, \
                     CASE WHEN $4 = 'trial' THEN now() + interval '14 days' END, $6) \
             RETURNING id"
        };
        let id = write_first(
            sql,
            &[
                slug.into(),
                name.into(),
                plan.into(),
                status.as_str().into(),
                pgrx::JsonB(settings.clone()).into(),
                region.into(),
            ],
            |r| Ok(r.map(|r| r.get::<pgrx::Uuid>(1)).transpose()?.flatten()),
        )?
        .ok_or_else(|| MtError::invalid("tenant insert returned no row"))?;
        crate::state::rbac::install_builtins(from_pg_uuid(id))?;
        crate::state::rbac::install_templates(from_pg_uuid(id))?;
        if let Some(owner) = owner_user_id {
            Spi::run_with_args(
                "INSERT INTO tenant.members (tenant_id, user_id, roles) VALUES ($1, $2, ARRAY['owner'])",
                &[id.into(), owner.into()],
            )?;
        }
        let created = serde_json::json!({"slug": slug, "name": name, "plan": plan, "status": status.as_str(),
                                         "region": region, "owner_user_id": owner_user_id});
        event(Some(from_pg_uuid(id)), "tenant.created", created.clone())?;
        // for the welcome e-mail, sent by a worker outside the database (tenant.take_events)
        if !crate::state::registry::legacy_schema()? {
            crate::state::site::emit("tenant.created", Some(from_pg_uuid(id)), created)?;
        }
        Ok(id)
    })
}

/// Create a tenant and return its id: its settings are the defaults
/// (`tenant.setting_defaults`) overlaid with `settings`; `owner_user_id` becomes a member with
/// role `owner` in the same transaction. For `tenant_service` and `tenant_admin`.
#[pg_extern(volatile, parallel_unsafe, name = "create")]
fn create_v2(
    slug: Option<&str>,
    name: Option<&str>,
    plan: default!(Option<&str>, "'free'"),
    status: default!(Option<&str>, "'active'"),
    settings: default!(Option<pgrx::JsonB>, "'{}'::jsonb"),
    region: default!(Option<&str>, "NULL"),
    owner_user_id: default!(Option<&str>, "NULL"),
) -> pgrx::Uuid {
    use crate::pg::raise::required;
    boundary(|| {
        create_impl(
            required("slug", slug)?,
            required("name", name)?,
            required("plan", plan)?,
            required("status", status)?,
            &required("settings", settings)?.0,
            region,
            owner_user_id,
        )
    })
}

fn update_impl(
    tenant: &str,
    name: Option<&str>,
    slug: Option<&str>,
    settings: Option<&serde_json::Value>,
    region: Option<&str>,
    merge: bool,
) -> MtResult<serde_json::Value> {
    require_any_role(&[c"tenant_service", c"tenant_admin"], "edit tenants")?;
    let row = tenants::lookup(tenant)?;
    if let Some(n) = name {
        names::tenant_name(n)?;
    }
    if let Some(s) = slug {
        names::slug(s)?;
    }
    if let Some(r) = region {
        names::region(r)?;
    }
    if settings.is_some_and(|s| !s.is_object()) {
        return Err(MtError::invalid("settings must be a JSON object"));
    }
    as_owner(|| {
        if let Some(s) = slug {
            let taken = crate::pg::spi::read_one::<bool>(
                "SELECT EXISTS (SELECT 1 FROM tenant.tenants WHERE slug = $1 AND id <> $2)",
                &[s.into(), crate::pg::convert::pg_uuid(row.id).into()],
            )?
            .unwrap_or(false);
            if taken {
                return Err(MtError::invalid(format!(
                    "a tenant with slug \"{s}\" already exists"
                )));
            }
        }
        let after = write_first(
            "UPDATE tenant.tenants SET name = coalesce($2, name), slug = coalesce($3, slug), \
               region = coalesce($5, region), updated_at = now(), \
               settings = CASE WHEN $4 IS NULL THEN settings WHEN $6 THEN settings || $4 ELSE $4 END \
             WHERE id = $1 \
             RETURNING jsonb_build_object('id', id, 'slug', slug, 'name', name, 'plan', plan, \
                                          'status', status, 'region', region, 'settings', settings)",
            &[
                crate::pg::convert::pg_uuid(row.id).into(),
                name.into(),
                slug.into(),
                settings.cloned().map(pgrx::JsonB).into(),
                region.into(),
                merge.into(),
            ],
            |r| Ok(r.map(|r| r.get::<pgrx::JsonB>(1)).transpose()?.flatten()),
        )?
        .map(|j| j.0)
        .ok_or_else(|| MtError::tenant_not_found(tenant))?;
        event(
            Some(row.id),
            "tenant.updated",
            serde_json::json!({"name": name, "slug": slug, "settings": settings, "region": region, "merge": merge}),
        )?;
        Ok(after)
    })
}

/// Edit a tenant: its display name, slug, region, settings (merged into the current ones,
/// or replacing them with `merge => false`); NULL leaves a field as it is. Returns the tenant
/// as it is now; every backend sees the change at its next statement. For `tenant_service`
/// and `tenant_admin`.
#[pg_extern(volatile, parallel_unsafe)]
fn update(
    tenant: Option<&str>,
    name: default!(Option<&str>, "NULL"),
    slug: default!(Option<&str>, "NULL"),
    settings: default!(Option<pgrx::JsonB>, "NULL"),
    region: default!(Option<&str>, "NULL"),
    merge: default!(Option<bool>, true),
) -> pgrx::JsonB {
    use crate::pg::raise::required;
    boundary(|| {
        update_impl(
            required("tenant", tenant)?,
            name,
            slug,
            settings.as_ref().map(|j| &j.0),
            region,
            required("merge", merge)?,
        )
        .map(pgrx::JsonB)
    })
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
        crate::state::lifecycle::move_status(
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

    #[pg_test(error = "a tenant cannot go from suspended to trial")]
    fn invalid_transition_is_refused() {
        run("SELECT tenant.create('acme', 'Acme')");
        run("SELECT tenant.set_status('acme', 'suspended')");
        run("SELECT tenant.set_status('acme', 'trial')");
    }
}

/// The backend without a user in the context, or a member allowed `update` on `settings`.
fn settings_writer() -> MtResult<uuid::Uuid> {
    crate::api::rbac::permitted("settings", "update", "change the tenant's settings")
        .map(|c| c.tenant)
}

fn set_setting_impl(key: &str, value: Option<serde_json::Value>) -> MtResult<()> {
    names::setting_key(key)?;
    let tenant = settings_writer()?;
    as_owner(|| {
        Spi::run_with_args(
            "UPDATE tenant.tenants SET updated_at = now(), \
               settings = CASE WHEN $3 THEN settings - $2 ELSE settings || jsonb_build_object($2, $4::jsonb) END \
             WHERE id = $1",
            &[
                crate::pg::convert::pg_uuid(tenant).into(),
                key.into(),
                value.is_none().into(),
                value.clone().map(pgrx::JsonB).into(),
            ],
        )?;
        event(
            Some(tenant),
            "tenant.setting_changed",
            serde_json::json!({"key": key, "value": value}),
        )
    })
}

/// Set one setting of the current tenant (NULL removes it). For the backend and members
/// allowed `update` on `settings`; audited.
#[pg_extern(volatile, parallel_unsafe)]
fn set_setting(key: Option<&str>, value: Option<pgrx::JsonB>) {
    boundary(|| set_setting_impl(crate::pg::raise::required("key", key)?, value.map(|j| j.0)))
}

fn get_setting_impl(
    key: &str,
    fallback: Option<serde_json::Value>,
) -> MtResult<Option<serde_json::Value>> {
    names::setting_key(key)?;
    let tenant = crate::state::context::verified(|c| c.t).map_err(|_| MtError::no_context())?;
    let v = as_owner(|| {
        crate::pg::spi::read_one::<pgrx::JsonB>(
            "SELECT settings -> $2 FROM tenant.tenants WHERE id = $1",
            &[crate::pg::convert::pg_uuid(tenant).into(), key.into()],
        )
    })?;
    Ok(v.map(|j| j.0).or(fallback))
}

/// One setting of the current tenant, or `fallback` when it has none. MT001 without a
/// context.
#[pg_extern(stable, parallel_restricted)]
fn get_setting(
    key: Option<&str>,
    fallback: default!(Option<pgrx::JsonB>, "NULL"),
) -> Option<pgrx::JsonB> {
    boundary(|| {
        get_setting_impl(
            crate::pg::raise::required("key", key)?,
            fallback.map(|j| j.0),
        )
        .map(|v| v.map(pgrx::JsonB))
    })
}

fn set_default_impl(key: &str, value: Option<serde_json::Value>) -> MtResult<()> {
    require_any_role(&[c"tenant_admin"], "set setting defaults")?;
    names::setting_key(key)?;
    as_owner(|| {
        match &value {
            Some(v) => Spi::run_with_args(
                "INSERT INTO tenant.setting_defaults (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[key.into(), pgrx::JsonB(v.clone()).into()],
            )?,
            None => Spi::run_with_args(
                "DELETE FROM tenant.setting_defaults WHERE key = $1",
                &[key.into()],
            )?,
        }
        event(
            None,
            "setting_default.changed",
            serde_json::json!({"key": key, "value": value}),
        )
    })
}

/// The value new tenants get for a setting (NULL removes the default; existing tenants keep
/// theirs). For `tenant_admin`.
#[pg_extern(volatile, parallel_unsafe)]
fn set_setting_default(key: Option<&str>, value: Option<pgrx::JsonB>) {
    boundary(|| set_default_impl(crate::pg::raise::required("key", key)?, value.map(|j| j.0)))
}
