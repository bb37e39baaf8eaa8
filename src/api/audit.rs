//! Audit trail: the Rust row trigger, management events, append-only guard, retention and
//! `verify_audit`. The chain logic is in `audit_chain` (pure).

use crate::core::audit::{self, changed_columns, only, record_id, strip, Verdict};
use crate::core::ddl::{qualified, quote_ident};
use crate::core::error::{MtError, MtResult};
use crate::core::names;
use crate::pg::catalog::{check_table, descendants, run_all};
use crate::pg::convert::{from_pg_uuid, row_json};
use crate::pg::owner::{as_owner, pinned};
use crate::pg::raise::boundary;
use crate::pg::roles::require_any_role;
use crate::state::audit::{
    chains_of, is_writing, purge, table_meta, tenants_with_audit_logs, verify_chain_named, write,
};
use crate::state::context::{verified, writes_for};
use crate::state::registry::{detach_triggers, trigger_schema};
use crate::state::tenants;
use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::Value;

/// The non-text columns of an entry as the text its hash covers.
struct Texts {
    tenant: Option<String>,
    at: Option<String>,
    txid: Option<String>,
}

fn texts(
    tenant_id: Option<pgrx::Uuid>,
    at: Option<pgrx::datum::TimestampWithTimeZone>,
    txid: Option<i64>,
) -> Texts {
    Texts {
        tenant: tenant_id.map(|u| from_pg_uuid(u).to_string()),
        at: at.map(|t| t.into_inner().to_string()),
        txid: txid.map(|t| t.to_string()),
    }
}

/// The bytes an entry of hash format 1 (0.1.0's) covers (`core::audit::content`);
/// `verify_audit` checks such entries with it.
#[allow(clippy::too_many_arguments)]
#[pg_extern(immutable, parallel_safe, schema = "tenant_internal")]
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
    let t = texts(tenant_id, at, txid);
    audit::content(&[
        t.tenant.as_deref(),
        table_name,
        operation,
        record_id,
        user_id,
        db_role,
        t.at.as_deref(),
        t.txid.as_deref(),
        old_data,
        new_data,
        changed,
    ])
}

