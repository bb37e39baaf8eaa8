//! Per-backend caches and the SPI that fills them (and writes the extension's own tables).
//! Every cache is a `pg::invalidation::GenMap` (or keeps a generation): it empties itself
//! when what it depends on changed in any backend. Imports `pg` and `core` only.

pub mod alerts;
pub mod audit;
pub mod context;
pub mod jwt;
pub mod lifecycle;
pub mod members;
pub mod plans;
pub mod portability;
pub mod quota;
pub mod rbac;
pub mod registry;
pub mod secret;
pub mod site;
pub mod tenants;
