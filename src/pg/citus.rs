//! What Citus is doing in this database, for the DDL that has to differ on a distributed
//! database (docs/citus.md). Catalog reads only; Citus' own catalogs are read only once the
//! extension is known to be installed.

use crate::core::error::{Code, MtError, MtResult};
use crate::pg::owner::with_settings;
use crate::pg::spi::read_one;
use pgrx::pg_sys;

/// Citus is installed in this database.
pub fn installed() -> MtResult<bool> {
    Ok(read_one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus')",
        &[],
    )?
    .unwrap_or(false))
}

/// Is the Citus library loaded in this backend? Its settings exist only then (it is
/// preloaded in every backend of a Citus server; [`installed`] says whether this database
/// has the extension).
pub fn loaded() -> bool {
    // SAFETY: NUL-terminated name, missing_ok
    unsafe {
        !pg_sys::GetConfigOption(c"citus.propagate_set_commands".as_ptr(), true, false).is_null()
    }
}

/// `relid` is a Citus table with shards (distributed, reference or Citus-managed local).
pub fn distributed(relid: pg_sys::Oid) -> MtResult<bool> {
    Ok(installed()? && is_distributed_table(relid)?)
}

/// [`distributed`] for a caller that already knows Citus is [`installed`] (its catalog
/// `pg_dist_partition` exists only then).
pub fn is_distributed_table(relid: pg_sys::Oid) -> MtResult<bool> {
    Ok(read_one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1)",
        &[relid.into()],
    )?
    .unwrap_or(false))
}

/// Run `f` (DDL that creates or drops a row trigger) with `citus.enable_unsafe_triggers` on
/// when the table is `distributed`: Citus asks for it to put a trigger on the shards, or take
/// one off them (the shards then run it on the workers: docs/citus.md).
pub fn trigger_ddl<R>(distributed: bool, f: impl FnOnce() -> MtResult<R>) -> MtResult<R> {
    if distributed {
        with_settings(&[(c"citus.enable_unsafe_triggers", c"on")], f)
    } else {
        f()
    }
}

/// Run `f` (DDL) on the coordinator's table only: `citus.enable_ddl_propagation` off for its
/// duration, then put back.
pub fn coordinator_only<R>(f: impl FnOnce() -> MtResult<R>) -> MtResult<R> {
    with_settings(&[(c"citus.enable_ddl_propagation", c"off")], f)
}

/// This is a Citus coordinator with workers registered (the audit chains, retention and
/// erasure of distributed tables then have a part on every worker).
pub fn has_workers() -> MtResult<bool> {
    Ok(installed()?
        && crate::pg::owner::as_owner(|| {
            read_one::<bool>("SELECT tenant_internal._citus_has_workers()", &[])
        })?
        .unwrap_or(false))
}

/// Run `sql` (the extension's own text, never user input) on every worker, as the
/// extension owner, each in a transaction of the worker's own (Citus'
/// `run_command_on_workers`): the result of each, with its node as `host:port`. A worker
/// that fails fails the call with 08006 (the caller's statement rolls back).
pub fn on_workers(sql: &str) -> MtResult<Vec<(String, String)>> {
    crate::pg::owner::as_owner(|| {
        pgrx::Spi::connect(|c| {
            let rows = c.select(
                "SELECT nodename || ':' || nodeport, success, result \
                 FROM pg_catalog.run_command_on_workers($1) ORDER BY nodename, nodeport",
                None,
                &[sql.into()],
            )?;
            let mut out = Vec::new();
            for r in rows {
                let node = r.get::<String>(1)?.unwrap_or_default();
                let result = r.get::<String>(3)?.unwrap_or_default();
                if !r.get::<bool>(2)?.unwrap_or(false) {
                    return Err(MtError::new(
                        Code::ConnectionFailure,
                        format!("the Citus worker {node} did not answer: {result}"),
                    )
                    .hint("Bring the worker back and try again."));
                }
                out.push((node, result));
            }
            Ok(out)
        })
    })
}

