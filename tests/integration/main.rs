//! The client suite: a real PostgreSQL cluster with the extension installed
//! (`scripts/test.sh` starts one with `scripts/cluster.sh`), reached through the `postgres`
//! client crate as distinct roles:
//!   postgres          superuser (setup only)
//!   mt_it_owner       non-superuser that owns the application tables
//!   mt_it_backend     trusted backend, member of tenant_service
//!   mt_it_app         plain application role (no tenant role at all)
//!   mt_it_api         untrusted API role, member of tenant_user
//!   mt_it_admin       member of tenant_admin that owns no table
//!   mt_it_evil        the attacker: only what PUBLIC has (CONNECT, TEMP)
//! Every test gets a fresh database with a fresh extension (and so a fresh secret); the
//! fixtures and helpers are in `common/`.
//!
//! One module per topic; `hostile` holds the numbered attack vectors (`// Vn:`), `linter`
//! the suite of `tenant.check_isolation()`, `upgrade` the update from 0.1.0.
//!
//! Built only with `--features integration`; `scripts/test.sh` starts the cluster, sets
//! MT_PGPORT and runs it. Without MT_PGPORT the tests fail rather than pass vacuously.

mod common;

mod audit;
mod billing;
mod context;
mod hostile;
mod isolation;
mod jwt;
mod lifecycle;
mod linter;
mod portability;
mod quotas;
mod rbac;
mod site;
mod teams;
mod upgrade;
