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

/// Refuse `what` on `name` (`relid`) when Citus distributes it: row triggers there run on the
/// shards of the workers, away from the registry, counters and audit chains of the coordinator.
pub fn refuse_distributed(relid: pg_sys::Oid, name: &str, what: &str, hint: &str) -> MtResult<()> {
    if distributed(relid)? {
        return Err(MtError::new(
            Code::NotSupported,
            format!("{what} is not supported on the Citus table {name}"),
        )
        .hint(hint.to_string()));
    }
    Ok(())
}

/// Run `f` (DDL) on the coordinator's table only: `citus.enable_ddl_propagation` off for its
/// duration, then put back.
pub fn coordinator_only<R>(f: impl FnOnce() -> MtResult<R>) -> MtResult<R> {
    with_settings(&[(c"citus.enable_ddl_propagation", c"off")], f)
}
