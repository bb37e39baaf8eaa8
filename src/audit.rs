//! Audit trail: the Rust row trigger, management events, append-only guard, retention and
//! `verify_audit`. The chain logic is in `audit_chain` (pure).

use crate::audit_chain::{self, changed_columns, only, record_id, strip, Base, Entry, Verdict};
use crate::backend;
use crate::ddl::qualified;
use crate::error::{boundary, MtError, MtResult};
use pgrx::pg_sys;
use pgrx::pg_sys::PgBuiltInOids as O;
use pgrx::prelude::*;
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

/// One statement appends an entry: it computes the content, advances the chain head under
/// its row lock (one lock per tenant chain) and inserts the entry with its hash.
const WRITE: &str = "WITH v AS ( \
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

/// The bytes an entry's hash covers (see `audit_chain::content`); the writer and
/// `verify_audit` both call this.
#[allow(clippy::too_many_arguments)]
#[pg_extern(immutable, parallel_safe)]
fn _audit_content(
    tenant_id: Option<pgrx::Uuid>,
    table_name: Option<&str>,
    operation: Option<&str>,
    record_id: Option<&str>,
    user_id: Option<&str>,
    db_role: Option<&str>,
    at: Option<pgrx::datum::TimestampWithTimeZone>,
    txid: Option<i64>,
    old_data: Option<&str>,
    new_data: Option<&str>,
    changed: Option<&str>,
) -> Vec<u8> {
    let tenant = tenant_id.map(|u| backend::from_pg_uuid(u).to_string());
    let at = at.map(|t| t.into_inner().to_string());
    let txid = txid.map(|t| t.to_string());
    audit_chain::content(&[
        tenant.as_deref(),
        table_name,
        operation,
        record_id,
        user_id,
        db_role,
        at.as_deref(),
        txid.as_deref(),
        old_data,
        new_data,
        changed,
    ])
}

thread_local! {
    /// set while this backend legitimately writes or prunes the log
    static WRITING: Cell<bool> = const { Cell::new(false) };
    static META: RefCell<HashMap<pg_sys::Oid, std::rc::Rc<TableMeta>>> = RefCell::new(HashMap::new());
}

struct Writing;
impl Writing {
    fn start() -> Writing {
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
struct TableMeta {
    name: String,
    pk: Vec<String>,
    tenant_column: Option<String>,
    /// registered with `tenant.audit` (itself or a partitioned table above it)
    registered: bool,
    ignore: Vec<String>,
    changed_only: bool,
}

pub fn forget_relation(relid: pg_sys::Oid) {
    META.with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            if relid == pg_sys::InvalidOid {
                m.clear();
            } else {
                m.remove(&relid);
            }
        }
    });
}

fn table_meta(relid: pg_sys::Oid) -> MtResult<std::rc::Rc<TableMeta>> {
    if let Some(m) = META.with(|m| m.borrow().get(&relid).cloned()) {
        return Ok(m);
    }
    let (name, pk, tenant_column, registered, ignore, changed_only) = backend::as_owner(|| {
        Spi::connect(|c| {
            let t = c.select(
                "SELECT format('%I.%I', n.nspname, c.relname), \
                   (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_catalog.pg_index i \
                      CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
                      JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                     WHERE i.indrelid = c.oid AND i.indisprimary), \
                   coalesce((SELECT tenant_column::text FROM tenant.isolated_tables WHERE relid = c.oid), \
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
                &[relid.into()],
            )?;
            let r = t
                .into_iter()
                .next()
                .ok_or_else(|| MtError::invalid("audited relation not found"))?;
            Ok((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<Vec<String>>(2)?.unwrap_or_default(),
                r.get::<String>(3)?,
                r.get::<bool>(4)?.unwrap_or(false),
                r.get::<Vec<String>>(5)?.unwrap_or_default(),
                r.get::<bool>(6)?.unwrap_or(false),
            ))
        })
    })?;
    let m = std::rc::Rc::new(TableMeta {
        name,
        pk,
        tenant_column,
        registered,
        ignore,
        changed_only,
    });
    META.with(|c| c.borrow_mut().insert(relid, m.clone()));
    Ok(m)
}

