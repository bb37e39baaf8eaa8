//! The audit log: appending entries to the hash chains, the per-table settings the trigger
//! reads, and reading chains back for verification.

use crate::core::audit::{self, Base, Entry, Verdict};
use crate::core::error::{MtError, MtResult};
use crate::pg::convert::pg_uuid;
use crate::pg::invalidation::{GenMap, Kind};
use crate::pg::owner::{as_owner, as_owner_fast};
use crate::pg::spi::with_prepared;
use pgrx::pg_sys;
use pgrx::pg_sys::PgBuiltInOids as O;
use pgrx::prelude::*;
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// One statement appends an entry: it computes the content, advances the chain head under
/// its row lock (one lock per tenant chain) and inserts the entry with its hash.
/// (Run by `as_owner_fast`: every type, function and operator qualified, so that it means
/// the same under any search_path; `OPERATOR()` has one precedence for all.)
const WRITE: &str = "WITH v AS ( \
  SELECT $1::pg_catalog.uuid AS tenant_id, $2::pg_catalog.oid AS table_oid, $3::pg_catalog.text AS table_name, \
         $4::pg_catalog.text AS operation, $5::pg_catalog.text AS record_id, \
         tenant.current_user_id() AS user_id, session_user::pg_catalog.text AS db_role, \
         pg_catalog.inet_client_addr() AS client_addr, \
         pg_catalog.current_setting('application_name', true) AS application_name, \
         pg_catalog.txid_current() AS txid, pg_catalog.statement_timestamp() AS at, \
         $6::pg_catalog.jsonb AS old_data, $7::pg_catalog.jsonb AS new_data, \
         $8::pg_catalog.text[] AS changed, $10::pg_catalog.text AS db_user, \
         $11::pg_catalog.inet AS end_user_addr \
), c AS ( \
  SELECT v.*, $9::pg_catalog.text AS chain, \
         tenant_internal._audit_content_all(v.tenant_id, v.table_oid, v.table_name, v.operation, v.record_id, \
                               v.user_id, v.db_role, v.client_addr::pg_catalog.text, v.application_name, \
                               v.at, v.txid, v.old_data::pg_catalog.text, v.new_data::pg_catalog.text, \
                               v.changed::pg_catalog.text, v.db_user, v.end_user_addr::pg_catalog.text) AS content \
  FROM v \
), head AS ( \
  INSERT INTO tenant.audit_heads AS h (chain, seq, hash) \
  SELECT c.chain, 1, tenant_internal._audit_link(''::pg_catalog.bytea, 1, c.content) FROM c \
  ON CONFLICT (chain) DO UPDATE SET seq = h.seq OPERATOR(pg_catalog.+) 1, \
      hash = tenant_internal._audit_link(h.hash, h.seq OPERATOR(pg_catalog.+) 1, (SELECT content FROM c)) \
  RETURNING h.chain, h.seq, h.hash \
) \
INSERT INTO tenant.audit_log (chain, seq, tenant_id, table_oid, table_name, operation, record_id, user_id, \
    db_role, client_addr, application_name, txid, at, old_data, new_data, changed, hash, hash_format, \
    db_user, end_user_addr) \
SELECT head.chain, head.seq, c.tenant_id, c.table_oid, c.table_name, c.operation, c.record_id, c.user_id, \
       c.db_role, c.client_addr, c.application_name, c.txid, c.at, c.old_data, c.new_data, c.changed, head.hash, \
       2::pg_catalog.int2, c.db_user, c.end_user_addr \
FROM c, head";