/// The bytes an entry of hash format 2 covers: every stored column but the chain position
/// and the hash itself (the acting database role and the end user's address included) (format 1, `_audit_content`, left out the table oid, the client
/// address and the application name; entries keep the format they were written in).
#[allow(clippy::too_many_arguments)]
#[pg_extern(immutable, parallel_safe, schema = "tenant_internal")]
fn _audit_content_all(
    tenant_id: Option<pgrx::Uuid>,
    table_oid: Option<pg_sys::Oid>,
    table_name: Option<&str>,
    operation: Option<&str>,
    record_id: Option<&str>,
    user_id: Option<&str>,
    db_role: Option<&str>,
    client_addr: Option<&str>,
    application_name: Option<&str>,
    at: Option<pgrx::datum::TimestampWithTimeZone>,
    txid: Option<i64>,
    old_data: Option<&str>,
    new_data: Option<&str>,
    changed: Option<&str>,
    db_user: Option<&str>,
    end_user_addr: Option<&str>,
) -> Vec<u8> {
    let t = texts(tenant_id, at, txid);
    let table_oid = table_oid.map(|o| o.to_u32().to_string());
    audit::content(&[
        Some("v2"),
        t.tenant.as_deref(),
        table_oid.as_deref(),
        table_name,
        operation,
        record_id,
        user_id,
        db_role,
        client_addr,
        application_name,
        t.at.as_deref(),
        t.txid.as_deref(),
        old_data,
        new_data,
        changed,
        db_user,
        end_user_addr,
    ])
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
    // a Citus shard's rows deleted by a tenant's purge: not logged (the purge erases the
    // tenant's chains on every node; an entry written here would outlive it)
    if meta.relid != relid && verified(|c| c.o.is_some() && c.p).unwrap_or(false) {
        return Ok(());
    }
    let context_tenant = verified(|c| c.t).ok();
    if op == "TRUNCATE" {
        // a Citus shard's truncation: the coordinator logged the table's, once
        if meta.relid != relid {
            return Ok(());
        }
        return write(
            context_tenant,
            Some(meta.relid),
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
        Some(t) if writes_for(t) => Some(t),
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
        Some(meta.relid),
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
#[pg_trigger(
    sql = "CREATE FUNCTION tenant_internal._audit_trigger() RETURNS trigger \
           LANGUAGE c AS 'MODULE_PATHNAME', '_audit_trigger_wrapper';"
)]
fn _audit_trigger<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, pgrx::PgTriggerError> {
    boundary(|| audit_trigger_impl(trigger));
    Ok(None)
}

/// BEFORE UPDATE/DELETE/TRUNCATE on the log and its chain heads: refused for every role,
/// the owner included, except for the extension's own writes and `purge_audit`.
#[pg_trigger(
    sql = "CREATE FUNCTION tenant_internal._audit_guard() RETURNS trigger \
           LANGUAGE c AS 'MODULE_PATHNAME', '_audit_guard_wrapper';"
)]
fn _audit_guard<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, pgrx::PgTriggerError> {
    boundary(|| {
        if is_writing() {
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
    require_any_role(&[c"tenant_admin"], "audit tables")?;
    let info = check_table(relid, "audit")?;
    let name = qualified(&info.schema, &info.table);
    for member in descendants(relid)? {
        check_table(member, "audit")?;
    }
    // DDL on the table runs as its owner (the caller); the trigger takes no arguments. On a
    // Citus table the trigger runs on every shard (Citus asks for citus.enable_unsafe_triggers
    // to create it there): each worker writes the entries of its shards into its own chains,
    // which `verify_audit` on the coordinator verifies too (docs/citus.md)
    let distributed = crate::pg::citus::distributed(relid)?;
    let schema = quote_ident(trigger_schema()?);
    let ddl = || {
        run_all(&[
            format!("DROP TRIGGER IF EXISTS \"mt_audit\" ON {name}"),
            format!("DROP TRIGGER IF EXISTS \"mt_audit_truncate\" ON {name}"),
            format!(
                "CREATE TRIGGER \"mt_audit\" AFTER INSERT OR UPDATE OR DELETE ON {name} \
             FOR EACH ROW EXECUTE FUNCTION {schema}.\"_audit_trigger\"()"
            ),
            format!(
                "CREATE TRIGGER \"mt_audit_truncate\" AFTER TRUNCATE ON {name} \
             FOR EACH STATEMENT EXECUTE FUNCTION {schema}.\"_audit_trigger\"()"
            ),
        ])
    };
    crate::pg::citus::trigger_ddl(distributed, ddl)?;
    as_owner(|| {
        Spi::run_with_args(
            "INSERT INTO tenant.audited_tables (relid, ignore_columns, changed_only) VALUES ($1::regclass, $2, $3) \
             ON CONFLICT (relid) DO UPDATE SET ignore_columns = EXCLUDED.ignore_columns, \
               changed_only = EXCLUDED.changed_only",
            &[relid.into(), ignore.into(), changed_only.into()],
        )?;
        Ok(())
    })?;
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
    boundary(|| pinned(|| audit_impl(tbl, ignore_columns, changed_only)))
}

pub(crate) fn unaudit_impl(relid: pg_sys::Oid) -> MtResult<bool> {
    require_any_role(&[c"tenant_admin"], "stop auditing tables")?;
    let detach = || {
        detach_triggers(
            relid,
            &["mt_audit", "mt_audit_truncate"],
            "audited_tables",
            "unaudit",
        )
    };
    crate::pg::citus::trigger_ddl(crate::pg::citus::distributed(relid)?, detach)
}

/// `tenant.unaudit(tbl)`: detach the audit triggers (entries already written stay).
#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION tenant.unaudit(tbl regclass) \
           RETURNS boolean VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn unaudit(tbl: pg_sys::Oid) -> bool {
    boundary(|| pinned(|| unaudit_impl(tbl)))
}

fn verify_impl(tenant: Option<&str>) -> MtResult<Value> {
    let id = tenant
        .map(|t| tenants::lookup(t).map(|row| row.id.to_string()))
        .transpose()?;
    let prefix = id.clone().unwrap_or_else(|| audit::GLOBAL.to_string());
    // a tenant may verify its own chains; others need tenant_service/tenant_admin
    let own = id.is_some() && verified(|c| c.t.to_string()).ok() == id;
    if !own {
        require_any_role(
            &[c"tenant_service", c"tenant_admin"],
            "verify another tenant's audit chain",
        )?;
    }
    let mut report = verify_node(id.as_deref())?;
    // on a Citus coordinator the workers' chains (entries of the distributed tables' shards)
    // are verified too, each on its node
    if report["valid"] == Value::Bool(true) && crate::pg::citus::has_workers()? {
        let arg = id
            .as_deref()
            .map_or_else(|| "NULL".to_string(), |u| format!("'{u}'"));
        let sql = format!("SELECT tenant_internal._audit_verify_node({arg}::uuid)");
        let mut nodes = 1;
        for (node, result) in crate::pg::citus::on_workers(&sql)? {
            let mut r: Value = serde_json::from_str(&result)
                .map_err(|e| MtError::invalid(format!("worker {node} answered {e}")))?;
            if r["valid"] != Value::Bool(true) {
                r["node"] = Value::String(node);
                report = r;
                break;
            }
            for k in ["chains", "entries"] {
                report[k] = (report[k].as_i64().unwrap_or(0) + r[k].as_i64().unwrap_or(0)).into();
            }
            nodes += 1;
            report["nodes"] = nodes.into();
        }
    }
    report["tenant"] = Value::String(prefix);
    Ok(report)
}

/// Verify every chain of `id` (None: the global chains) on this node.
fn verify_node(id: Option<&str>) -> MtResult<Value> {
    let chains = chains_of(id)?;
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
                    "valid": false, "chain": chain, "broken_at_seq": seq,
                    "entry_id": entry_id, "reason": reason
                }))
            }
        }
    }
    Ok(serde_json::json!({"valid": true, "chains": chains.len(), "entries": total}))
}

