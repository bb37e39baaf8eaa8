//! Postgres plumbing with no domain knowledge: running as the extension owner, kept plans,
//! catalog checks on the caller's tables, conversions, the invalidation generations, and the
//! one place that raises errors. Imports only `core` (tests/layers.sh checks it).

pub mod catalog;
pub mod citus;
pub mod convert;
pub mod invalidation;
pub mod owner;
pub mod raise;
pub mod roles;
pub mod spi;