/// [`WRITE`] for a database still at 0.1.0 (no `tenant_internal` yet; see api/compat.rs).
const WRITE_LEGACY: &str = "WITH v AS ( \
  SELECT $1::uuid AS tenant_id, $2::oid AS table_oid, $3::text AS table_name, $4::text AS operation, \
         $5::text AS record_id, tenant.current_user_id() AS user_id, session_user::text AS db_role, \
         inet_client_addr() AS client_addr, current_setting('application_name', true) AS application_name, \
         txid_current() AS txid, statement_timestamp() AS at, $6::jsonb AS old_data, $7::jsonb AS new_data, \
         $8::text[] AS changed \
), c AS ( \
  SELECT v.*, $9::text AS chain, \
         tenant._audit_content(v.tenant_id, v.table_name, v.operation, v.record_id, v.user_id, v.db_role, \
                               v.at, v.txid, v.old_data::text, v.new_data::text, v.changed::text) AS content \
  FROM v \
), head AS ( \
  INSERT INTO tenant.audit_heads AS h (chain, seq, hash) \
  SELECT c.chain, 1, sha256(int8send(1) || c.content) FROM c \
  ON CONFLICT (chain) DO UPDATE SET seq = h.seq + 1, \
      hash = sha256(h.hash || int8send(h.seq + 1) || (SELECT content FROM c)) \
  RETURNING h.chain, h.seq, h.hash \
) \
INSERT INTO tenant.audit_log (chain, seq, tenant_id, table_oid, table_name, operation, record_id, user_id, \
    db_role, client_addr, application_name, txid, at, old_data, new_data, changed, hash) \
SELECT head.chain, head.seq, c.tenant_id, c.table_oid, c.table_name, c.operation, c.record_id, c.user_id, \
       c.db_role, c.client_addr, c.application_name, c.txid, c.at, c.old_data, c.new_data, c.changed, head.hash \
FROM c, head";

/// Writer slots per tenant: chains per tenant = CHAIN_SLOTS.
const CHAIN_SLOTS: i32 = 8;

thread_local! {
    /// set while this backend legitimately writes or prunes the log
    static WRITING: Cell<bool> = const { Cell::new(false) };
    static META: RefCell<GenMap<pg_sys::Oid, Rc<TableMeta>>> = RefCell::new(GenMap::new(&[Kind::Relations]));
}

pub struct Writing;
impl Writing {
    pub fn start() -> Writing {
        WRITING.with(|w| w.set(true));
        Writing
    }
}
impl Drop for Writing {
    fn drop(&mut self) {
        WRITING.with(|w| w.set(false));
    }
}

/// What the trigger needs to know about a table, cached until its relcache entry changes.
pub struct TableMeta {
    /// the table the entries name: the relation itself, or on a Citus worker the
    /// distributed table (its shell) a shard belongs to
    pub relid: pg_sys::Oid,
    pub name: String,
    pub pk: Vec<String>,
    pub tenant_column: Option<String>,
    /// registered with `tenant.audit` (itself or a partitioned table above it)
    pub registered: bool,
    pub ignore: Vec<String>,
    pub changed_only: bool,
}

pub fn table_meta(relid: pg_sys::Oid) -> MtResult<Rc<TableMeta>> {
    if let Some(m) = META.with(|m| m.borrow_mut().fresh().get(&relid).cloned()) {
        return Ok(m);
    }
    let loaded_at = META.with(|m| m.borrow().now());
    let (table, name, pk, tenant_column, registered, ignore, changed_only) = as_owner(|| {
        // on a Citus worker the trigger fires on a shard (`events_102008`): its settings are
        // those of the distributed table it belongs to (a shell on the worker), whose
        // registration the coordinator pushed (docs/citus.md)
        let (table, dist_column) = crate::pg::citus::shell_of(relid)?.unwrap_or((relid, None));
        Spi::connect(|c| {
            let t = c.select(
                "SELECT format('%I.%I', n.nspname, c.relname), \
                   (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_catalog.pg_index i \
                      CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
                      JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                     WHERE i.indrelid = c.oid AND i.indisprimary), \
                   coalesce((SELECT tenant_column::text FROM tenant.isolated_tables WHERE relid = c.oid), $2, \
                            (SELECT 'tenant_id' FROM pg_catalog.pg_attribute \
                              WHERE attrelid = c.oid AND attname = 'tenant_id' AND NOT attisdropped)), \
                   r.relid IS NOT NULL, r.ignore_columns, r.changed_only \
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 LEFT JOIN LATERAL ( \
                   SELECT a.relid, a.ignore_columns, a.changed_only FROM tenant.audited_tables a \
                   WHERE a.relid::oid = c.oid \
                      OR a.relid::oid IN (SELECT pg_catalog.pg_partition_ancestors(c.oid)) \
                   ORDER BY a.relid::oid = c.oid DESC LIMIT 1) r ON true \
                 WHERE c.oid = $1",
                None,
                &[table.into(), dist_column.into()],
            )?;
            let r = t
                .into_iter()
                .next()
                .ok_or_else(|| MtError::invalid("audited relation not found"))?;
            Ok((
                table,
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<Vec<String>>(2)?.unwrap_or_default(),
                r.get::<String>(3)?,
                r.get::<bool>(4)?.unwrap_or(false),
                r.get::<Vec<String>>(5)?.unwrap_or_default(),
                r.get::<bool>(6)?.unwrap_or(false),
            ))
        })
    })?;
    let m = Rc::new(TableMeta {
        relid: table,
        name,
        pk,
        tenant_column,
        registered,
        ignore,
        changed_only,
    });
    META.with(|c| c.borrow_mut().insert(loaded_at, relid, m.clone()));
    Ok(m)
}