#[allow(clippy::too_many_arguments)]
fn write(
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
    ];
    // SAFETY: MyProcPid is set once at backend start and only read here
    let slot = unsafe { pg_sys::MyProcPid }.rem_euclid(CHAIN_SLOTS) as u32;
    let chain = audit_chain::chain_name(tenant.map(|t| t.to_string()).as_deref(), slot);
    let args = [
        tenant.map(backend::pg_uuid).into(),
        table_oid.into(),
        table_name.into(),
        operation.into(),
        record.into(),
        old.map(pgrx::JsonB).into(),
        new.map(pgrx::JsonB).into(),
        changed.into(),
        chain.as_str().into(),
    ];
    backend::as_owner(|| backend::with_prepared(WRITE, &types, &args, |_| Ok(())))
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

fn row_json(tuple: Option<PgHeapTuple<'_, AllocatedByPostgres>>) -> MtResult<Option<Value>> {
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

fn audit_trigger_impl(t: &PgTrigger<'_>) -> MtResult<()> {
    let relid = t.relid().map_err(|e| MtError::invalid(e.to_string()))?;
    let meta = table_meta(relid)?;
    if !meta.registered {
        return Err(MtError::invalid(format!("{} is not audited", meta.name))
            .hint("Attach the audit trigger with tenant.audit(...), never by hand."));
    }
    let (ignore, changed_only) = (&meta.ignore, meta.changed_only);
    let op = match t.op().map_err(|e| MtError::invalid(e.to_string()))? {
        PgTriggerOperation::Insert => "INSERT",
        PgTriggerOperation::Update => "UPDATE",
        PgTriggerOperation::Delete => "DELETE",
        PgTriggerOperation::Truncate => "TRUNCATE",
    };
    let context_tenant = crate::context::verified(|c| c.t).ok();
    if op == "TRUNCATE" {
        return write(
            context_tenant,
            Some(relid),
            Some(&meta.name),
            op,
            None,
            None,
            None,
            None,
        );
    }
    let mut old = row_json(t.old())?;
    let mut new = row_json(t.new())?;
    let row = new
        .as_ref()
        .or(old.as_ref())
        .cloned()
        .unwrap_or(Value::Null);
    // the row's tenant owns the entry only when the writer could write under that tenant
    // (its context, or a role that bypasses RLS); otherwise the entry goes to the global
    // chain, which only tenant_service/tenant_admin read
    let row_tenant = meta
        .tenant_column
        .as_ref()
        .and_then(|c| row.get(c))
        .and_then(Value::as_str)
        .and_then(|s| uuid::Uuid::parse_str(s).ok());
    let tenant = match row_tenant {
        Some(t) if crate::quota::writes_for(t) => Some(t),
        Some(_) => None,
        None => context_tenant,
    };
    let record = record_id(&row, &meta.pk);
    for r in [&mut old, &mut new].into_iter().flatten() {
        strip(r, ignore);
    }
    let changed = match (&old, &new) {
        (Some(o), Some(n)) => {
            let c = changed_columns(o, n);
            if c.is_empty() && op == "UPDATE" {
                return Ok(()); // only ignored columns changed: nothing to log
            }
            if changed_only {
                old = Some(only(o, &c));
                new = Some(only(n, &c));
            }
            Some(c)
        }
        _ => None,
    };
    write(
        tenant,
        Some(relid),
        Some(&meta.name),
        op,
        record,
        old,
        new,
        changed,
    )
}

/// Row trigger (AFTER INSERT/UPDATE/DELETE) and statement trigger (AFTER TRUNCATE) that
/// `tenant.audit()` attaches. No arguments: ignored columns and `changed_only` are read from
/// `tenant.audited_tables`, so attaching it by hand to another table only raises.
#[pg_trigger]
fn _audit_trigger<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, pgrx::PgTriggerError> {
    boundary(|| audit_trigger_impl(trigger));
    Ok(None)
}

/// BEFORE UPDATE/DELETE/TRUNCATE on the log and its chain heads: refused for every role,
/// the owner included, except for the extension's own writes and `purge_audit`.
#[pg_trigger]
fn _audit_guard<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, pgrx::PgTriggerError> {
    boundary(|| {
        if WRITING.with(|w| w.get()) {
            return Ok(());
        }
        Err(MtError::denied("the audit log is append-only").hint(
            "Entries can only be removed by tenant.purge_audit() after their retention period.",
        ))
    });
    Ok(match trigger.op()? {
        PgTriggerOperation::Delete => trigger.old(),
        _ => trigger.new(),
    })
}

pub(crate) fn audit_impl(
    relid: pg_sys::Oid,
    ignore: Vec<String>,
    changed_only: bool,
) -> MtResult<()> {
    backend::require_any_role(&[c"tenant_admin"], "audit tables")?;
    let info = crate::isolation::check_table(relid, "audit")?;
    for member in crate::isolation::descendants(relid)? {
        crate::isolation::check_table(member, "audit")?;
    }
    let name = qualified(&info.schema, &info.table);
    // DDL on the table runs as its owner (the caller); the trigger takes no arguments
    crate::isolation::run_all(&[
        format!("DROP TRIGGER IF EXISTS \"mt_audit\" ON {name}"),
        format!("DROP TRIGGER IF EXISTS \"mt_audit_truncate\" ON {name}"),
        format!(
            "CREATE TRIGGER \"mt_audit\" AFTER INSERT OR UPDATE OR DELETE ON {name} \
             FOR EACH ROW EXECUTE FUNCTION \"tenant\".\"_audit_trigger\"()"
        ),
        format!(
            "CREATE TRIGGER \"mt_audit_truncate\" AFTER TRUNCATE ON {name} \
             FOR EACH STATEMENT EXECUTE FUNCTION \"tenant\".\"_audit_trigger\"()"
        ),
    ])?;
    backend::as_owner(|| {
        Spi::run_with_args(
            "INSERT INTO tenant.audited_tables (relid, ignore_columns, changed_only) VALUES ($1::regclass, $2, $3) \
             ON CONFLICT (relid) DO UPDATE SET ignore_columns = EXCLUDED.ignore_columns, \
               changed_only = EXCLUDED.changed_only",
            &[relid.into(), ignore.into(), changed_only.into()],
        )?;
        Ok(())
    })?;
    forget_relation(pg_sys::InvalidOid);
    Ok(())
}

/// `tenant.audit(tbl, ignore_columns, changed_only)`: log every INSERT, UPDATE, DELETE and
/// TRUNCATE of `tbl` in `tenant.audit_log`. For tenant_admin members who own the table.
#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION tenant.audit(tbl regclass, ignore_columns text[] DEFAULT '{}', changed_only boolean DEFAULT false) \
           RETURNS void VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn audit(tbl: pg_sys::Oid, ignore_columns: Vec<String>, changed_only: bool) {
    boundary(|| backend::quietly(|| audit_impl(tbl, ignore_columns, changed_only)))
}

pub(crate) fn unaudit_impl(relid: pg_sys::Oid) -> MtResult<bool> {
    backend::require_any_role(&[c"tenant_admin"], "stop auditing tables")?;
    let done = crate::isolation::detach_triggers(
        relid,
        &["mt_audit", "mt_audit_truncate"],
        "audited_tables",
        "unaudit",
    )?;
    forget_relation(pg_sys::InvalidOid);
    Ok(done)
}

/// `tenant.unaudit(tbl)`: detach the audit triggers (entries already written stay).
#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION tenant.unaudit(tbl regclass) \
           RETURNS boolean VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn unaudit(tbl: pg_sys::Oid) -> bool {
    boundary(|| backend::quietly(|| unaudit_impl(tbl)))
}

fn verify_chain_named(chain: &str) -> MtResult<Verdict> {
    let (entries, base, head) = backend::as_owner(|| {
        Spi::connect(|c| {
            let t = c.select(
                "SELECT id, seq, tenant._audit_content(tenant_id, table_name, operation, record_id, user_id, db_role, \
                        at, txid, old_data::text, new_data::text, changed::text), hash \
                 FROM tenant.audit_log WHERE chain = $1 ORDER BY seq",
                None,
                &[chain.into()],
            )?;
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
    Ok(audit_chain::verify_chain(entries, base, head))
}

fn verify_impl(tenant: Option<&str>) -> MtResult<Value> {
    let prefix = match tenant {
        None => "global".to_string(),
        Some(t) => backend::lookup_tenant(t)?.id.to_string(),
    };
    // a tenant may verify its own chains; others need tenant_service/tenant_admin
    let own = crate::context::verified(|c| c.t.to_string())
        .ok()
        .as_deref()
        == Some(prefix.as_str());
    if !own {
        backend::require_any_role(
            &[c"tenant_service", c"tenant_admin"],
            "verify another tenant's audit chain",
        )?;
    }
    // every chain of the tenant: those with a head, and any entries whose head was deleted
    let chains = backend::as_owner(|| {
        Spi::connect(|c| {
            let t = c.select(
                "SELECT chain FROM tenant.audit_heads WHERE chain LIKE $1 || '/%' \
                 UNION SELECT DISTINCT chain FROM tenant.audit_log WHERE chain LIKE $1 || '/%' ORDER BY 1",
                None,
                &[prefix.as_str().into()],
            )?;
            let mut v = Vec::new();
            for r in t {
                v.extend(r.get::<String>(1)?);
            }
            Ok::<_, MtError>(v)
        })
    })?;
    let mut total = 0i64;
    for chain in &chains {
        match verify_chain_named(chain)? {
            Verdict::Intact { entries } => total += entries,
            Verdict::Broken {
                entry_id,
                seq,
                reason,
            } => {
                return Ok(serde_json::json!({
                    "tenant": prefix, "valid": false, "chain": chain, "broken_at_seq": seq,
                    "entry_id": entry_id, "reason": reason
                }))
            }
        }
    }
    Ok(
        serde_json::json!({"tenant": prefix, "valid": true, "chains": chains.len(), "entries": total}),
    )
}

/// Walk a tenant's audit chain (or the global one with NULL) and report the first broken
/// link: `{"valid": false, "broken_at_seq": 7, "entry_id": 123, "reason": "..."}`.
#[pg_extern(volatile, parallel_unsafe)]
fn verify_audit(tenant: Option<&str>) -> pgrx::JsonB {
    boundary(|| verify_impl(tenant).map(pgrx::JsonB))
}

fn purge_impl(default_retention_days: i32, feature_retention_days: i32) -> MtResult<i64> {
    backend::require_any_role(&[c"tenant_admin"], "purge audit entries")?;
    if default_retention_days < 1 || feature_retention_days < 1 {
        return Err(MtError::invalid("retention must be at least one day"));
    }
    let _w = Writing::start();
    backend::as_owner(|| {
        Ok(Spi::get_one_with_args::<i64>(
            include_str!("../sql/purge_audit.sql"),
            &[default_retention_days.into(), feature_retention_days.into()],
        )?
        .unwrap_or(0))
    })
}

/// Remove audit entries past retention: `default_retention_days` for tenants whose plan lacks
/// the `audit_logs` feature, `feature_retention_days` for those that have it. Only a prefix of
/// each chain is removed and the chain head remembers where it now starts, so
/// `verify_audit` still verifies. Returns the number of entries removed.
#[pg_extern(volatile, parallel_unsafe)]
fn purge_audit(
    default_retention_days: default!(i32, 30),
    feature_retention_days: default!(i32, 365),
) -> i64 {
    boundary(|| purge_impl(default_retention_days, feature_retention_days))
}
