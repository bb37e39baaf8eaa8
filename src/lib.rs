//! multitenant: tenant isolation inside PostgreSQL.
//!
//! Layers, each importing only the ones below it (docs/architecture.md, tests/layers.sh):
//! - `api`: the SQL surface (`#[pg_extern]`/`#[pg_trigger]`), thin;
//! - `state`: per-backend caches and the SPI that fills them;
//! - `pg`: Postgres plumbing without domain knowledge (owner, SPI, catalog, invalidation,
//!   raising errors);
//! - `core`: pure Rust rules with plain `#[test]`s.
//!
//! `gucs` holds every setting (it imports only `core`).

use pgrx::prelude::*;

::pgrx::pg_module_magic!(name, version);

pub mod api;
pub mod core;
pub mod gucs;
pub mod pg;
pub mod state;

extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
extension_sql_file!(
    "../sql/check_isolation.sql",
    name = "check_isolation",
    requires = ["bootstrap"]
);
extension_sql_file!("../sql/site.sql", name = "site", requires = ["bootstrap"]);
extension_sql_file!(
    "../sql/metering.sql",
    name = "metering",
    requires = ["bootstrap"]
);
extension_sql_file!("../sql/finalize.sql", name = "finalize", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::register();
    pg::invalidation::register_callbacks();
    api::router::install();
}

/// This module is required by `cargo pgrx test` invocations.
/// It must be visible at the root of your extension crate.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
