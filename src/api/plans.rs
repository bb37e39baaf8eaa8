//! Plans (SQL): defining them, moving tenants between them, per-tenant overrides.

use crate::core::error::{MtError, MtResult};
use crate::core::names;
use crate::core::plans::{parse_plan, Period};
use crate::pg::convert::pg_uuid;
use crate::pg::owner::as_owner;
use crate::pg::raise::{boundary, required};
use crate::pg::roles::require_any_role;
use crate::pg::spi::write_first;
use crate::state::audit::event;
use crate::state::tenants;
use pgrx::prelude::*;
use serde::Deserialize;

/// A plan document as text: JSON, or YAML as the design documents write plans (several
/// documents separated by `---` for `install_default_plans`).
pub(crate) fn documents(text: &str) -> MtResult<Vec<serde_json::Value>> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        return Ok(vec![v]);
    }
    let mut out = Vec::new();
    for d in serde_yaml_ng::Deserializer::from_str(text) {
        let v = serde_json::Value::deserialize(d)
            .map_err(|e| MtError::invalid(format!("the plan is neither JSON nor YAML: {e}")))?;
        if !v.is_null() {
            out.push(v);
        }
    }
    if out.is_empty() {
        return Err(MtError::invalid("the plan document is empty"));
    }
    Ok(out)
}

fn load_plan_impl(doc: &serde_json::Value) -> MtResult<String> {
    require_any_role(&[c"tenant_admin"], "define plans")?;
    let p = parse_plan(doc)?;
    // a database still at 0.1.0 has no display_name column (until ALTER EXTENSION ... UPDATE);
    // its statement leaves $8 unused
    let legacy = crate::state::registry::legacy_schema()?;
    as_owner(|| {
        Spi::connect_mut(|c| {
            c.update(
                if legacy {
                    "INSERT INTO tenant.plans (name, price, currency, billing_cycle, features, restrictions, definition, updated_at) \
                     VALUES ($1, $2::numeric, $3, $4, $5, $6, $7, now()) \
                     ON CONFLICT (name) DO UPDATE SET price = EXCLUDED.price, currency = EXCLUDED.currency, \
                       billing_cycle = EXCLUDED.billing_cycle, features = EXCLUDED.features, \
                       restrictions = EXCLUDED.restrictions, definition = EXCLUDED.definition, updated_at = now()"
                } else {
                    "INSERT INTO tenant.plans (name, price, currency, billing_cycle, features, restrictions, definition, updated_at, display_name) \
                     VALUES ($1, $2::numeric, $3, $4, $5, $6, $7, now(), $8) \
                     ON CONFLICT (name) DO UPDATE SET price = EXCLUDED.price, currency = EXCLUDED.currency, \
                       billing_cycle = EXCLUDED.billing_cycle, features = EXCLUDED.features, \
                       restrictions = EXCLUDED.restrictions, definition = EXCLUDED.definition, updated_at = now(), \
                       display_name = EXCLUDED.display_name"
                },
                None,
                &[
                    p.name.as_str().into(),
                    p.price.into(),
                    p.currency.as_str().into(),
                    p.billing_cycle.as_str().into(),
                    p.features.clone().into(),
                    p.restrictions.clone().into(),
                    pgrx::JsonB(doc.clone()).into(),
                    p.display_name.as_deref().into(),
                ],
            )?;
            c.update(
                "DELETE FROM tenant.plan_limits WHERE plan = $1",
                None,
                &[p.name.as_str().into()],
            )?;
            for l in &p.limits {
                c.update(
                    "INSERT INTO tenant.plan_limits (plan, resource, limit_value, period, overage_price) \
                     VALUES ($1, $2, $3, $4, $5::numeric)",
                    None,
                    &[
                        p.name.as_str().into(),
                        l.resource.as_str().into(),
                        l.limit.into(),
                        l.period.as_str().into(),
                        l.overage_price.into(),
                    ],
                )?;
            }
            Ok(p.name.clone())
        })
    })
}

/// Create or replace a plan from a JSON document (see docs/reference.md). For tenant_admin.
#[pg_extern(volatile, parallel_unsafe)]
fn load_plan(definition: pgrx::JsonB) -> String {
    boundary(|| load_plan_impl(&definition.0))
}

/// Create or replace a plan from its document as text: YAML as the design documents write
/// plans, or JSON. For tenant_admin.
#[pg_extern(volatile, parallel_unsafe, name = "load_plan")]
fn load_plan_text(definition: &str) -> String {
    boundary(|| {
        let docs = documents(definition)?;
        if docs.len() != 1 {
            return Err(MtError::invalid(format!(
                "one plan per call: the text holds {} documents",
                docs.len()
            )));
        }
        load_plan_impl(&docs[0])
    })
}

/// Load (or reload) the plans the design documents describe: free, pro, premium and
/// enterprise (sql/default_plans.yaml); returns their keys. For tenant_admin.
#[pg_extern(volatile, parallel_unsafe)]
fn install_default_plans() -> Vec<String> {
    boundary(|| {
        documents(include_str!("../../sql/default_plans.yaml"))?
            .iter()
            .map(load_plan_impl)
            .collect()
    })
}

