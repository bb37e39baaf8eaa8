//! multitenant: tenant isolation inside PostgreSQL.
//!
//! The SQL API lands in the extension's schema `tenant` (see multitenant.control); the
//! Postgres-free logic lives in `token`, `lifecycle`, `ddl` and `error`.

use pgrx::prelude::*;

::pgrx::pg_module_magic!(name, version);

pub mod audit;
pub mod audit_chain;
pub mod auth;
pub mod backend;
pub mod compat;
pub mod context;
pub mod ddl;
pub mod error;
pub mod isolation;
pub mod jwt;
pub mod lifecycle;
pub mod plans;
pub mod quota;
pub mod rbac;
pub mod rbac_core;
pub mod registry;
pub mod token;

extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
extension_sql_file!(
    "../sql/check_isolation.sql",
    name = "check_isolation",
    requires = ["bootstrap"]
);
extension_sql_file!("../sql/finalize.sql", name = "finalize", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    context::register_gucs();
    auth::register_gucs();
    backend::register_callbacks();
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    include!("pg_tests.rs");
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
