//! `tenant.isolate` / `tenant.unisolate`: run the DDL that `ddl.rs` builds, as the caller
//! (who must own the table), and keep `tenant.isolated_tables` up to date.

use crate::backend;
use crate::ddl::{self, Previous, Target};
use crate::error::{boundary, MtError, MtResult};
use pgrx::pg_sys;
use pgrx::prelude::*;

const UUIDOID: u32 = 2950;

pub(crate) struct TableInfo {
    pub schema: String,
    pub table: String,
    kind: String,
    persistence: String,
    rls_enabled: bool,
    rls_forced: bool,
    is_owner: bool,
}

fn table_info(relid: pg_sys::Oid) -> MtResult<TableInfo> {
    Spi::connect(|c| {
        let t = c.select(
            "SELECT n.nspname::text, c.relname::text, c.relkind::text, c.relrowsecurity, \
                    c.relforcerowsecurity, pg_catalog.pg_has_role(c.relowner, 'USAGE'), \
                    c.relpersistence::text \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.oid = $1",
            None,
            &[relid.into()],
        )?;
        let Some(row) = t.into_iter().next() else {
            return Err(MtError::invalid(format!(
                "relation with oid {} does not exist",
                relid.to_u32()
            )));
        };
        Ok(TableInfo {
            schema: row.get::<String>(1)?.unwrap_or_default(),
            table: row.get::<String>(2)?.unwrap_or_default(),
            kind: row.get::<String>(3)?.unwrap_or_default(),
            rls_enabled: row.get::<bool>(4)?.unwrap_or(false),
            rls_forced: row.get::<bool>(5)?.unwrap_or(false),
            is_owner: row.get::<bool>(6)?.unwrap_or(false),
            persistence: row.get::<String>(7)?.unwrap_or_default(),
        })
    })
}

/// A table the caller may register with one of the extension's functions (`what`, for
/// messages): a persistent ordinary or partitioned table the caller owns, outside the
/// system and extension schemas. Temporary tables are refused: they are private to a
/// session, so rows in them prove nothing about a tenant, and registering one would let any
/// role with TEMP write into shared state (counters, audit chains).
pub(crate) fn check_table(relid: pg_sys::Oid, what: &str) -> MtResult<TableInfo> {
    let info = table_info(relid)?;
    let name = ddl::qualified(&info.schema, &info.table);
    if !info.is_owner {
        return Err(MtError::denied(format!(
            "must be owner of table {name} to {what} it"
        )));
    }
    if info.persistence == "t" {
        return Err(MtError::invalid(format!("{name} is a temporary table"))
            .hint("Only persistent tables can be registered with the extension."));
    }
    if info.kind != "r" && info.kind != "p" {
        return Err(MtError::invalid(format!("{name} is not a table"))
            .hint("Only ordinary and partitioned tables can be registered."));
    }
    if ["tenant", "pg_catalog", "information_schema", "pg_toast"].contains(&info.schema.as_str()) {
        return Err(MtError::invalid(format!(
            "{name} is a system or extension table"
        )));
    }
    Ok(info)
}

/// The partitions and inheritance children of `relid`, at every depth (parents first).
pub(crate) fn descendants(relid: pg_sys::Oid) -> MtResult<Vec<pg_sys::Oid>> {
    backend::read_oids(
        "WITH RECURSIVE d(relid, depth) AS ( \
           SELECT i.inhrelid, 1 FROM pg_catalog.pg_inherits i WHERE i.inhparent = $1 \
           UNION ALL \
           SELECT i.inhrelid, d.depth + 1 FROM pg_catalog.pg_inherits i JOIN d ON i.inhparent = d.relid \
           WHERE d.depth < 64) \
         SELECT relid FROM d GROUP BY relid ORDER BY min(depth), relid",
        &[relid.into()],
    )
}

