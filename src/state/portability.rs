//! The registry of tenant-keyed tables as export, import and purge see it, and the SPI that
//! moves one tenant's rows. Table names come from the catalog, quoted (`%I.%I`); values are
//! parameters.

use crate::core::ddl::quote_ident;
use crate::core::error::MtResult;
use crate::pg::convert::pg_uuid;
use crate::pg::spi::{read_one, with_prepared_read, write_count};
use pgrx::pg_sys::PgBuiltInOids as O;
use serde_json::Value;
use std::collections::BTreeSet;

/// A registered table (isolated or row-limited; a partition only when its partitioned table
/// is not registered itself).
pub struct RegTable {
    pub relid: pgrx::pg_sys::Oid,
    /// the table's owner: bulk writes run as it (`pg::owner::as_role_restricted`)
    pub owner: pgrx::pg_sys::Oid,
    /// `schema.table` as the document names it (quoted where PostgreSQL would quote)
    pub key: String,
    /// quoted and qualified, for SQL
    pub sql_name: String,
    pub tenant_column: String,
    /// columns that can be written (not generated, not dropped)
    pub columns: BTreeSet<String>,
    /// registered tables it references by foreign key (their keys)
    pub refs: BTreeSet<String>,
    /// columns left out of exports (`tenant.exclude_from_export`)
    pub excluded: Vec<String>,
    /// the primary key's columns
    pub pk: Vec<String>,
    /// their types (`format_type`), when every one is built in (None otherwise)
    pub pk_types: Option<Vec<String>>,
}

/// Every registered table; the caller runs it as the extension owner.
pub fn registered() -> MtResult<Vec<RegTable>> {
    with_prepared_read(
        "WITH reg AS ( \
           SELECT relid::oid AS oid, tenant_column::text AS col, 1 AS prio FROM tenant.isolated_tables \
           UNION ALL SELECT relid::oid, tenant_column::text, 2 FROM tenant.row_limits \
         ), top AS ( \
           SELECT DISTINCT ON (r.oid) r.oid, r.col FROM reg r \
           WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_partition_ancestors(r.oid) a \
                             WHERE a.relid <> r.oid AND a.relid IN (SELECT oid FROM reg)) \
           ORDER BY r.oid, r.prio \
         ) \
         SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), pg_catalog.format('%I.%I', n.nspname, c.relname), t.col, \
           (SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attnum) FROM pg_catalog.pg_attribute a \
             WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''), \
           (SELECT pg_catalog.array_agg(DISTINCT pg_catalog.format('%I.%I', pn.nspname, pc.relname)) \
              FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_class pc ON pc.oid = k.confrelid \
              JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace \
             WHERE k.conrelid = t.oid AND k.contype = 'f'), \
           (SELECT e.columns FROM tenant.export_exclusions e WHERE e.relid::oid = t.oid), \
           (SELECT pg_catalog.array_agg(a.attname::text ORDER BY k.ord) FROM pg_catalog.pg_index i \
              CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
              JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = t.oid AND i.indisprimary), \
           t.oid, c.relowner, \
           (SELECT CASE WHEN pg_catalog.bool_and(a.atttypid OPERATOR(pg_catalog.<) 16384::pg_catalog.oid) \
                        THEN pg_catalog.array_agg(pg_catalog.format_type(a.atttypid, a.atttypmod) ORDER BY k.ord) END \
              FROM pg_catalog.pg_index i \
              CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
              JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = t.oid AND i.indisprimary) \
         FROM top t JOIN pg_catalog.pg_class c ON c.oid = t.oid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace ORDER BY 1",
        &[],
        &[],
        |t| {
            let mut v = Vec::new();
            for r in t {
                v.push(RegTable {
                    key: r.get::<String>(1)?.unwrap_or_default(),
                    sql_name: r.get::<String>(2)?.unwrap_or_default(),
                    tenant_column: r.get::<String>(3)?.unwrap_or_default(),
                    columns: r.get::<Vec<String>>(4)?.unwrap_or_default().into_iter().collect(),
                    refs: r.get::<Vec<String>>(5)?.unwrap_or_default().into_iter().collect(),
                    excluded: r.get::<Vec<String>>(6)?.unwrap_or_default(),
                    pk: r.get::<Vec<String>>(7)?.unwrap_or_default(),
                    relid: r.get::<pgrx::pg_sys::Oid>(8)?.unwrap_or(pgrx::pg_sys::InvalidOid),
                    owner: r.get::<pgrx::pg_sys::Oid>(9)?.unwrap_or(pgrx::pg_sys::InvalidOid),
                    pk_types: r.get::<Vec<String>>(10)?,
                });
            }
            Ok(v)
        },
    )
}

