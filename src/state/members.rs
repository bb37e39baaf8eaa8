//! Memberships: may a user enter a tenant, and with which roles. Cached per backend until
//! `tenant.members` changes.

use crate::core::error::MtResult;
use crate::pg::convert::pg_uuid;
use crate::pg::invalidation::{GenMap, Kind};
use crate::pg::owner::as_owner;
use crate::pg::spi::with_prepared_read;
use pgrx::pg_sys;
use pgrx::pg_sys::PgBuiltInOids as O;
use std::cell::RefCell;
use std::rc::Rc;

/// (tenant, user, membership required) -> may enter
type Allowed = GenMap<(uuid::Uuid, Option<String>, bool), bool>;
/// (tenant, user) -> the user's membership roles
type Roles = GenMap<(uuid::Uuid, String), Rc<Vec<String>>>;

thread_local! {
    static ALLOWED: RefCell<Allowed> = RefCell::new(GenMap::new(&[Kind::Members]));
    static ROLES: RefCell<Roles> = RefCell::new(GenMap::new(&[Kind::Members]));
}

/// May `user` enter `tenant`? When the tenant has members, only an active member may;
/// when it has none, anyone the token vouches for may (unless `required`).
pub fn allows(tenant: uuid::Uuid, user: Option<&str>, required: bool) -> MtResult<bool> {
    let key = (tenant, user.map(str::to_string), required);
    if let Some(ok) = ALLOWED.with(|m| m.borrow_mut().fresh().get(&key).copied()) {
        return Ok(ok);
    }
    let loaded_at = ALLOWED.with(|m| m.borrow().now());
    let (total, matched) = as_owner(|| {
        with_prepared_read(
            "SELECT count(*), count(*) FILTER (WHERE user_id = $2 AND status = 'active') \
             FROM tenant.members WHERE tenant_id = $1",
            &[
                pg_sys::PgBuiltInOids::UUIDOID,
                pg_sys::PgBuiltInOids::TEXTOID,
            ],
            &[pg_uuid(tenant).into(), user.into()],
            |t| match t.into_iter().next() {
                Some(r) => Ok((r.get::<i64>(1)?, r.get::<i64>(2)?)),
                None => Ok((None, None)),
            },
        )
    })?;
    let ok = match (total.unwrap_or(0), matched.unwrap_or(0)) {
        (_, m) if m > 0 => true,
        (0, _) => !required,
        _ => false,
    };
    ALLOWED.with(|m| m.borrow_mut().insert(loaded_at, key, ok));
    Ok(ok)
}

/// Roles of `user` in `tenant`: its active membership's roles.
pub fn member_roles(tenant: uuid::Uuid, user: &str) -> MtResult<Rc<Vec<String>>> {
    let key = (tenant, user.to_string());
    if let Some(r) = ROLES.with(|m| m.borrow_mut().fresh().get(&key).cloned()) {
        return Ok(r);
    }
    let loaded_at = ROLES.with(|m| m.borrow().now());
    let roles = as_owner(|| {
        with_prepared_read(
            "SELECT roles FROM tenant.members WHERE tenant_id = $1 AND user_id = $2 AND status = 'active'",
            &[O::UUIDOID, O::TEXTOID],
            &[pg_uuid(tenant).into(), user.into()],
            |t| Ok(t.into_iter().next().map(|r| r.get::<Vec<String>>(1)).transpose()?.flatten().unwrap_or_default()),
        )
    })?;
    let roles = Rc::new(roles);
    ROLES.with(|m| m.borrow_mut().insert(loaded_at, key, roles.clone()));
    Ok(roles)
}

/// (tenant, user) -> the id of the organization the user belongs to in the tenant
type Orgs = GenMap<(uuid::Uuid, String), Option<String>>;

thread_local! {
    static ORGS: RefCell<Orgs> = RefCell::new(GenMap::new(&[Kind::Members]));
}

/// The organization `user` belongs to in `tenant` (its active membership's), as text.
pub fn member_org(tenant: uuid::Uuid, user: &str) -> MtResult<Option<String>> {
    if crate::state::registry::legacy_schema()? {
        return Ok(None); // 0.1.0 had no organizations
    }
    let key = (tenant, user.to_string());
    if let Some(o) = ORGS.with(|m| m.borrow_mut().fresh().get(&key).cloned()) {
        return Ok(o);
    }
    let loaded_at = ORGS.with(|m| m.borrow().now());
    let org = as_owner(|| {
        with_prepared_read(
            "SELECT organization_id::text FROM tenant.members \
             WHERE tenant_id = $1 AND user_id = $2 AND status = 'active'",
            &[O::UUIDOID, O::TEXTOID],
            &[pg_uuid(tenant).into(), user.into()],
            |t| {
                Ok(t.into_iter()
                    .next()
                    .map(|r| r.get::<String>(1))
                    .transpose()?
                    .flatten())
            },
        )
    })?;
    ORGS.with(|m| m.borrow_mut().insert(loaded_at, key, org.clone()));
    Ok(org)
}
