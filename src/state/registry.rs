//! The extension's registration tables: what `isolate`, `limit_rows` and `audit` recorded
//! about the caller's tables.

use crate::core::ddl;
use crate::core::error::MtResult;
use crate::pg::catalog::{check_table, run_all};
use crate::pg::invalidation::{cached, GenMap, Kind};
use crate::pg::owner::as_owner;
use crate::pg::spi::{read_one, read_texts};
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

/// What `protect` recorded for `relid` (`tenant.protected_tables`; none in a database still
/// at 0.1.0, which has no such table).
pub fn protection(relid: pg_sys::Oid) -> MtResult<Option<ddl::Protection>> {
    if legacy_schema()? {
        return Ok(None);
    }
    as_owner(|| {
        Spi::connect(|c| {
            let t = c.select(
                "SELECT resource, fields, owner_column::text FROM tenant.protected_tables \
                 WHERE relid = $1::regclass",
                None,
                &[relid.into()],
            )?;
            let Some(r) = t.into_iter().next() else {
                return Ok(None);
            };
            let fields = match r.get::<pgrx::JsonB>(2)? {
                Some(pgrx::JsonB(serde_json::Value::Array(a))) => a
                    .iter()
                    .filter_map(|p| {
                        Some((
                            p.get(0)?.as_str()?.to_string(),
                            p.get(1)?.as_str()?.to_string(),
                        ))
                    })
                    .collect(),
                _ => Vec::new(),
            };
            Ok(Some(ddl::Protection {
                resource: r.get::<String>(1)?.unwrap_or_default(),
                fields,
                owner: r.get::<String>(3)?,
            }))
        })
    })
}

/// Record (or replace) what `protect` did to `relid` (not in a database still at 0.1.0).
pub fn record_protection(relid: pg_sys::Oid, p: &ddl::Protection) -> MtResult<()> {
    if legacy_schema()? {
        return Ok(());
    }
    let fields = serde_json::Value::Array(
        p.fields
            .iter()
            .map(|(f, c)| serde_json::json!([f, c]))
            .collect(),
    );
    as_owner(|| {
        Spi::run_with_args(
            "INSERT INTO tenant.protected_tables (relid, resource, fields, owner_column) \
             VALUES ($1::regclass, $2, $3, $4) \
             ON CONFLICT (relid) DO UPDATE SET resource = EXCLUDED.resource, fields = EXCLUDED.fields, \
               owner_column = EXCLUDED.owner_column, protected_at = pg_catalog.now()",
            &[
                relid.into(),
                p.resource.as_str().into(),
                pgrx::JsonB(fields).into(),
                p.owner.clone().into(),
            ],
        )?;
        Ok(())
    })
}

thread_local! {
    static PROTECTED: std::cell::RefCell<GenMap<(), std::rc::Rc<Vec<String>>>> =
        std::cell::RefCell::new(GenMap::new(&[Kind::Relations]));
}

/// In a database with Citus, the resources `protect` guards (their permissions travel in
/// the context to the workers: `Claims::g`); empty without Citus. Cached: `protect` changes
/// policies, which moves the generation.
pub fn protected_resources() -> MtResult<std::rc::Rc<Vec<String>>> {
    cached(&PROTECTED, (), || {
        as_owner(|| {
            if legacy_schema()? || !crate::pg::citus::installed()? {
                return Ok(std::rc::Rc::default());
            }
            Ok(std::rc::Rc::new(read_texts(
                "SELECT DISTINCT resource FROM tenant.protected_tables ORDER BY 1",
                &[],
            )?))
        })
    })
}

thread_local! {
    static ROUTABLE: std::cell::RefCell<GenMap<(), std::rc::Rc<std::collections::HashMap<pg_sys::Oid, i16>>>> =
        std::cell::RefCell::new(GenMap::new(&[Kind::Relations]));
}

/// With Citus: the isolated tables that are hash-distributed by their tenant column (a uuid)
/// and carry no policy but isolate's four, each testing the tenant alone or first in an AND
/// (as `check_isolation` wants them), with that column's number. Adding
/// `tenant_id = <the context's tenant>` to a statement on one of them filters nothing the
/// policies let through, and lets Citus route it (api/router.rs). Empty without Citus.
/// Cached until a relation changes.
pub fn routable() -> MtResult<std::rc::Rc<std::collections::HashMap<pg_sys::Oid, i16>>> {
    cached(&ROUTABLE, (), || {
        as_owner(|| {
            let mut out = std::collections::HashMap::new();
            if !crate::pg::citus::installed()? {
                return Ok(out);
            }
            Spi::connect(|c| {
                let t = c.select(
                    "SELECT it.relid::pg_catalog.oid, a.attnum FROM tenant.isolated_tables it \
                     JOIN pg_catalog.pg_dist_partition d ON d.logicalrelid = it.relid AND d.partmethod = 'h' \
                     JOIN pg_catalog.pg_attribute a ON a.attrelid = it.relid AND a.attname = it.tenant_column \
                      AND NOT a.attisdropped AND a.atttypid = 'pg_catalog.uuid'::pg_catalog.regtype \
                     WHERE pg_catalog.column_to_column_name(d.logicalrelid, d.partkey) = it.tenant_column::pg_catalog.text \
                       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy p \
                         CROSS JOIN LATERAL (SELECT \
                           pg_catalog.regexp_replace(pg_catalog.format('(%I = tenant.current_tenant())', it.tenant_column), '[[:space:]]', '', 'g') AS r, \
                           pg_catalog.regexp_replace(pg_catalog.format('(%I = tenant.require_tenant())', it.tenant_column), '[[:space:]]', '', 'g') AS w, \
                           pg_catalog.regexp_replace(coalesce(pg_catalog.pg_get_expr(p.polqual, p.polrelid), ''), '[[:space:]]', '', 'g') AS q, \
                           pg_catalog.regexp_replace(coalesce(pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid), ''), '[[:space:]]', '', 'g') AS c) x \
                         WHERE p.polrelid = it.relid \
                         AND (NOT p.polpermissive OR p.polname NOT IN \
                              ('tenant_isolation', 'tenant_isolation_insert', 'tenant_isolation_update', 'tenant_isolation_delete') \
                              OR NOT (x.q = '' OR x.q IN (x.r, x.w) OR pg_catalog.starts_with(x.q, '(' || x.r || 'AND') \
                                      OR pg_catalog.starts_with(x.q, '(' || x.w || 'AND')) \
                              OR NOT (x.c = '' OR x.c = x.w OR pg_catalog.starts_with(x.c, '(' || x.w || 'AND'))))",
                    None,
                    &[],
                )?;
                for r in t {
                    if let (Some(oid), Some(att)) = (r.get::<pg_sys::Oid>(1)?, r.get::<i16>(2)?) {
                        out.insert(oid, att);
                    }
                }
                Ok::<_, crate::core::error::MtError>(out)
            })
        })
        .map(std::rc::Rc::new)
    })
}
