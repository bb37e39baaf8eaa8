//! Isolation (SQL): `tenant.isolate` / `tenant.unisolate` run the DDL that `core::ddl` builds, as the caller
//! (who must own the table), and keep `tenant.isolated_tables` up to date.

use crate::core::ddl::{self, IsolationDdl, Previous, Target};
use crate::core::error::{MtError, MtResult};
use crate::pg::catalog::{check_table, descendants, run_all, tenant_column};
use crate::pg::citus;
use crate::pg::owner::{as_owner, pinned};
use crate::pg::raise::boundary;
use crate::pg::spi::{read_oids, read_one};
use crate::state::registry::{isolated_ancestor, legacy_schema_now, protection, record};
use pgrx::pg_sys;
use pgrx::prelude::*;

thread_local! {
    /// set while isolate/unisolate run their own DDL, so the DDL event hook stays out
    static BUSY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

struct Busy(bool);
impl Busy {
    fn start() -> Busy {
        Busy(BUSY.with(|b| b.replace(true)))
    }
}
impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.with(|b| b.set(self.0));
    }
}

/// Isolate `relid` and every partition and inheritance child below it: RLS on a parent
/// does not apply to a query that names a partition directly.
/// From this many rows (pg_class.reltuples), `isolate` reports the index build it runs.
const PROGRESS_ROWS: f32 = 100_000.0;

pub(crate) fn isolate_tree(relid: pg_sys::Oid, column: &str) -> MtResult<()> {
    let _busy = Busy::start();
    let mut tree = vec![relid];
    tree.extend(descendants(relid)?);
    // check every member first, so nothing is half done when one is refused
    for &member in &tree {
        let info = check_table(member, "isolate")?;
        tenant_column(member, &ddl::qualified(&info.schema, &info.table), column)?;
    }
    let citus = citus::installed()?;
    for member in tree {
        isolate_one(member, column, citus)?;
    }
    Ok(())
}

/// Run `ddl`. On a table Citus distributes, the tenant column's default is set on the
/// coordinator's table only (see [`IsolationDdl`]).
fn run_ddl(ddl: &IsolationDdl, distributed: bool) -> MtResult<()> {
    run_all(&ddl.statements)?;
    let default = std::slice::from_ref(&ddl.column_default);
    if distributed {
        citus::coordinator_only(|| run_all(default))
    } else {
        run_all(default)
    }
}

/// Write an isolated table's policies again, after `protect` changed what they carry.
pub(crate) fn reisolate(relid: pg_sys::Oid, column: &str) -> MtResult<()> {
    let _busy = Busy::start();
    isolate_one(relid, column, citus::installed()?)
}

