//! Catalog checks on the caller's tables and running DDL on them as the caller.

use crate::core::ddl;
use crate::core::error::{MtError, MtResult};
use crate::pg::owner::quietly;
use crate::pg::spi::read_oids;
use pgrx::pg_sys;
use pgrx::prelude::*;

const UUIDOID: u32 = 2950;

pub struct TableInfo {
    pub schema: String,
    pub table: String,
    pub kind: String,
    pub persistence: String,
    pub rls_enabled: bool,
    pub rls_forced: bool,
    pub is_owner: bool,
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
pub fn check_table(relid: pg_sys::Oid, what: &str) -> MtResult<TableInfo> {
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
pub fn descendants(relid: pg_sys::Oid) -> MtResult<Vec<pg_sys::Oid>> {
    read_oids(
        "WITH RECURSIVE d(relid, depth) AS ( \
           SELECT i.inhrelid, 1 FROM pg_catalog.pg_inherits i WHERE i.inhparent = $1 \
           UNION ALL \
           SELECT i.inhrelid, d.depth + 1 FROM pg_catalog.pg_inherits i JOIN d ON i.inhparent = d.relid \
           WHERE d.depth < 64) \
         SELECT relid FROM d GROUP BY relid ORDER BY min(depth), relid",
        &[relid.into()],
    )
}

pub struct Column {
    pub attnum: i16,
    pub default: Option<String>,
}

pub fn tenant_column(relid: pg_sys::Oid, table: &str, column: &str) -> MtResult<Column> {
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
pub fn column_exists(relid: pg_sys::Oid, table: &str, column: &str) -> MtResult<()> {
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

/// Run DDL built from catalog identifiers as the caller (see `quietly`).
pub fn run_all(statements: &[String]) -> MtResult<()> {
    quietly(|| {
        Spi::connect_mut(|c| {
            for s in statements {
                c.update(s.as_str(), None, &[])?;
            }
            Ok(())
        })
    })
}
