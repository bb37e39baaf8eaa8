//! Conversions between Postgres values and the Rust types the core uses.

use crate::core::error::{MtError, MtResult};
use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::Value;

/// uuid crate -> SQL uuid.
pub fn pg_uuid(u: uuid::Uuid) -> pgrx::Uuid {
    pgrx::Uuid::from_bytes(*u.as_bytes())
}

/// SQL uuid -> uuid crate.
pub fn from_pg_uuid(u: pgrx::Uuid) -> uuid::Uuid {
    uuid::Uuid::from_bytes(*u.as_bytes())
}

/// Seconds since the Unix epoch, from Postgres' clock.
pub fn now_unix() -> i64 {
    const PG_EPOCH_OFFSET_SECS: i64 = 946_684_800;
    // SAFETY: reads the clock, no arguments
    let ts = unsafe { pg_sys::GetCurrentTimestamp() };
    ts.div_euclid(1_000_000) + PG_EPOCH_OFFSET_SECS
}

/// A row of a trigger as JSON (Postgres' own `row_to_json`, run as the current user).
pub fn row_json(tuple: Option<PgHeapTuple<'_, AllocatedByPostgres>>) -> MtResult<Option<Value>> {
    let Some(t) = tuple else { return Ok(None) };
    let Some(datum) = t.into_composite_datum() else {
        return Ok(None);
    };
    // SAFETY: `datum` is a valid composite datum of the trigger's tuple (it lives in the
    // trigger's memory context for this call); row_to_json(record) is a built-in that takes
    // exactly one argument and returns text-compatible json, read back as a String at once.
    let text = unsafe {
        let d = pg_sys::OidFunctionCall1Coll(
            pg_sys::Oid::from(pg_sys::F_ROW_TO_JSON_RECORD),
            pg_sys::InvalidOid,
            datum,
        );
        String::from_datum(d, false)
    };
    match text {
        Some(s) => serde_json::from_str(&s)
            .map(Some)
            .map_err(|e| MtError::invalid(format!("row_to_json: {e}"))),
        None => Ok(None),
    }
}