fn isolate_one(relid: pg_sys::Oid, column: &str, citus: bool) -> MtResult<()> {
    let info = check_table(relid, "isolate")?;
    let name = ddl::qualified(&info.schema, &info.table);
    let col = tenant_column(relid, &name, column)?;
    let protect = protection(relid)?;
    // protect's policies of a table protected before it was recorded (0.1.0): the Citus
    // shape drops them and would have nothing to fold in their place
    if citus && protect.is_none() {
        let unrecorded = read_one::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_policy WHERE polrelid = $1 \
               AND polname::pg_catalog.text LIKE 'tenant\\_protect\\_%')",
            &[relid.into()],
        )?
        .unwrap_or(false);
        if unrecorded {
            return Err(MtError::invalid(format!(
                "{name} has tenant.protect's policies but no record of them (protected before 0.2.0)"
            ))
            .hint("Run tenant.protect(...) on the table again, then tenant.isolate(...)."));
        }
    }
    let target = Target {
        schema: &info.schema,
        table: &info.table,
        column,
        legacy_schema: legacy_schema_now()?,
        citus,
        protect: protect.as_ref(),
    };
    let distributed = citus && citus::is_distributed_table(relid)?;
    if let Some(reg) = record(relid)? {
        if reg.column != column {
            return Err(MtError::invalid(format!(
                "{name} is already isolated on column \"{}\"",
                reg.column
            ))
            .hint("Run tenant.unisolate(...) first to change the tenant column."));
        }
        // idempotent: re-create the policies and default, keep what was recorded
        return run_ddl(&ddl::isolate_statements(&target, false), distributed);
    }
    let has_index = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index WHERE indrelid = $1 AND indkey[0] = $2)",
        &[relid.into(), col.attnum.into()],
    )?
    .unwrap_or(false);
    // a big table: say what takes the time (the index build holds the table's lock)
    let rows = read_one::<f32>(
        "SELECT reltuples FROM pg_catalog.pg_class WHERE oid = $1",
        &[relid.into()],
    )?
    .unwrap_or(0.0);
    let started = std::time::Instant::now();
    let announce = !has_index && rows >= PROGRESS_ROWS;
    if announce {
        pgrx::notice!(
            "tenant.isolate: {name}: building the index on {} (about {rows:.0} rows); \
             CREATE INDEX CONCURRENTLY on it beforehand keeps the table writable meanwhile",
            ddl::quote_ident(column)
        );
    }
    run_ddl(&ddl::isolate_statements(&target, !has_index), distributed)?;
    if announce {
        pgrx::notice!(
            "tenant.isolate: {name}: done in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let created_index = if has_index {
        None
    } else {
        // kept as its quoted, qualified name: a regclass would not survive pg_dump, which
        // loads this table's rows before it creates the index
        Spi::get_one_with_args::<String>(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_index i \
             JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE i.indrelid = $1 AND i.indkey[0] = $2 ORDER BY i.indexrelid DESC LIMIT 1",
            &[relid.into(), col.attnum.into()],
        )?
    };
    // the role that ran isolate (after SET ROLE: current_user, not session_user)
    let by = crate::pg::owner::role_name(crate::pg::owner::acting_role());
    as_owner(|| {
        Spi::run_with_args(
            "INSERT INTO tenant.isolated_tables \
               (relid, tenant_column, created_index, previous_default, rls_was_enabled, rls_was_forced, isolated_by) \
             VALUES ($1::regclass, $2, $3, $4, $5, $6, coalesce($7::name, session_user))",
            &[
                relid.into(),
                column.into(),
                created_index.into(),
                col.default.clone().into(),
                info.rls_enabled.into(),
                info.rls_forced.into(),
                by.into(),
            ],
        )?;
        Ok(())
    })
}

/// Reverse `isolate` on `relid` and every isolated table below it. A partition or child of
/// a table that stays isolated cannot be opened on its own.
pub(crate) fn unisolate_tree(relid: pg_sys::Oid) -> MtResult<bool> {
    let _busy = Busy::start();
    let info = check_table(relid, "unisolate")?;
    if let Some((parent, _)) = isolated_ancestor(relid)? {
        let parent = read_one::<String>(
            "SELECT $1::pg_catalog.regclass::pg_catalog.text",
            &[parent.into()],
        )?
        .unwrap_or_default();
        return Err(MtError::invalid(format!(
            "{} inherits its isolation from {parent}",
            ddl::qualified(&info.schema, &info.table),
        ))
        .hint("Detach it first, or unisolate the parent table."));
    }
    let mut tree = vec![relid];
    tree.extend(descendants(relid)?);
    for &member in &tree {
        check_table(member, "unisolate")?;
    }
    let citus = citus::installed()?;
    let mut any = false;
    for member in tree {
        any |= unisolate_one(member, citus)?;
    }
    Ok(any)
}

fn unisolate_one(relid: pg_sys::Oid, citus: bool) -> MtResult<bool> {
    let info = check_table(relid, "unisolate")?;
    let Some(rec) = record(relid)? else {
        return Ok(false);
    };
    let target = Target {
        schema: &info.schema,
        table: &info.table,
        column: &rec.column,
        legacy_schema: false,
        citus,
        protect: None,
    };
    let prev = Previous {
        rls_enabled: rec.rls_enabled,
        rls_forced: rec.rls_forced,
        column_default: rec.previous_default.as_deref(),
        created_index: rec.created_index.as_deref(),
    };
    run_ddl(
        &ddl::unisolate_statements(&target, &prev),
        citus && citus::is_distributed_table(relid)?,
    )?;
    as_owner(|| {
        Spi::run_with_args(
            "DELETE FROM tenant.isolated_tables WHERE relid = $1::regclass",
            &[relid.into()],
        )?;
        Ok(())
    })?;
    Ok(true)
}