/// Internal (Citus, on a worker): [`verify_node`] for the coordinator's `verify_audit`,
/// which checked the caller's right first. Not granted to anyone: the coordinator runs it as
/// the extension owner.
#[pg_extern(volatile, parallel_unsafe, schema = "tenant_internal")]
fn _audit_verify_node(tenant: Option<pgrx::Uuid>) -> pgrx::JsonB {
    boundary(|| {
        let id = tenant.map(|t| from_pg_uuid(t).to_string());
        verify_node(id.as_deref()).map(pgrx::JsonB)
    })
}

/// Internal (Citus, on a worker): remove its entries past retention, as the coordinator's
/// `purge_audit` decided (`feature_tenants`: the tenants whose plan has `audit_logs`).
#[pg_extern(volatile, parallel_unsafe, schema = "tenant_internal")]
fn _audit_purge_node(
    default_retention_days: i32,
    feature_retention_days: i32,
    feature_tenants: Vec<String>,
) -> i64 {
    boundary(|| {
        purge(
            default_retention_days,
            feature_retention_days,
            feature_tenants,
        )
    })
}

/// Internal (Citus, on a worker): erase a purged tenant's chains there (the registry push
/// of its `purged` status runs it).
#[pg_extern(volatile, parallel_unsafe, schema = "tenant_internal")]
fn _audit_erase_node(tenant: pgrx::Uuid) -> i64 {
    boundary(|| crate::state::audit::erase_tenant(from_pg_uuid(tenant)))
}

/// Walk a tenant's audit chain (or the global one with NULL) and report the first broken
/// link: `{"valid": false, "broken_at_seq": 7, "entry_id": 123, "reason": "..."}`.
#[pg_extern(volatile, parallel_unsafe)]
fn verify_audit(tenant: Option<&str>) -> pgrx::JsonB {
    boundary(|| verify_impl(tenant).map(pgrx::JsonB))
}

fn purge_impl(default_retention_days: i32, feature_retention_days: i32) -> MtResult<i64> {
    require_any_role(&[c"tenant_admin"], "purge audit entries")?;
    if default_retention_days < 1 || feature_retention_days < 1 {
        return Err(MtError::invalid("retention must be at least one day"));
    }
    // the tenants with the longer retention, from this node's plans: the same list for the
    // workers of a Citus coordinator, which prune their own chains and have no plans
    let with_feature = tenants_with_audit_logs()?;
    let mut removed = purge(
        default_retention_days,
        feature_retention_days,
        with_feature.clone(),
    )?;
    if crate::pg::citus::has_workers()? {
        // ids are uuids (no quote in them): a literal array of them
        let sql = format!(
            "SELECT tenant_internal._audit_purge_node({default_retention_days}, {feature_retention_days}, '{{{}}}'::text[])",
            with_feature.join(",")
        );
        for (node, n) in crate::pg::citus::on_workers(&sql)? {
            removed += n
                .parse::<i64>()
                .map_err(|e| MtError::invalid(format!("worker {node} answered {e}")))?;
        }
    }
    Ok(removed)
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

/// The largest `data` an application event may carry (its JSON text).
const MAX_EVENT_DATA: usize = 64 * 1024;

fn log_event_impl(action: &str, data: Value, record_id: Option<&str>) -> MtResult<()> {
    names::event_action(action)?;
    if data.to_string().len() > MAX_EVENT_DATA {
        return Err(MtError::invalid(
            "event data must be at most 64 KiB of JSON",
        ));
    }
    if record_id.is_some_and(|r| r.is_empty() || r.len() > 256) {
        return Err(MtError::invalid("record_id must be 1-256 characters"));
    }
    let (tenant, ro) = verified(|c| (c.t, c.ro)).map_err(|_| MtError::no_context())?;
    if ro {
        return Err(MtError::new(
            crate::core::error::Code::TenantNotActive,
            "tenant is read-only (suspended)",
        ));
    }
    write(
        Some(tenant),
        None,
        None,
        APP_EVENT,
        record_id.map(str::to_string),
        None,
        Some(serde_json::json!({"action": action, "data": data})),
        None,
    )
}

/// Operation of the entries `tenant.log_event` writes (the extension's own are `EVENT`).
const APP_EVENT: &str = "APP";

/// Write an application event (a user exported data, a login failed...) into the current
/// tenant's audit chain, with the context's user; verifiable like every other entry.
#[pg_extern(volatile, parallel_unsafe)]
fn log_event(
    action: &str,
    data: default!(pgrx::JsonB, "'{}'::jsonb"),
    record_id: default!(Option<&str>, "NULL"),
) {
    boundary(|| log_event_impl(action, data.0, record_id))
}
