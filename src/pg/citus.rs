//! What Citus is doing in this database, for the DDL that has to differ on a distributed
//! database (docs/citus.md). Catalog reads only; Citus' own catalogs are read only once the
//! extension is known to be installed.

use crate::core::error::{Code, MtError, MtResult};
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
    if !installed()? {
        return Ok(false);
    }
    Ok(read_one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1)",
        &[relid.into()],
    )?
    .unwrap_or(false))
}

/// Refuse `what` on a table Citus distributes: row triggers there run on the shards of the
/// workers, away from the registry, counters and audit chains of the coordinator.
pub fn refuse_distributed(relid: pg_sys::Oid, what: &str, hint: &str) -> MtResult<()> {
    if distributed(relid)? {
        let name = read_one::<String>(
            "SELECT $1::pg_catalog.regclass::pg_catalog.text",
            &[relid.into()],
        )?
        .unwrap_or_default();
        return Err(MtError::new(
            Code::NotSupported,
            format!("{what} is not supported on the Citus table {name}"),
        )
        .hint(hint.to_string()));
    }
    Ok(())
}