fn set_plan_impl(tenant: &str, plan: &str) -> MtResult<()> {
    require_any_role(
        &[c"tenant_service", c"tenant_admin"],
        "change a tenant's plan",
    )?;
    let row = tenants::lookup(tenant)?;
    as_owner(|| {
        let exists = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM tenant.plans WHERE name = $1)",
            &[plan.into()],
        )?
        .unwrap_or(false);
        if !exists {
            return Err(MtError::invalid(format!("plan \"{plan}\" does not exist"))
                .hint("Define it with tenant.load_plan(...)."));
        }
        let from = write_first(
            "UPDATE tenant.tenants t SET plan = $2, updated_at = now() FROM tenant.tenants o \
             WHERE t.id = $1 AND o.id = t.id RETURNING o.plan",
            &[pg_uuid(row.id).into(), plan.into()],
            |r| Ok(r.map(|r| r.get::<String>(1)).transpose()?.flatten()),
        )?;
        event(
            Some(row.id),
            "tenant.plan_changed",
            serde_json::json!({"from": from, "to": plan}),
        )?;
        Ok(())
    })
}

/// Move a tenant to another plan; the next check uses it, in every session.
#[pg_extern(volatile, parallel_unsafe)]
fn set_plan(tenant: &str, plan: &str) {
    boundary(|| set_plan_impl(tenant, plan))
}

fn set_limit_override_impl(
    tenant: &str,
    resource: &str,
    limit: i64,
    period: &str,
    overage_price: Option<f64>,
) -> MtResult<()> {
    require_any_role(&[c"tenant_admin"], "override limits")?;
    names::resource(resource)?;
    let period = Period::parse(period)?;
    if limit < -1 {
        return Err(MtError::invalid("limit must be >= -1 (-1 = unlimited)"));
    }
    // sizes are counted in bytes: storage_gb 5 limits storage_bytes to 5 GiB
    let (base, factor) = crate::core::plans::unit_of(resource);
    let resource = base.as_str();
    let limit = if limit < 0 {
        limit
    } else {
        limit
            .checked_mul(factor)
            .ok_or_else(|| MtError::invalid("limit is out of range"))?
    };
    if factor != 1 && overage_price.is_some() {
        return Err(MtError::invalid(format!(
            "sizes are counted in bytes: price {resource} per byte"
        )));
    }
    if overage_price.is_some_and(|p| p < 0.0 || p.is_nan()) {
        return Err(MtError::invalid("overage_price must be >= 0"));
    }
    let row = tenants::lookup(tenant)?;
    as_owner(|| {
        Spi::run_with_args(
            "INSERT INTO tenant.tenant_limits (tenant_id, resource, limit_value, period, overage_price) \
             VALUES ($1, $2, $3, $4, $5::numeric) \
             ON CONFLICT (tenant_id, resource) DO UPDATE SET limit_value = EXCLUDED.limit_value, \
               period = EXCLUDED.period, overage_price = EXCLUDED.overage_price",
            &[pg_uuid(row.id).into(), resource.into(), limit.into(), period.as_str().into(), overage_price.into()],
        )?;
        Ok(())
    })
}

/// Give one tenant its own limit for a resource (a custom deal); -1 = unlimited.
#[pg_extern(volatile, parallel_unsafe)]
fn set_limit_override(
    tenant: Option<&str>,
    resource: Option<&str>,
    limit_value: Option<i64>,
    period: default!(Option<&str>, "'none'"),
    overage_price: default!(Option<f64>, "NULL"),
) {
    boundary(|| {
        set_limit_override_impl(
            required("tenant", tenant)?,
            required("resource", resource)?,
            required("limit_value", limit_value)?,
            required("period", period)?,
            overage_price,
        )
    })
}

fn set_feature_override_impl(tenant: &str, feature: &str, enabled: Option<bool>) -> MtResult<()> {
    require_any_role(&[c"tenant_admin"], "override features")?;
    names::plain("feature", feature)
        .map_err(|_| MtError::invalid(format!("invalid feature name \"{feature}\"")))?;
    let row = tenants::lookup(tenant)?;
    as_owner(|| {
        match enabled {
            Some(on) => Spi::run_with_args(
                "INSERT INTO tenant.tenant_features (tenant_id, feature, enabled) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant_id, feature) DO UPDATE SET enabled = EXCLUDED.enabled",
                &[pg_uuid(row.id).into(), feature.into(), on.into()],
            )?,
            None => Spi::run_with_args(
                "DELETE FROM tenant.tenant_features WHERE tenant_id = $1 AND feature = $2",
                &[pg_uuid(row.id).into(), feature.into()],
            )?,
        }
        Ok(())
    })
}

/// Grant (true) or withhold (false) a feature for one tenant regardless of its plan;
/// NULL removes the override.
#[pg_extern(volatile, parallel_unsafe)]
fn set_feature_override(tenant: Option<&str>, feature: Option<&str>, enabled: Option<bool>) {
    boundary(|| {
        set_feature_override_impl(
            required("tenant", tenant)?,
            required("feature", feature)?,
            enabled,
        )
    })
}
