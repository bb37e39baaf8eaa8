//! The per-database context secret and its id, loaded once per backend as the extension owner.

use crate::core::error::{MtError, MtResult};
use crate::pg::invalidation::{GenMap, Kind};
use crate::pg::owner::as_owner;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::rc::Rc;

/// The key that signs context tokens and the id the tokens carry (`tenant.secret.key_id`).
pub struct Secret {
    pub key: Vec<u8>,
    pub id: uuid::Uuid,
}

thread_local! {
    static SECRET: RefCell<GenMap<(), Rc<Secret>>> = RefCell::new(GenMap::new(&[Kind::Secret]));
}

/// Run `f` over the secret.
pub fn with_secret<R>(f: impl FnOnce(&Secret) -> R) -> MtResult<R> {
    if let Some(k) = SECRET.with(|c| c.borrow_mut().fresh().get(&()).cloned()) {
        return Ok(f(&k));
    }
    let loaded_at = SECRET.with(|c| c.borrow().now());
    let secret = as_owner(|| {
        Spi::connect(|c| {
            // to_jsonb: a 0.1.0 schema (before ALTER EXTENSION UPDATE) has no key_id yet
            let t = c.select(
                "SELECT key, (pg_catalog.to_jsonb(s) OPERATOR(pg_catalog.->>) 'key_id')::uuid \
                 FROM tenant.secret s",
                None,
                &[],
            )?;
            let Some(row) = t.into_iter().next() else {
                return Ok(None);
            };
            let key = row.get::<Vec<u8>>(1)?.unwrap_or_default();
            let id = row
                .get::<pgrx::Uuid>(2)?
                .map_or(uuid::Uuid::nil(), |u| uuid::Uuid::from_bytes(*u.as_bytes()));
            Ok(Some(Secret { key, id }))
        })
    })?
    .ok_or_else(|| {
        MtError::invalid("the context secret is missing").hint("Reinstall the extension.")
    })?;
    let secret = Rc::new(secret);
    SECRET.with(|c| c.borrow_mut().insert(loaded_at, (), secret.clone()));
    Ok(f(&secret))
}
