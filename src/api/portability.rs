//! A tenant's data in and out (SQL): `export`, `import`, `exclude_from_export`, `purge`, and
//! `my_tenants` (the tenant switcher). The rules are in `core::portability`.

use crate::core::error::{Code, MtError, MtResult};
use crate::core::lifecycle::Status;
use crate::core::names;
use crate::core::portability::{delete_order, envelope, insert_order, rows_for, FORMAT, VERSION};
use crate::pg::catalog::check_table;
use crate::pg::convert::pg_uuid;
use crate::pg::owner::{as_owner, as_role_restricted, pinned};
use crate::pg::raise::boundary;
use crate::pg::roles::{has_role, require_any_role};
use crate::pg::spi::with_prepared_read;
use crate::state::audit::{erase_tenant, event};
use crate::state::context::{as_tenant_owner, verified};
use crate::state::portability::{
    delete_rows, export_rows as table_rows, import_rows, json_rows, key_conflicts, registered,
    write_json, RegTable,
};
use crate::state::tenants;
use pgrx::pg_sys::PgBuiltInOids as O;
use pgrx::prelude::*;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

const MEMBERS: &str = "SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object( \
    'user_id', m.user_id, 'roles', m.roles, 'status', m.status, 'organization', o.slug) ORDER BY m.user_id), '[]') \
    FROM tenant.members m LEFT JOIN tenant.organizations o ON o.id = m.organization_id WHERE m.tenant_id = $1";
const ROLES: &str = "SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object( \
    'name', name, 'inherits', inherits) ORDER BY name), '[]') FROM tenant.roles WHERE tenant_id = $1 AND NOT builtin";
const PERMISSIONS: &str = "SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object( \
    'role', role, 'resource', resource, 'action', action, 'condition', condition) ORDER BY role, resource, action), '[]') \
    FROM tenant.permissions p WHERE tenant_id = $1 \
      AND NOT EXISTS (SELECT 1 FROM tenant.roles r WHERE r.tenant_id = p.tenant_id AND r.name = p.role AND r.builtin)";
const ORGANIZATIONS: &str = "SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object( \
    'slug', slug, 'name', name) ORDER BY slug), '[]') FROM tenant.organizations WHERE tenant_id = $1";
const USAGE: &str = "SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object( \
    'resource', resource, 'window_start', window_start, 'window_end', window_end, 'used', used) \
    ORDER BY resource, window_start), '[]') FROM tenant.usage_counters WHERE tenant_id = $1";
const AUDIT: &str =
    "SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(l) ORDER BY l.id), '[]') \
    FROM tenant.audit_log l WHERE l.tenant_id = $1";
const TENANT: &str = "SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('slug', slug, 'name', name, \
    'plan', plan, 'status', status, 'region', region, 'settings', settings)) FROM tenant.tenants WHERE id = $1";

fn export_impl(tenant: &str, include_audit: bool) -> MtResult<Value> {
    require_any_role(&[c"tenant_service", c"tenant_admin"], "export a tenant")?;
    let row = tenants::lookup(tenant)?;
    as_owner(|| {
        let mut tables = Map::new();
        let mut counts = Map::new();
        for t in registered()? {
            // as the table's owner in a restricted operation, in the tenant's context: code
            // of the table (a cast to json of a column type) never runs as the extension owner
            let rows = as_tenant_owner(row.id, t.owner, t.relid, false, || table_rows(&t, row.id))?;
            counts.insert(t.key.clone(), json!(rows.as_array().map_or(0, Vec::len)));
            tables.insert(t.key, rows);
        }
        let tenant_doc = json_rows(TENANT, row.id)?
            .get(0)
            .cloned()
            .unwrap_or(Value::Null);
        let mut doc = json!({
            "format": FORMAT,
            "version": VERSION,
            "tenant": tenant_doc,
            "tables": tables,
            "members": json_rows(MEMBERS, row.id)?,
            "roles": json_rows(ROLES, row.id)?,
            "permissions": json_rows(PERMISSIONS, row.id)?,
            "organizations": json_rows(ORGANIZATIONS, row.id)?,
            "usage": json_rows(USAGE, row.id)?,
        });
        if include_audit {
            doc["audit"] = json_rows(AUDIT, row.id)?;
        }
        event(
            Some(row.id),
            "tenant.exported",
            json!({"tables": counts, "include_audit": include_audit}),
        )?;
        Ok(doc)
    })
}

