//! Where a request lands: the outbox of events for workers outside the database, tenant
//! lookups by host, and the plan gates of issue 14 (features, restrictions, limits).

use crate::core::error::{Code, MtError, MtResult};
use crate::core::site;
use crate::pg::convert::{from_pg_uuid, pg_uuid};
use crate::pg::owner::as_owner;
use crate::pg::spi::read_one;
use crate::state::plans::with_entitlements;
use crate::state::tenants;
use pgrx::prelude::*;
use serde_json::{json, Value};

/// The channel `pg_notify` wakes workers on.
pub const CHANNEL: &str = "multitenant_events";

/// Queue an event for a worker outside the database (in this transaction: it is delivered
/// only if the transaction commits), and wake listeners.
pub fn emit(event: &str, tenant: Option<uuid::Uuid>, payload: Value) -> MtResult<()> {
    as_owner(|| {
        let id = crate::pg::spi::write_first(
            "INSERT INTO tenant.outbox (event, tenant_id, payload) VALUES ($1, $2, $3) RETURNING id",
            &[
                event.into(),
                tenant.map(pg_uuid).into(),
                pgrx::JsonB(payload).into(),
            ],
            |r| Ok(r.map(|r| r.get::<i64>(1)).transpose()?.flatten()),
        )?;
        // LISTEN needs no privilege: the notification says only which outbox row to take
        let note = json!({"id": id, "event": event});
        Spi::run_with_args(
            "SELECT pg_catalog.pg_notify($1, $2)",
            &[CHANNEL.into(), note.to_string().as_str().into()],
        )?;
        Ok(())
    })
}

/// The tenant a request for `host` belongs to: a verified custom domain, else a subdomain of
/// the base domain naming a slug. Purged tenants resolve to nothing.
pub fn tenant_by_host(host: &str, base: &str) -> MtResult<Option<uuid::Uuid>> {
    let Some(host) = site::request_host(host) else {
        return Ok(None);
    };
    if !site::under_base(&host, base) {
        let id = as_owner(|| {
            read_one::<pgrx::Uuid>(
                "SELECT d.tenant_id FROM tenant.domains d JOIN tenant.tenants t ON t.id = d.tenant_id \
                 WHERE d.hostname = $1 AND d.verified_at IS NOT NULL AND t.status <> 'purged'",
                &[host.as_str().into()],
            )
        })?;
        return Ok(id.map(from_pg_uuid));
    }
    match site::subdomain_slug(&host, base) {
        Some(slug) => alive(slug),
        None => Ok(None),
    }
}

/// A tenant by uuid or slug, unless unknown or purged.
pub fn alive(key: &str) -> MtResult<Option<uuid::Uuid>> {
    match tenants::lookup(key) {
        Ok(row) if row.status != crate::core::lifecycle::Status::Purged => Ok(Some(row.id)),
        Ok(_) => Ok(None),
        Err(e) if e.code == Code::TenantNotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Raise MT011 unless the tenant has one of `features` (plan and overrides, not withheld by
/// a restriction `no_<feature>`) and its plan does not carry `restriction` (a feature
/// override granting `features[0]` lifts `no_<features[0]>`).
pub fn require_gate(
    tenant: uuid::Uuid,
    features: &[&str],
    restriction: Option<&str>,
) -> MtResult<()> {
    let (has, restricted, plan) = with_entitlements(tenant, |e| {
        (
            features.iter().any(|f| e.has_feature(f)),
            restriction.is_some_and(|r| e.restrictions.contains(r)),
            e.plan.clone(),
        )
    })?;
    if has && !restricted {
        return Ok(());
    }
    let why = if restricted {
        format!(
            "plan \"{plan}\" has the restriction \"{}\"",
            restriction.unwrap_or_default()
        )
    } else {
        format!("feature \"{}\" is not in plan \"{plan}\"", features[0])
    };
    Err(MtError::new(Code::FeatureNotInPlan, why)
        .hint(format!("Upgrade the plan or grant the feature with tenant.set_feature_override(tenant, '{}', true).", features[0])))
}

/// The limit of `resource` for the tenant (None: no limit; -1 also means none).
pub fn plan_limit(tenant: uuid::Uuid, resource: &str) -> MtResult<Option<i64>> {
    with_entitlements(tenant, |e| {
        e.limits.get(resource).map(|l| l.limit).filter(|l| *l >= 0)
    })
}
