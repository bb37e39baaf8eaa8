//! Custom fields (SQL): definitions per tenant and entity, validation of a jsonb document,
//! and a trigger that enforces them on a jsonb column of a table. Rules in core::site.

use crate::api::rbac::permitted;
use crate::core::ddl::{qualified, quote_ident};
use crate::core::error::{Code, MtError, MtResult};
use crate::core::site::{check_fields, field_definition, field_name, FieldDef, FieldType};
use crate::pg::catalog::{check_table, descendants, run_all, tenant_column};
use crate::pg::convert::{from_pg_uuid, pg_uuid};
use crate::pg::owner::{as_owner, pinned};
use crate::pg::raise::{boundary, required as need};
use crate::pg::roles::require_any_role;
use crate::pg::spi::{read_one, with_prepared_read, write_count};
use crate::state::audit::event;
use crate::state::context::{verified, writes_for};
use crate::state::registry::{detach_triggers, trigger_schema};
use crate::state::site::plan_limit;
use pgrx::pg_sys;
use pgrx::pg_sys::PgBuiltInOids as O;
use pgrx::prelude::*;
use serde_json::{json, Value};

/// The definitions of `entity` in `tenant`.
fn definitions(tenant: uuid::Uuid, entity: &str) -> MtResult<Vec<FieldDef>> {
    as_owner(|| {
        with_prepared_read(
            "SELECT name, type, required, options FROM tenant.custom_fields \
             WHERE tenant_id = $1 AND entity = $2 ORDER BY name",
            &[O::UUIDOID, O::TEXTOID],
            &[pg_uuid(tenant).into(), entity.into()],
            |t| {
                let mut v = Vec::new();
                for r in t {
                    v.push(FieldDef {
                        name: r.get::<String>(1)?.unwrap_or_default(),
                        kind: FieldType::parse(&r.get::<String>(2)?.unwrap_or_default())?,
                        required: r.get::<bool>(3)?.unwrap_or(false),
                        options: r.get::<Vec<String>>(4)?.unwrap_or_default(),
                    });
                }
                Ok(v)
            },
        )
    })
}

fn define_impl(
    entity: &str,
    name: &str,
    kind: &str,
    required: bool,
    options: Option<Vec<String>>,
    label: Option<&str>,
) -> MtResult<()> {
    let c = permitted("custom_fields", "manage", "manage custom fields")?;
    field_name("entity", entity)?;
    let def = field_definition(name, kind, required, options)?;
    if label.is_some_and(|l| l.chars().count() > 200) {
        return Err(MtError::invalid("label must be at most 200 characters"));
    }
    let limit = plan_limit(c.tenant, "custom_fields")?;
    as_owner(|| {
        // one definer at a time per tenant, so the count below stays exact (NO KEY UPDATE
        // does not block the foreign keys that reference the tenant)
        Spi::run_with_args(
            "SELECT 1 FROM tenant.tenants WHERE id = $1 FOR NO KEY UPDATE",
            &[pg_uuid(c.tenant).into()],
        )?;
        if let Some(limit) = limit {
            let used = read_one::<i64>(
                "SELECT count(*) FROM tenant.custom_fields WHERE tenant_id = $1 \
                 AND (entity, name) <> ($2, $3)",
                &[pg_uuid(c.tenant).into(), entity.into(), name.into()],
            )?
            .unwrap_or(0);
            if used >= limit {
                return Err(MtError::new(
                    Code::LimitExceeded,
                    format!("plan limit exceeded for custom_fields ({used} of {limit})"),
                )
                .detail(format!("resource=custom_fields limit={limit} used={used}")));
            }
        }
        let kind = kind.to_string();
        Spi::run_with_args(
            "INSERT INTO tenant.custom_fields (tenant_id, entity, name, type, required, options, label) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, entity, name) DO UPDATE \
             SET type = EXCLUDED.type, required = EXCLUDED.required, options = EXCLUDED.options, label = EXCLUDED.label",
            &[
                pg_uuid(c.tenant).into(),
                entity.into(),
                name.into(),
                kind.as_str().into(),
                required.into(),
                (!def.options.is_empty()).then(|| def.options.clone()).into(),
                label.into(),
            ],
        )?;
        event(
            Some(c.tenant),
            "custom_field.defined",
            json!({"entity": entity, "name": name, "type": kind, "required": required}),
        )
    })
}