/// One tenant's data as one JSON document: the rows of every isolated and row-limited table
/// (without the tenant column and the columns excluded from exports), its members, custom
/// roles and permissions, organizations and usage; its audit entries with
/// `include_audit`. For `tenant_service` and `tenant_admin`; logged as an audit event.
#[pg_extern(volatile, parallel_unsafe)]
fn export(tenant: &str, include_audit: default!(bool, false)) -> pgrx::JsonB {
    boundary(|| export_impl(tenant, include_audit).map(pgrx::JsonB))
}

fn import_impl(tenant: &str, doc: &Value) -> MtResult<Value> {
    require_any_role(&[c"tenant_service", c"tenant_admin"], "import a tenant")?;
    let row = tenants::lookup(tenant)?;
    if matches!(row.status, Status::Deleted | Status::Purged) {
        return Err(MtError::new(
            Code::TenantNotActive,
            format!(
                "tenant is {}: nothing can be imported into it",
                row.status.as_str()
            ),
        ));
    }
    let tables = envelope(doc)?;
    let known: std::collections::BTreeSet<String> = crate::state::rbac::policy(row.id)?
        .inherits
        .keys()
        .cloned()
        .collect();
    crate::core::portability::check_rbac(doc, &known)?;
    let id = row.id.to_string();
    as_owner(|| {
        let reg: BTreeMap<String, RegTable> = registered()?
            .into_iter()
            .map(|t| (t.key.clone(), t))
            .collect();
        // every table and column is checked before anything is written
        let mut checked: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for (key, rows) in tables {
            let Some(t) = reg.get(key) else {
                return Err(MtError::invalid(format!(
                    "table \"{}\" is not isolated or row-limited in this database",
                    key.escape_default()
                ))
                .hint("Create it and run tenant.isolate on it first."));
            };
            let rows = rows_for(key, rows, &t.columns, &t.tenant_column, &id)?;
            // as the extension owner (every tenant's keys count), built-in key types only
            let clashes = key_conflicts(t, &rows)?;
            if clashes > 0 {
                return Err(MtError::invalid(format!(
                    "{key}: {clashes} row(s) have keys that rows of this database hold already"
                ))
                .hint("Leave generated keys out of the document, or import into a database without those rows."));
            }
            checked.insert(key.clone(), rows);
        }
        // roles, permissions and organizations before members, tables parents first
        let mut counts = Map::new();
        let part = |k: &str| doc.get(k).cloned().unwrap_or(Value::Array(vec![]));
        counts.insert("roles".into(), json!(write_json(
            "WITH i AS (INSERT INTO tenant.roles (tenant_id, name, inherits) \
               SELECT $1, r.name, r.inherits FROM pg_catalog.jsonb_to_recordset($2) AS r(name text, inherits text[]) \
               ON CONFLICT (tenant_id, name) DO UPDATE SET inherits = EXCLUDED.inherits RETURNING 1) \
             SELECT pg_catalog.count(*) FROM i",
            row.id,
            &part("roles"),
        )?));
        counts.insert("permissions".into(), json!(write_json(
            "WITH i AS (INSERT INTO tenant.permissions (tenant_id, role, resource, action, condition) \
               SELECT $1, p.role, p.resource, p.action, p.condition \
               FROM pg_catalog.jsonb_to_recordset($2) AS p(role text, resource text, action text, condition jsonb) \
               ON CONFLICT (tenant_id, role, resource, action, coalesce(condition, 'null'::jsonb)) DO NOTHING RETURNING 1) \
             SELECT pg_catalog.count(*) FROM i",
            row.id,
            &part("permissions"),
        )?));
        counts.insert("organizations".into(), json!(write_json(
            "WITH i AS (INSERT INTO tenant.organizations (tenant_id, slug, name) \
               SELECT $1, o.slug, o.name FROM pg_catalog.jsonb_to_recordset($2) AS o(slug text, name text) \
               ON CONFLICT (tenant_id, slug) DO NOTHING RETURNING 1) \
             SELECT pg_catalog.count(*) FROM i",
            row.id,
            &part("organizations"),
        )?));
        counts.insert("members".into(), json!(write_json(
            "WITH i AS (INSERT INTO tenant.members (tenant_id, user_id, roles, status, organization_id) \
               SELECT $1, m.user_id, m.roles, coalesce(m.status, 'active'), \
                      (SELECT o.id FROM tenant.organizations o WHERE o.tenant_id = $1 AND o.slug = m.organization) \
               FROM pg_catalog.jsonb_to_recordset($2) AS m(user_id text, roles text[], status text, organization text) \
               ON CONFLICT (tenant_id, user_id) DO NOTHING RETURNING 1) \
             SELECT pg_catalog.count(*) FROM i",
            row.id,
            &part("members"),
        )?));
        let refs: BTreeMap<String, _> = reg
            .iter()
            .filter(|(k, _)| checked.contains_key(*k))
            .map(|(k, t)| (k.clone(), t.refs.clone()))
            .collect();
        let mut tables_done = Map::new();
        for key in insert_order(&refs) {
            let rows = checked.remove(&key).unwrap_or_default();
            crate::state::quota::ensure_rows_fit(reg[&key].relid, row.id, rows.len() as i64)?;
            // as the table's owner (its triggers, defaults and checks run with its rights,
            // never the extension owner's), in the tenant's context (its policies hold)
            let t = &reg[&key];
            let n = as_tenant_owner(row.id, t.owner, t.relid, false, || import_rows(t, rows))?;
            tables_done.insert(key, json!(n));
        }
        counts.insert("tables".into(), Value::Object(tables_done));
        let counts = Value::Object(counts);
        event(Some(row.id), "tenant.imported", counts.clone())?;
        Ok(counts)
    })
}