/// Make this transaction a coordinated one when it is not a transaction block: outside
/// BEGIN, Citus sends a one-shard read to its worker without a transaction block, and so
/// without the transaction's propagated `SET LOCAL`s (a context). A row-locking read of no
/// rows of `tenant` in `relid` (a distributed table the current user may read) opens the
/// coordinated transaction; the reads after it carry the settings.
pub fn coordinate(relid: pg_sys::Oid, tenant: pgrx::Uuid) -> MtResult<()> {
    // SAFETY: reads the transaction state only
    if unsafe { pg_sys::IsTransactionBlock() } {
        return Ok(());
    }
    let found = pgrx::Spi::connect(|c| {
        let t = c.select(
            "SELECT pg_catalog.format('%I.%I', n.nspname, r.relname), \
               pg_catalog.quote_ident(pg_catalog.column_to_column_name(p.logicalrelid, p.partkey)) \
             FROM pg_catalog.pg_dist_partition p \
             JOIN pg_catalog.pg_class r ON r.oid = p.logicalrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace \
             WHERE p.logicalrelid = $1 AND p.partkey IS NOT NULL",
            None,
            &[relid.into()],
        )?;
        match t.into_iter().next() {
            Some(r) => Ok::<_, MtError>(Some((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<String>(2)?.unwrap_or_default(),
            ))),
            None => Ok(None),
        }
    })?;
    let Some((table, column)) = found else {
        return Ok(());
    };
    // identifiers from the catalog, quoted; the tenant as a parameter
    pgrx::Spi::run_with_args(
        &format!(
            "SELECT 1 FROM {table} WHERE {column} OPERATOR(pg_catalog.=) $1 LIMIT 0 FOR KEY SHARE"
        ),
        &[tenant.into()],
    )?;
    Ok(())
}

/// On a Citus node, the distributed table whose shard `relid` is, and its distribution
/// column; None for any other relation. A shard is named `<table>_<shardid>` in its table's
/// schema, and the shard id is checked against `pg_dist_shard` (so a look-alike name in
/// another schema, or a table that is no shard, maps to nothing).
pub fn shell_of(relid: pg_sys::Oid) -> MtResult<Option<(pg_sys::Oid, Option<String>)>> {
    if !installed()? {
        return Ok(None);
    }
    pgrx::Spi::connect(|c| {
        let t = c.select(
            "SELECT s.logicalrelid::pg_catalog.oid, \
               pg_catalog.column_to_column_name(p.logicalrelid, p.partkey) \
             FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_dist_shard s \
               ON s.shardid = (pg_catalog.regexp_match(c.relname, '_([0-9]+)$'))[1]::pg_catalog.int8 \
             JOIN pg_catalog.pg_class l ON l.oid = s.logicalrelid AND l.relnamespace = c.relnamespace \
             JOIN pg_catalog.pg_dist_partition p ON p.logicalrelid = s.logicalrelid \
             WHERE c.oid = $1 AND s.logicalrelid::pg_catalog.oid OPERATOR(pg_catalog.<>) c.oid \
               AND pg_catalog.shard_name(s.logicalrelid, s.shardid) \
                   IN (pg_catalog.quote_ident(c.relname), \
                       pg_catalog.format('%I.%I', (SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = c.relnamespace), c.relname))",
            None,
            &[relid.into()],
        )?;
        match t.into_iter().next() {
            Some(r) => Ok(r
                .get::<pg_sys::Oid>(1)?
                .map(|shell| (shell, r.get::<String>(2).ok().flatten()))),
            None => Ok(None),
        }
    })
}

thread_local! {
    static WORKER: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

/// Is this node a Citus worker (Citus installed and not the coordinator)? Read once per
/// backend (a node does not change role under a running backend; one started on a worker
/// before `citus_add_node` takes it for a coordinator, which fails closed).
pub fn is_worker() -> bool {
    if let Some(w) = WORKER.with(|w| w.get()) {
        return w;
    }
    // (two statements: without Citus its function does not exist, and naming it would fail)
    let w = installed().unwrap_or(false)
        && read_one::<bool>("SELECT NOT pg_catalog.citus_is_coordinator()", &[])
            .ok()
            .flatten()
            .unwrap_or(false);
    WORKER.with(|c| c.set(Some(w)));
    w
}
