//! The extension's registration tables: what `isolate`, `limit_rows` and `audit` recorded
//! about the caller's tables.

use crate::core::ddl;
use crate::core::error::MtResult;
use crate::pg::catalog::{check_table, run_all};
use crate::pg::invalidation::{GenMap, Kind};
use crate::pg::owner::as_owner;
use crate::pg::spi::read_one;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// The nearest isolated ancestor of `relid` (partition parent or inheritance parent) and
/// its tenant column.
pub fn isolated_ancestor(relid: pg_sys::Oid) -> MtResult<Option<(pg_sys::Oid, String)>> {
    Spi::connect(|c| {
        let t = c.select(
            "WITH RECURSIVE up(relid, depth) AS ( \
               SELECT i.inhparent, 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = $1 \
               UNION ALL \
               SELECT i.inhparent, up.depth + 1 FROM pg_catalog.pg_inherits i JOIN up ON i.inhrelid = up.relid \
               WHERE up.depth < 64) \
             SELECT up.relid, t.tenant_column::text FROM up \
             JOIN tenant.isolated_tables t ON t.relid::oid = up.relid \
             ORDER BY up.depth LIMIT 1",
            None,
            &[relid.into()],
        )?;
        match t.into_iter().next() {
            Some(r) => Ok(r.get::<pg_sys::Oid>(1)?.zip(r.get::<String>(2)?)),
            None => Ok(None),
        }
    })
}

pub struct Record {
    pub column: String,
    pub created_index: Option<String>,
    pub previous_default: Option<String>,
    pub rls_enabled: bool,
    pub rls_forced: bool,
}

pub fn record(relid: pg_sys::Oid) -> MtResult<Option<Record>> {
    Spi::connect(|c| {
        let t = c.select(
            "SELECT tenant_column::text, created_index, previous_default, rls_was_enabled, rls_was_forced \
             FROM tenant.isolated_tables WHERE relid = $1::regclass",
            None,
            &[relid.into()],
        )?;
        match t.into_iter().next() {
            None => Ok(None),
            Some(r) => Ok(Some(Record {
                column: r.get::<String>(1)?.unwrap_or_default(),
                created_index: r.get::<String>(2)?,
                previous_default: r.get::<String>(3)?,
                rls_enabled: r.get::<bool>(4)?.unwrap_or(false),
                rls_forced: r.get::<bool>(5)?.unwrap_or(false),
            })),
        }
    })
}

/// The database's extension schema is still 0.1.0's (this library runs it until
/// `ALTER EXTENSION multitenant UPDATE`; see compat.rs).
/// The schema of the extension's trigger functions: `tenant_internal`, or `tenant` in a
/// database still at 0.1.0.
pub fn trigger_schema() -> MtResult<&'static str> {
    Ok(if legacy_schema_now()? {
        "tenant"
    } else {
        "tenant_internal"
    })
}

/// Is the database's extension schema still 0.1.0's (no `tenant_internal`)? This library
/// runs such a database until `ALTER EXTENSION multitenant UPDATE` (see api/compat.rs).
/// Cached; an update is DDL on the extension's tables, which moves the generation.
pub fn legacy_schema() -> MtResult<bool> {
    if let Some(v) = LEGACY.with(|c| c.borrow_mut().fresh().get(&()).copied()) {
        return Ok(v);
    }
    let loaded_at = LEGACY.with(|c| c.borrow().now());
    let legacy = legacy_schema_now()?;
    LEGACY.with(|c| c.borrow_mut().insert(loaded_at, (), legacy));
    Ok(legacy)
}

/// [`legacy_schema`] read from the catalog now, for DDL paths (the update script runs them
/// in the backend that may have cached the answer before the schema changed).
pub fn legacy_schema_now() -> MtResult<bool> {
    // (to_regprocedure raises for a missing schema before PostgreSQL 16)
    Ok(read_one::<bool>(
        "SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace \
         WHERE nspname OPERATOR(pg_catalog.=) 'tenant_internal'::pg_catalog.name)",
        &[],
    )?
    .unwrap_or(false))
}

thread_local! {
    static LEGACY: std::cell::RefCell<GenMap<(), bool>> =
        std::cell::RefCell::new(GenMap::new(&[Kind::Relations]));
}

/// For the table's owner: drop the extension's `triggers` from the table and its row from
/// `registry` (one of the extension's own tables). Returns whether the table was registered.
pub fn detach_triggers(
    relid: pg_sys::Oid,
    triggers: &[&str],
    registry: &'static str,
    what: &str,
) -> MtResult<bool> {
    let info = check_table(relid, what)?;
    let name = ddl::qualified(&info.schema, &info.table);
    let statements: Vec<String> = triggers
        .iter()
        .map(|t| format!("DROP TRIGGER IF EXISTS {} ON {name}", ddl::quote_ident(t)))
        .collect();
    run_all(&statements)?;
    as_owner(|| {
        Spi::connect_mut(|c| {
            let deleted = c.update(
                format!("DELETE FROM tenant.{registry} WHERE relid = $1::regclass RETURNING 1")
                    .as_str(),
                None,
                &[relid.into()],
            )?;
            Ok(!deleted.is_empty())
        })
    })
}
