//! The per-database context secret, loaded once per backend as the extension owner.

use crate::core::error::{MtError, MtResult};
use crate::pg::invalidation::{GenMap, Kind};
use crate::pg::owner::as_owner;
use crate::pg::spi::read_one;
use std::cell::RefCell;

thread_local! {
    static SECRET: RefCell<GenMap<(), std::rc::Rc<Vec<u8>>>> = RefCell::new(GenMap::new(&[Kind::Secret]));
}

/// Run `f` over the secret.
pub fn with_secret<R>(f: impl FnOnce(&[u8]) -> R) -> MtResult<R> {
    if let Some(k) = SECRET.with(|c| c.borrow_mut().fresh().get(&()).cloned()) {
        return Ok(f(&k));
    }
    let loaded_at = SECRET.with(|c| c.borrow().now());
    let key = as_owner(|| read_one::<Vec<u8>>("SELECT key FROM tenant.secret", &[]))?.ok_or_else(
        || MtError::invalid("the context secret is missing").hint("Reinstall the extension."),
    )?;
    let key = std::rc::Rc::new(key);
    SECRET.with(|c| c.borrow_mut().insert(loaded_at, (), key.clone()));
    Ok(f(&key))
}