/// `tenant.isolate(tbl, tenant_column)`: RLS, policies, default and index on `tbl` and on
/// every partition and inheritance child (later ones too, through the DDL event hook).
/// Runs as the caller, who must own every table involved.
#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION tenant.isolate(tbl regclass, tenant_column text DEFAULT 'tenant_id') \
           RETURNS void VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn isolate(tbl: pg_sys::Oid, tenant_column: &str) {
    boundary(|| pinned(|| isolate_tree(tbl, tenant_column)))
}

/// `tenant.unisolate(tbl)`: reverse `isolate` on `tbl` and everything below it.
#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION tenant.unisolate(tbl regclass) \
           RETURNS boolean VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn unisolate(tbl: pg_sys::Oid) -> bool {
    boundary(|| pinned(|| unisolate_tree(tbl)))
}

/// The DDL event hook (`ddl_command_end` on CREATE TABLE / ALTER TABLE): a table created as
/// or attached as a partition or inheritance child of an isolated table is isolated too, in
/// the same transaction, as the role that ran the DDL (who owns both tables). If that fails,
/// the DDL fails: a child is never left open.
fn on_ddl_impl() -> MtResult<()> {
    if BUSY.with(|b| b.get()) {
        return Ok(());
    }
    let created = read_oids(
        "SELECT DISTINCT objid FROM pg_catalog.pg_event_trigger_ddl_commands() \
         WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND object_type = 'table'",
        &[],
    )?;
    for relid in created {
        match record(relid)? {
            // ALTER TABLE ... ATTACH PARTITION reports the parent: cover what is below it
            Some(rec) => {
                for child in descendants(relid)? {
                    if record(child)?.is_none() {
                        isolate_tree(child, &rec.column)?;
                    }
                }
            }
            None => {
                if let Some((_, column)) = isolated_ancestor(relid)? {
                    isolate_tree(relid, &column)?;
                }
            }
        }
    }
    Ok(())
}

