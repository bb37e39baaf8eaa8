//! A tenant's entitlements: its plan's features and limits with its overrides, loaded once
//! per backend and dropped whenever plans, limits, overrides or tenants change.

use crate::core::error::{MtError, MtResult};
use crate::core::plans::Entitlements;
use crate::pg::convert::pg_uuid;
use crate::pg::invalidation::{GenMap, Kind};
use crate::pg::owner::as_owner;
use crate::pg::spi::with_prepared_read;
use std::cell::RefCell;
use std::rc::Rc;

thread_local! {
    static ENTITLEMENTS: RefCell<GenMap<uuid::Uuid, Rc<Entitlements>>> = RefCell::new(GenMap::new(&[Kind::Plans]));
}

/// Run `f` over the tenant's entitlements.
pub fn with_entitlements<R>(tenant: uuid::Uuid, f: impl FnOnce(&Entitlements) -> R) -> MtResult<R> {
    if let Some(e) = ENTITLEMENTS.with(|c| c.borrow_mut().fresh().get(&tenant).cloned()) {
        return Ok(f(&e));
    }
    let loaded_at = ENTITLEMENTS.with(|c| c.borrow().now());
    let json = as_owner(|| {
        with_prepared_read(
            include_str!("../../sql/entitlements.sql"),
            &[pgrx::pg_sys::PgBuiltInOids::UUIDOID],
            &[pg_uuid(tenant).into()],
            |t| match t.into_iter().next() {
                Some(r) => Ok(r.get::<pgrx::JsonB>(1)?),
                None => Ok(None),
            },
        )
    })?;
    let e = match json {
        Some(j) => Entitlements::from_json(&j.0)?,
        None => return Err(MtError::tenant_not_found(&tenant.to_string())),
    };
    let e = Rc::new(e);
    ENTITLEMENTS.with(|c| c.borrow_mut().insert(loaded_at, tenant, e.clone()));
    Ok(f(&e))
}
