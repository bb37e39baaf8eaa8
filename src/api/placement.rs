//! Schema-per-tenant placement (SQL): a tenant whose rows live in a schema of its own,
//! created from a template schema, guarded like an isolated table, put first on the
//! search_path by `set_context`, and migrated with a record of versions. The DDL runs as the
//! calling role (never as the extension owner): the extension adds no privilege to it.

use crate::core::ddl::{provision_statements, schema_guard_statements, Grant};
use crate::core::error::{MtError, MtResult};
use crate::core::lifecycle::Status;
use crate::core::site::{migration_version, tenant_schema};
use crate::pg::catalog::run_all;
use crate::pg::convert::{from_pg_uuid, pg_uuid};
use crate::pg::owner::{as_owner, pinned};
use crate::pg::raise::boundary;
use crate::pg::roles::require_any_role;
use crate::pg::spi::read_one;
use crate::state::audit::event;
use crate::state::context::as_tenant;
use crate::state::tenants;
use pgrx::prelude::*;
use serde_json::json;
use sha2::{Digest, Sha256};

/// The grants of an object's ACL, from the catalog: (privilege, grantee name or PUBLIC).
fn grants(sql: &str, arg: pgrx::datum::DatumWithOid) -> MtResult<Vec<Grant>> {
    Spi::connect(|c| {
        let mut v = Vec::new();
        for r in c.select(sql, None, &[arg])? {
            v.push((r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?));
        }
        Ok(v)
    })
}

fn provision_impl(tenant: &str, template: &str) -> MtResult<String> {
    require_any_role(&[c"tenant_admin"], "provision tenant schemas")?;
    let row = tenants::lookup(tenant)?;
    if row.status == Status::Purged {
        return Err(MtError::invalid("tenant is purged"));
    }
    let placed = as_owner(|| {
        read_one::<String>(
            "SELECT schema_name::text FROM tenant.tenants WHERE id = $1",
            &[pg_uuid(row.id).into()],
        )
    })?;
    if let Some(s) = placed {
        return Err(MtError::invalid(format!(
            "tenant already has its schema \"{s}\""
        )));
    }
    let tpl = read_one::<pgrx::pg_sys::Oid>(
        "SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1",
        &[template.into()],
    )?
    .ok_or_else(|| {
        MtError::invalid(format!(
            "template schema \"{}\" does not exist",
            template.escape_default()
        ))
    })?;
    if ["tenant", "tenant_internal", "public", "information_schema"].contains(&template)
        || template.starts_with("pg_")
    {
        return Err(MtError::invalid(
            "the template must be a schema of the application's own (not public or a system schema)",
        ));
    }
    let schema_grants = grants(
        "SELECT a.privilege_type, r.rolname::text FROM pg_catalog.pg_namespace n, \
           pg_catalog.aclexplode(n.nspacl) a LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee \
         WHERE n.oid = $1 AND a.grantee <> n.nspowner",
        tpl.into(),
    )?;
    // a template others may create objects in would hand them the tenant's search_path
    if schema_grants.iter().any(|g| g.0 == "CREATE") {
        return Err(MtError::invalid(format!(
            "template schema \"{template}\" grants CREATE to other roles"
        ))
        .hint("REVOKE CREATE ON SCHEMA ... FROM those roles (and PUBLIC) first."));
    }
    let mut tables = Vec::new();
    Spi::connect(|c| {
        for r in c.select(
            "SELECT c.oid, c.relname::text FROM pg_catalog.pg_class c \
             WHERE c.relnamespace = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY c.relname",
            None,
            &[tpl.into()],
        )? {
            let oid = r.get::<pgrx::pg_sys::Oid>(1)?.unwrap_or_default();
            tables.push((oid, r.get::<String>(2)?.unwrap_or_default()));
        }
        Ok::<_, MtError>(())
    })?;
    if tables.is_empty() {
        return Err(MtError::invalid(format!(
            "template schema \"{template}\" has no tables"
        )));
    }
    let mut with_grants = Vec::new();
    for (oid, name) in tables {
        let g = grants(
            "SELECT a.privilege_type, r.rolname::text FROM pg_catalog.pg_class c, \
               pg_catalog.aclexplode(c.relacl) a LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee \
             WHERE c.oid = $1 AND a.grantee <> c.relowner",
            oid.into(),
        )?;
        with_grants.push((name, g));
    }
    let target = tenant_schema(row.id);
    // with Citus the schema may become a distributed schema (citus.enable_schema_based_sharding):
    // its tables get the policy shape Citus carries to their shard (docs/citus.md)
    let citus = crate::pg::citus::installed()?;
    let ddl = || {
        run_all(&provision_statements(
            template,
            &target,
            &schema_grants,
            &with_grants,
            row.id,
            citus,
        ))
    };
    if citus {
        // Citus converts only top-level CREATE TABLEs in a distributed schema: the schema is
        // built local, then distributed whole, tables and policies, when the caller asked for
        // schema-based sharding (citus.enable_schema_based_sharding)
        let shard = read_one::<String>(
            "SELECT pg_catalog.current_setting('citus.enable_schema_based_sharding', true)",
            &[],
        )? == Some("on".to_string());
        crate::pg::owner::with_settings(&[(c"citus.enable_schema_based_sharding", c"off")], ddl)?;
        if shard {
            // as the caller, the schema's owner
            Spi::run_with_args(
                "SELECT pg_catalog.citus_schema_distribute($1::pg_catalog.regnamespace)",
                &[target.as_str().into()],
            )?;
        }
    } else {
        ddl()?;
    }
    as_owner(|| {
        Spi::run_with_args(
            "UPDATE tenant.tenants SET placement = 'schema', schema_name = $2, updated_at = now() WHERE id = $1",
            &[pg_uuid(row.id).into(), target.as_str().into()],
        )?;
        // the template is expected to carry every migration applied so far
        Spi::run_with_args(
            "INSERT INTO tenant.schema_migrations (tenant_id, version, schema_name, checksum, applied_by) \
             SELECT DISTINCT ON (version) $1, version, $2, checksum, session_user FROM tenant.schema_migrations \
             ORDER BY version, applied_at",
            &[pg_uuid(row.id).into(), target.as_str().into()],
        )?;
        event(
            Some(row.id),
            "tenant.schema_provisioned",
            json!({"schema": target, "template": template}),
        )
    })?;
    Ok(target)
}

