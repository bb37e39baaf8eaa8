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
    /// its own schema (placement 'schema'), put first on the search_path by set_context
    pub schema: Option<String>,
    /// when the row last changed, unix seconds (on a Citus worker: also when the tenant's
    /// roles, permissions or memberships last changed or went on the coordinator)
    pub updated_at: i64,
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
    type Found = (
        Option<pgrx::Uuid>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i64>,
    );
    let read = |t: SpiTupleTable<'_>| -> MtResult<Found> {
        match t.into_iter().next() {
            Some(r) => Ok((
                r.get::<pgrx::Uuid>(1)?,
                r.get::<String>(2)?,
                r.get::<String>(3)?,
                r.get::<String>(4)?,
                r.get::<i64>(5)?,
            )),
            None => Ok((None, None, None, None, None)),
        }
    };
    let found = as_owner(|| match by_id {
        Some(id) => with_prepared_read(
            "SELECT id, status, plan, pg_catalog.to_jsonb(t) ->> 'schema_name', \
               pg_catalog.floor(pg_catalog.date_part('epoch', t.updated_at))::pg_catalog.int8 \
             FROM tenant.tenants t WHERE id = $1",
            &[O::UUIDOID],
            &[pg_uuid(id).into()],
            read,
        ),
        None => with_prepared_read(
            "SELECT id, status, plan, pg_catalog.to_jsonb(t) ->> 'schema_name', \
               pg_catalog.floor(pg_catalog.date_part('epoch', t.updated_at))::pg_catalog.int8 \
             FROM tenant.tenants t WHERE slug = $1",
            &[O::TEXTOID],
            &[key.into()],
            read,
        ),
    })?;
    match found {
        (Some(id), Some(status), Some(plan), schema, updated_at) => {
            let row = TenantRow {
                id: from_pg_uuid(id),
                status: Status::parse(&status)?,
                plan,
                schema,
                updated_at: updated_at.unwrap_or(0),
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

/// The tenant ids a query (its first column) returns; the caller picks the role it runs as.
pub fn ids(
    sql: &'static str,
    types: &[pgrx::pg_sys::PgBuiltInOids],
    args: &[pgrx::datum::DatumWithOid],
) -> MtResult<Vec<uuid::Uuid>> {
    with_prepared_read(sql, types, args, |t| {
        let mut v = Vec::new();
        for r in t {
            if let Some(id) = r.get::<pgrx::Uuid>(1)? {
                v.push(from_pg_uuid(id));
            }
        }
        Ok(v)
    })
}