/// Load a document of `tenant.export` into `tenant` (of this or another database), in one
/// transaction: every table must be isolated or row-limited here and every column known
/// (MT030, nothing written); rows land in `tenant` whatever tenant they came from; row
/// limits hold (MT010). Returns the counts. For `tenant_service` and `tenant_admin`.
#[pg_extern(volatile, parallel_unsafe, name = "import")]
fn import_sql(tenant: &str, document: pgrx::JsonB) -> pgrx::JsonB {
    boundary(|| import_impl(tenant, &document.0).map(pgrx::JsonB))
}

fn exclude_impl(tbl: pg_sys::Oid, columns: Vec<String>) -> MtResult<()> {
    require_any_role(&[c"tenant_admin"], "exclude columns from exports")?;
    let info = check_table(tbl, "exclude_from_export")?;
    for c in &columns {
        crate::pg::catalog::column_exists(
            tbl,
            &crate::core::ddl::qualified(&info.schema, &info.table),
            c,
        )?;
    }
    as_owner(|| {
        Spi::run_with_args(
            "INSERT INTO tenant.export_exclusions (relid, columns) VALUES ($1::regclass, $2) \
             ON CONFLICT (relid) DO UPDATE SET columns = EXCLUDED.columns",
            &[tbl.into(), columns.into()],
        )?;
        Ok(())
    })
}

/// Leave sensitive columns of a table out of every export (an empty array lets them in
/// again). For `tenant_admin` members who own the table.
#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION tenant.exclude_from_export(tbl regclass, columns text[]) \
           RETURNS void STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn exclude_from_export(tbl: pg_sys::Oid, columns: Vec<String>) {
    boundary(|| pinned(|| exclude_impl(tbl, columns)))
}