/// The nearest isolated ancestor of `relid` (partition parent or inheritance parent) and
/// its tenant column.
fn isolated_ancestor(relid: pg_sys::Oid) -> MtResult<Option<(pg_sys::Oid, String)>> {
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

pub(crate) struct Column {
    attnum: i16,
    default: Option<String>,
}

pub(crate) fn tenant_column(relid: pg_sys::Oid, table: &str, column: &str) -> MtResult<Column> {
    let row = Spi::connect(|c| -> MtResult<Option<(i16, u32, Option<String>)>> {
        let t = c.select(
            "SELECT a.attnum, a.atttypid, pg_catalog.pg_get_expr(d.adbin, d.adrelid) \
             FROM pg_catalog.pg_attribute a \
             LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
            None,
            &[relid.into(), column.into()],
        )?;
        match t.into_iter().next() {
            None => Ok(None),
            Some(r) => Ok(Some((
                r.get::<i16>(1)?.unwrap_or(0),
                r.get::<pg_sys::Oid>(2)?.map(|o| o.to_u32()).unwrap_or(0),
                r.get::<String>(3)?,
            ))),
        }
    })?;
    let Some((attnum, typ, default)) = row else {
        return Err(MtError::invalid(format!("column \"{column}\" of {table} does not exist"))
            .hint("Add it first, e.g. ALTER TABLE ... ADD COLUMN tenant_id uuid NOT NULL DEFAULT tenant.require_tenant(), or pass tenant_column => '...'."));
    };
    if typ != UUIDOID {
        return Err(MtError::invalid(format!(
            "column \"{column}\" of {table} must be of type uuid"
        )));
    }
    Ok(Column { attnum, default })
}

/// The column exists (any type).
pub(crate) fn column_exists(relid: pg_sys::Oid, table: &str, column: &str) -> MtResult<()> {
    let found = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attname = $2 \
         AND attnum > 0 AND NOT attisdropped)",
        &[relid.into(), column.into()],
    )?
    .unwrap_or(false);
    if found {
        Ok(())
    } else {
        Err(MtError::invalid(format!(
            "column \"{column}\" of {table} does not exist"
        )))
    }
}

/// For the table's owner: drop the extension's `triggers` from the table and its row from
/// `registry` (one of the extension's own tables). Returns whether the table was registered.
pub(crate) fn detach_triggers(
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
    backend::as_owner(|| {
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

pub(crate) fn run_all(statements: &[String]) -> MtResult<()> {
    backend::quietly(|| {
        Spi::connect_mut(|c| {
            for s in statements {
                c.update(s.as_str(), None, &[])?;
            }
            Ok(())
        })
    })
}

thread_local! {
    /// set while isolate/unisolate run their own DDL, so the DDL event hook stays out
    static BUSY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

struct Busy(bool);
impl Busy {
    fn start() -> Busy {
        Busy(BUSY.with(|b| b.replace(true)))
    }
}
impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.with(|b| b.set(self.0));
    }
}

/// Isolate `relid` and every partition and inheritance child below it: RLS on a parent
/// does not apply to a query that names a partition directly.
/// The database's extension schema is still 0.1.0's (this library runs it until
/// `ALTER EXTENSION multitenant UPDATE`; see compat.rs).
fn legacy_schema() -> MtResult<bool> {
    Ok(backend::read_one::<bool>(
        "SELECT pg_catalog.to_regprocedure('tenant._allow()') IS NULL",
        &[],
    )?
    .unwrap_or(false))
}

pub(crate) fn isolate_tree(relid: pg_sys::Oid, column: &str) -> MtResult<()> {
    let _busy = Busy::start();
    let mut tree = vec![relid];
    tree.extend(descendants(relid)?);
    // check every member first, so nothing is half done when one is refused
    for &member in &tree {
        let info = check_table(member, "isolate")?;
        tenant_column(member, &ddl::qualified(&info.schema, &info.table), column)?;
    }
    for member in tree {
        isolate_one(member, column)?;
    }
    Ok(())
}

fn isolate_one(relid: pg_sys::Oid, column: &str) -> MtResult<()> {
    let info = check_table(relid, "isolate")?;
    let name = ddl::qualified(&info.schema, &info.table);
    let col = tenant_column(relid, &name, column)?;
    let target = Target {
        schema: &info.schema,
        table: &info.table,
        column,
        legacy_schema: legacy_schema()?,
    };
    if let Some(reg) = record(relid)? {
        if reg.column != column {
            return Err(MtError::invalid(format!(
                "{name} is already isolated on column \"{}\"",
                reg.column
            ))
            .hint("Run tenant.unisolate(...) first to change the tenant column."));
        }
        // idempotent: re-create the policies and default, keep what was recorded
        return run_all(&ddl::isolate_statements(&target, false));
    }
    let has_index = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index WHERE indrelid = $1 AND indkey[0] = $2)",
        &[relid.into(), col.attnum.into()],
    )?
    .unwrap_or(false);
    run_all(&ddl::isolate_statements(&target, !has_index))?;
    let created_index = if has_index {
        None
    } else {
        // kept as its quoted, qualified name: a regclass would not survive pg_dump, which
        // loads this table's rows before it creates the index
        Spi::get_one_with_args::<String>(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_index i \
             JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE i.indrelid = $1 AND i.indkey[0] = $2 ORDER BY i.indexrelid DESC LIMIT 1",
            &[relid.into(), col.attnum.into()],
        )?
    };
    backend::as_owner(|| {
        Spi::run_with_args(
            "INSERT INTO tenant.isolated_tables \
               (relid, tenant_column, created_index, previous_default, rls_was_enabled, rls_was_forced) \
             VALUES ($1::regclass, $2, $3, $4, $5, $6)",
            &[
                relid.into(),
                column.into(),
                created_index.into(),
                col.default.clone().into(),
                info.rls_enabled.into(),
                info.rls_forced.into(),
            ],
        )?;
        Ok(())
    })
}