#[allow(clippy::too_many_arguments)]
pub fn write(
    tenant: Option<uuid::Uuid>,
    table_oid: Option<pg_sys::Oid>,
    table_name: Option<&str>,
    operation: &str,
    record: Option<String>,
    old: Option<Value>,
    new: Option<Value>,
    changed: Option<Vec<String>>,
) -> MtResult<()> {
    let _w = Writing::start();
    let types = [
        O::UUIDOID,
        O::OIDOID,
        O::TEXTOID,
        O::TEXTOID,
        O::TEXTOID,
        O::JSONBOID,
        O::JSONBOID,
        O::TEXTARRAYOID,
        O::TEXTOID,
        O::TEXTOID,
        O::TEXTOID,
    ];
    // SAFETY: MyProcPid is set once at backend start and only read here
    let slot = unsafe { pg_sys::MyProcPid }.rem_euclid(CHAIN_SLOTS) as u32;
    let chain = audit::chain_name(tenant.map(|t| t.to_string()).as_deref(), slot);
    let legacy = crate::state::registry::legacy_schema()?;
    // who: the database role the extension acts for (after SET ROLE, unlike session_user)
    // and the end user's address signed into the context
    let (db_user, end_user) = if legacy {
        (None, None)
    } else {
        (
            crate::pg::owner::role_name(crate::pg::owner::acting_role()),
            crate::state::context::verified(|c| c.ip.clone())
                .ok()
                .flatten(),
        )
    };
    let args = [
        tenant.map(pg_uuid).into(),
        table_oid.into(),
        table_name.into(),
        operation.into(),
        record.into(),
        old.map(pgrx::JsonB).into(),
        new.map(pgrx::JsonB).into(),
        changed.into(),
        chain.as_str().into(),
        db_user.into(),
        end_user.into(),
    ];
    if legacy {
        return as_owner(|| with_prepared(WRITE_LEGACY, &types[..9], &args[..9], |_| Ok(())));
    }
    as_owner_fast(|| with_prepared(WRITE, &types, &args, |_| Ok(())))
}

/// Log a management event (tenant created, plan changed, member added, key rotated...) in
/// the tenant's chain (or the global one).
pub fn event(tenant: Option<uuid::Uuid>, name: &str, data: Value) -> MtResult<()> {
    write(
        tenant,
        None,
        None,
        "EVENT",
        Some(name.to_string()),
        None,
        Some(data),
        None,
    )
}

pub fn verify_chain_named(chain: &str) -> MtResult<Verdict> {
    // (the extension's own schema name, not user text)
    let schema = crate::state::registry::trigger_schema()?;
    // an entry is checked in the hash format it was written in (1: 0.1.0's)
    let content_v1 = format!(
        "{schema}._audit_content(tenant_id, table_name, operation, record_id, user_id, db_role, \
                at, txid, old_data::text, new_data::text, changed::text)"
    );
    let entries_sql = if schema == "tenant" {
        format!("SELECT id, seq, {content_v1}, hash FROM tenant.audit_log WHERE chain = $1 ORDER BY seq")
    } else {
        format!(
            "SELECT id, seq, CASE hash_format WHEN 1 THEN {content_v1} ELSE \
                tenant_internal._audit_content_all(tenant_id, table_oid, table_name, operation, record_id, \
                    user_id, db_role, client_addr::text, application_name, at, txid, old_data::text, \
                    new_data::text, changed::text, db_user, end_user_addr::text) END, hash \
             FROM tenant.audit_log WHERE chain = $1 ORDER BY seq"
        )
    };
    let (entries, base, head) = as_owner(|| {
        Spi::connect(|c| {
            let t = c.select(entries_sql.as_str(), None, &[chain.into()])?;
            let mut entries = Vec::new();
            for r in t {
                entries.push(Entry {
                    id: r.get::<i64>(1)?.unwrap_or(0),
                    seq: r.get::<i64>(2)?.unwrap_or(0),
                    content: r.get::<Vec<u8>>(3)?.unwrap_or_default(),
                    hash: r.get::<Vec<u8>>(4)?.unwrap_or_default(),
                });
            }
            let h = c.select(
                "SELECT seq, hash, base_seq, base_hash FROM tenant.audit_heads WHERE chain = $1",
                None,
                &[chain.into()],
            )?;
            let (head, base) = match h.into_iter().next() {
                Some(r) => (
                    Some((
                        r.get::<i64>(1)?.unwrap_or(0),
                        r.get::<Vec<u8>>(2)?.unwrap_or_default(),
                    )),
                    Base {
                        seq: r.get::<i64>(3)?.unwrap_or(0),
                        hash: r.get::<Vec<u8>>(4)?.unwrap_or_default(),
                    },
                ),
                None => (None, Base::default()),
            };
            Ok::<_, MtError>((entries, base, head))
        })
    })?;
    Ok(audit::verify_chain(entries, base, head))
}