pub(crate) fn purge_impl(tenant: &str, force: bool) -> MtResult<Value> {
    require_any_role(&[c"tenant_admin"], "purge a tenant")?;
    let row = tenants::lookup(tenant)?;
    if row.status == Status::Purged {
        return Err(MtError::new(
            Code::InvalidTransition,
            "tenant is already purged",
        ));
    }
    if row.status != Status::Deleted && !force {
        return Err(MtError::new(
            Code::InvalidTransition,
            format!(
                "tenant is {}: only a deleted tenant is purged",
                row.status.as_str()
            ),
        )
        .hint("Set its status to 'deleted' first, or pass force => true."));
    }
    as_owner(|| {
        // under the tenant row's lock: a concurrent purge or status change is seen here
        if crate::state::lifecycle::lock_status(row.id)? == Some(Status::Purged) {
            return Err(MtError::new(
                Code::InvalidTransition,
                "tenant is already purged",
            ));
        }
        if !force {
            let due = crate::pg::spi::read_one::<bool>(
                "SELECT coalesce(purge_after <= now(), true) FROM tenant.tenants WHERE id = $1",
                &[pg_uuid(row.id).into()],
            )?
            .unwrap_or(true);
            if !due {
                return Err(MtError::new(
                    Code::InvalidTransition,
                    "the tenant's retention period is not over (see tenants.purge_after)",
                )
                .hint(
                    "Wait, or pass force => true (multitenant.deletion_retention sets the period).",
                ));
            }
        }
        let reg: BTreeMap<String, RegTable> = registered()?
            .into_iter()
            .map(|t| (t.key.clone(), t))
            .collect();
        let refs = reg
            .iter()
            .map(|(k, t)| (k.clone(), t.refs.clone()))
            .collect();
        let mut tables = Map::new();
        for key in delete_order(&refs) {
            let t = &reg[&key];
            let n = as_tenant_owner(row.id, t.owner, t.relid, true, || delete_rows(t, row.id))?;
            tables.insert(key.clone(), json!(n));
        }
        let mut receipt = Map::new();
        for (what, sql) in [
            ("members", "DELETE FROM tenant.members WHERE tenant_id = $1"),
            (
                "invitations",
                "DELETE FROM tenant.invitations WHERE tenant_id = $1",
            ),
            (
                "organizations",
                "DELETE FROM tenant.organizations WHERE tenant_id = $1",
            ),
            ("roles", "DELETE FROM tenant.roles WHERE tenant_id = $1"),
            (
                "usage_counters",
                "DELETE FROM tenant.usage_counters WHERE tenant_id = $1",
            ),
            (
                "usage_daily",
                "DELETE FROM tenant.usage_daily WHERE tenant_id = $1",
            ),
            (
                "tenant_limits",
                "DELETE FROM tenant.tenant_limits WHERE tenant_id = $1",
            ),
            (
                "tenant_features",
                "DELETE FROM tenant.tenant_features WHERE tenant_id = $1",
            ),
            ("domains", "DELETE FROM tenant.domains WHERE tenant_id = $1"),
            (
                "branding",
                "DELETE FROM tenant.branding WHERE tenant_id = $1",
            ),
            (
                "custom_fields",
                "DELETE FROM tenant.custom_fields WHERE tenant_id = $1",
            ),
            (
                "onboarding_progress",
                "DELETE FROM tenant.onboarding_progress WHERE tenant_id = $1",
            ),
            (
                "storage_objects",
                "DELETE FROM tenant.storage_objects WHERE tenant_id = $1",
            ),
            ("outbox", "DELETE FROM tenant.outbox WHERE tenant_id = $1"),
            (
                "usage_events",
                "DELETE FROM tenant.usage_events WHERE tenant_id = $1",
            ),
            (
                "metric_daily",
                "DELETE FROM tenant.metric_daily WHERE tenant_id = $1",
            ),
            (
                "usage_alerts",
                "DELETE FROM tenant.usage_alerts WHERE tenant_id = $1",
            ),
            ("credits", "DELETE FROM tenant.credits WHERE tenant_id = $1"),
            (
                "invoices",
                "DELETE FROM tenant.invoices WHERE tenant_id = $1",
            ),
            (
                "subscriptions",
                "DELETE FROM tenant.subscriptions WHERE tenant_id = $1",
            ),
        ] {
            let sql = format!("WITH d AS ({sql} RETURNING 1) SELECT pg_catalog.count(*) FROM d");
            let n = crate::pg::spi::write_count(&sql, &[pg_uuid(row.id).into()])?;
            receipt.insert(what.into(), json!(n));
        }
        // a tenant placed in its own schema: the schema goes, dropped by its owner
        if let Some(schema) = &row.schema {
            let owner = crate::pg::spi::read_one::<pgrx::pg_sys::Oid>(
                "SELECT nspowner FROM pg_catalog.pg_namespace WHERE nspname = $1",
                &[schema.as_str().into()],
            )?;
            if let Some(owner) = owner {
                let stmt = format!(
                    "DROP SCHEMA {} CASCADE",
                    crate::core::ddl::quote_ident(schema)
                );
                as_role_restricted(owner, || Ok(Spi::run(&stmt)?))?;
            }
            Spi::run_with_args(
                "UPDATE tenant.tenants SET placement = 'shared', schema_name = NULL WHERE id = $1",
                &[pg_uuid(row.id).into()],
            )?;
            receipt.insert("schema".into(), json!(schema));
        }
        // the tenant's audit chains: emptied, their heads keep verifying (what was there is
        // gone; that it was there, and how much, stays in the receipt)
        receipt.insert("audit_entries".into(), json!(erase_tenant(row.id)?));
        receipt.insert("tables".into(), Value::Object(tables));
        let slug = format!("purged-{}", &row.id.simple().to_string()[..12]);
        Spi::run_with_args(
            "UPDATE tenant.tenants SET status = 'purged', slug = $2, name = 'purged tenant', \
               region = NULL, settings = '{}', updated_at = now() WHERE id = $1",
            &[pg_uuid(row.id).into(), slug.as_str().into()],
        )?;
        let receipt = json!({
            "tenant_id": row.id.to_string(),
            "forced": force,
            "removed": Value::Object(receipt),
        });
        // the receipt goes to the global chain: the tenant's own is gone
        event(None, "tenant.purged", receipt.clone())?;
        Ok(receipt)
    })
}