struct Record {
    column: String,
    created_index: Option<String>,
    previous_default: Option<String>,
    rls_enabled: bool,
    rls_forced: bool,
}

fn record(relid: pg_sys::Oid) -> MtResult<Option<Record>> {
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

/// Reverse `isolate` on `relid` and every isolated table below it. A partition or child of
/// a table that stays isolated cannot be opened on its own.
pub(crate) fn unisolate_tree(relid: pg_sys::Oid) -> MtResult<bool> {
    let _busy = Busy::start();
    let info = check_table(relid, "unisolate")?;
    if let Some((parent, _)) = isolated_ancestor(relid)? {
        return Err(MtError::invalid(format!(
            "{} inherits its isolation from table oid {}",
            ddl::qualified(&info.schema, &info.table),
            parent.to_u32()
        ))
        .hint("Detach it first, or unisolate the parent table."));
    }
    let mut tree = vec![relid];
    tree.extend(descendants(relid)?);
    for &member in &tree {
        check_table(member, "unisolate")?;
    }
    let mut any = false;
    for member in tree {
        any |= unisolate_one(member)?;
    }
    Ok(any)
}

fn unisolate_one(relid: pg_sys::Oid) -> MtResult<bool> {
    let info = check_table(relid, "unisolate")?;
    let Some(rec) = record(relid)? else {
        return Ok(false);
    };
    let target = Target {
        schema: &info.schema,
        table: &info.table,
        column: &rec.column,
        legacy_schema: false,
    };
    let prev = Previous {
        rls_enabled: rec.rls_enabled,
        rls_forced: rec.rls_forced,
        column_default: rec.previous_default.as_deref(),
        created_index: rec.created_index.as_deref(),
    };
    run_all(&ddl::unisolate_statements(&target, &prev))?;
    backend::as_owner(|| {
        Spi::run_with_args(
            "DELETE FROM tenant.isolated_tables WHERE relid = $1::regclass",
            &[relid.into()],
        )?;
        Ok(())
    })?;
    Ok(true)
}

/// `tenant.isolate(tbl, tenant_column)`: RLS, policies, default and index on `tbl` and on
/// every partition and inheritance child (later ones too, through the DDL event hook).
/// Runs as the caller, who must own every table involved.
#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION tenant.isolate(tbl regclass, tenant_column text DEFAULT 'tenant_id') \
           RETURNS void VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn isolate(tbl: pg_sys::Oid, tenant_column: &str) {
    boundary(|| backend::quietly(|| isolate_tree(tbl, tenant_column)))
}

/// `tenant.unisolate(tbl)`: reverse `isolate` on `tbl` and everything below it.
#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION tenant.unisolate(tbl regclass) \
           RETURNS boolean VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn unisolate(tbl: pg_sys::Oid) -> bool {
    boundary(|| backend::quietly(|| unisolate_tree(tbl)))
}

/// The DDL event hook (`ddl_command_end` on CREATE TABLE / ALTER TABLE): a table created as
/// or attached as a partition or inheritance child of an isolated table is isolated too, in
/// the same transaction, as the role that ran the DDL (who owns both tables). If that fails,
/// the DDL fails: a child is never left open.
fn on_ddl_impl() -> MtResult<()> {
    if BUSY.with(|b| b.get()) {
        return Ok(());
    }
    let created = backend::read_oids(
        "SELECT DISTINCT objid FROM pg_catalog.pg_event_trigger_ddl_commands() \
         WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND object_type = 'table'",
        &[],
    )?;
    for relid in created {
        match record(relid)? {
            // ALTER TABLE ... ATTACH PARTITION reports the parent: cover what is below it
            Some(rec) => {
                for child in descendants(relid)? {
                    if record(child)?.is_none() {
                        isolate_tree(child, &rec.column)?;
                    }
                }
            }
            None => {
                if let Some((_, column)) = isolated_ancestor(relid)? {
                    isolate_tree(relid, &column)?;
                }
            }
        }
    }
    Ok(())
}

#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION tenant._on_ddl() RETURNS event_trigger \
           LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn _on_ddl() {
    boundary(|| backend::quietly(on_ddl_impl))
}