/// Every chain of a tenant (None: the global chains): those with a head, and any
/// entries whose head was deleted.
pub fn chains_of(tenant: Option<&str>) -> MtResult<Vec<String>> {
    let pattern = audit::chain_pattern(tenant);
    as_owner(|| {
        Spi::connect(|c| {
            let t = c.select(
                "SELECT chain FROM tenant.audit_heads WHERE chain LIKE $1 \
                 UNION SELECT DISTINCT chain FROM tenant.audit_log WHERE chain LIKE $1 ORDER BY 1",
                None,
                &[pattern.as_str().into()],
            )?;
            let mut v = Vec::new();
            for r in t {
                v.extend(r.get::<String>(1)?);
            }
            Ok::<_, MtError>(v)
        })
    })
}

/// Remove entries past retention (sql/purge_audit.sql), as the extension owner.
/// The tenants (ids) whose plan or override has the `audit_logs` feature: the longer
/// retention of `purge`.
pub fn tenants_with_audit_logs() -> MtResult<Vec<String>> {
    Ok(as_owner(|| {
        crate::pg::spi::read_one::<Vec<String>>(
            "SELECT coalesce(pg_catalog.array_agg(t.id::text), '{}') FROM tenant.tenants t \
             LEFT JOIN tenant.plans p ON p.name = t.plan \
             WHERE coalesce((SELECT f.enabled FROM tenant.tenant_features f \
                             WHERE f.tenant_id = t.id AND f.feature = 'audit_logs'), \
                            'audit_logs' = ANY (p.features), false)",
            &[],
        )
    })?
    .unwrap_or_default())
}

/// `feature_tenants`: the tenants with the longer retention ([`tenants_with_audit_logs`],
/// given by the coordinator on a Citus worker, which has no plans).
pub fn purge(
    default_retention_days: i32,
    feature_retention_days: i32,
    feature_tenants: Vec<String>,
) -> MtResult<i64> {
    let _w = Writing::start();
    as_owner(|| {
        Ok(Spi::get_one_with_args::<i64>(
            include_str!("../../sql/purge_audit.sql"),
            &[
                default_retention_days.into(),
                feature_retention_days.into(),
                feature_tenants.into(),
            ],
        )?
        .unwrap_or(0))
    })
}

/// Is this backend writing or pruning the log right now (the append-only guard lets it)?
pub fn is_writing() -> bool {
    WRITING.with(|w| w.get())
}

/// Erase every entry of a tenant's chains (tenant purge): each head records the chain's end
/// as its new start, so the emptied chains still verify; returns how many entries went.
pub fn erase_tenant(tenant: uuid::Uuid) -> MtResult<i64> {
    let _w = Writing::start();
    let pattern = audit::chain_pattern(Some(&tenant.to_string()));
    as_owner(|| {
        Spi::run_with_args(
            "UPDATE tenant.audit_heads SET base_seq = seq, base_hash = hash WHERE chain LIKE $1",
            &[pattern.as_str().into()],
        )?;
        crate::pg::spi::write_count(
            "WITH d AS (DELETE FROM tenant.audit_log WHERE chain LIKE $1 RETURNING 1) SELECT count(*) FROM d",
            &[pattern.as_str().into()],
        )
    })
}