/// Erase a tenant: its rows in every isolated and row-limited table (children before
/// parents), members, invitations, organizations, roles, usage, overrides and audit
/// entries; the tenant row stays, anonymised, with status `purged`. Only a `deleted` tenant
/// unless `force`. Returns the receipt (also logged in the global audit chain). For
/// `tenant_admin`.
#[pg_extern(volatile, parallel_unsafe)]
fn purge(tenant: &str, force: default!(bool, false)) -> pgrx::JsonB {
    boundary(|| purge_impl(tenant, force).map(pgrx::JsonB))
}

type TenantOfUser = (
    pgrx::Uuid,
    String,
    String,
    String,
    Vec<String>,
    Option<pgrx::Uuid>,
);

fn my_tenants_impl(user_id: Option<&str>) -> MtResult<Vec<TenantOfUser>> {
    let user = match user_id {
        Some(u) => {
            if !(has_role(c"tenant_service") || has_role(c"tenant_admin")) {
                return Err(
                    MtError::denied("permission denied to list another user's tenants")
                        .hint("Only tenant_service and tenant_admin may name a user."),
                );
            }
            names::user_id(u)?;
            u.to_string()
        }
        None => verified(|c| c.u.clone())
            .map_err(|_| MtError::no_context())?
            .ok_or_else(|| {
                MtError::new(Code::NoContext, "the context names no user")
                    .hint("Enter with tenant.authenticate(...) or set_context(tenant, user_id).")
            })?,
    };
    as_owner(|| {
        with_prepared_read(
            "SELECT t.id, t.slug, t.name, t.status, m.roles, m.organization_id FROM tenant.members m \
             JOIN tenant.tenants t ON t.id = m.tenant_id \
             WHERE m.user_id = $1 AND m.status = 'active' AND t.status IN ('trial', 'active', 'suspended') \
             ORDER BY t.name, t.slug",
            &[O::TEXTOID],
            &[user.as_str().into()],
            |t| {
                let mut v = Vec::new();
                for r in t {
                    if let (Some(id), Some(slug), Some(name), Some(status)) = (
                        r.get::<pgrx::Uuid>(1)?,
                        r.get::<String>(2)?,
                        r.get::<String>(3)?,
                        r.get::<String>(4)?,
                    ) {
                        v.push((id, slug, name, status, r.get::<Vec<String>>(5)?.unwrap_or_default(), r.get::<pgrx::Uuid>(6)?));
                    }
                }
                Ok(v)
            },
        )
    })
}