#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION tenant_internal._on_ddl() RETURNS event_trigger \
           LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn _on_ddl() {
    boundary(|| pinned(on_ddl_impl))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::api::test_support::{fixture, one, run};
    use pgrx::prelude::*;

    #[pg_test]
    fn isolation_as_plain_role() {
        fixture();
        run("SET ROLE mt_t_app");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM public.notes"),
            Some(0),
            "no context, no rows"
        );
        run("SELECT tenant.set_context('acme')");
        assert_eq!(
            one::<String>("SELECT string_agg(body, ',') FROM public.notes"),
            Some("acme note".into())
        );
        assert_eq!(one::<i64>("WITH d AS (UPDATE public.notes SET body = 'x' WHERE body = 'globex note' RETURNING 1) SELECT count(*) FROM d"), Some(0));
        assert_eq!(one::<i64>("WITH d AS (DELETE FROM public.notes WHERE body = 'globex note' RETURNING 1) SELECT count(*) FROM d"), Some(0));
        run("SELECT tenant.set_context('globex')");
        assert_eq!(
            one::<String>("SELECT string_agg(body, ',') FROM public.notes"),
            Some("globex note".into())
        );
    }

    #[pg_test(
        error = "new row violates row-level security policy \"tenant_isolation\" for table \"notes\""
    )]
    fn cannot_insert_into_other_tenant() {
        fixture();
        let globex =
            one::<pgrx::Uuid>("SELECT id FROM tenant.tenants WHERE slug = 'globex'").unwrap();
        run("SET ROLE mt_t_app");
        run("SELECT tenant.set_context('acme')");
        run(&format!(
            "INSERT INTO public.notes (tenant_id, body) VALUES ('{globex}', 'sneaky')"
        ));
    }

    #[pg_test(error = "no tenant context")]
    fn insert_without_context_fails() {
        fixture();
        run("SET ROLE mt_t_app");
        run("INSERT INTO public.notes (body) VALUES ('orphan')");
    }

    #[pg_test(error = "column \"body\" of \"public\".\"notes\" must be of type uuid")]
    fn isolate_rejects_wrong_type() {
        run("CREATE TABLE public.notes (id bigserial PRIMARY KEY, tenant_id uuid, body text)");
        run("SELECT tenant.isolate('public.notes', 'body')");
    }

    #[pg_test(error = "column \"missing\" of \"public\".\"notes\" does not exist")]
    fn isolate_rejects_missing_column() {
        run("CREATE TABLE public.notes (id bigserial PRIMARY KEY, tenant_id uuid, body text)");
        run("SELECT tenant.isolate('public.notes', 'missing')");
    }

    #[pg_test]
    fn isolate_is_idempotent_and_reversible() {
        run("CREATE TABLE public.notes (id bigserial PRIMARY KEY, tenant_id uuid, body text)");
        run("SELECT tenant.isolate('public.notes')");
        run("SELECT tenant.isolate('public.notes')");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM pg_policies WHERE tablename = 'notes'"),
            Some(4)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM pg_indexes WHERE tablename = 'notes'"),
            Some(2)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM tenant.isolated_tables"),
            Some(1)
        );
        assert_eq!(
            one::<bool>(
                "SELECT relforcerowsecurity FROM pg_class WHERE oid = 'public.notes'::regclass"
            ),
            Some(true)
        );
        assert_eq!(
            one::<bool>("SELECT tenant.unisolate('public.notes')"),
            Some(true)
        );
        assert_eq!(
            one::<bool>("SELECT tenant.unisolate('public.notes')"),
            Some(false)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM pg_policies WHERE tablename = 'notes'"),
            Some(0)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM pg_indexes WHERE tablename = 'notes'"),
            Some(1)
        );
        assert_eq!(
            one::<bool>("SELECT relrowsecurity FROM pg_class WHERE oid = 'public.notes'::regclass"),
            Some(false)
        );
        assert_eq!(one::<String>("SELECT column_default FROM information_schema.columns WHERE table_name = 'notes' AND column_name = 'tenant_id'"), None);
    }

    #[pg_test]
    fn explain_uses_index_and_evaluates_context_once() {
        run("CREATE ROLE mt_t_app NOSUPERUSER");
        run("GRANT tenant_service TO mt_t_app");
        run("CREATE TABLE public.events (id bigint PRIMARY KEY, tenant_id uuid NOT NULL, payload text)");
        run("SELECT tenant.isolate('public.events')");
        run("CREATE TEMP TABLE ids AS SELECT tenant.create('t' || g, 'T' || g) AS id, g FROM generate_series(1, 100) g");
        run("INSERT INTO public.events SELECT n, (SELECT id FROM ids WHERE g = 1 + n % 100), 'p' || n FROM generate_series(1, 100000) n");
        run("ANALYZE public.events");
        run("GRANT SELECT ON public.events TO mt_t_app");
        run("SET ROLE mt_t_app");
        run("SELECT tenant.set_context('t7')");
        for q in [
            "SELECT * FROM public.events WHERE id = 4242",
            "SELECT count(*) FROM public.events",
        ] {
            let plan: Vec<String> = Spi::connect(|c| {
                c.select(&format!("EXPLAIN (COSTS OFF) {q}"), None, &[])
                    .unwrap()
                    .map(|r| r.get::<String>(1).unwrap().unwrap())
                    .collect()
            });
            let text = plan.join("\n");
            assert!(text.contains("Index"), "{q}: no index scan:\n{text}");
            assert!(
                text.contains("InitPlan"),
                "{q}: context not an InitPlan:\n{text}"
            );
            for line in &plan {
                if line.contains("Filter") || line.contains("Cond") {
                    assert!(
                        !line.contains("current_tenant"),
                        "{q}: per-row call in {line}\n{text}"
                    );
                }
            }
        }
        assert_eq!(one::<i64>("SELECT count(*) FROM public.events"), Some(1000));
    }
}
