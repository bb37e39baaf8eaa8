//! SPI with the habits the extension needs: kept plans for hot statements, read-only
//! execution for reads (no transaction id, so parallel mode and hot standbys work).

use crate::core::error::MtResult;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiTupleTable};
use pgrx::PgOid;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

thread_local! {
    /// SPI plans kept for the backend's life, by SQL text: the extension's hot lookups
    /// would otherwise spend far longer planning than executing. (Shared out of the map
    /// while they run: a statement may call back into the extension, which may prepare
    /// another one.)
    static PREPARED: RefCell<HashMap<&'static str, Rc<OwnedPreparedStatement>>> = RefCell::new(HashMap::new());
}

/// Run `sql` (a constant) with a plan prepared once per backend and kept; `f` reads the
/// result. Plans are revalidated by Postgres when the tables they use change.
/// `write`: the statement modifies data. Reads run as read-only SPI: they assign no
/// transaction id, so they work in parallel mode (a policy's InitPlan under a Gather) and on
/// a hot standby.
fn run_prepared<R>(
    sql: &'static str,
    write: bool,
    types: &[pg_sys::PgBuiltInOids],
    args: &[DatumWithOid],
    f: impl FnOnce(SpiTupleTable<'_>) -> MtResult<R>,
) -> MtResult<R> {
    Spi::connect(|c| {
        if !PREPARED.with(|m| m.borrow().contains_key(sql)) {
            let oids: Vec<PgOid> = types.iter().map(|t| PgOid::BuiltIn(*t)).collect();
            // a "mutating" plan runs with read_only = false; the write itself assigns the xid
            let plan = if write {
                c.prepare_mut(sql, &oids)?.keep()
            } else {
                c.prepare(sql, &oids)?.keep()
            };
            PREPARED.with(|m| m.borrow_mut().insert(sql, Rc::new(plan)));
        }
        let plan = PREPARED.with(|m| m.borrow().get(sql).cloned().expect("prepared above"));
        let table = c.select(&*plan, None, args)?;
        f(table)
    })
}

/// A kept, read-only statement (see [`run_prepared`]).
pub fn with_prepared_read<R>(
    sql: &'static str,
    types: &[pg_sys::PgBuiltInOids],
    args: &[DatumWithOid],
    f: impl FnOnce(SpiTupleTable<'_>) -> MtResult<R>,
) -> MtResult<R> {
    run_prepared(sql, false, types, args, f)
}

/// A kept statement that writes (see [`run_prepared`]).
pub fn with_prepared<R>(
    sql: &'static str,
    types: &[pg_sys::PgBuiltInOids],
    args: &[DatumWithOid],
    f: impl FnOnce(SpiTupleTable<'_>) -> MtResult<R>,
) -> MtResult<R> {
    run_prepared(sql, true, types, args, f)
}

/// The first column (oids) of every row of a read-only query.
pub fn read_oids(sql: &str, args: &[DatumWithOid]) -> MtResult<Vec<pg_sys::Oid>> {
    Spi::connect(|c| {
        let mut v = Vec::new();
        for r in c.select(sql, None, args)? {
            v.extend(r.get::<pg_sys::Oid>(1)?);
        }
        Ok(v)
    })
}

/// The first column (text) of every row of a read-only query, NULLs left out.
pub fn read_texts(sql: &str, args: &[DatumWithOid]) -> MtResult<Vec<String>> {
    Spi::connect(|c| {
        let mut v = Vec::new();
        for r in c.select(sql, None, args)? {
            v.extend(r.get::<String>(1)?);
        }
        Ok(v)
    })
}

/// The first row of a statement that writes (`INSERT/UPDATE/DELETE ... RETURNING`), run to
/// completion. `Spi::get_one_with_args` passes a row limit of 1, which stops a top-level
/// data-modifying statement after the first row it returns: its AFTER STATEMENT triggers
/// (our cache invalidation among them) then never fire.
pub fn write_first<R>(
    sql: &str,
    args: &[DatumWithOid],
    f: impl FnOnce(Option<pgrx::spi::SpiHeapTupleData<'_>>) -> MtResult<R>,
) -> MtResult<R> {
    Spi::connect_mut(|c| {
        let t = c.update(sql, None, args)?;
        f(t.into_iter().next())
    })
}

/// The `count(*)` a data-modifying statement reports (`WITH d AS (... RETURNING 1) SELECT
/// count(*) FROM d`), run to completion like [`write_first`]; 0 without a row.
pub fn write_count(sql: &str, args: &[DatumWithOid]) -> MtResult<i64> {
    write_first(sql, args, |r| {
        Ok(r.map(|r| r.get::<i64>(1))
            .transpose()?
            .flatten()
            .unwrap_or(0))
    })
}

/// The first column of the first row of a read-only query (no xid assigned, unlike
/// `Spi::get_one`, which runs every statement as a write).
pub fn read_one<T: pgrx::datum::FromDatum + pgrx::datum::IntoDatum>(
    sql: &str,
    args: &[DatumWithOid],
) -> MtResult<Option<T>> {
    Spi::connect(|c| {
        let t = c.select(sql, Some(1), args)?;
        match t.into_iter().next() {
            Some(r) => Ok(r.get::<T>(1)?),
            None => Ok(None),
        }
    })
}