/// The tenants the current user (the context's) belongs to, with its roles and
/// organization in each: a tenant switcher. `tenant_service`/`tenant_admin` may name any
/// user. Suspended tenants are listed (with their status); deleted and purged ones are not.
#[allow(clippy::type_complexity)] // the row type has to be spelled out for pgrx's SQL
#[pg_extern(stable, parallel_restricted)]
fn my_tenants(
    user_id: default!(Option<&str>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(tenant_id, pgrx::Uuid),
        name!(slug, String),
        name!(name, String),
        name!(status, String),
        name!(roles, Vec<String>),
        name!(organization_id, Option<pgrx::Uuid>),
    ),
> {
    TableIterator::new(boundary(|| my_tenants_impl(user_id)))
}

fn forget_user_impl(user_id: &str) -> MtResult<Value> {
    names::user_id(user_id)?;
    let c = crate::api::rbac::permitted("members", "manage", "erase a user")?;
    if !crate::api::rbac::is_backend(&c) {
        // a member manager erases only members whose every role it could hand out, never
        // an owner
        let theirs = crate::state::members::member_roles(c.tenant, user_id)?;
        let pol = crate::state::rbac::policy(c.tenant)?;
        if theirs.iter().any(|r| r == crate::core::rbac::OWNER_ROLE)
            || !theirs.iter().all(|r| pol.may_grant(&c.roles, r))
        {
            return Err(MtError::denied(format!(
                "permission denied to erase the user \"{}\"",
                user_id.escape_default()
            ))
            .hint(
                "A member manager erases only members whose roles it holds itself, never an owner.",
            ));
        }
    }
    as_owner(|| {
        let n = |sql: &'static str| {
            crate::pg::spi::write_count(sql, &[pg_uuid(c.tenant).into(), user_id.into()])
        };
        let membership = n("WITH d AS (DELETE FROM tenant.members WHERE tenant_id = $1 AND user_id = $2 RETURNING 1) \
                            SELECT pg_catalog.count(*) FROM d")?;
        let accepted = n("WITH d AS (DELETE FROM tenant.invitations WHERE tenant_id = $1 AND accepted_by = $2 RETURNING 1) \
                          SELECT pg_catalog.count(*) FROM d")?;
        let invited = n("WITH u AS (UPDATE tenant.invitations SET invited_by = NULL \
                           WHERE tenant_id = $1 AND invited_by = $2 RETURNING 1) SELECT pg_catalog.count(*) FROM u")?;
        let events = n("WITH d AS (DELETE FROM tenant.usage_events WHERE tenant_id = $1 AND user_id = $2 RETURNING 1) \
                        SELECT pg_catalog.count(*) FROM d")?;
        // the event names the user by a hash only: the trail keeps that it happened
        let digest = crate::core::audit::sha256_hex(user_id.as_bytes());
        let counts = json!({"membership": membership, "invitations_accepted": accepted,
                            "invitations_sent": invited, "usage_events": events});
        event(
            Some(c.tenant),
            "member.forgotten",
            json!({"user_sha256": digest, "removed": counts}),
        )?;
        Ok(counts)
    })
}