/// Define (or redefine) a custom field of `entity` for the current tenant: text, number,
/// boolean, date (YYYY-MM-DD) or select (with `options`). The plan limit `custom_fields`, if
/// any, caps how many a tenant has. For the backend and members allowed custom_fields/manage.
#[pg_extern(volatile, parallel_unsafe)]
fn define_custom_field(
    entity: Option<&str>,
    name: Option<&str>,
    field_type: Option<&str>,
    required: default!(Option<bool>, false),
    options: default!(Option<Vec<Option<String>>>, "NULL"),
    label: default!(Option<&str>, "NULL"),
) {
    boundary(|| {
        let options = options
            .map(|o| {
                o.into_iter()
                    .map(|x| x.ok_or_else(|| MtError::invalid("options must not contain NULL")))
                    .collect::<MtResult<Vec<String>>>()
            })
            .transpose()?;
        define_impl(
            need("entity", entity)?,
            need("name", name)?,
            need("field_type", field_type)?,
            need("required", required)?,
            options,
            label,
        )
    })
}

/// Drop a custom field of the current tenant (values already stored are left as they are).
#[pg_extern(volatile, parallel_unsafe)]
fn drop_custom_field(entity: &str, name: &str) -> bool {
    boundary(|| {
        let c = permitted("custom_fields", "manage", "manage custom fields")?;
        as_owner(|| {
            let n = write_count(
                "WITH d AS (DELETE FROM tenant.custom_fields WHERE tenant_id = $1 AND entity = $2 AND name = $3 RETURNING 1) \
                 SELECT pg_catalog.count(*) FROM d",
                &[pg_uuid(c.tenant).into(), entity.into(), name.into()],
            )?;
            if n > 0 {
                event(
                    Some(c.tenant),
                    "custom_field.dropped",
                    json!({"entity": entity, "name": name}),
                )?;
            }
            Ok(n > 0)
        })
    })
}

/// Check a document of custom field values of `entity` against the current tenant's
/// definitions: true, or MT030 naming every bad field (unknown, missing, wrong type).
#[pg_extern(stable, parallel_restricted)]
fn validate_custom_fields(entity: &str, fields: pgrx::JsonB) -> bool {
    boundary(|| {
        let t = verified(|c| c.t).map_err(|_| MtError::no_context())?;
        check_fields(entity, &definitions(t, entity)?, &fields.0)?;
        Ok(true)
    })
}

fn enforce_impl(relid: pg_sys::Oid, column: &str, entity: &str, tcol: &str) -> MtResult<()> {
    require_any_role(&[c"tenant_admin"], "enforce custom fields")?;
    field_name("entity", entity)?;
    let info = check_table(relid, "enforce custom fields on")?;
    let name = qualified(&info.schema, &info.table);
    tenant_column(relid, &name, tcol)?;
    for member in descendants(relid)? {
        check_table(member, "enforce custom fields on")?;
    }
    let typ = read_one::<String>(
        "SELECT atttypid::regtype::text FROM pg_catalog.pg_attribute \
         WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped",
        &[relid.into(), column.into()],
    )?;
    match typ.as_deref() {
        Some("jsonb") => {}
        Some(t) => {
            return Err(MtError::invalid(format!(
                "column \"{column}\" of {name} is {t}, not jsonb"
            )))
        }
        None => {
            return Err(MtError::invalid(format!(
                "column \"{column}\" of {name} does not exist"
            )))
        }
    }
    let schema = quote_ident(trigger_schema()?);
    run_all(&[
        format!("DROP TRIGGER IF EXISTS \"mt_custom_fields\" ON {name}"),
        format!(
            "CREATE TRIGGER \"mt_custom_fields\" BEFORE INSERT OR UPDATE OF {}, {} ON {name} FOR EACH ROW \
             EXECUTE FUNCTION {schema}.\"_custom_fields_trigger\"()",
            quote_ident(column),
            quote_ident(tcol)
        ),
    ])?;
    as_owner(|| {
        Spi::run_with_args(
            "INSERT INTO tenant.custom_field_columns (relid, column_name, entity, tenant_column) \
             VALUES ($1::regclass, $2, $3, $4) ON CONFLICT (relid) DO UPDATE SET \
             column_name = EXCLUDED.column_name, entity = EXCLUDED.entity, tenant_column = EXCLUDED.tenant_column",
            &[relid.into(), column.into(), entity.into(), tcol.into()],
        )?;
        Ok(())
    })
}

