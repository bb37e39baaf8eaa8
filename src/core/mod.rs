//! Pure Rust, no Postgres: the rules of the extension, tested with plain `#[test]`s. Nothing
//! here imports anything else of the crate (tests/layers.sh checks it).

pub mod audit;
pub mod ddl;
pub mod error;
pub mod jwt;
pub mod lifecycle;
pub mod names;
pub mod plans;
pub mod portability;
pub mod rbac;
pub mod site;
pub mod token;