/// Erase one user inside the current tenant: its membership (roles, organization), the
/// invitations it accepted; invitations it sent lose its name. Its rows in your tables and
/// the user id recorded in audit entries stay (see docs). For the backend and members
/// allowed `manage` on `members`; logged with a hash of the id.
#[pg_extern(volatile, parallel_unsafe)]
fn forget_user(user_id: &str) -> pgrx::JsonB {
    boundary(|| forget_user_impl(user_id).map(pgrx::JsonB))
}

fn adopt_impl(tbl: pg_sys::Oid, tenant: &str, column: &str) -> MtResult<i64> {
    // it writes into a tenant's data and audit chain: the table's owner must also be the
    // tenants' administrator or backend
    require_any_role(&[c"tenant_admin", c"tenant_service"], "adopt a table")?;
    let info = check_table(tbl, "adopt")?;
    let name = crate::core::ddl::qualified(&info.schema, &info.table);
    let row = tenants::lookup(tenant)?;
    let col = crate::core::ddl::quote_ident(column);
    let exists = crate::pg::spi::read_one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attname = $2 \
         AND attnum > 0 AND NOT attisdropped)",
        &[tbl.into(), column.into()],
    )?
    .unwrap_or(false);
    if !exists {
        // no default: adding the column rewrites nothing
        crate::pg::catalog::run_all(&[format!("ALTER TABLE {name} ADD COLUMN {col} uuid")])?;
    } else {
        // must be uuid (text or bigint keys: see docs/reference.md, adopt)
        crate::pg::catalog::tenant_column(tbl, &name, column)?;
    }
    // fill in batches, so that progress shows and each statement stays small
    let fill = format!(
        "WITH b AS (SELECT ctid FROM {name} WHERE {col} IS NULL LIMIT 10000), \
              u AS (UPDATE {name} t SET {col} = $1 FROM b WHERE t.ctid = b.ctid RETURNING 1) \
         SELECT pg_catalog.count(*) FROM u"
    );
    let mut total = 0i64;
    loop {
        let n = crate::pg::spi::write_count(&fill, &[pg_uuid(row.id).into()])?;
        if n == 0 {
            break;
        }
        total += n;
        pgrx::notice!("adopt: {total} rows of {name} given to tenant {}", row.id);
    }
    crate::pg::catalog::run_all(&[format!(
        "ALTER TABLE {name} ALTER COLUMN {col} SET NOT NULL"
    )])?;
    crate::api::isolation::isolate_tree(tbl, column)?;
    as_owner(|| {
        event(
            Some(row.id),
            "table.adopted",
            json!({"table": name, "column": column, "rows": total}),
        )
    })?;
    Ok(total)
}

/// Make an existing single-tenant table multi-tenant: add the tenant column (uuid) when
/// missing, give every row without a tenant to `tenant` (in batches of 10,000, with progress
/// NOTICEs), make the column NOT NULL and isolate the table. Returns the rows given. For the
/// table's owner.
#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION tenant.adopt(tbl regclass, tenant text, tenant_column text DEFAULT 'tenant_id') \
           RETURNS bigint STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn adopt(tbl: pg_sys::Oid, tenant: &str, tenant_column: &str) -> i64 {
    boundary(|| pinned(|| adopt_impl(tbl, tenant, tenant_column)))
}

/// Rows of one table read through a cursor, 1,000 at a time, each batch fetched as the
/// table's owner in the tenant's context (see `export_rows`).
struct RowStream {
    cursor: String,
    tenant: uuid::Uuid,
    owner: pg_sys::Oid,
    relid: pg_sys::Oid,
    table: String,
    keep: std::collections::BTreeSet<String>,
    buf: std::collections::VecDeque<Value>,
    done: bool,
    n: i64,
}

