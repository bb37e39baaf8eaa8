//! The SQL surface: `#[pg_extern]`/`#[pg_trigger]` functions, thin. They convert arguments,
//! check roles, validate with `core`, and call `state` and `pg`. `compat` keeps the C entry
//! points of 0.1.0 (see docs/upgrading.md).

pub mod audit;
pub mod auth;
pub mod compat;
pub mod context;
pub mod fields;
pub mod internal;
pub mod isolation;
pub mod members;
pub mod organizations;
pub mod placement;
pub mod plans;
pub mod portability;
pub mod quota;
pub mod rbac;
pub mod registry;
pub mod router;
pub mod site;
pub mod storage;
pub mod templates;
#[cfg(any(test, feature = "pg_test"))]
pub mod test_support;