/// Enforce the custom fields of `entity` on the jsonb `column` of `tbl`: every INSERT and
/// every UPDATE of the column is checked against the definitions of the row's tenant (MT030
/// naming each bad field). For tenant_admin members who own the table.
#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION tenant.enforce_custom_fields(tbl regclass, \"column\" text, entity text, tenant_column text DEFAULT 'tenant_id') \
           RETURNS void VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn enforce_custom_fields(tbl: pg_sys::Oid, column: &str, entity: &str, tenant_column: &str) {
    boundary(|| pinned(|| enforce_impl(tbl, column, entity, tenant_column)))
}

/// Stop enforcing custom fields on `tbl`.
#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION tenant.unenforce_custom_fields(tbl regclass) \
           RETURNS boolean VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn unenforce_custom_fields(tbl: pg_sys::Oid) -> bool {
    boundary(|| {
        pinned(|| {
            require_any_role(&[c"tenant_admin"], "enforce custom fields")?;
            detach_triggers(
                tbl,
                &["mt_custom_fields"],
                "custom_field_columns",
                "enforce custom fields on",
            )
        })
    })
}

fn trigger_impl(t: &PgTrigger<'_>) -> MtResult<()> {
    let relid = t.relid().map_err(|e| MtError::invalid(e.to_string()))?;
    let reg = as_owner(|| {
        with_prepared_read(
            "SELECT column_name::text, entity, tenant_column::text FROM tenant.custom_field_columns \
             WHERE relid::oid = $1 OR relid::oid IN (SELECT relid::oid FROM pg_catalog.pg_partition_ancestors($1::pg_catalog.regclass)) LIMIT 1",
            &[O::OIDOID],
            &[relid.into()],
            |t| match t.into_iter().next() {
                Some(r) => Ok(Some((
                    r.get::<String>(1)?.unwrap_or_default(),
                    r.get::<String>(2)?.unwrap_or_default(),
                    r.get::<String>(3)?.unwrap_or_default(),
                ))),
                None => Ok(None),
            },
        )
    })?;
    let Some((column, entity, tcol)) = reg else {
        return Err(
            MtError::invalid("table is not registered with tenant.enforce_custom_fields")
                .hint("Attach the trigger with tenant.enforce_custom_fields(...), never by hand."),
        );
    };
    let tuple = t
        .new()
        .ok_or_else(|| MtError::invalid("trigger fired without a row"))?;
    // read as uuid and jsonb datums: no cast or operator of the table's owner runs
    let tenant = tuple
        .get_by_name::<pgrx::Uuid>(&tcol)
        .map_err(|e| MtError::invalid(format!("tenant column \"{tcol}\": {e}")))?
        .map(from_pg_uuid)
        .ok_or_else(MtError::no_context)?;
    if !writes_for(tenant) {
        return Err(MtError::new(
            Code::TenantMismatch,
            "row belongs to another tenant than the context",
        ));
    }
    let doc = tuple
        .get_by_name::<pgrx::JsonB>(&column)
        .map_err(|e| MtError::invalid(format!("column \"{column}\": {e}")))?
        .map(|j| j.0)
        .unwrap_or(Value::Null);
    check_fields(&entity, &definitions(tenant, &entity)?, &doc)
}

/// Row trigger (BEFORE INSERT OR UPDATE OF the column) that `tenant.enforce_custom_fields`
/// attaches; what to check is read from `tenant.custom_field_columns`.
#[pg_trigger(
    sql = "CREATE FUNCTION tenant_internal._custom_fields_trigger() RETURNS trigger \
           LANGUAGE c AS 'MODULE_PATHNAME', '_custom_fields_trigger_wrapper';"
)]
fn _custom_fields_trigger<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, pgrx::PgTriggerError> {
    boundary(|| trigger_impl(trigger));
    Ok(trigger.new())
}
