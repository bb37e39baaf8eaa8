//! Usage alerts: a threshold of a limit crossed raises one alert per tenant, resource, key,
//! window and threshold (a unique row; `pg_notify('multitenant_alerts', ...)` wakes
//! listeners). Only the consumer whose amount crosses a threshold does any work.

use crate::core::error::MtResult;
use crate::core::plans::{window, Limit, Period};
use crate::pg::convert::{now_unix, pg_uuid};
use crate::pg::owner::as_owner;
use pgrx::prelude::*;
use serde_json::json;

/// Raise the alerts of the thresholds that usage going from `old` to `new` crosses.
pub fn crossed(
    tenant: uuid::Uuid,
    limit: &Limit,
    key: &str,
    period: Period,
    old: i64,
    new: i64,
) -> MtResult<()> {
    // arithmetic first: most calls reach no new whole percentage of the limit, and then no
    // setting is read and nothing is written
    if limit.unlimited() || crate::core::plans::percents_reached(limit.limit, old, new).is_none() {
        return Ok(());
    }
    let hit = crate::core::plans::crossed(&crate::gucs::alert_thresholds(), limit.limit, old, new);
    if hit.is_empty() || crate::state::registry::legacy_schema()? {
        return Ok(());
    }
    let (ws, _) = window(period, now_unix());
    as_owner(|| {
        for t in hit {
            let id = crate::pg::spi::write_first(
                "INSERT INTO tenant.usage_alerts (tenant_id, resource, key, window_start, threshold, used, limit_value) \
                 VALUES ($1, $2, $3, to_timestamp($4), $5, $6, $7) \
                 ON CONFLICT (tenant_id, resource, key, window_start, threshold) DO NOTHING RETURNING id",
                &[
                    pg_uuid(tenant).into(),
                    limit.resource.as_str().into(),
                    key.into(),
                    (ws as f64).into(),
                    (t as i32).into(),
                    new.into(),
                    limit.limit.into(),
                ],
                |r| Ok(r.map(|r| r.get::<i64>(1)).transpose()?.flatten()),
            )?;
            if let Some(id) = id {
                // LISTEN needs no privilege: the payload names the alert row, not the tenant
                let note = json!({"id": id, "resource": limit.resource, "threshold": t});
                Spi::run_with_args(
                    "SELECT pg_catalog.pg_notify('multitenant_alerts', $1)",
                    &[note.to_string().as_str().into()],
                )?;
            }
        }
        Ok(())
    })
}