/// One tenant's rows of `t` as JSON objects, without the tenant column, generated and
/// excluded columns.
pub fn export_rows(t: &RegTable, tenant: uuid::Uuid) -> MtResult<Value> {
    let mut drop: Vec<String> = vec![t.tenant_column.clone()];
    drop.extend(t.excluded.iter().cloned());
    let sql = format!(
        "SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x) OPERATOR(pg_catalog.-) $2::pg_catalog.text[]), '[]') \
         FROM {} x WHERE x.{} OPERATOR(pg_catalog.=) $1",
        t.sql_name,
        quote_ident(&t.tenant_column)
    );
    let mut rows = read_one::<pgrx::JsonB>(&sql, &[pg_uuid(tenant).into(), drop.into()])?
        .map(|j| j.0)
        .unwrap_or(Value::Array(vec![]));
    // generated columns are not written back: leave them out as well
    if let Value::Array(rs) = &mut rows {
        for r in rs {
            if let Value::Object(o) = r {
                o.retain(|k, _| t.columns.contains(k));
            }
        }
    }
    Ok(rows)
}

/// Insert rows (already checked against the table's columns) with the columns they name.
pub fn import_rows(t: &RegTable, rows: Vec<Value>) -> MtResult<i64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut cols: BTreeSet<&str> = BTreeSet::new();
    for r in &rows {
        if let Value::Object(o) = r {
            cols.extend(o.keys().map(String::as_str));
        }
    }
    let list: Vec<String> = cols.iter().map(|c| quote_ident(c)).collect();
    let list = list.join(", ");
    let sql = format!(
        "WITH i AS (INSERT INTO {name} ({list}) OVERRIDING SYSTEM VALUE \
           SELECT {list} FROM pg_catalog.jsonb_populate_recordset(NULL::{name}, $1) RETURNING 1) \
         SELECT pg_catalog.count(*) FROM i",
        name = t.sql_name
    );
    write_count(&sql, &[pgrx::JsonB(Value::Array(rows)).into()])
}

/// How many of `rows` have a primary key that a row of the table holds already (of any
/// tenant: an import never overwrites). Run as the extension owner, so that every tenant's
/// rows count: the keys are read from the document into their built-in types only
/// (`jsonb_to_recordset`), so no code of the table or of its types runs. Tables whose key
/// has a type of their own are not checked here (their unique index still refuses a clash).
pub fn key_conflicts(t: &RegTable, rows: &[Value]) -> MtResult<i64> {
    let Some(types) = &t.pk_types else {
        return Ok(0);
    };
    if t.pk.is_empty()
        || rows.is_empty()
        || !rows
            .iter()
            .all(|r| t.pk.iter().all(|c| r.get(c).is_some_and(|v| !v.is_null())))
    {
        return Ok(0); // keys that are not given are generated
    }
    let cols: Vec<String> =
        t.pk.iter()
            .zip(types)
            .map(|(c, ty)| format!("{} {ty}", quote_ident(c)))
            .collect();
    let on: Vec<String> =
        t.pk.iter()
            .map(|c| format!("x.{q} OPERATOR(pg_catalog.=) r.{q}", q = quote_ident(c)))
            .collect();
    let sql = format!(
        "SELECT pg_catalog.count(*) FROM {name} x \
         JOIN pg_catalog.jsonb_to_recordset($1) AS r({cols}) ON {on}",
        name = t.sql_name,
        cols = cols.join(", "),
        on = on.join(" AND ")
    );
    Ok(read_one::<i64>(&sql, &[pgrx::JsonB(Value::Array(rows.to_vec())).into()])?.unwrap_or(0))
}

/// Delete one tenant's rows of `t`; returns how many.
pub fn delete_rows(t: &RegTable, tenant: uuid::Uuid) -> MtResult<i64> {
    let sql = format!(
        "WITH d AS (DELETE FROM {} x WHERE x.{} OPERATOR(pg_catalog.=) $1 RETURNING 1) SELECT pg_catalog.count(*) FROM d",
        t.sql_name,
        quote_ident(&t.tenant_column)
    );
    write_count(&sql, &[pg_uuid(tenant).into()])
}

/// A JSON array of the rows a query returns as one jsonb column (`$1`: the tenant id).
pub fn json_rows(sql: &'static str, tenant: uuid::Uuid) -> MtResult<Value> {
    with_prepared_read(sql, &[O::UUIDOID], &[pg_uuid(tenant).into()], |r| {
        Ok(r.into_iter()
            .next()
            .map(|r| r.get::<pgrx::JsonB>(1))
            .transpose()?
            .flatten()
            .map(|j| j.0)
            .unwrap_or(Value::Array(vec![])))
    })
}

/// Run a write with the tenant id as `$1` and a jsonb document part as `$2`; returns the
/// count its last SELECT yields.
pub fn write_json(sql: &str, tenant: uuid::Uuid, part: &Value) -> MtResult<i64> {
    write_count(
        sql,
        &[pg_uuid(tenant).into(), pgrx::JsonB(part.clone()).into()],
    )
}
