//! The tenant resolver: a tenant by uuid or slug, cached per backend until `tenant.tenants`
//! changes. The one place a tenant key is resolved (slugs cannot look like uuids).

use crate::core::error::{MtError, MtResult};
use crate::core::lifecycle::Status;
use crate::pg::convert::{from_pg_uuid, pg_uuid};
use crate::pg::invalidation::{GenMap, Kind};
use crate::pg::owner::as_owner;
use crate::pg::spi::with_prepared_read;
use pgrx::pg_sys::PgBuiltInOids as O;
use pgrx::spi::SpiTupleTable;
use std::cell::RefCell;

#[derive(Clone, Debug)]
pub struct TenantRow {
    pub id: uuid::Uuid,
    pub status: Status,
    pub plan: String,
}

thread_local! {
    static TENANTS: RefCell<GenMap<String, TenantRow>> = RefCell::new(GenMap::new(&[Kind::Tenants]));
}

/// Find a tenant by uuid or slug.
pub fn lookup(key: &str) -> MtResult<TenantRow> {
    if let Some(row) = TENANTS.with(|c| c.borrow_mut().fresh().get(key).cloned()) {
        return Ok(row);
    }
    let loaded_at = TENANTS.with(|c| c.borrow().now());
    let by_id = uuid::Uuid::parse_str(key).ok();
    type Found = (Option<pgrx::Uuid>, Option<String>, Option<String>);
    let read = |t: SpiTupleTable<'_>| -> MtResult<Found> {
        match t.into_iter().next() {
            Some(r) => Ok((
                r.get::<pgrx::Uuid>(1)?,
                r.get::<String>(2)?,
                r.get::<String>(3)?,
            )),
            None => Ok((None, None, None)),
        }
    };
    let found = as_owner(|| match by_id {
        Some(id) => with_prepared_read(
            "SELECT id, status, plan FROM tenant.tenants WHERE id = $1",
            &[O::UUIDOID],
            &[pg_uuid(id).into()],
            read,
        ),
        None => with_prepared_read(
            "SELECT id, status, plan FROM tenant.tenants WHERE slug = $1",
            &[O::TEXTOID],
            &[key.into()],
            read,
        ),
    })?;
    match found {
        (Some(id), Some(status), Some(plan)) => {
            let row = TenantRow {
                id: from_pg_uuid(id),
                status: Status::parse(&status)?,
                plan,
            };
            TENANTS.with(|c| {
                let mut c = c.borrow_mut();
                // by slug and by id: contexts carry the id, set_context takes either
                let id = row.id.to_string();
                if id != key {
                    c.insert(loaded_at, id, row.clone());
                }
                c.insert(loaded_at, key.to_string(), row.clone())
            });
            Ok(row)
        }
        _ => Err(MtError::tenant_not_found(key)),
    }
}

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
