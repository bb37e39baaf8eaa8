//! Shared fixtures and helpers of every topic of the client suite: a real cluster, a fresh
//! database per test, distinct roles (see main.rs for the roles).
//! - `cluster`: connections, the cluster-wide roles, `Db` (a fresh database with tenants acme
//!   and globex and the isolated table `public.notes`), `TempRole` (a role of one test);
//! - `sql`: statements and their outcome: SQLSTATEs, single values, first columns, quoting;
//! - `tenant`: statements in a tenant's context (`set_context` in a transaction, or a
//!   carried token);
//! - `features`: plans and quotas, the audit trail;
//! - `jwt`: keys, signing, `tenant.authenticate`.

mod cluster;
mod features;
pub mod jwt;
mod sql;
mod tenant;

pub use cluster::*;
pub use features::*;
pub use sql::*;
pub use tenant::*;
