//! JWT keys (parsed once per backend) and the JWTs already verified with them.

use crate::core::error::MtResult;
use crate::core::jwt::{parse_alg, parse_key, Identity, KeyEntry};
use crate::pg::invalidation::{GenMap, Kind};
use crate::pg::owner::as_owner;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::rc::Rc;

thread_local! {
    static KEYS: RefCell<GenMap<(), Rc<Vec<KeyEntry>>>> = RefCell::new(GenMap::new(&[Kind::JwtKeys]));
    /// (token, claim names) -> identity, verified with the current keys
    static VERIFIED: RefCell<GenMap<(String, String), Identity>> = RefCell::new(GenMap::new(&[Kind::JwtKeys]));
}

/// Run `f` over the parsed keys, loading them (as the extension owner) on first use. Rows
/// whose key no longer parses are skipped: they cannot verify anything.
pub fn with_keys<R>(f: impl FnOnce(&[KeyEntry]) -> R) -> MtResult<R> {
    if let Some(k) = KEYS.with(|c| c.borrow_mut().fresh().get(&()).cloned()) {
        return Ok(f(&k));
    }
    let loaded_at = KEYS.with(|c| c.borrow().now());
    let keys = as_owner(|| {
        Spi::connect(|c| {
            let t = c.select(
                "SELECT kid, alg, key, issuer, audience, \
                        floor(extract(epoch FROM valid_from))::int8, floor(extract(epoch FROM valid_until))::int8, active \
                 FROM tenant.jwt_keys",
                None,
                &[],
            )?;
            let mut keys = Vec::new();
            for r in t {
                let alg = r.get::<String>(2)?.unwrap_or_default();
                let material = r.get::<String>(3)?.unwrap_or_default();
                let Ok(alg) = parse_alg(&alg) else { continue };
                let Ok(key) = parse_key(alg, &material) else {
                    continue;
                };
                keys.push(KeyEntry {
                    kid: r.get::<String>(1)?.unwrap_or_default(),
                    alg,
                    key,
                    issuer: r.get::<String>(4)?,
                    audience: r.get::<String>(5)?,
                    valid_from: r.get::<i64>(6)?.unwrap_or(0),
                    valid_until: r.get::<i64>(7)?,
                    active: r.get::<bool>(8)?.unwrap_or(false),
                });
            }
            Ok(keys)
        })
    })?;
    let keys = Rc::new(keys);
    KEYS.with(|c| c.borrow_mut().insert(loaded_at, (), keys.clone()));
    Ok(f(&keys))
}

/// A JWT verified earlier in this backend with the current keys and claim names, if it
/// still may be relied on.
pub fn cached(token: &str, names_key: &str, now: i64, leeway: u64) -> Option<Identity> {
    VERIFIED.with(|c| {
        c.borrow_mut()
            .fresh()
            .get(&(token.to_string(), names_key.to_string()))
            .filter(|id| id.still_valid(now, leeway))
            .cloned()
    })
}

/// Remember a JWT verified at generation `verified_at` (at most `capacity` of them).
pub fn remember(token: &str, names_key: &str, id: &Identity, capacity: usize, verified_at: u64) {
    if capacity == 0 {
        return;
    }
    VERIFIED.with(|c| {
        let mut c = c.borrow_mut();
        if c.fresh().len() >= capacity {
            c.fresh().clear();
        }
        c.insert(
            verified_at,
            (token.to_string(), names_key.to_string()),
            id.clone(),
        );
    })
}

/// The generation a verification starts at (see [`remember`]).
pub fn generation() -> u64 {
    VERIFIED.with(|c| c.borrow().now())
}
