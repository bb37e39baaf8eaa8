//! A tenant's entitlements: its plan's features and limits with its overrides, loaded once
//! per backend and dropped whenever plans, limits, overrides or tenants change.

use crate::core::error::{MtError, MtResult};
use crate::core::plans::Entitlements;
use crate::pg::convert::{from_pg_uuid, pg_uuid};
use crate::pg::invalidation::{GenMap, Kind};
use crate::pg::owner::as_owner;
use crate::pg::spi::with_prepared_read;
use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

thread_local! {
    static ENTITLEMENTS: RefCell<GenMap<uuid::Uuid, Rc<Entitlements>>> = RefCell::new(GenMap::new(&[Kind::Plans]));
    /// a plan's own entitlements, shared by every tenant on it without overrides
    static PLANS: RefCell<GenMap<String, Rc<Entitlements>>> = RefCell::new(GenMap::new(&[Kind::Plans]));
    /// the tenants that have limit or feature overrides (one set, loaded once per generation)
    static OVERRIDDEN: RefCell<GenMap<(), Rc<HashSet<uuid::Uuid>>>> = RefCell::new(GenMap::new(&[Kind::Plans]));
}

/// Run `f` over the tenant's entitlements. A tenant without overrides shares its plan's
/// entitlements: the first use of such a tenant in a backend costs a cached tenant lookup,
/// not a query (what keeps `consume()` flat with 100,000 tenants).
pub fn with_entitlements<R>(tenant: uuid::Uuid, f: impl FnOnce(&Entitlements) -> R) -> MtResult<R> {
    if let Some(e) = ENTITLEMENTS.with(|c| c.borrow_mut().fresh().get(&tenant).cloned()) {
        return Ok(f(&e));
    }
    let loaded_at = ENTITLEMENTS.with(|c| c.borrow().now());
    let e = if overridden()?.contains(&tenant) {
        Rc::new(load_tenant(tenant)?)
    } else {
        let row = crate::state::tenants::lookup(&tenant.to_string())?;
        plan_entitlements(&row.plan)?
    };
    ENTITLEMENTS.with(|c| c.borrow_mut().insert(loaded_at, tenant, e.clone()));
    Ok(f(&e))
}

fn overridden() -> MtResult<Rc<HashSet<uuid::Uuid>>> {
    if let Some(s) = OVERRIDDEN.with(|c| c.borrow_mut().fresh().get(&()).cloned()) {
        return Ok(s);
    }
    let loaded_at = OVERRIDDEN.with(|c| c.borrow().now());
    let ids = as_owner(|| {
        with_prepared_read(
            "SELECT tenant_id FROM tenant.tenant_limits UNION SELECT tenant_id FROM tenant.tenant_features",
            &[],
            &[],
            |t| {
                let mut s = HashSet::new();
                for r in t {
                    if let Some(id) = r.get::<pgrx::Uuid>(1)? {
                        s.insert(from_pg_uuid(id));
                    }
                }
                Ok(s)
            },
        )
    })?;
    let ids = Rc::new(ids);
    OVERRIDDEN.with(|c| c.borrow_mut().insert(loaded_at, (), ids.clone()));
    Ok(ids)
}

fn plan_entitlements(plan: &str) -> MtResult<Rc<Entitlements>> {
    if let Some(e) = PLANS.with(|c| c.borrow_mut().fresh().get(plan).cloned()) {
        return Ok(e);
    }
    let loaded_at = PLANS.with(|c| c.borrow().now());
    let json = as_owner(|| {
        with_prepared_read(
            include_str!("../../sql/plan_entitlements.sql"),
            &[pgrx::pg_sys::PgBuiltInOids::TEXTOID],
            &[plan.into()],
            |t| match t.into_iter().next() {
                Some(r) => Ok(r.get::<pgrx::JsonB>(1)?),
                None => Ok(None),
            },
        )
    })?;
    let e = match json {
        Some(j) => Entitlements::from_json(&j.0)?,
        // 'free', the default plan of tenant.create, may be left undefined: nothing in it
        None if plan == "free" => Entitlements {
            plan: plan.to_string(),
            features: HashSet::new(),
            limits: Default::default(),
            restrictions: HashSet::new(),
        },
        None => return Err(MtError::invalid(format!("plan \"{plan}\" does not exist"))),
    };
    let e = Rc::new(e);
    PLANS.with(|c| {
        c.borrow_mut()
            .insert(loaded_at, plan.to_string(), e.clone())
    });
    Ok(e)
}

/// A tenant with overrides: its plan and its overrides in one document.
fn load_tenant(tenant: uuid::Uuid) -> MtResult<Entitlements> {
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
    match json {
        Some(j) => Entitlements::from_json(&j.0),
        None => Err(MtError::tenant_not_found(&tenant.to_string())),
    }
}