const BATCH: i64 = 1000;

impl RowStream {
    fn fill(&mut self) -> MtResult<()> {
        let cursor = self.cursor.clone();
        let rows = as_tenant_owner(self.tenant, self.owner, self.relid, false, || {
            Spi::connect(|c| {
                let mut cur = c.find_cursor(&cursor)?;
                let mut v = Vec::new();
                {
                    let t = cur.fetch(BATCH as _)?;
                    for r in t {
                        if let Some(j) = r.get::<pgrx::JsonB>(1)? {
                            v.push(j.0);
                        }
                    }
                }
                // keep the portal open for the next batch
                let _ = cur.detach_into_name();
                Ok::<_, MtError>(v)
            })
        })?;
        if (rows.len() as i64) < BATCH {
            self.done = true;
        }
        for mut r in rows {
            if let Value::Object(o) = &mut r {
                o.retain(|k, _| self.keep.contains(k));
            }
            self.n += 1;
            if self.n % 100_000 == 0 {
                pgrx::notice!("export_rows: {} rows of {}", self.n, self.table);
            }
            self.buf.push_back(r);
        }
        if self.done {
            let (tenant, table, n) = (self.tenant, self.table.clone(), self.n);
            as_owner(|| {
                event(
                    Some(tenant),
                    "tenant.exported",
                    json!({"table": table, "rows": n}),
                )
            })?;
        }
        Ok(())
    }
}

impl Iterator for RowStream {
    type Item = pgrx::JsonB;
    fn next(&mut self) -> Option<pgrx::JsonB> {
        if self.buf.is_empty() && !self.done {
            boundary(|| self.fill());
        }
        self.buf.pop_front().map(pgrx::JsonB)
    }
}

fn export_rows_impl(tenant: &str, tbl: pg_sys::Oid) -> MtResult<RowStream> {
    require_any_role(&[c"tenant_service", c"tenant_admin"], "export a tenant")?;
    let row = tenants::lookup(tenant)?;
    let t = as_owner(registered)?
        .into_iter()
        .find(|t| t.relid == tbl)
        .ok_or_else(|| {
            MtError::invalid("the table is not isolated or row-limited")
                .hint("tenant.export_rows exports the tables tenant.export covers.")
        })?;
    let mut keep = t.columns.clone();
    keep.remove(&t.tenant_column);
    for c in &t.excluded {
        keep.remove(c);
    }
    let sql = format!(
        "SELECT pg_catalog.to_jsonb(x) FROM {} x WHERE x.{} OPERATOR(pg_catalog.=) $1",
        t.sql_name,
        crate::core::ddl::quote_ident(&t.tenant_column)
    );
    let cursor = as_tenant_owner(row.id, t.owner, t.relid, false, || {
        Spi::connect(|c| {
            Ok::<_, MtError>(
                c.try_open_cursor(sql.as_str(), &[pg_uuid(row.id).into()])?
                    .detach_into_name(),
            )
        })
    })?;
    Ok(RowStream {
        cursor,
        tenant: row.id,
        owner: t.owner,
        relid: t.relid,
        table: t.key,
        keep,
        buf: Default::default(),
        done: false,
        n: 0,
    })
}

/// One tenant's rows of one isolated or row-limited table, one jsonb per row (the shape of
/// `export`), read through a cursor 1,000 rows at a time as the table's owner (memory stays
/// flat), with a NOTICE every 100,000 rows; audited. For `tenant_service` and `tenant_admin`.
#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION tenant.export_rows(tenant text, tbl regclass) RETURNS SETOF jsonb \
           STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn export_rows(tenant: &str, tbl: pg_sys::Oid) -> SetOfIterator<'static, pgrx::JsonB> {
    SetOfIterator::new(boundary(|| export_rows_impl(tenant, tbl)))
}