/// Place a tenant in a schema of its own, `tenant_<id>`, created from the tables of
/// `template` (their columns, defaults, constraints, indexes and grants). Each table is
/// closed to every context but the tenant's (RLS forced, one policy); `set_context` puts the
/// schema first on the search_path. The DDL runs as the caller, who needs CREATE on the
/// database. Returns the schema's name. For tenant_admin.
#[pg_extern(volatile, parallel_unsafe)]
fn provision_schema(tenant: &str, template: &str) -> String {
    boundary(|| pinned(|| provision_impl(tenant, template)))
}

fn migrate_impl(version: &str, sql: &str) -> MtResult<i64> {
    require_any_role(&[c"tenant_admin"], "migrate tenant schemas")?;
    migration_version(version)?;
    if sql.trim().is_empty() {
        return Err(MtError::invalid("the migration is empty"));
    }
    let checksum: String = Sha256::digest(sql.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let other = as_owner(|| {
        read_one::<String>(
            "SELECT schema_name::text FROM tenant.schema_migrations WHERE version = $1 AND checksum <> $2 LIMIT 1",
            &[version.into(), checksum.as_str().into()],
        )
    })?;
    if let Some(s) = other {
        return Err(MtError::invalid(format!(
            "migration \"{version}\" was applied to {s} with different SQL"
        ))
        .hint("Give a changed migration a new version."));
    }
    let todo: Vec<(uuid::Uuid, String)> = as_owner(|| {
        Spi::connect_mut(|c| {
            let mut v = Vec::new();
            for r in c.update(
                "SELECT t.id, t.schema_name::text FROM tenant.tenants t \
                 WHERE t.placement = 'schema' AND t.status <> 'purged' AND NOT EXISTS \
                   (SELECT 1 FROM tenant.schema_migrations m WHERE m.tenant_id = t.id AND m.version = $1) \
                 ORDER BY t.schema_name FOR NO KEY UPDATE OF t",
                None,
                &[version.into()],
            )? {
                if let (Some(id), Some(s)) = (r.get::<pgrx::Uuid>(1)?, r.get::<String>(2)?) {
                    v.push((from_pg_uuid(id), s));
                }
            }
            Ok(v)
        })
    })?;
    for (tenant, schema) in &todo {
        // the caller's SQL, as the caller, with the tenant's schema as the search_path and
        // the tenant's context (data migrations see the tenant's rows through the guard)
        let path = crate::core::ddl::quote_ident(schema);
        as_tenant(*tenant, || {
            let prev = read_one::<String>("SELECT pg_catalog.current_setting('search_path')", &[])?
                .unwrap_or_default();
            Spi::run_with_args(
                "SELECT pg_catalog.set_config('search_path', $1, true)",
                &[path.as_str().into()],
            )?;
            Spi::run(sql)?;
            Spi::run_with_args(
                "SELECT pg_catalog.set_config('search_path', $1, true)",
                &[prev.as_str().into()],
            )?;
            Ok(())
        })?;
        // every table of the schema (again) gets the guard: one the migration created, and
        // one whose row security or policies the migration changed
        let tables: Vec<String> = pinned(|| {
            Spi::connect(|c| {
                let mut v = Vec::new();
                for r in c.select(
                    "SELECT c.relname::text FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')",
                    None,
                    &[schema.as_str().into()],
                )? {
                    v.extend(r.get::<String>(1)?);
                }
                Ok::<_, MtError>(v)
            })
        })?;
        let citus = crate::pg::citus::installed()?;
        let stmts: Vec<String> = tables
            .iter()
            .flat_map(|t| schema_guard_statements(schema, t, *tenant, citus))
            .collect();
        pinned(|| run_all(&stmts))?;
        if citus {
            pinned(|| distribute_new_tables(schema))?;
        }
        as_owner(|| {
            Spi::run_with_args(
                "INSERT INTO tenant.schema_migrations (tenant_id, version, schema_name, checksum, applied_by) \
                 VALUES ($1, $2, $3, $4, session_user)",
                &[
                    pg_uuid(*tenant).into(),
                    version.into(),
                    schema.as_str().into(),
                    checksum.as_str().into(),
                ],
            )?;
            Ok(())
        })?;
    }
    if !todo.is_empty() {
        event(
            None,
            "schemas.migrated",
            json!({"version": version, "schemas": todo.len(), "checksum": checksum}),
        )?;
    }
    Ok(todo.len() as i64)
}

/// Apply a migration to every tenant schema that has not had `version` yet, in one
/// transaction (a failure in any schema rolls back all), as the caller, with that schema as
/// the search_path and the tenant's context; tables it creates get the tenant guard.
/// Returns how many schemas were migrated (0 when all had it). For tenant_admin.
#[pg_extern(volatile, parallel_unsafe)]
fn migrate_schemas(version: &str, sql: &str) -> i64 {
    boundary(|| migrate_impl(version, sql))
}

/// A distributed tenant schema (Citus schema-based sharding) keeps every table in its one
/// shard group: the tables a migration created (Citus converts only top-level CREATE TABLEs)
/// join it, as the caller, with their policies.
fn distribute_new_tables(schema: &str) -> MtResult<()> {
    let (distributed, anchor, local) = Spi::connect(|c| {
        let distributed = c
            .select(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_schema \
                   WHERE schemaid = $1::pg_catalog.regnamespace)",
                None,
                &[schema.into()],
            )?
            .first()
            .get_one::<bool>()?
            .unwrap_or(false);
        let anchor = c
            .select(
                "SELECT pg_catalog.format('%I.%I', $1, c.relname) FROM pg_catalog.pg_dist_partition p \
                 JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid \
                 WHERE c.relnamespace = $1::pg_catalog.regnamespace ORDER BY c.relname LIMIT 1",
                None,
                &[schema.into()],
            )?
            .next()
            .map(|r| r.get::<String>(1))
            .transpose()?
            .flatten();
        let mut local = Vec::new();
        for r in c.select(
            "SELECT pg_catalog.format('%I.%I', $1, c.relname) FROM pg_catalog.pg_class c \
             WHERE c.relnamespace = $1::pg_catalog.regnamespace AND c.relkind IN ('r', 'p') \
               AND NOT c.relispartition \
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = c.oid) \
             ORDER BY c.relname",
            None,
            &[schema.into()],
        )? {
            local.extend(r.get::<String>(1)?);
        }
        Ok::<_, MtError>((distributed, anchor, local))
    })?;
    if !distributed || local.is_empty() {
        return Ok(());
    }
    match anchor {
        Some(anchor) => {
            for t in &local {
                Spi::run_with_args(
                    "SELECT pg_catalog.create_distributed_table($1::pg_catalog.regclass, NULL, colocate_with => $2)",
                    &[t.as_str().into(), anchor.as_str().into()],
                )?;
            }
        }
        None => {
            // no table of the schema is distributed yet: distribute the schema again, whole
            Spi::run_with_args(
                "SELECT pg_catalog.citus_schema_undistribute($1::pg_catalog.regnamespace)",
                &[schema.into()],
            )?;
            Spi::run_with_args(
                "SELECT pg_catalog.citus_schema_distribute($1::pg_catalog.regnamespace)",
                &[schema.into()],
            )?;
        }
    }
    Ok(())
}
