//! Internal SQL functions the extension's own SQL calls (not granted to anyone).

use crate::pg::invalidation::invalidate;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// Send a relcache invalidation for `relid` to every backend (at commit): called by the
/// statement triggers on the extension's tables (`tenant._tables_changed`).
#[pg_extern(volatile, parallel_unsafe)]
fn _invalidate(relid: pg_sys::Oid) {
    invalidate(relid)
}
