//! Moving tenants along their lifecycle: the state machine with its timestamps and audit
//! events, shared by `tenant.set_status` and `tenant.run_maintenance`.

use crate::core::error::{MtError, MtResult};
use crate::core::lifecycle::Status;
use crate::pg::convert::pg_uuid;

/// Move a tenant to `next` through the state machine, under the tenant row's lock, with the
/// lifecycle timestamps (`suspended_at`, `deleted_at` and `purge_after`, `period_end` on a
/// renewal) and the audit event; the caller runs it as the extension owner. Returns the
/// status it came from.
pub fn move_status(
    id: uuid::Uuid,
    next: Status,
    reason: crate::core::lifecycle::Reason,
) -> MtResult<Status> {
    move_status_from(id, None, next, reason)?
        .ok_or_else(|| MtError::tenant_not_found(&id.to_string()))
}

/// Lock the tenant's row and read its status (None: no such tenant).
pub fn lock_status(id: uuid::Uuid) -> MtResult<Option<Status>> {
    crate::pg::spi::write_first(
        "SELECT status FROM tenant.tenants WHERE id = $1 FOR UPDATE",
        &[pg_uuid(id).into()],
        |r| Ok(r.map(|r| r.get::<String>(1)).transpose()?.flatten()),
    )?
    .map(|s| Status::parse(&s))
    .transpose()
}

/// [`move_status`], only when the tenant is still in `expected` once its row is locked
/// (`run_maintenance` runs may overlap): None when it was not (nothing done).
pub fn move_status_from(
    id: uuid::Uuid,
    expected: Option<Status>,
    next: Status,
    reason: crate::core::lifecycle::Reason,
) -> MtResult<Option<Status>> {
    let Some(current) = lock_status(id)? else {
        return Err(MtError::tenant_not_found(&id.to_string()));
    };
    if expected.is_some_and(|e| e != current) {
        return Ok(None);
    }
    current.transition(next)?;
    let retention = crate::gucs::DELETION_RETENTION.get();
    let period_end = crate::pg::spi::write_first(
        "UPDATE tenant.tenants t SET status = $2, updated_at = now(), \
           suspended_at = CASE WHEN $2 = 'suspended' THEN now() WHEN $2 = 'active' THEN NULL ELSE t.suspended_at END, \
           deleted_at = CASE WHEN $2 = 'deleted' THEN now() WHEN $2 IN ('active', 'suspended') THEN NULL ELSE t.deleted_at END, \
           purge_after = CASE WHEN $2 = 'deleted' THEN now() + make_interval(secs => $3) \
                              WHEN $2 IN ('active', 'suspended') THEN NULL ELSE t.purge_after END, \
           period_end = CASE WHEN $4 THEN \
               CASE coalesce((SELECT p.billing_cycle FROM tenant.plans p WHERE p.name = t.plan), 'month') \
                 WHEN 'year' THEN greatest(coalesce(t.period_end, now()), now()) + interval '1 year' \
                 WHEN 'none' THEN NULL \
                 ELSE greatest(coalesce(t.period_end, now()), now()) + interval '1 month' END \
             ELSE t.period_end END \
         WHERE t.id = $1 RETURNING t.period_end::text",
        &[
            pg_uuid(id).into(),
            next.as_str().into(),
            (retention as f64).into(),
            (current == Status::Active && next == Status::Active).into(),
        ],
        |r| Ok(r.map(|r| r.get::<String>(1)).transpose()?.flatten()),
    )?;
    let renewal = current == Status::Active && next == Status::Active;
    let mut data = serde_json::json!({
        "from": current.as_str(),
        "to": next.as_str(),
        "reason": reason.as_str(),
    });
    if renewal {
        data["period_end"] = period_end.map_or(serde_json::Value::Null, serde_json::Value::String);
    }
    let name = if renewal {
        "tenant.renewed"
    } else {
        "tenant.status_changed"
    };
    crate::state::audit::event(Some(id), name, data)?;
    Ok(Some(current))
}
