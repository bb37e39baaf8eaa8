//! Cross-backend cache invalidation by generations.
//!
//! A statement trigger on each of the extension's tables sends a relcache invalidation for
//! that table (`tenant_internal._tables_changed`), which every backend processes at its next command.
//! The callback only bumps counters: one per kind of cache, chosen by the table that changed.
//! A cache remembers the generation it was filled at and empties itself when the counter has
//! moved, so no flush can be lost, even when the callback fires while a cache is in use.

use crate::core::error::MtResult;
use pgrx::pg_sys;
use std::cell::{Cell, RefCell};

/// What a cache depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `tenant.tenants`: statuses, slugs, plans of tenants (and so verified contexts)
    Tenants,
    /// `tenant.secret` (and the extension's owner)
    Secret,
    /// `tenant.jwt_keys`
    JwtKeys,
    /// `tenant.members`
    Members,
    /// plans, their limits, per-tenant overrides
    Plans,
    /// roles and permissions
    Rbac,
    /// any other relation: user tables whose triggers or registrations changed
    Relations,
}

const KINDS: usize = 7;

/// Which kinds each of the extension's tables feeds.
const TABLES: [(&str, &[Kind]); 10] = [
    ("tenants", &[Kind::Tenants, Kind::Plans]),
    ("secret", &[Kind::Secret]),
    ("jwt_keys", &[Kind::JwtKeys]),
    ("members", &[Kind::Members]),
    ("plans", &[Kind::Plans]),
    ("plan_limits", &[Kind::Plans]),
    ("tenant_limits", &[Kind::Plans]),
    ("tenant_features", &[Kind::Plans]),
    ("roles", &[Kind::Rbac]),
    ("permissions", &[Kind::Rbac]),
];

/// The watched tables' oids and the kinds each feeds.
type Watched = Vec<(pg_sys::Oid, &'static [Kind])>;

thread_local! {
    static GENERATIONS: [Cell<u64>; KINDS] = const { [const { Cell::new(0) }; KINDS] };
    /// the oids of TABLES, resolved on first use (and again after they were invalidated)
    static WATCHED: RefCell<Option<Watched>> = const { RefCell::new(None) };
}

fn bump(kind: Kind) {
    GENERATIONS.with(|g| {
        let c = &g[kind as usize];
        c.set(c.get().wrapping_add(1));
    });
}

fn bump_all() {
    for k in [
        Kind::Tenants,
        Kind::Secret,
        Kind::JwtKeys,
        Kind::Members,
        Kind::Plans,
        Kind::Rbac,
        Kind::Relations,
    ] {
        bump(k);
    }
}

/// The combined generation of `kinds`: it changes whenever any of them does. Resolves the
/// watched tables first (one catalog query per backend), so that a cache filled after this
/// call will hear about changes.
pub fn generation(kinds: &[Kind]) -> u64 {
    let _ = ensure_watched();
    GENERATIONS.with(|g| {
        kinds
            .iter()
            .fold(0u64, |acc, k| acc.wrapping_add(g[*k as usize].get()))
    })
}

fn ensure_watched() -> MtResult<()> {
    if WATCHED.with(|w| w.borrow().is_some()) {
        return Ok(());
    }
    // pg_class is readable by every role; the operators are qualified because this runs in
    // the caller's session, whatever its search_path
    let rows = pgrx::prelude::Spi::connect(|c| {
        let t = c.select(
            "SELECT c.oid, c.relname::pg_catalog.text FROM pg_catalog.pg_class c \
             WHERE c.relnamespace OPERATOR(pg_catalog.=) 'tenant'::pg_catalog.regnamespace \
               AND c.relkind OPERATOR(pg_catalog.=) 'r'::\"char\"",
            None,
            &[],
        )?;
        let mut v = Vec::new();
        for r in t {
            if let (Some(oid), Some(name)) = (r.get::<pg_sys::Oid>(1)?, r.get::<String>(2)?) {
                v.push((oid, name));
            }
        }
        Ok::<_, crate::core::error::MtError>(v)
    })?;
    let watched = rows
        .into_iter()
        .filter_map(|(oid, name)| {
            TABLES
                .iter()
                .find(|(t, _)| *t == name)
                .map(|(_, kinds)| (oid, *kinds))
        })
        .collect();
    WATCHED.with(|w| *w.borrow_mut() = Some(watched));
    Ok(())
}

/// Relcache invalidation callback (registered in `_PG_init`).
///
/// # Safety
/// Called by Postgres' invalidation machinery only, with a relation oid (or InvalidOid).
#[pgrx::pg_guard]
pub unsafe extern "C-unwind" fn relcache_callback(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    if relid == pg_sys::InvalidOid {
        WATCHED.with(|w| {
            if let Ok(mut w) = w.try_borrow_mut() {
                *w = None;
            }
        });
        bump_all();
        return;
    }
    let kinds = WATCHED.with(|w| {
        w.try_borrow().ok().and_then(|w| {
            w.as_ref()
                .and_then(|w| w.iter().find(|(oid, _)| *oid == relid).map(|(_, k)| *k))
        })
    });
    match kinds {
        Some(kinds) => kinds.iter().copied().for_each(bump),
        None => bump(Kind::Relations),
    }
}

pub fn register_callbacks() {
    // SAFETY: called once from _PG_init; the callback is a #[pg_guard] extern fn that lives
    // as long as the library (never unloaded)
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(relcache_callback), pg_sys::Datum::from(0usize));
    }
}

/// Queue a relcache invalidation for `relid` to every backend (sent at commit).
pub fn invalidate(relid: pg_sys::Oid) {
    // SAFETY: queues an invalidation message; an unknown relid is harmless
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) }
}

/// A per-backend map that empties itself when the generation of its kinds moves.
pub struct GenMap<K, V> {
    kinds: &'static [Kind],
    generation: u64,
    map: std::collections::HashMap<K, V>,
}

impl<K: std::hash::Hash + Eq, V> GenMap<K, V> {
    pub fn new(kinds: &'static [Kind]) -> Self {
        GenMap {
            kinds,
            generation: u64::MAX,
            map: std::collections::HashMap::new(),
        }
    }
    /// The map, emptied first if anything it depends on changed since it was filled.
    pub fn fresh(&mut self) -> &mut std::collections::HashMap<K, V> {
        let g = generation(self.kinds);
        if g != self.generation {
            self.map.clear();
            self.generation = g;
        }
        &mut self.map
    }
    /// The generation a value about to be loaded is loaded at.
    pub fn now(&self) -> u64 {
        generation(self.kinds)
    }
    /// Remember `v`, loaded at generation `loaded_at`, unless something it depends on changed
    /// while it was being loaded (then the next reader loads it again).
    pub fn insert(&mut self, loaded_at: u64, k: K, v: V) {
        if loaded_at == generation(self.kinds) {
            self.fresh().insert(k, v);
        }
    }
}

/// The value `map` holds for `k` while fresh, or what `load` returns (remembered as
/// [`GenMap::insert`] does). `load` runs with the map released: it may read other caches.
pub fn cached<K: std::hash::Hash + Eq, V: Clone>(
    map: &'static std::thread::LocalKey<RefCell<GenMap<K, V>>>,
    k: K,
    load: impl FnOnce() -> MtResult<V>,
) -> MtResult<V> {
    if let Some(hit) = map.with(|m| m.borrow_mut().fresh().get(&k).cloned()) {
        return Ok(hit);
    }
    let loaded_at = map.with(|m| m.borrow().now());
    let v = load()?;
    map.with(|m| m.borrow_mut().insert(loaded_at, k, v.clone()));
    Ok(v)
}
