-- multitenant 0.1.0 -> 0.2.0: closed to hostile roles (issue 9).
-- Released upgrade scripts are never edited; every later change goes into the next one.
\echo Use "ALTER EXTENSION multitenant UPDATE TO '0.2.0'" to load this file. \quit

-- Reads every audit entry of the tenant of its context.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'tenant_auditor') THEN
        CREATE ROLE tenant_auditor NOLOGIN;
    END IF;
END
$roles$;

-- Functions nobody calls by name move out of the user-facing schema.
CREATE SCHEMA tenant_internal;
REVOKE ALL ON SCHEMA tenant_internal FROM PUBLIC;
COMMENT ON SCHEMA tenant_internal IS 'multitenant internals: not an API.';
ALTER FUNCTION tenant._audit_content(uuid, text, text, text, text, text, timestamptz, bigint, text, text, text)
    SET SCHEMA tenant_internal;
ALTER FUNCTION tenant._audit_trigger() SET SCHEMA tenant_internal;
ALTER FUNCTION tenant._audit_guard() SET SCHEMA tenant_internal;
ALTER FUNCTION tenant._invalidate(oid) SET SCHEMA tenant_internal;
ALTER FUNCTION tenant._tables_changed() SET SCHEMA tenant_internal;
ALTER FUNCTION tenant._limit_rows_trigger() SET SCHEMA tenant_internal;
CREATE OR REPLACE FUNCTION tenant_internal._tables_changed() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$ BEGIN PERFORM tenant_internal._invalidate(TG_RELID); RETURN NULL; END $$;

-- The hash formula, the chain-name rule and the tenant resolver, each in one place (Rust),
-- for the extension's SQL.
CREATE FUNCTION tenant_internal._audit_link(prev bytea, seq bigint, content bytea) RETURNS bytea
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', '_audit_link_wrapper';
CREATE FUNCTION tenant_internal._chain_tenant(chain text) RETURNS text
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', '_chain_tenant_wrapper';
CREATE FUNCTION tenant_internal._tenant_id(tenant text) RETURNS uuid
    STABLE STRICT PARALLEL RESTRICTED LANGUAGE c AS 'MODULE_PATHNAME', '_tenant_id_wrapper';
CREATE OR REPLACE FUNCTION tenant.invoice(tenant text, period_start date DEFAULT date_trunc('month', now())::date)
RETURNS TABLE (line text, quantity bigint, unit_price numeric, amount numeric, currency text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
AS $$
DECLARE
    t tenant.tenants;
BEGIN
    IF NOT (pg_has_role('tenant_service', 'USAGE') OR pg_has_role('tenant_admin', 'USAGE')) THEN
        RAISE EXCEPTION USING ERRCODE = 'MT020', MESSAGE = 'permission denied to read invoices',
            HINT = 'Grant tenant_service or tenant_admin to the calling role.';
    END IF;
    -- the one tenant resolver (MT002 when there is none)
    SELECT * INTO t FROM tenant.tenants tt WHERE tt.id = tenant_internal._tenant_id(invoice.tenant);
    IF period_start <> date_trunc('month', period_start)::date THEN
        RAISE EXCEPTION USING ERRCODE = 'MT030', MESSAGE = 'period_start must be the first day of a month';
    END IF;
    RETURN QUERY
    SELECT format('plan %s (%s)', p.name, to_char(period_start, 'YYYY-MM')), 1::bigint, p.price, p.price, p.currency
    FROM tenant.plans p WHERE p.name = t.plan;
    RETURN QUERY
    WITH lim AS (
        SELECT l.resource, l.limit_value, l.overage_price FROM tenant.plan_limits l
        WHERE l.plan = t.plan AND l.period = 'month'
          AND NOT EXISTS (SELECT 1 FROM tenant.tenant_limits o WHERE o.tenant_id = t.id AND o.resource = l.resource)
        UNION ALL
        SELECT o.resource, o.limit_value, o.overage_price FROM tenant.tenant_limits o
        WHERE o.tenant_id = t.id AND o.period = 'month'
    )
    SELECT format('overage %s: %s above %s', lim.resource, c.used - lim.limit_value, lim.limit_value),
           c.used - lim.limit_value, lim.overage_price,
           least(round((c.used - lim.limit_value) * lim.overage_price, 2), 999999999999.99),
           coalesce((SELECT p.currency FROM tenant.plans p WHERE p.name = t.plan), 'USD')
    FROM lim
    JOIN tenant.usage_counters c
      ON c.tenant_id = t.id AND c.resource = lim.resource AND c.key = '' AND c.window_start = period_start::timestamptz
    WHERE lim.overage_price IS NOT NULL AND lim.limit_value >= 0 AND c.used > lim.limit_value
    ORDER BY 1;
END
$$;

-- Identity sequences travel with pg_dump like their tables.
SELECT pg_catalog.pg_extension_config_dump('tenant.audit_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.permissions_id_seq', '');

-- The registration functions become C functions taking regclass (no SQL wrappers, no
-- internal twins granted to PUBLIC); tenant column arguments are text.
DROP FUNCTION tenant.isolate(regclass, name);
DROP FUNCTION tenant.unisolate(regclass);
DROP FUNCTION tenant.limit_rows(regclass, text, name);
DROP FUNCTION tenant.unlimit_rows(regclass);
DROP FUNCTION tenant.audit(regclass, text[], boolean);
DROP FUNCTION tenant.unaudit(regclass);
DROP FUNCTION tenant.protect(regclass, text, name);
DROP FUNCTION tenant._isolate(oid, text);
DROP FUNCTION tenant._unisolate(oid);
DROP FUNCTION tenant._limit_rows(oid, text, text);
DROP FUNCTION tenant._unlimit_rows(oid);
DROP FUNCTION tenant._audit(oid, text[], boolean);
DROP FUNCTION tenant._unaudit(oid);
DROP FUNCTION tenant._protect(oid, text, text);

CREATE FUNCTION tenant.isolate(tbl regclass, tenant_column text DEFAULT 'tenant_id')
    RETURNS void VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'isolate_wrapper';
CREATE FUNCTION tenant.unisolate(tbl regclass)
    RETURNS boolean VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'unisolate_wrapper';
CREATE FUNCTION tenant.limit_rows(tbl regclass, resource text, tenant_column text DEFAULT 'tenant_id')
    RETURNS void VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'limit_rows_wrapper';
CREATE FUNCTION tenant.unlimit_rows(tbl regclass)
    RETURNS boolean VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'unlimit_rows_wrapper';
CREATE FUNCTION tenant.audit(tbl regclass, ignore_columns text[] DEFAULT '{}', changed_only boolean DEFAULT false)
    RETURNS void VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'audit_wrapper';
CREATE FUNCTION tenant.unaudit(tbl regclass)
    RETURNS boolean VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'unaudit_wrapper';
CREATE FUNCTION tenant.protect(tbl regclass, resource text, owner_column text DEFAULT NULL, columns jsonb DEFAULT NULL)
    RETURNS void VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'protect_wrapper';

-- The row-count trigger: Rust, no arguments (reads tenant.row_limits), not SECURITY DEFINER
-- (0.1.0's PL/pgSQL one ran to_jsonb(NEW) as the extension owner). Replaced in place, so
-- the triggers already attached keep working; their old arguments are ignored.
CREATE OR REPLACE FUNCTION tenant_internal._limit_rows_trigger() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', '_limit_rows_trigger_wrapper';
DROP FUNCTION tenant._count_row(uuid, text, integer);

-- Context functions run in the leader of a parallel plan.
ALTER FUNCTION tenant.current_tenant() PARALLEL RESTRICTED;
ALTER FUNCTION tenant.require_tenant() PARALLEL RESTRICTED;
ALTER FUNCTION tenant.current_user_id() PARALLEL RESTRICTED;
ALTER FUNCTION tenant.context_status() PARALLEL RESTRICTED;
ALTER FUNCTION tenant.current_claims() PARALLEL RESTRICTED;
ALTER FUNCTION tenant.current_roles() PARALLEL RESTRICTED;
ALTER FUNCTION tenant.has_feature(text) PARALLEL RESTRICTED;
ALTER FUNCTION tenant.require_feature(text) PARALLEL RESTRICTED;
ALTER FUNCTION tenant."check"(text, bigint) PARALLEL RESTRICTED;
ALTER FUNCTION tenant.can(text, text, jsonb) PARALLEL RESTRICTED;
ALTER FUNCTION tenant.authorize(text, text, jsonb) PARALLEL RESTRICTED;

-- The DDL hook that isolates partitions and children created or attached later.
CREATE FUNCTION tenant_internal._on_ddl() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', '_on_ddl_wrapper';
CREATE EVENT TRIGGER multitenant_isolate_children ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
    EXECUTE FUNCTION tenant_internal._on_ddl();

CREATE FUNCTION tenant_internal._allow() RETURNS boolean
LANGUAGE sql IMMUTABLE LEAKPROOF PARALLEL SAFE
AS $$ SELECT true $$;
COMMENT ON FUNCTION tenant_internal._allow() IS
    'Internal: the permissive isolation policy (always true; exists so the policy depends on the extension).';

-- tenant.check_isolation(): a read-only linter for the holes that row level security does not
-- close by itself. One row per finding, most severe first; `fix` is SQL to paste (identifiers
-- always quoted with %I / quote_ident / regprocedure output), or a `--` comment when the fix
-- needs a decision a script cannot make. Documented in docs/check_isolation.md.
--
-- SECURITY INVOKER on purpose: it reads only what any role can read (pg_catalog,
-- tenant.isolated_tables), so it reports the same thing whoever calls it and grants nothing.
-- Severities: critical = rows of other tenants can be read, changed or destroyed now;
-- high = they can under a common condition (a privileged owner, a direct grant, a refresh);
-- warning = defence in depth, or a leak of little value.
CREATE FUNCTION tenant.check_isolation()
RETURNS TABLE (severity text, kind text, object text, problem text, fix text)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $check$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH RECURSIVE
    -- registered tables that still exist, with their tenant column
    reg AS (
        SELECT c.oid AS relid, it.tenant_column AS tcol, a.attnum AS tatt, n.nspname, c.relname,
               c.relowner, c.relrowsecurity AS rls, c.relforcerowsecurity AS forced, c.relacl,
               pg_catalog.format('%I.%I', n.nspname, c.relname) AS qname
        FROM tenant.isolated_tables it
        JOIN pg_catalog.pg_class c ON c.oid = it.relid::pg_catalog.oid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_catalog.pg_attribute a
               ON a.attrelid = c.oid AND a.attname = it.tenant_column AND NOT a.attisdropped
    ),
    -- roles whose queries skip row level security entirely
    bypass AS (
        SELECT r.oid, r.rolname, r.rolsuper, r.rolcanlogin
        FROM pg_catalog.pg_roles r WHERE r.rolsuper OR r.rolbypassrls
    ),
    -- partitions and inheritance children of registered tables, at any depth
    tree AS (
        SELECT r.relid AS root, i.inhrelid AS child, 1 AS depth
        FROM reg r JOIN pg_catalog.pg_inherits i ON i.inhparent = r.relid
        UNION ALL
        SELECT t.root, i.inhrelid, t.depth + 1
        FROM tree t JOIN pg_catalog.pg_inherits i ON i.inhparent = t.child
    ),
    -- each child once, under its nearest registered ancestor; registered children are
    -- checked as registered tables (rls_not_forced)
    kids AS (
        SELECT DISTINCT ON (t.child) t.child, t.root
        FROM tree t
        WHERE NOT EXISTS (SELECT 1 FROM reg r WHERE r.relid = t.child)
        ORDER BY t.child, t.depth
    ),
    -- views and materialized views reading a registered table, directly or through other
    -- views (`direct`: the view's own query names the table)
    viewdep AS (
        SELECT rw.ev_class AS view_oid, r.relid, true AS direct
        FROM reg r
        JOIN pg_catalog.pg_depend d
          ON d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = r.relid
         AND d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
        JOIN pg_catalog.pg_rewrite rw ON rw.oid = d.objid
        WHERE rw.ev_class <> r.relid
        UNION
        SELECT rw.ev_class, v.relid, false
        FROM viewdep v
        JOIN pg_catalog.pg_depend d
          ON d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = v.view_oid
         AND d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
        JOIN pg_catalog.pg_rewrite rw ON rw.oid = d.objid
        WHERE rw.ev_class <> v.view_oid
    ),
    findings (sev, knd, obj, prob, fx) AS (
        ------------------------------------------------------------------ not_isolated
        -- a uuid column tenant_id in an ordinary or partitioned, non-temporary table outside
        -- the system and extension schemas, without a registry row. Children of registered
        -- tables are reported as partition_without_rls instead.
        SELECT 'critical', 'not_isolated', pg_catalog.format('%I.%I', n.nspname, c.relname),
               pg_catalog.format('%I.%I has a uuid column "tenant_id" but is not isolated: '
                                 'every role with privileges on it reads and writes the rows of every tenant',
                                 n.nspname, c.relname),
               pg_catalog.format('SELECT tenant.isolate(%L);', pg_catalog.format('%I.%I', n.nspname, c.relname))
        FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_catalog.pg_attribute a
          ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
         AND a.atttypid = 'pg_catalog.uuid'::pg_catalog.regtype
        WHERE c.relkind IN ('r', 'p')
          AND c.relpersistence <> 't'
          AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tenant', 'tenant_internal', 'pg_toast')
          AND n.nspname !~ '^pg_(toast_)?temp_'
          AND NOT EXISTS (SELECT 1 FROM tenant.isolated_tables it WHERE it.relid::pg_catalog.oid = c.oid)
          AND NOT EXISTS (SELECT 1 FROM kids k WHERE k.child = c.oid)

        UNION ALL ------------------------------------------------------ rls_not_forced
        -- RLS off, not forced, or the tenant_isolation policy missing or no longer the
        -- restrictive FOR ALL policy isolate() creates (compared without whitespace and
        -- without the " AS current_tenant" alias pg_get_expr adds). In a database with
        -- Citus, the shape isolate() writes there instead (docs/citus.md): one permissive
        -- policy per command testing the tenant, and no other permissive policy (it would
        -- be ORed with them); the one-node shape there opens the shards once distributed.
        SELECT CASE WHEN r.rls AND pol.ok THEN 'high' ELSE 'critical' END,
               'rls_not_forced', r.qname,
               CASE WHEN NOT r.rls THEN
                        pg_catalog.format('row level security is disabled on %s: every role with privileges on it sees every tenant''s rows', r.qname)
                    WHEN pol.citus AND pol.one_node THEN
                        pg_catalog.format('%s has the one-node policy shape in a database with Citus: Citus copies restrictive policies to the shards as permissive, so its shards show every tenant''s rows once it is distributed', r.qname)
                    WHEN pol.citus AND NOT pol.ok THEN
                        pg_catalog.format('the isolation policies on %s are missing or were changed, or another permissive policy is ORed with them: rows are no longer filtered by tenant on the shards', r.qname)
                    WHEN NOT pol.ok THEN
                        pg_catalog.format('the policy "tenant_isolation" on %s is missing or was changed: rows are no longer filtered by tenant', r.qname)
                    ELSE
                        pg_catalog.format('row level security is not forced on %s: its owner (and any role that is a member of the owner) sees every tenant''s rows', r.qname)
               END,
               CASE WHEN r.rls AND pol.citus AND pol.extra IS NOT NULL
                    THEN pg_catalog.format('-- isolate() does not drop policies it did not write: drop %s on %s, or add "%I = tenant.current_tenant()" to it',
                                           pol.extra, r.qname, r.tcol)
                    WHEN r.tcol = 'tenant_id'
                    THEN pg_catalog.format('SELECT tenant.isolate(%L);', r.qname)
                    ELSE pg_catalog.format('SELECT tenant.isolate(%L, %L);', r.qname, r.tcol)
               END
        FROM reg r
        CROSS JOIN LATERAL (
            SELECT EXISTS (
                SELECT 1 FROM pg_catalog.pg_policy p
                WHERE p.polrelid = r.relid AND p.polname = 'tenant_isolation'
                  AND NOT p.polpermissive AND p.polcmd = '*'
                  AND pg_catalog.regexp_replace(pg_catalog.regexp_replace(
                          pg_catalog.pg_get_expr(p.polqual, p.polrelid), '[[:space:]]+AS[[:space:]]+current_tenant', '', 'g'), '[[:space:]]', '', 'g')
                      = pg_catalog.regexp_replace(pg_catalog.format('(%I = (SELECT tenant.current_tenant()))', r.tcol), '[[:space:]]', '', 'g')
                  AND pg_catalog.regexp_replace(pg_catalog.regexp_replace(
                          pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid), '[[:space:]]+AS[[:space:]]+require_tenant', '', 'g'), '[[:space:]]', '', 'g')
                      = pg_catalog.regexp_replace(pg_catalog.format('(%I = (SELECT tenant.require_tenant()))', r.tcol), '[[:space:]]', '', 'g')
            ) AS one_node,
            -- the Citus shape: each command's policy compares the column with the context
            (SELECT pg_catalog.count(*) = 4 FROM pg_catalog.pg_policy p
             WHERE p.polrelid = r.relid AND p.polpermissive
               AND (p.polname, p.polcmd) IN (('tenant_isolation', 'r'), ('tenant_isolation_insert', 'a'),
                                             ('tenant_isolation_update', 'w'), ('tenant_isolation_delete', 'd'))
               -- the tenant test alone, or first in an AND (protect's checks folded in)
               AND (p.polqual IS NULL OR EXISTS (
                    SELECT 1 FROM (VALUES (pg_catalog.regexp_replace(pg_catalog.format('(%I = tenant.current_tenant())', r.tcol), '[[:space:]]', '', 'g')),
                                          (pg_catalog.regexp_replace(pg_catalog.format('(%I = tenant.require_tenant())', r.tcol), '[[:space:]]', '', 'g'))) t(e),
                         LATERAL (SELECT pg_catalog.regexp_replace(pg_catalog.pg_get_expr(p.polqual, p.polrelid), '[[:space:]]', '', 'g') AS q) x
                    WHERE x.q = t.e OR pg_catalog.starts_with(x.q, '(' || t.e || 'AND')))
               AND (p.polwithcheck IS NULL OR EXISTS (
                    SELECT 1 FROM (VALUES (pg_catalog.regexp_replace(pg_catalog.format('(%I = tenant.require_tenant())', r.tcol), '[[:space:]]', '', 'g'))) t(e),
                         LATERAL (SELECT pg_catalog.regexp_replace(pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid), '[[:space:]]', '', 'g') AS q) x
                    WHERE x.q = t.e OR pg_catalog.starts_with(x.q, '(' || t.e || 'AND')))
               AND (p.polcmd = 'a' OR p.polqual IS NOT NULL))
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy p
                            WHERE p.polrelid = r.relid AND p.polpermissive
                              AND p.polname NOT IN ('tenant_isolation', 'tenant_isolation_insert',
                                                    'tenant_isolation_update', 'tenant_isolation_delete'))
            AS citus_shape,
            EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus') AS citus
        ) pol0
        CROSS JOIN LATERAL (
            SELECT pol0.citus, pol0.one_node,
                   CASE WHEN pol0.citus THEN pol0.citus_shape ELSE pol0.one_node END AS ok,
                   -- (Citus) the permissive policies isolate() did not write, by name
                   (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(p.polname), ', ' ORDER BY p.polname)
                    FROM pg_catalog.pg_policy p
                    WHERE p.polrelid = r.relid AND p.polpermissive
                      AND p.polname NOT IN ('tenant_isolation', 'tenant_isolation_insert',
                                            'tenant_isolation_update', 'tenant_isolation_delete')) AS extra
        ) pol
        WHERE NOT (r.rls AND r.forced AND pol.ok)

        UNION ALL ----------------------------------------------- partition_without_rls
        -- a partition or inheritance child is a table of its own: queried directly, only its
        -- own RLS settings and policies apply, not its parent's.
        SELECT 'high', 'partition_without_rls', pg_catalog.format('%I.%I', n.nspname, c.relname),
               pg_catalog.format('%I.%I is a %s under the isolated table %s but %s: queried directly, it shows every tenant''s rows to roles with privileges on it',
                                 n.nspname, c.relname,
                                 CASE WHEN c.relispartition THEN 'partition' ELSE 'child table' END, r.qname,
                                 CASE WHEN NOT c.relrowsecurity THEN 'has row level security disabled'
                                      WHEN NOT c.relforcerowsecurity THEN 'does not force row level security'
                                      ELSE 'has no "tenant_isolation" policy' END),
               CASE WHEN r.tcol = 'tenant_id'
                    THEN pg_catalog.format('SELECT tenant.isolate(%L);', pg_catalog.format('%I.%I', n.nspname, c.relname))
                    ELSE pg_catalog.format('SELECT tenant.isolate(%L, %L);', pg_catalog.format('%I.%I', n.nspname, c.relname), r.tcol)
               END
        FROM kids k
        JOIN reg r ON r.relid = k.root
        JOIN pg_catalog.pg_class c ON c.oid = k.child
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p')
          AND (NOT c.relrowsecurity OR NOT c.relforcerowsecurity
               OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy p
                              WHERE p.polrelid = c.oid AND p.polname = 'tenant_isolation'))

        UNION ALL ----------------------------------------------------- privileged_role
        -- superusers (that can log in) and BYPASSRLS roles skip every policy; the role that
        -- owns the extension is expected to be one and is not reported.
        SELECT CASE WHEN b.rolsuper THEN 'warning' ELSE 'high' END,
               'privileged_role', pg_catalog.quote_ident(b.rolname),
               CASE WHEN b.rolsuper THEN
                        pg_catalog.format('%I is a superuser that can log in: superusers bypass row level security and see every tenant''s rows of %s',
                                          b.rolname, pg_catalog.string_agg(r.qname, ', ' ORDER BY r.qname))
                    ELSE
                        pg_catalog.format('%I has BYPASSRLS and privileges on %s: row level security does not apply to it, it reaches every tenant''s rows',
                                          b.rolname, pg_catalog.string_agg(r.qname, ', ' ORDER BY r.qname))
               END,
               CASE WHEN b.rolsuper THEN '-- connect applications as a non-superuser role'
                    ELSE pg_catalog.format('ALTER ROLE %I NOBYPASSRLS;', b.rolname)
               END
        FROM bypass b
        JOIN reg r ON pg_catalog.has_table_privilege(b.oid, r.relid, 'SELECT,INSERT,UPDATE,DELETE')
        WHERE (b.rolcanlogin OR NOT b.rolsuper)
          AND b.oid NOT IN (SELECT e.extowner FROM pg_catalog.pg_extension e WHERE e.extname = 'multitenant')
        GROUP BY b.oid, b.rolname, b.rolsuper

        UNION ALL --------------------------------------- view_without_security_invoker
        -- a view reads the tables its own query names with its owner's rights unless
        -- security_invoker is set: critical when that owner skips RLS (superuser, BYPASSRLS,
        -- or the owner of a table that does not force RLS), otherwise a warning (RLS still
        -- filters by the tenant context, but the reader's own privileges on the table are
        -- never checked). Only direct references count for views: the tables under a
        -- security_invoker view are checked as the querying user even when a definer view
        -- reads it, and a definer view under it is reported on its own. Materialized views
        -- store rows computed at refresh time (directly or through any views) and never apply
        -- their readers' RLS.
        SELECT CASE WHEN c.relkind = 'm' THEN 'high'
                    WHEN pg_catalog.bool_or(o.oid IS NOT NULL OR (c.relowner = r.relowner AND NOT r.forced)) THEN 'critical'
                    ELSE 'warning' END,
               'view_without_security_invoker', pg_catalog.format('%I.%I', n.nspname, c.relname),
               CASE WHEN c.relkind = 'm' THEN
                        pg_catalog.format('materialized view %I.%I stores rows of %s: its readers'' row level security is never applied',
                                          n.nspname, c.relname, pg_catalog.string_agg(r.qname, ', ' ORDER BY r.qname))
                    ELSE
                        pg_catalog.format('view %I.%I reads %s with the rights of its owner %I, not of its reader (security_invoker is not set)%s',
                                          n.nspname, c.relname, pg_catalog.string_agg(r.qname, ', ' ORDER BY r.qname),
                                          pg_catalog.pg_get_userbyid(c.relowner),
                                          CASE WHEN pg_catalog.bool_or(o.oid IS NOT NULL OR (c.relowner = r.relowner AND NOT r.forced))
                                               THEN ': that owner bypasses row level security, so the view shows every tenant''s rows'
                                               ELSE '' END)
               END,
               CASE WHEN c.relkind = 'm'
                    THEN '-- materialized views ignore RLS of their readers; drop it or refresh per tenant'
                    ELSE pg_catalog.format('ALTER VIEW %I.%I SET (security_invoker = true);', n.nspname, c.relname)
               END
        FROM (SELECT v.view_oid, v.relid, pg_catalog.bool_or(v.direct) AS direct
              FROM viewdep v GROUP BY v.view_oid, v.relid) vd
        JOIN reg r ON r.relid = vd.relid
        JOIN pg_catalog.pg_class c ON c.oid = vd.view_oid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN bypass o ON o.oid = c.relowner
        WHERE (c.relkind = 'm'
               OR (c.relkind = 'v' AND vd.direct AND NOT EXISTS (
                      SELECT 1 FROM pg_catalog.pg_options_to_table(c.reloptions) opt
                      WHERE opt.option_name = 'security_invoker' AND opt.option_value::pg_catalog.bool)))
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        GROUP BY c.oid, c.relkind, c.relname, c.relowner, n.nspname

        UNION ALL ------------------------------------------- security_definer_function
        -- a SECURITY DEFINER function owned by a role that skips RLS or owns the table, whose
        -- source names a registered table (a case-insensitive text match, or a recorded
        -- dependency for BEGIN ATOMIC bodies). The match is textual: the table name as a whole
        -- word, case-insensitive, anywhere in the source (comments and strings included).
        -- high when the owner skips RLS on that table.
        SELECT CASE WHEN pg_catalog.bool_or(o.oid IS NOT NULL OR NOT r.forced) THEN 'high' ELSE 'warning' END,
               'security_definer_function', p.oid::pg_catalog.regprocedure::pg_catalog.text,
               pg_catalog.format('%s is SECURITY DEFINER, owned by %I%s, and uses %s: it runs with its owner''s rights for every caller',
                                 p.oid::pg_catalog.regprocedure, pg_catalog.pg_get_userbyid(p.proowner),
                                 CASE WHEN pg_catalog.bool_or(o.oid IS NOT NULL OR NOT r.forced)
                                      THEN ' who bypasses row level security there' ELSE ' (the table owner)' END,
                                 pg_catalog.string_agg(r.qname, ', ' ORDER BY r.qname)),
               pg_catalog.format('ALTER %s %s SECURITY INVOKER;',
                                 CASE WHEN p.prokind = 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
                                 p.oid::pg_catalog.regprocedure)
        FROM pg_catalog.pg_proc p
        JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
        LEFT JOIN bypass o ON o.oid = p.proowner
        JOIN reg r ON (o.oid IS NOT NULL OR p.proowner = r.relowner)
                  AND (p.prosrc ~* ('(^|[^[:alnum:]_$])'
                                    || pg_catalog.regexp_replace(r.relname, '([^[:alnum:]_ ])', E'\\\\\\1', 'g')
                                    || '($|[^[:alnum:]_$])')
                       OR EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                  WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid
                                    AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                    AND d.refobjid = r.relid))
        WHERE p.prosecdef
          AND pn.nspname NOT IN ('tenant', 'tenant_internal', 'pg_catalog', 'information_schema')
        GROUP BY p.oid, p.proowner, p.prokind

        UNION ALL -------------------------------------------------- fk_without_tenant
        -- a foreign key between registered tables must pair the child's tenant column with
        -- the parent's: otherwise a row can point at (and, with 23503/23505, probe) another
        -- tenant's row, and ON DELETE CASCADE / SET NULL reach across tenants.
        SELECT 'critical', 'fk_without_tenant',
               pg_catalog.format('%s.%I', ch.qname, k.conname),
               pg_catalog.format('foreign key %I on %s references %s without the tenant column on both sides: '
                                 'a row can reference another tenant''s row, and cascades cross tenants',
                                 k.conname, ch.qname, pa.qname),
               -- row_security = off: the new key's check of the existing rows must see every
               -- tenant's rows. Run by the table owner, a forced policy would hide them and the
               -- check would pass without looking; with row_security off it fails instead
               -- (42501), so the fix is to be run by a role that bypasses RLS.
               'SET row_security = off; '
               || CASE WHEN uq.present THEN '' ELSE
                    pg_catalog.format('ALTER TABLE %s ADD UNIQUE (%s); ', pa.qname, cols.pcols) END
               || pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I FOREIGN KEY (%s) REFERENCES %s (%s) MATCH SIMPLE',
                                    ch.qname, k.conname, k.conname, cols.ccols, pa.qname, cols.pcols)
               || CASE k.confupdtype WHEN 'r' THEN ' ON UPDATE RESTRICT' WHEN 'c' THEN ' ON UPDATE CASCADE'
                                     WHEN 'n' THEN ' ON UPDATE SET NULL' WHEN 'd' THEN ' ON UPDATE SET DEFAULT' ELSE '' END
               || CASE k.confdeltype WHEN 'r' THEN ' ON DELETE RESTRICT' WHEN 'c' THEN ' ON DELETE CASCADE'
                                     WHEN 'n' THEN pg_catalog.format(' ON DELETE SET NULL (%s)', cols.setcols)
                                     WHEN 'd' THEN pg_catalog.format(' ON DELETE SET DEFAULT (%s)', cols.setcols)
                                     ELSE '' END
               || CASE WHEN k.condeferrable AND k.condeferred THEN ' DEFERRABLE INITIALLY DEFERRED'
                       WHEN k.condeferrable THEN ' DEFERRABLE' ELSE '' END
               || '; RESET row_security;'
        FROM pg_catalog.pg_constraint k
        JOIN reg ch ON ch.relid = k.conrelid
        JOIN reg pa ON pa.relid = k.confrelid
        -- the other column pairs, in key order, with the tenant columns in front
        CROSS JOIN LATERAL (
            SELECT pg_catalog.concat_ws(', ', pg_catalog.quote_ident(ch.tcol),
                                        pg_catalog.string_agg(pg_catalog.quote_ident(ca.attname), ', ' ORDER BY s.i)) AS ccols,
                   pg_catalog.concat_ws(', ', pg_catalog.quote_ident(pa.tcol),
                                        pg_catalog.string_agg(pg_catalog.quote_ident(pcol.attname), ', ' ORDER BY s.i)) AS pcols,
                   pg_catalog.array_append(pg_catalog.array_agg(k.confkey[s.i]), pa.tatt) AS pkeys,
                   -- SET NULL / SET DEFAULT must never touch the tenant column
                   coalesce((SELECT pg_catalog.string_agg(pg_catalog.quote_ident(sa.attname), ', ' ORDER BY x.o)
                             FROM pg_catalog.unnest(k.confdelsetcols) WITH ORDINALITY x(att, o)
                             JOIN pg_catalog.pg_attribute sa ON sa.attrelid = k.conrelid AND sa.attnum = x.att
                             WHERE x.att <> ch.tatt),
                            pg_catalog.string_agg(pg_catalog.quote_ident(ca.attname), ', ' ORDER BY s.i)) AS setcols
            FROM pg_catalog.generate_subscripts(k.conkey, 1) s(i)
            JOIN pg_catalog.pg_attribute ca ON ca.attrelid = k.conrelid AND ca.attnum = k.conkey[s.i]
            JOIN pg_catalog.pg_attribute pcol ON pcol.attrelid = k.confrelid AND pcol.attnum = k.confkey[s.i]
            WHERE k.conkey[s.i] <> ch.tatt AND k.confkey[s.i] <> pa.tatt
        ) cols
        -- a foreign key needs a unique, immediate, non-partial index on exactly the new columns
        CROSS JOIN LATERAL (
            SELECT EXISTS (
                SELECT 1 FROM pg_catalog.pg_index i
                WHERE i.indrelid = pa.relid AND i.indisunique AND i.indimmediate AND i.indisvalid
                  AND i.indpred IS NULL AND i.indexprs IS NULL
                  AND (SELECT pg_catalog.array_agg(x.att ORDER BY x.att)
                       FROM pg_catalog.unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY x(att, o)
                       WHERE x.o <= i.indnkeyatts)
                      = (SELECT pg_catalog.array_agg(DISTINCT y.att ORDER BY y.att)
                         FROM pg_catalog.unnest(cols.pkeys) y(att))
            ) AS present
        ) uq
        WHERE k.contype = 'f'
          AND k.conparentid = 0   -- constraints cloned onto partitions follow their parent's
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.generate_subscripts(k.conkey, 1) s(i)
                          WHERE k.conkey[s.i] = ch.tatt AND k.confkey[s.i] = pa.tatt)

        UNION ALL ---------------------------------------------- unique_without_tenant
        -- a unique key without the tenant column is checked across tenants: inserting a value
        -- another tenant already has fails with 23505, which tells the caller it exists.
        -- Excluded (surrogate keys reveal nothing useful): a single plain column that is an
        -- identity column, has a nextval() default (serial), or is a uuid with a
        -- gen_random_uuid() / uuid_generate_v4() default.
        SELECT 'warning', 'unique_without_tenant',
               pg_catalog.format('%s.%I', r.qname, coalesce(con.conname, ic.relname)),
               pg_catalog.format('%s %I on %s (%s) does not include the tenant column %I: inserting a value another tenant already uses fails with 23505 and reveals that it exists',
                                 CASE con.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique constraint' ELSE 'unique index' END,
                                 coalesce(con.conname, ic.relname), r.qname, kc.cols, r.tcol),
               CASE WHEN con.contype = 'p' THEN
                        pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I, ADD PRIMARY KEY (%I, %s);',
                                          r.qname, con.conname, r.tcol, kc.cols)
                    ELSE
                        pg_catalog.format('CREATE UNIQUE INDEX ON %s (%I, %s)%s%s%s; ', r.qname, r.tcol, kc.cols,
                                          CASE WHEN kc.incl IS NOT NULL THEN ' INCLUDE (' || kc.incl || ')' ELSE '' END,
                                          CASE WHEN i.indnullsnotdistinct THEN ' NULLS NOT DISTINCT' ELSE '' END,
                                          CASE WHEN i.indpred IS NOT NULL
                                               THEN ' WHERE ' || pg_catalog.pg_get_expr(i.indpred, i.indrelid, true) ELSE '' END)
                        || CASE WHEN con.conname IS NOT NULL
                                THEN pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I;', r.qname, con.conname)
                                ELSE pg_catalog.format('DROP INDEX %I.%I;', r.nspname, ic.relname) END
               END
        FROM reg r
        JOIN pg_catalog.pg_index i ON i.indrelid = r.relid AND i.indisunique
        JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
        LEFT JOIN pg_catalog.pg_constraint con
               ON con.conindid = i.indexrelid AND con.conrelid = r.relid AND con.contype IN ('p', 'u')
        CROSS JOIN LATERAL (
            SELECT pg_catalog.string_agg(CASE WHEN x.att = 0
                                              THEN '(' || pg_catalog.pg_get_indexdef(i.indexrelid, x.o::int, true) || ')'
                                              ELSE pg_catalog.pg_get_indexdef(i.indexrelid, x.o::int, true) END,
                                         ', ' ORDER BY x.o) FILTER (WHERE x.o <= i.indnkeyatts) AS cols,
                   pg_catalog.string_agg(pg_catalog.pg_get_indexdef(i.indexrelid, x.o::int, true), ', ' ORDER BY x.o)
                       FILTER (WHERE x.o > i.indnkeyatts) AS incl,
                   coalesce(pg_catalog.bool_or(x.att = r.tatt) FILTER (WHERE x.o <= i.indnkeyatts), false) AS has_tenant
            FROM pg_catalog.unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY x(att, o)
        ) kc
        WHERE NOT kc.has_tenant
          AND NOT (i.indnkeyatts = 1 AND i.indexprs IS NULL AND EXISTS (
                SELECT 1 FROM pg_catalog.pg_attribute a
                LEFT JOIN pg_catalog.pg_attrdef df ON df.adrelid = a.attrelid AND df.adnum = a.attnum
                WHERE a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                  AND (a.attidentity <> ''
                       OR pg_catalog.pg_get_expr(df.adbin, df.adrelid) ~ '^nextval[(]'
                       OR (a.atttypid = 'pg_catalog.uuid'::pg_catalog.regtype
                           AND pg_catalog.pg_get_expr(df.adbin, df.adrelid) ~ '^([a-z_0-9]+[.])?(gen_random_uuid|uuid_generate_v4)[(][)]$'))))

        UNION ALL --------------------------------------------------- truncate_granted
        -- TRUNCATE is not subject to row level security: it empties the table for every tenant.
        SELECT DISTINCT 'critical', 'truncate_granted', r.qname,
               pg_catalog.format('%s has TRUNCATE on %s: TRUNCATE ignores row level security and removes every tenant''s rows',
                                 CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END,
                                 r.qname),
               pg_catalog.format('REVOKE TRUNCATE ON %s FROM %s;', r.qname,
                                 CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END)
        FROM reg r
        CROSS JOIN LATERAL pg_catalog.aclexplode(r.relacl) a
        WHERE a.privilege_type = 'TRUNCATE' AND a.grantee <> r.relowner

        UNION ALL ---------------------------------------------- leaky_policy_function
        -- functions (directly or as an operator's implementation) called by a policy of a
        -- registered table, outside tenant and pg_catalog, and not LEAKPROOF: the quals of a
        -- table run in cost order, so such a function may see other tenants' rows before the
        -- tenant check removes them, and leak them through errors, notices or side effects.
        SELECT 'warning', 'leaky_policy_function', p.oid::pg_catalog.regprocedure::pg_catalog.text,
               pg_catalog.format('%s is not LEAKPROOF and is called by %s: it may run on other tenants'' rows and reveal them through errors or side effects',
                                 p.oid::pg_catalog.regprocedure,
                                 pg_catalog.string_agg(DISTINCT pg_catalog.format('policy %I on %s', pf.polname, pf.qname), ', '
                                                       ORDER BY pg_catalog.format('policy %I on %s', pf.polname, pf.qname))),
               pg_catalog.format('-- mark it LEAKPROOF after review (as a superuser: ALTER FUNCTION %s LEAKPROOF;), or move the check into a tenant.* function',
                                 p.oid::pg_catalog.regprocedure)
        FROM (
            SELECT pol.polname, r.qname,
                   CASE WHEN d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass THEN d.refobjid
                        ELSE (SELECT op.oprcode::pg_catalog.oid FROM pg_catalog.pg_operator op WHERE op.oid = d.refobjid)
                   END AS fn
            FROM reg r
            JOIN pg_catalog.pg_policy pol ON pol.polrelid = r.relid
            JOIN pg_catalog.pg_depend d
              ON d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass AND d.objid = pol.oid
             AND d.refclassid IN ('pg_catalog.pg_proc'::pg_catalog.regclass, 'pg_catalog.pg_operator'::pg_catalog.regclass)
        ) pf
        JOIN pg_catalog.pg_proc p ON p.oid = pf.fn
        JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
        WHERE NOT p.proleakproof
          AND pn.nspname NOT IN ('tenant', 'tenant_internal', 'pg_catalog')
        GROUP BY p.oid
    )
    SELECT f.sev, f.knd, f.obj, f.prob, f.fx
    FROM findings f
    -- byte order (COLLATE "C"): the same report whatever the database's collation
    ORDER BY CASE f.sev WHEN 'critical' THEN 0 WHEN 'high' THEN 1 ELSE 2 END,
             f.knd COLLATE pg_catalog."C", f.obj COLLATE pg_catalog."C", f.fx COLLATE pg_catalog."C";
END
$check$;

COMMENT ON FUNCTION tenant.check_isolation() IS
    'Lint tenant isolation: unisolated tables, RLS not forced, partitions, privileged roles, views, '
    'SECURITY DEFINER functions, foreign and unique keys without the tenant column, TRUNCATE grants, '
    'leaky policy functions. One row per finding with SQL to fix it; see docs/reference.md.';

-- Audit entries are only as readable as their table.
DROP POLICY audit_log_own ON tenant.audit_log;
DROP POLICY audit_log_service ON tenant.audit_log;
CREATE POLICY audit_log_own ON tenant.audit_log FOR SELECT TO PUBLIC
    USING (tenant_id = (SELECT tenant.current_tenant())
           AND table_name IS NOT NULL
           AND coalesce(pg_catalog.has_table_privilege(pg_catalog.to_regclass(table_name), 'SELECT'), false));
CREATE POLICY audit_log_auditor ON tenant.audit_log FOR SELECT TO tenant_auditor
    USING (tenant_id = (SELECT tenant.current_tenant()));
CREATE POLICY audit_log_service ON tenant.audit_log FOR SELECT TO tenant_service, tenant_admin
    USING (true);

-- JWT keys as tenant_admin may see them: everything but the key material.
CREATE FUNCTION tenant.jwt_key_list()
RETURNS TABLE (kid text, alg text, issuer text, audience text, valid_from timestamptz,
               valid_until timestamptz, active boolean, created_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT pg_has_role('tenant_admin', 'USAGE') THEN
        RAISE EXCEPTION USING ERRCODE = 'MT020', MESSAGE = 'permission denied to list JWT keys',
            HINT = 'Grant tenant_admin to the calling role.';
    END IF;
    RETURN QUERY
    SELECT k.kid, k.alg, k.issuer, k.audience, k.valid_from, k.valid_until, k.active, k.created_at
    FROM tenant.jwt_keys k ORDER BY k.created_at, k.kid;
END
$$;

-- Management events for the extension's own SQL (run_maintenance's trial expiry).
CREATE FUNCTION tenant_internal._event(tenant uuid, name text, data jsonb) RETURNS void
    VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '_event_wrapper';
COMMENT ON FUNCTION tenant_internal._event(uuid, text, jsonb) IS 'Internal: logs a management event in a tenant''s audit chain.';
-- Housekeeping for pg_cron: roll counters into daily history, drop old windows and history,
-- end expired trials. Returns what it did.
CREATE OR REPLACE FUNCTION tenant.run_maintenance(retention interval DEFAULT '400 days')
RETURNS jsonb LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
AS $$
DECLARE
    rolled bigint; dropped bigint; history bigint; moved jsonb;
    parts int := 0; past_due int := 0; grace interval; s timestamptz; pname text; r record;
BEGIN
    IF NOT (pg_has_role('tenant_admin', 'USAGE') OR pg_has_role('tenant_service', 'USAGE')) THEN
        RAISE EXCEPTION USING ERRCODE = 'MT020', MESSAGE = 'permission denied to run maintenance';
    END IF;
    -- windows are dropped once older than min(retention, 62 days): a shorter retention would
    -- drop the windows limits are counted in
    IF retention IS NULL OR retention < interval '62 days' THEN
        RAISE EXCEPTION USING ERRCODE = 'MT030', MESSAGE = 'retention must be at least 62 days';
    END IF;
    -- one maintenance run at a time (pg_cron may start two at once): two creating the same
    -- event partition, each holding a lock the other's DDL needs, would deadlock
    PERFORM pg_advisory_xact_lock(7596552542186169411);
    -- the extension's library defines its settings when it is loaded: load it before
    -- current_setting('multitenant.payment_grace') below
    PERFORM tenant.current_tenant();
    WITH todo AS (
        SELECT c.tenant_id, c.resource, c.key, c.window_start, c.window_end, c.used, c.rolled
        FROM tenant.usage_counters c WHERE c.used <> c.rolled
        FOR UPDATE
    ), moved AS (
        UPDATE tenant.usage_counters c SET rolled = todo.used
        FROM todo
        WHERE c.tenant_id = todo.tenant_id AND c.resource = todo.resource AND c.key = todo.key
          AND c.window_start = todo.window_start
        RETURNING todo.tenant_id, todo.resource,
                  least(todo.window_end - interval '1 microsecond', now())::date AS day,
                  todo.used - todo.rolled AS delta
    ), ins AS (
        INSERT INTO tenant.usage_daily AS d (tenant_id, resource, day, used)
        SELECT tenant_id, resource, day, least(sum(delta::numeric), 9223372036854775807)::bigint
        FROM moved GROUP BY 1, 2, 3
        ON CONFLICT (tenant_id, resource, day)
        DO UPDATE SET used = least(d.used::numeric + EXCLUDED.used, 9223372036854775807)::bigint
        RETURNING 1
    )
    SELECT count(*) INTO rolled FROM ins;
    DELETE FROM tenant.usage_counters c
    WHERE c.used = c.rolled AND c.window_end < now() - least(retention, interval '62 days');
    GET DIAGNOSTICS dropped = ROW_COUNT;
    DELETE FROM tenant.usage_daily d WHERE d.day < (now() - retention)::date;
    GET DIAGNOSTICS history = ROW_COUNT;
    DELETE FROM tenant.metric_daily d WHERE d.day < (now() - retention)::date;
    DELETE FROM tenant.usage_events_default e WHERE e.at < now() - retention;
    -- usage events: a partition for this month and the next (unless the default partition
    -- already holds rows of that month), months past the retention dropped
    FOR m IN 0..1 LOOP
        s := date_trunc('month', now()) + make_interval(months => m);
        pname := 'usage_events_' || to_char(s, 'YYYYMM');
        IF to_regclass('tenant.' || quote_ident(pname)) IS NULL
           AND NOT EXISTS (SELECT 1 FROM tenant.usage_events_default e
                           WHERE e.at >= s AND e.at < s + interval '1 month') THEN
            EXECUTE format('CREATE TABLE tenant.%I PARTITION OF tenant.usage_events FOR VALUES FROM (%L) TO (%L)',
                           pname, s, s + interval '1 month');
            parts := parts + 1;
        END IF;
    END LOOP;
    FOR r IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'tenant.usage_events'::regclass AND c.relname ~ '^usage_events_[0-9]{6}$'
               AND to_date(substr(c.relname, 14), 'YYYYMM') + interval '1 month' < now() - retention LOOP
        EXECUTE format('DROP TABLE tenant.%I', r.relname);
    END LOOP;
    -- subscriptions past due longer than multitenant.payment_grace: the tenant is suspended
    -- through the state machine (audited), and reactivated by a later successful payment
    grace := current_setting('multitenant.payment_grace')::interval;
    IF grace > interval '0' THEN
        FOR r IN SELECT sub.tenant_id, sub.past_due_since FROM tenant.subscriptions sub
                 JOIN tenant.tenants t ON t.id = sub.tenant_id
                 WHERE sub.status = 'past_due' AND sub.past_due_since + grace <= now()
                   AND t.status IN ('active', 'trial')
                 ORDER BY sub.tenant_id FOR UPDATE OF sub LOOP
            PERFORM tenant.set_status(r.tenant_id::text, 'suspended');
            UPDATE tenant.subscriptions SET suspended_by_billing = true, updated_at = now()
            WHERE tenant_id = r.tenant_id;
            PERFORM tenant_internal._event(r.tenant_id, 'tenant.suspended_for_payment',
                jsonb_build_object('past_due_since', r.past_due_since, 'grace', grace::text));
            past_due := past_due + 1;
        END LOOP;
    END IF;
    -- the lifecycle, through the state machine set_status uses (each move audited with its
    -- reason): expired trials suspended, suspended past the grace period deleted, deleted
    -- past their retention purged
    moved := tenant_internal._lifecycle();
    RETURN jsonb_build_object('rolled_up', rolled, 'windows_dropped', dropped,
                              'history_dropped', history, 'event_partitions_created', parts,
                              'suspended_for_payment', past_due) || moved;
END
$$;

-- Audit hashes cover every column from now on (hash format 2); entries written by 0.1.0
-- keep format 1 and verify as before.
ALTER TABLE tenant.audit_log ADD COLUMN hash_format smallint NOT NULL DEFAULT 1
    CHECK (hash_format IN (1, 2));
ALTER TABLE tenant.audit_log ADD COLUMN db_user text, ADD COLUMN end_user_addr inet;
CREATE FUNCTION tenant_internal._audit_content_all(tenant_id uuid, table_oid oid, table_name text,
    operation text, record_id text, user_id text, db_role text, client_addr text,
    application_name text, at timestamptz, txid bigint, old_data text, new_data text, changed text,
    db_user text, end_user_addr text)
    RETURNS bytea IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', '_audit_content_all_wrapper';
COMMENT ON FUNCTION tenant_internal._audit_content_all(uuid, oid, text, text, text, text, text, text, text, timestamptz, bigint, text, text, text, text, text) IS 'Internal: the bytes an audit entry''s hash covers (hash format 2: every column).';

-- set_context takes the end user's address (0.1.0's C entry point stays for databases not
-- yet updated: api/compat.rs)
DROP FUNCTION tenant.set_context(text, text, boolean);
CREATE FUNCTION tenant.set_context(tenant text, user_id text DEFAULT NULL, is_local boolean DEFAULT true, client_ip text DEFAULT NULL)
    RETURNS uuid VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'set_context_v2_wrapper';

-- Teams (issue 17): effective roles, checks for another user, invitations, application events.
CREATE FUNCTION tenant.effective_roles() RETURNS text[]
    STRICT STABLE PARALLEL RESTRICTED LANGUAGE c AS 'MODULE_PATHNAME', 'effective_roles_wrapper';
CREATE FUNCTION tenant.has_role(role text) RETURNS boolean
    STRICT STABLE PARALLEL RESTRICTED LANGUAGE c AS 'MODULE_PATHNAME', 'has_role_sql_wrapper';
CREATE FUNCTION tenant.can_user(user_id text, resource text, action text, ctx jsonb DEFAULT '{}'::jsonb) RETURNS boolean
    STRICT STABLE PARALLEL RESTRICTED LANGUAGE c AS 'MODULE_PATHNAME', 'can_user_wrapper';
CREATE FUNCTION tenant.pending_invitations()
    RETURNS TABLE (id uuid, email text, role text, invited_by text, created_at timestamptz, expires_at timestamptz)
    STRICT STABLE PARALLEL RESTRICTED LANGUAGE c AS 'MODULE_PATHNAME', 'pending_invitations_wrapper';
CREATE FUNCTION tenant.revoke_invitation(id uuid) RETURNS boolean
    STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'revoke_invitation_wrapper';
CREATE FUNCTION tenant.resend_invitation(id uuid, ttl_hours integer DEFAULT 72) RETURNS text
    STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'resend_invitation_wrapper';
CREATE FUNCTION tenant.log_event(action text, data jsonb DEFAULT '{}'::jsonb, record_id text DEFAULT NULL) RETURNS void
    VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'log_event_wrapper';

-- Role templates (issue 17): roles defined once, copied into every new tenant by create()
-- and into existing ones by apply_role_templates(). permissions: [{resource, action, condition}].
CREATE TABLE tenant.role_templates (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z0-9_.-]{1,100}$'),
    inherits    text[] NOT NULL DEFAULT '{}',
    permissions jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(permissions) = 'array'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
SELECT pg_catalog.pg_extension_config_dump('tenant.role_templates', '');
GRANT SELECT ON tenant.role_templates TO PUBLIC;
CREATE FUNCTION tenant.define_role_template(name text, inherits text[] DEFAULT '{}'::text[], permissions jsonb DEFAULT '[]'::jsonb) RETURNS void
    STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'define_role_template_wrapper';
CREATE FUNCTION tenant.drop_role_template(name text) RETURNS boolean
    STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'drop_role_template_wrapper';
CREATE FUNCTION tenant.apply_role_templates(tenant text DEFAULT NULL) RETURNS bigint
    VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'apply_role_templates_wrapper';

-- Organizations inside a tenant (issue 17)
ALTER TABLE tenant.members ADD COLUMN organization_id uuid;
-- Organizations inside a tenant (B2B): a member belongs to at most one.
CREATE TABLE tenant.organizations (
    id         uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
    tenant_id  uuid NOT NULL REFERENCES tenant.tenants (id) ON DELETE CASCADE,
    slug       text NOT NULL CHECK (slug ~ '^[a-z0-9_-]{1,100}$'),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, slug),
    UNIQUE (tenant_id, id)
);
ALTER TABLE tenant.members ADD CONSTRAINT members_organization_fkey
    FOREIGN KEY (tenant_id, organization_id) REFERENCES tenant.organizations (tenant_id, id)
    ON DELETE SET NULL (organization_id);
SELECT pg_catalog.pg_extension_config_dump('tenant.organizations', '');
ALTER TABLE tenant.organizations ENABLE ROW LEVEL SECURITY;
CREATE POLICY organizations_own ON tenant.organizations FOR SELECT TO PUBLIC
    USING (tenant_id = (SELECT tenant.current_tenant()));
CREATE POLICY organizations_service ON tenant.organizations FOR SELECT TO tenant_service, tenant_admin
    USING (true);
GRANT SELECT ON tenant.organizations TO PUBLIC;
CREATE FUNCTION tenant.create_organization(slug text, name text) RETURNS uuid
    STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'create_organization_wrapper';
CREATE FUNCTION tenant.drop_organization(organization text) RETURNS boolean
    STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'drop_organization_wrapper';
CREATE FUNCTION tenant.set_member_organization(user_id text, organization text DEFAULT NULL) RETURNS void
    VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'set_member_organization_wrapper';
CREATE FUNCTION tenant.current_organization() RETURNS uuid
    STRICT STABLE PARALLEL RESTRICTED LANGUAGE c AS 'MODULE_PATHNAME', 'current_organization_wrapper';

-- One tenant's data in and out (issue 13)
-- Columns left out of tenant.export (tenant.exclude_from_export).
CREATE TABLE tenant.export_exclusions (
    relid   regclass PRIMARY KEY,
    columns text[] NOT NULL DEFAULT '{}'
);
SELECT pg_catalog.pg_extension_config_dump('tenant.export_exclusions', '');
GRANT SELECT ON tenant.export_exclusions TO PUBLIC;
CREATE FUNCTION tenant.export(tenant text, include_audit boolean DEFAULT false) RETURNS jsonb
    STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'export_wrapper';
CREATE FUNCTION tenant.import(tenant text, document jsonb) RETURNS jsonb
    STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'import_sql_wrapper';
CREATE FUNCTION tenant.exclude_from_export(tbl regclass, columns text[])
    RETURNS void STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'exclude_from_export_wrapper';
CREATE FUNCTION tenant.purge(tenant text, force boolean DEFAULT false) RETURNS jsonb
    STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'purge_wrapper';
CREATE FUNCTION tenant.my_tenants(user_id text DEFAULT NULL)
    RETURNS TABLE (tenant_id uuid, slug text, name text, status text, roles text[], organization_id uuid)
    STABLE PARALLEL RESTRICTED LANGUAGE c AS 'MODULE_PATHNAME', 'my_tenants_wrapper';
-- Per-tenant statistics for operators (tenant_admin, tenant_service): rows per registered
-- table estimated from the planner's statistics (no scan), audit volume from the chain
-- heads, last activity from the audit log's (tenant_id, at) index, current usage.
CREATE FUNCTION tenant.tenant_stats()
RETURNS TABLE (tenant_id uuid, slug text, status text, plan text, estimated_rows bigint,
               audit_entries bigint, last_activity timestamptz, usage jsonb)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH reg AS (
        SELECT relid::oid AS oid, tenant_column::text AS col FROM tenant.isolated_tables
        UNION SELECT relid::oid, tenant_column::text FROM tenant.row_limits
    ), st AS (
        SELECT r.oid, greatest(c.reltuples, 0) AS reltuples, s.null_frac, s.n_distinct,
               s.most_common_vals::text::text[] AS mcv, s.most_common_freqs AS mcf
        FROM reg r JOIN pg_class c ON c.oid = r.oid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = r.col
    )
    SELECT t.id, t.slug, t.status, t.plan,
           coalesce((SELECT sum(CASE
                        WHEN st.mcv IS NOT NULL AND t.id::text = ANY (st.mcv)
                            THEN st.mcf[array_position(st.mcv, t.id::text)] * st.reltuples
                        WHEN st.n_distinct IS NULL THEN 0
                        ELSE greatest(1 - st.null_frac - coalesce((SELECT sum(f) FROM unnest(st.mcf) f), 0), 0)
                             / greatest((CASE WHEN st.n_distinct < 0 THEN -st.n_distinct * st.reltuples ELSE st.n_distinct END)
                                        - coalesce(cardinality(st.mcv), 0), 1)
                             * st.reltuples END) FROM st), 0)::bigint,
           coalesce((SELECT sum(h.seq - h.base_seq) FROM tenant.audit_heads h
                     WHERE h.chain LIKE t.id::text || '/%'), 0)::bigint,
           (SELECT max(l.at) FROM tenant.audit_log l WHERE l.tenant_id = t.id),
           coalesce((SELECT jsonb_object_agg(u.resource, u.used) FROM tenant.usage_counters u
                     WHERE u.tenant_id = t.id AND u.key = '' AND now() >= u.window_start AND now() < u.window_end), '{}')
    FROM tenant.tenants t
    ORDER BY t.slug
$$;

-- The lifecycle (issue 13): timestamps of the moves, grace and retention periods.
ALTER TABLE tenant.tenants ADD COLUMN suspended_at timestamptz, ADD COLUMN deleted_at timestamptz,
    ADD COLUMN purge_after timestamptz, ADD COLUMN period_end timestamptz;
UPDATE tenant.tenants SET suspended_at = updated_at WHERE status = 'suspended';
UPDATE tenant.tenants SET deleted_at = updated_at, purge_after = updated_at + interval '30 days'
WHERE status = 'deleted';
CREATE FUNCTION tenant_internal._lifecycle() RETURNS jsonb
    STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '_lifecycle_wrapper';

-- Editing tenants, their settings and the defaults new ones get (issue 13); create takes a
-- region and an owner (0.1.0's C entry point stays for databases not yet updated)
-- Settings every new tenant starts with (tenant.set_setting_default), under those given to create.
CREATE TABLE tenant.setting_defaults (
    key   text PRIMARY KEY CHECK (key ~ '^[a-z0-9_.-]{1,100}$'),
    value jsonb NOT NULL
);
SELECT pg_catalog.pg_extension_config_dump('tenant.setting_defaults', '');
DROP FUNCTION tenant."create"(text, text, text, text, jsonb);
CREATE FUNCTION tenant."create"(slug text, name text, plan text DEFAULT 'free', status text DEFAULT 'active',
    settings jsonb DEFAULT '{}'::jsonb, region text DEFAULT NULL, owner_user_id text DEFAULT NULL) RETURNS uuid
    VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'create_v2_wrapper';
CREATE FUNCTION tenant.update(tenant text, name text DEFAULT NULL, slug text DEFAULT NULL, settings jsonb DEFAULT NULL,
    region text DEFAULT NULL, merge boolean DEFAULT true) RETURNS jsonb
    VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'update_wrapper';
CREATE FUNCTION tenant.set_setting(key text, value jsonb) RETURNS void
    VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'set_setting_wrapper';
CREATE FUNCTION tenant.get_setting(key text, fallback jsonb DEFAULT NULL) RETURNS jsonb
    STABLE PARALLEL RESTRICTED LANGUAGE c AS 'MODULE_PATHNAME', 'get_setting_wrapper';
CREATE FUNCTION tenant.set_setting_default(key text, value jsonb) RETURNS void
    VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'set_setting_default_wrapper';

-- Erasing a user, adopting a table, streaming one table's rows (issue 13)
CREATE FUNCTION tenant.forget_user(user_id text) RETURNS jsonb
    STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'forget_user_wrapper';
CREATE FUNCTION tenant.adopt(tbl regclass, tenant text, tenant_column text DEFAULT 'tenant_id')
    RETURNS bigint STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'adopt_wrapper';
CREATE FUNCTION tenant.export_rows(tenant text, tbl regclass) RETURNS SETOF jsonb
    STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'export_rows_wrapper';

-- Per-backend activity (issue 13)
-- Which tenant each backend entered last (multitenant.track_activity), for tenant.activity.
CREATE UNLOGGED TABLE tenant.backend_contexts (
    pid           integer PRIMARY KEY,
    backend_start timestamptz NOT NULL,
    tenant_id     uuid NOT NULL,
    user_id       text,
    since         timestamptz NOT NULL
);
REVOKE ALL ON tenant.backend_contexts FROM PUBLIC;
-- Per backend: the session (pg_stat_activity) and the tenant and user it entered last
-- (with multitenant.track_activity = on). SECURITY DEFINER: pg_stat_activity hides other
-- roles' sessions from roles without pg_read_all_stats. For tenant_admin and tenant_service.
CREATE FUNCTION tenant.activity()
RETURNS TABLE (pid integer, db_user name, application_name text, client_addr inet,
               backend_start timestamptz, state text, xact_start timestamptz, query_start timestamptz,
               wait_event_type text, wait_event text, tenant_id uuid, tenant_slug text, user_id text,
               entered_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.pid, a.usename, a.application_name, a.client_addr, a.backend_start,
           a.state, a.xact_start, a.query_start, a.wait_event_type, a.wait_event,
           c.tenant_id, t.slug, c.user_id, c.since
    FROM pg_stat_activity a
    LEFT JOIN tenant.backend_contexts c ON c.pid = a.pid AND c.backend_start = a.backend_start
    LEFT JOIN tenant.tenants t ON t.id = c.tenant_id
    WHERE a.backend_type = 'client backend' AND a.datname = current_database()
    ORDER BY a.pid
$$;

-- Where a request lands (issue 14)
ALTER TABLE tenant.tenants
    ADD COLUMN placement text NOT NULL DEFAULT 'shared' CHECK (placement IN ('shared', 'schema')),
    ADD COLUMN schema_name name UNIQUE;
-- Where a request lands (issue 14): custom domains, branding, custom fields, onboarding, the
-- outbox of events for workers outside the database, storage objects, schema placement.

-- Custom domains: claims by tenants, one verified owner per hostname. Verification (DNS) and
-- certificates (TLS) are done by a worker outside the database, which reports back with
-- mark_domain_verified (the claim whose token it found in DNS wins) and set_tls_status; only
-- verified domains resolve.
CREATE TABLE tenant.domains (
    hostname           text NOT NULL CHECK (hostname = lower(hostname) AND length(hostname) BETWEEN 3 AND 253),
    tenant_id          uuid NOT NULL REFERENCES tenant.tenants (id) ON DELETE CASCADE,
    verification_token text NOT NULL,
    verified_at        timestamptz,
    tls_status         text NOT NULL DEFAULT 'pending' CHECK (tls_status IN ('pending', 'active', 'failed', 'expired')),
    tls_expires_at     timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hostname, tenant_id)
);
CREATE INDEX domains_tenant_idx ON tenant.domains (tenant_id);
CREATE UNIQUE INDEX domains_verified_idx ON tenant.domains (hostname) WHERE verified_at IS NOT NULL;

-- A tenant's branding (keys checked by tenant.set_branding).
CREATE TABLE tenant.branding (
    tenant_id  uuid PRIMARY KEY REFERENCES tenant.tenants (id) ON DELETE CASCADE,
    branding   jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(branding) = 'object'),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Custom fields a tenant defines per entity, and the jsonb columns they are enforced on.
CREATE TABLE tenant.custom_fields (
    tenant_id  uuid NOT NULL REFERENCES tenant.tenants (id) ON DELETE CASCADE,
    entity     text NOT NULL CHECK (entity ~ '^[a-z][a-z0-9_]{0,62}$'),
    name       text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    type       text NOT NULL CHECK (type IN ('text', 'number', 'boolean', 'date', 'select')),
    required   boolean NOT NULL DEFAULT false,
    options    text[],
    label      text CHECK (length(label) <= 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, entity, name)
);
CREATE TABLE tenant.custom_field_columns (
    relid         regclass PRIMARY KEY,
    column_name   name NOT NULL,
    entity        text NOT NULL,
    tenant_column name NOT NULL
);

-- Onboarding: the steps every tenant goes through, and each tenant's progress.
CREATE TABLE tenant.onboarding_steps (
    step        text PRIMARY KEY CHECK (step ~ '^[a-z0-9_-]{1,100}$'),
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description text,
    required    boolean NOT NULL DEFAULT false,
    position    integer NOT NULL DEFAULT 0
);
CREATE TABLE tenant.onboarding_progress (
    tenant_id    uuid NOT NULL REFERENCES tenant.tenants (id) ON DELETE CASCADE,
    step         text NOT NULL REFERENCES tenant.onboarding_steps (step) ON DELETE CASCADE,
    completed_at timestamptz NOT NULL DEFAULT now(),
    completed_by text,
    data         jsonb,
    PRIMARY KEY (tenant_id, step)
);

-- Events for workers outside the database (welcome e-mail, DNS checks): written in the
-- transaction that caused them, taken with tenant.take_events(); pg_notify on the channel
-- multitenant_events wakes the worker.
CREATE TABLE tenant.outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event      text NOT NULL,
    tenant_id  uuid,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Objects a tenant stores outside the database (its storage prefix), with their size.
CREATE TABLE tenant.storage_objects (
    tenant_id     uuid NOT NULL REFERENCES tenant.tenants (id) ON DELETE CASCADE,
    path          text NOT NULL,
    bytes         bigint NOT NULL CHECK (bytes >= 0),
    registered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, path)
);

-- Migrations applied to tenant schemas (tenant.migrate_schemas).
CREATE TABLE tenant.schema_migrations (
    tenant_id   uuid NOT NULL REFERENCES tenant.tenants (id) ON DELETE CASCADE,
    version     text NOT NULL,
    schema_name name NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    applied_by  name NOT NULL DEFAULT current_user,
    PRIMARY KEY (tenant_id, version)
);

SELECT pg_catalog.pg_extension_config_dump('tenant.domains', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.branding', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.custom_fields', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.custom_field_columns', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.onboarding_steps', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.onboarding_progress', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.outbox_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.storage_objects', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.schema_migrations', '');

-- Issue 14's tables: application roles read their own tenant's rows; the backend and admins read all; writes go
-- through the extension's functions. Onboarding steps are the same for everyone.
DO $site_rls$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['domains', 'branding', 'custom_fields', 'onboarding_progress', 'storage_objects'] LOOP
        EXECUTE format('ALTER TABLE tenant.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON tenant.%I FOR SELECT TO PUBLIC '
                       'USING (tenant_id = (SELECT tenant.current_tenant()))', t || '_own', t);
        EXECUTE format('CREATE POLICY %I ON tenant.%I FOR SELECT TO tenant_service, tenant_admin '
                       'USING (true)', t || '_service', t);
    END LOOP;
END
$site_rls$;

CREATE FUNCTION tenant.add_domain("hostname" TEXT) RETURNS jsonb STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'add_domain_wrapper';
CREATE FUNCTION tenant.complete_step("step" TEXT, "data" jsonb DEFAULT NULL) RETURNS bool VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'complete_step_wrapper';
CREATE FUNCTION tenant.define_custom_field("entity" TEXT, "name" TEXT, "field_type" TEXT, "required" bool DEFAULT false, "options" TEXT[] DEFAULT NULL, "label" TEXT DEFAULT NULL) RETURNS void VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'define_custom_field_wrapper';
CREATE FUNCTION tenant.define_onboarding_step("step" TEXT, "title" TEXT, "description" TEXT DEFAULT NULL, "required" bool DEFAULT false, "position" INT DEFAULT 0) RETURNS void VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'define_onboarding_step_wrapper';
CREATE FUNCTION tenant.drop_custom_field("entity" TEXT, "name" TEXT) RETURNS bool STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'drop_custom_field_wrapper';
CREATE FUNCTION tenant.drop_onboarding_step("step" TEXT) RETURNS bool STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'drop_onboarding_step_wrapper';
CREATE FUNCTION tenant.get_branding("host" TEXT) RETURNS jsonb STRICT STABLE PARALLEL RESTRICTED LANGUAGE c AS 'MODULE_PATHNAME', 'get_branding_wrapper';
CREATE FUNCTION tenant.mark_domain_verified("hostname" TEXT, "token" TEXT) RETURNS bool STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'mark_domain_verified_wrapper';
CREATE FUNCTION tenant.migrate_schemas("version" TEXT, "sql" TEXT) RETURNS bigint STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'migrate_schemas_wrapper';
CREATE FUNCTION tenant.onboarding() RETURNS TABLE ("step" TEXT, "title" TEXT, "description" TEXT, "required" bool, "completed" bool, "completed_at" timestamp with time zone, "completed_by" TEXT) STRICT STABLE PARALLEL RESTRICTED LANGUAGE c AS 'MODULE_PATHNAME', 'onboarding_wrapper';
CREATE FUNCTION tenant.pending_domains("renew_within" interval DEFAULT '30 days') RETURNS TABLE ("hostname" TEXT, "tenant_id" uuid, "txt_name" TEXT, "txt_value" TEXT, "cname_target" TEXT, "verified_at" timestamp with time zone, "tls_status" TEXT, "tls_expires_at" timestamp with time zone) STRICT STABLE PARALLEL RESTRICTED LANGUAGE c AS 'MODULE_PATHNAME', 'pending_domains_wrapper';
CREATE FUNCTION tenant.provision_schema("tenant" TEXT, "template" TEXT) RETURNS TEXT STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'provision_schema_wrapper';
CREATE FUNCTION tenant.register_object("path" TEXT, "bytes" bigint) RETURNS bigint STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'register_object_wrapper';
CREATE FUNCTION tenant.remove_domain("hostname" TEXT) RETURNS bool STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'remove_domain_wrapper';
CREATE FUNCTION tenant.resolve("host" TEXT, "header_tenant" TEXT DEFAULT NULL) RETURNS uuid STABLE PARALLEL RESTRICTED LANGUAGE c AS 'MODULE_PATHNAME', 'resolve_wrapper';
CREATE FUNCTION tenant.set_branding("branding" jsonb) RETURNS jsonb STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'set_branding_wrapper';
CREATE FUNCTION tenant.set_context_for_host("host" TEXT, "user_id" TEXT DEFAULT NULL, "header_tenant" TEXT DEFAULT NULL, "is_local" bool DEFAULT true, "client_ip" TEXT DEFAULT NULL) RETURNS uuid VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'set_context_for_host_wrapper';
CREATE FUNCTION tenant.set_tls_status("hostname" TEXT, "status" TEXT, "expires_at" timestamp with time zone DEFAULT NULL) RETURNS void VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'set_tls_status_wrapper';
CREATE FUNCTION tenant.storage_path("filename" TEXT) RETURNS TEXT STRICT STABLE PARALLEL RESTRICTED LANGUAGE c AS 'MODULE_PATHNAME', 'storage_path_wrapper';
CREATE FUNCTION tenant.take_events("max" INT DEFAULT 100) RETURNS TABLE ("id" bigint, "event" TEXT, "tenant_id" uuid, "payload" jsonb, "created_at" timestamp with time zone) STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'take_events_wrapper';
CREATE FUNCTION tenant.unregister_object("path" TEXT) RETURNS bigint STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'unregister_object_wrapper';
CREATE FUNCTION tenant.validate_custom_fields("entity" TEXT, "fields" jsonb) RETURNS bool STRICT STABLE PARALLEL RESTRICTED LANGUAGE c AS 'MODULE_PATHNAME', 'validate_custom_fields_wrapper';
DROP FUNCTION tenant.authenticate(text);
CREATE FUNCTION tenant.authenticate("token" TEXT, "expected_tenant" TEXT DEFAULT NULL) RETURNS uuid VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'authenticate_v2_wrapper';
CREATE FUNCTION tenant.enforce_custom_fields(tbl regclass, "column" text, entity text, tenant_column text DEFAULT 'tenant_id') RETURNS void VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'enforce_custom_fields_wrapper';
CREATE FUNCTION tenant.unenforce_custom_fields(tbl regclass) RETURNS boolean VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'unenforce_custom_fields_wrapper';
CREATE FUNCTION tenant_internal._custom_fields_trigger() RETURNS trigger LANGUAGE c AS 'MODULE_PATHNAME', '_custom_fields_trigger_wrapper';

-- Plans as the design documents write them, metering, alerts, billing records (issue 15)
ALTER TABLE tenant.plans ADD COLUMN display_name text;
ALTER TABLE tenant.usage_counters ADD COLUMN key text NOT NULL DEFAULT '' CHECK (length(key) <= 200);
ALTER TABLE tenant.usage_counters DROP CONSTRAINT usage_counters_pkey;
ALTER TABLE tenant.usage_counters ADD CONSTRAINT usage_counters_pkey PRIMARY KEY (tenant_id, resource, key, window_start);
-- Metering beyond limits, alerts and billing records (issue 15).

-- Thresholds crossed (multitenant.alert_thresholds, e.g. 80 and 100 percent of a limit):
-- one row per tenant, resource, key, window and threshold, however many consumers race.
CREATE TABLE tenant.usage_alerts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenant.tenants (id) ON DELETE CASCADE,
    resource     text NOT NULL,
    key          text NOT NULL DEFAULT '',
    window_start timestamptz NOT NULL,
    threshold    integer NOT NULL CHECK (threshold BETWEEN 1 AND 1000),
    used         bigint NOT NULL,
    limit_value  bigint NOT NULL,
    raised_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, resource, key, window_start, threshold)
);

-- Usage events of any metric (tenant.track), partitioned by month (run_maintenance creates
-- the partitions; rows outside them land in the default partition), and their daily rollup.
CREATE TABLE tenant.usage_events (
    id         bigint GENERATED ALWAYS AS IDENTITY,
    tenant_id  uuid NOT NULL,
    metric     text NOT NULL,
    value      numeric NOT NULL,
    user_id    text,
    properties jsonb NOT NULL DEFAULT '{}'::jsonb,
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE TABLE tenant.usage_events_default PARTITION OF tenant.usage_events DEFAULT;
CREATE INDEX usage_events_tenant_at ON tenant.usage_events (tenant_id, at);
CREATE TABLE tenant.metric_daily (
    tenant_id uuid NOT NULL,
    metric    text NOT NULL,
    day       date NOT NULL,
    total     numeric NOT NULL DEFAULT 0,
    events    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, metric, day)
);

-- Billing records: a subscription per tenant, invoices with numbered lines (one per tenant
-- and period, generated by tenant.generate_invoices), credits applied to invoices. Payment
-- providers stay outside: their webhooks call tenant.record_payment.
CREATE TABLE tenant.subscriptions (
    tenant_id            uuid PRIMARY KEY REFERENCES tenant.tenants (id) ON DELETE CASCADE,
    plan                 text NOT NULL,
    status               text NOT NULL DEFAULT 'active'
                         CHECK (status IN ('trialing', 'active', 'past_due', 'canceled')),
    current_period_start date NOT NULL,
    current_period_end   date NOT NULL,
    past_due_since       timestamptz,
    canceled_at          timestamptz,
    external_ref         text,
    -- run_maintenance suspended the tenant for this subscription's non-payment
    suspended_by_billing boolean NOT NULL DEFAULT false,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE SEQUENCE tenant.invoice_number_seq;
CREATE TABLE tenant.invoices (
    id           uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES tenant.tenants (id) ON DELETE CASCADE,
    number       text NOT NULL UNIQUE,
    period_start date NOT NULL,
    period_end   date NOT NULL,
    currency     text NOT NULL,
    subtotal     numeric(14, 2) NOT NULL,
    credits      numeric(14, 2) NOT NULL DEFAULT 0,
    total        numeric(14, 2) NOT NULL,
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'paid', 'failed', 'void')),
    issued_at    timestamptz NOT NULL DEFAULT now(),
    paid_at      timestamptz,
    payment_ref  text,
    UNIQUE (tenant_id, period_start)
);
CREATE TABLE tenant.invoice_lines (
    invoice_id  uuid NOT NULL REFERENCES tenant.invoices (id) ON DELETE CASCADE,
    line_no     integer NOT NULL,
    description text NOT NULL,
    quantity    bigint NOT NULL,
    unit_price  numeric(14, 6) NOT NULL,
    amount      numeric(14, 2) NOT NULL,
    PRIMARY KEY (invoice_id, line_no)
);
CREATE TABLE tenant.credits (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES tenant.tenants (id) ON DELETE CASCADE,
    amount     numeric(14, 2) NOT NULL CHECK (amount > 0),
    reason     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    invoice_id uuid REFERENCES tenant.invoices (id) ON DELETE SET NULL
);

SELECT pg_catalog.pg_extension_config_dump('tenant.usage_alerts', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.usage_alerts_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.usage_events_default', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.usage_events_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.metric_daily', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.subscriptions', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.invoice_number_seq', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.invoices', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.invoice_lines', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.credits', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.credits_id_seq', '');

-- Issue 15's tables: each tenant reads its own alerts, events, rollups and billing records;
-- the backend and admins read all.
DO $billing_rls$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['usage_alerts', 'usage_events', 'metric_daily', 'subscriptions', 'invoices', 'credits'] LOOP
        EXECUTE format('ALTER TABLE tenant.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON tenant.%I FOR SELECT TO PUBLIC '
                       'USING (tenant_id = (SELECT tenant.current_tenant()))', t || '_own', t);
        EXECUTE format('CREATE POLICY %I ON tenant.%I FOR SELECT TO tenant_service, tenant_admin '
                       'USING (true)', t || '_service', t);
    END LOOP;
END
$billing_rls$;
ALTER TABLE tenant.invoice_lines ENABLE ROW LEVEL SECURITY;
CREATE POLICY invoice_lines_own ON tenant.invoice_lines FOR SELECT TO PUBLIC
    USING (EXISTS (SELECT 1 FROM tenant.invoices i WHERE i.id = invoice_id));

DROP FUNCTION tenant.consume(text, bigint);
CREATE FUNCTION tenant.consume("resource" TEXT, "amount" bigint DEFAULT 1, "key" TEXT DEFAULT NULL) RETURNS bigint VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'consume_v2_wrapper';
CREATE FUNCTION tenant.release("resource" TEXT, "amount" bigint DEFAULT 1, "key" TEXT DEFAULT NULL) RETURNS bigint VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'release_wrapper';
CREATE FUNCTION tenant.set_usage("resource" TEXT, "value" bigint, "key" TEXT DEFAULT NULL) RETURNS bigint VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'set_usage_wrapper';
CREATE FUNCTION tenant.has_restriction("restriction" TEXT) RETURNS bool STRICT STABLE PARALLEL RESTRICTED LANGUAGE c AS 'MODULE_PATHNAME', 'has_restriction_wrapper';
CREATE FUNCTION tenant.load_plan("definition" TEXT) RETURNS TEXT STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'load_plan_text_wrapper';
CREATE FUNCTION tenant.install_default_plans() RETURNS TEXT[] STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'install_default_plans_wrapper';

-- Usage events of any metric, for the current tenant (issue 15): the event, and its daily
-- rollup (tenant.metric_daily), in the caller's transaction.
CREATE FUNCTION tenant.track(metric text, value numeric DEFAULT 1, user_id text DEFAULT NULL,
                             properties jsonb DEFAULT '{}'::jsonb)
RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t uuid := tenant.require_tenant();
    id bigint;
BEGIN
    IF metric IS NULL OR metric !~ '^[a-z0-9_.-]{1,100}$' THEN
        RAISE EXCEPTION USING ERRCODE = 'MT030', MESSAGE = format('invalid metric name %s', coalesce(quote_literal(metric), 'NULL')),
            HINT = 'Use 1-100 characters of a-z, 0-9, ''_'', ''.'' and ''-''.';
    END IF;
    IF value IS NULL OR value = 'NaN'::numeric OR value < 0 OR value > 1e15 THEN
        RAISE EXCEPTION USING ERRCODE = 'MT030', MESSAGE = format('invalid value %s of metric %s: a number 0-1e15', coalesce(value::text, 'NULL'), metric);
    END IF;
    IF properties IS NULL OR jsonb_typeof(properties) <> 'object' OR octet_length(properties::text) > 8192 THEN
        RAISE EXCEPTION USING ERRCODE = 'MT030', MESSAGE = 'properties must be a JSON object of at most 8 KiB';
    END IF;
    IF user_id IS NOT NULL AND (length(user_id) = 0 OR length(user_id) > 256) THEN
        RAISE EXCEPTION USING ERRCODE = 'MT030', MESSAGE = 'user_id must be 1-256 characters';
    END IF;
    -- a context that names a user records events for that user only
    IF user_id IS NOT NULL AND tenant.current_user_id() IS NOT NULL AND user_id <> tenant.current_user_id() THEN
        RAISE EXCEPTION USING ERRCODE = 'MT020', MESSAGE = 'permission denied to record events for another user';
    END IF;
    INSERT INTO tenant.usage_events (tenant_id, metric, value, user_id, properties)
    VALUES (t, metric, value, coalesce(user_id, tenant.current_user_id()), properties)
    RETURNING usage_events.id INTO id;
    INSERT INTO tenant.metric_daily AS d (tenant_id, metric, day, total, events)
    VALUES (t, metric, (now() AT TIME ZONE 'UTC')::date, value, 1)
    ON CONFLICT (tenant_id, metric, day) DO UPDATE SET total = d.total + EXCLUDED.total, events = d.events + 1;
    RETURN id;
END
$$;

-- The plans loaded, with their limits.
CREATE FUNCTION tenant.plans()
RETURNS TABLE (name text, display_name text, price numeric, currency text, billing_cycle text,
               features text[], restrictions text[], limits jsonb)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.name, coalesce(p.display_name, p.name), p.price, p.currency, p.billing_cycle,
           p.features, p.restrictions,
           coalesce((SELECT jsonb_object_agg(l.resource, jsonb_build_object('limit', l.limit_value, 'period', l.period,
                                                                              'overage_price', l.overage_price))
                     FROM tenant.plan_limits l WHERE l.plan = p.name), '{}'::jsonb)
    FROM tenant.plans p ORDER BY p.price, p.name
$$;

-- Billing records (issue 15). For tenant_service and tenant_admin; payment providers stay
-- outside the database and call record_payment from their webhooks.
CREATE FUNCTION tenant.subscribe(tenant text, plan text DEFAULT NULL, status text DEFAULT 'active',
                                 external_ref text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t tenant.tenants;
BEGIN
    IF NOT (pg_has_role('tenant_service', 'USAGE') OR pg_has_role('tenant_admin', 'USAGE')) THEN
        RAISE EXCEPTION USING ERRCODE = 'MT020', MESSAGE = 'permission denied to manage subscriptions';
    END IF;
    SELECT * INTO t FROM tenant.tenants tt WHERE tt.id = tenant_internal._tenant_id(subscribe.tenant);
    IF status IS NULL OR status NOT IN ('trialing', 'active') THEN
        RAISE EXCEPTION USING ERRCODE = 'MT030', MESSAGE = format('a subscription starts trialing or active, not %s', coalesce(status, 'NULL'));
    END IF;
    IF plan IS NOT NULL AND plan <> t.plan THEN
        PERFORM tenant.set_plan(t.id::text, plan);
    END IF;
    INSERT INTO tenant.subscriptions AS s (tenant_id, plan, status, current_period_start, current_period_end, external_ref)
    VALUES (t.id, coalesce(plan, t.plan), status, date_trunc('month', now())::date,
            (date_trunc('month', now()) + interval '1 month')::date, external_ref)
    ON CONFLICT (tenant_id) DO UPDATE SET plan = EXCLUDED.plan,
        -- a past due subscription stays past due until record_payment says it is paid
        status = CASE WHEN s.status = 'past_due' THEN 'past_due' ELSE EXCLUDED.status END,
        external_ref = coalesce(EXCLUDED.external_ref, s.external_ref), canceled_at = NULL,
        updated_at = now();
    PERFORM tenant_internal._event(t.id, 'subscription.started',
        jsonb_build_object('plan', coalesce(plan, t.plan), 'status', status));
END
$$;

CREATE FUNCTION tenant.cancel_subscription(tenant text)
RETURNS boolean LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    id uuid;
BEGIN
    IF NOT (pg_has_role('tenant_service', 'USAGE') OR pg_has_role('tenant_admin', 'USAGE')) THEN
        RAISE EXCEPTION USING ERRCODE = 'MT020', MESSAGE = 'permission denied to manage subscriptions';
    END IF;
    id := tenant_internal._tenant_id(cancel_subscription.tenant);
    UPDATE tenant.subscriptions s SET status = 'canceled', canceled_at = now(), updated_at = now()
    WHERE s.tenant_id = id AND s.status <> 'canceled';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM tenant_internal._event(id, 'subscription.canceled', '{}'::jsonb);
    RETURN true;
END
$$;

CREATE FUNCTION tenant.add_credit(tenant text, amount numeric, reason text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tid uuid; cid bigint;
BEGIN
    IF NOT (pg_has_role('tenant_service', 'USAGE') OR pg_has_role('tenant_admin', 'USAGE')) THEN
        RAISE EXCEPTION USING ERRCODE = 'MT020', MESSAGE = 'permission denied to grant credits';
    END IF;
    tid := tenant_internal._tenant_id(add_credit.tenant);
    IF amount IS NULL OR amount = 'NaN'::numeric OR amount <= 0 OR amount > 1e9 OR round(amount, 2) <> amount THEN
        RAISE EXCEPTION USING ERRCODE = 'MT030', MESSAGE = format('invalid credit amount %s: 0.01 to 1e9, in cents', coalesce(amount::text, 'NULL'));
    END IF;
    INSERT INTO tenant.credits (tenant_id, amount, reason) VALUES (tid, amount, reason) RETURNING id INTO cid;
    PERFORM tenant_internal._event(tid, 'credit.granted', jsonb_build_object('id', cid, 'amount', amount, 'reason', reason));
    RETURN cid;
END
$$;

-- One invoice per subscribed tenant and month, with numbered lines (tenant.invoice's lines:
-- the plan, then each overage) and the tenant's unapplied credits (whole credits, oldest
-- first, while they fit). Run twice or concurrently, each invoice is created once.
CREATE FUNCTION tenant.generate_invoices(period_start date DEFAULT (date_trunc('month', now()) - interval '1 month')::date)
RETURNS integer LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
AS $$
#variable_conflict use_column
DECLARE
    s record; l record; c record; inv uuid; n integer := 0; line integer;
    sub numeric; applied numeric; cur text;
BEGIN
    IF NOT (pg_has_role('tenant_service', 'USAGE') OR pg_has_role('tenant_admin', 'USAGE')) THEN
        RAISE EXCEPTION USING ERRCODE = 'MT020', MESSAGE = 'permission denied to generate invoices';
    END IF;
    IF period_start IS NULL OR period_start <> date_trunc('month', period_start)::date THEN
        RAISE EXCEPTION USING ERRCODE = 'MT030', MESSAGE = 'period_start must be the first day of a month';
    END IF;
    -- only a finished month: its invoice is stored once, so usage after it would go unbilled
    IF period_start + interval '1 month' > now() THEN
        RAISE EXCEPTION USING ERRCODE = 'MT030', MESSAGE = 'the month is not over yet',
            HINT = 'Invoice a month once it has ended (the default is last month).';
    END IF;
    FOR s IN SELECT sub.tenant_id, t.plan FROM tenant.subscriptions sub JOIN tenant.tenants t ON t.id = sub.tenant_id
             WHERE sub.status IN ('active', 'past_due') AND t.status <> 'purged'
               AND sub.current_period_start < (period_start + interval '1 month')::date
             ORDER BY sub.tenant_id LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM tenant.invoices i WHERE i.tenant_id = s.tenant_id AND i.period_start = generate_invoices.period_start);
        INSERT INTO tenant.invoices (tenant_id, number, period_start, period_end, currency, subtotal, total)
        VALUES (s.tenant_id,
                format('INV-%s-%s', to_char(period_start, 'YYYYMM'), lpad(nextval('tenant.invoice_number_seq')::text, 6, '0')),
                period_start, (period_start + interval '1 month')::date, 'USD', 0, 0)
        ON CONFLICT (tenant_id, period_start) DO NOTHING
        RETURNING id INTO inv;
        CONTINUE WHEN inv IS NULL;  -- a concurrent run made it
        line := 0; sub := 0; cur := NULL;
        FOR l IN SELECT * FROM tenant.invoice(s.tenant_id::text, period_start) LOOP
            line := line + 1;
            INSERT INTO tenant.invoice_lines (invoice_id, line_no, description, quantity, unit_price, amount)
            VALUES (inv, line, l.line, l.quantity, l.unit_price, l.amount);
            sub := sub + l.amount;
            cur := coalesce(cur, l.currency);
        END LOOP;
        applied := 0;
        FOR c IN SELECT cr.id, cr.amount FROM tenant.credits cr
                 WHERE cr.tenant_id = s.tenant_id AND cr.invoice_id IS NULL ORDER BY cr.id FOR UPDATE LOOP
            EXIT WHEN applied + c.amount > sub;
            UPDATE tenant.credits SET invoice_id = inv WHERE id = c.id;
            applied := applied + c.amount;
        END LOOP;
        UPDATE tenant.invoices SET subtotal = sub, credits = applied, total = sub - applied,
               currency = coalesce(cur, 'USD'),
               status = CASE WHEN sub - applied = 0 THEN 'paid' ELSE 'open' END,
               paid_at = CASE WHEN sub - applied = 0 THEN now() END
        WHERE id = inv;
        PERFORM tenant_internal._event(s.tenant_id, 'invoice.issued',
            jsonb_build_object('invoice', inv, 'period', period_start, 'total', sub - applied));
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

-- What a payment provider's webhook reports: an invoice paid (the subscription is active
-- again, a tenant the billing suspended is reactivated) or a payment failed (the
-- subscription is past due; after multitenant.payment_grace run_maintenance suspends the
-- tenant). Returns the subscription's status.
CREATE FUNCTION tenant.record_payment(invoice uuid, succeeded boolean, reference text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    i tenant.invoices; st text; t tenant.tenants; sub tenant.subscriptions;
BEGIN
    IF NOT (pg_has_role('tenant_service', 'USAGE') OR pg_has_role('tenant_admin', 'USAGE')) THEN
        RAISE EXCEPTION USING ERRCODE = 'MT020', MESSAGE = 'permission denied to record payments';
    END IF;
    IF succeeded IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'MT030', MESSAGE = 'succeeded must be true or false';
    END IF;
    SELECT * INTO i FROM tenant.invoices ii WHERE ii.id = record_payment.invoice FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'MT030', MESSAGE = format('invoice %s does not exist', coalesce(invoice::text, 'NULL'));
    END IF;
    IF i.status = 'void' THEN
        RAISE EXCEPTION USING ERRCODE = 'MT040', MESSAGE = 'the invoice is void';
    END IF;
    SELECT * INTO sub FROM tenant.subscriptions s WHERE s.tenant_id = i.tenant_id FOR UPDATE;
    IF succeeded THEN
        IF i.status <> 'paid' THEN
            UPDATE tenant.invoices SET status = 'paid', paid_at = now(), payment_ref = coalesce(reference, payment_ref)
            WHERE id = i.id;
        END IF;
        -- active again once no other invoice of the tenant is still failed
        IF sub.tenant_id IS NOT NULL AND sub.status = 'past_due' AND NOT EXISTS (
               SELECT 1 FROM tenant.invoices o WHERE o.tenant_id = i.tenant_id AND o.status = 'failed' AND o.id <> i.id) THEN
            UPDATE tenant.subscriptions SET status = 'active', past_due_since = NULL, updated_at = now()
            WHERE tenant_id = i.tenant_id;
            SELECT * INTO t FROM tenant.tenants tt WHERE tt.id = i.tenant_id;
            IF sub.suspended_by_billing AND t.status = 'suspended' THEN
                PERFORM tenant.set_status(i.tenant_id::text, 'active');
            END IF;
            UPDATE tenant.subscriptions SET suspended_by_billing = false WHERE tenant_id = i.tenant_id;
        END IF;
    ELSE
        IF i.status = 'paid' THEN
            RAISE EXCEPTION USING ERRCODE = 'MT040', MESSAGE = 'the invoice is already paid';
        END IF;
        UPDATE tenant.invoices SET status = 'failed', payment_ref = coalesce(reference, payment_ref) WHERE id = i.id;
        UPDATE tenant.subscriptions SET status = 'past_due', past_due_since = coalesce(past_due_since, now()),
               updated_at = now()
        WHERE tenant_id = i.tenant_id AND status IN ('active', 'past_due');
    END IF;
    PERFORM tenant_internal._event(i.tenant_id, CASE WHEN succeeded THEN 'payment.succeeded' ELSE 'payment.failed' END,
        jsonb_build_object('invoice', i.id, 'number', i.number, 'reference', reference));
    SELECT s.status INTO st FROM tenant.subscriptions s WHERE s.tenant_id = i.tenant_id;
    RETURN st;
END
$$;

CREATE OR REPLACE FUNCTION tenant.usage_report(from_ts timestamptz DEFAULT date_trunc('month', now()),
                                    to_ts timestamptz DEFAULT now())
RETURNS TABLE (resource text, period text, limit_value bigint, window_used bigint,
               percent_used numeric, window_resets timestamptz, used_in_range bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH t AS (SELECT tenant.require_tenant() AS id),
    lim AS (
        SELECT l.resource, l.period, l.limit_value FROM tenant.plan_limits l, t, tenant.tenants tt
        WHERE tt.id = t.id AND l.plan = tt.plan
          AND NOT EXISTS (SELECT 1 FROM tenant.tenant_limits o WHERE o.tenant_id = t.id AND o.resource = l.resource)
        UNION ALL
        SELECT o.resource, o.period, o.limit_value FROM tenant.tenant_limits o, t WHERE o.tenant_id = t.id
    )
    SELECT lim.resource, lim.period, lim.limit_value,
           coalesce(cur.used, 0),
           CASE WHEN lim.limit_value < 0 THEN NULL
                WHEN lim.limit_value = 0 THEN CASE WHEN coalesce(cur.used, 0) > 0 THEN 100 ELSE 0 END
                ELSE round(100.0 * coalesce(cur.used, 0) / lim.limit_value, 2) END,
           CASE WHEN lim.period = 'none' THEN NULL ELSE cur.window_end END,
           coalesce((SELECT sum(d.used) FROM tenant.usage_daily d, t
                     WHERE d.tenant_id = t.id AND d.resource = lim.resource
                       AND d.day >= from_ts::date AND d.day <= to_ts::date), 0)::bigint
         + coalesce((SELECT sum(c.used - c.rolled) FROM tenant.usage_counters c, t
                     WHERE c.tenant_id = t.id AND c.resource = lim.resource AND c.key = ''
                       AND c.window_end > from_ts AND c.window_start <= to_ts), 0)::bigint
    FROM lim
    LEFT JOIN LATERAL (
        SELECT c.used, c.window_end FROM tenant.usage_counters c, t
        WHERE c.tenant_id = t.id AND c.resource = lim.resource AND c.key = ''
          AND c.window_start <= now() AND now() < c.window_end
    ) cur ON true
    ORDER BY lim.resource
$$;

-- sizes are one resource counted in bytes: storage_mb, storage_gb ... become storage_bytes
DO $units$
DECLARE u record;
BEGIN
    FOR u IN SELECT * FROM (VALUES ('_kb', 1024::bigint), ('_mb', 1048576::bigint), ('_gb', 1073741824::bigint),
                                   ('_tb', 1099511627776::bigint)) AS x(suffix, factor) LOOP
        UPDATE tenant.plan_limits SET resource = left(resource, -3) || '_bytes',
               limit_value = CASE WHEN limit_value < 0 THEN limit_value ELSE limit_value * u.factor END,
               overage_price = overage_price / u.factor
        WHERE resource LIKE '%' || u.suffix AND length(resource) > 3;
        UPDATE tenant.tenant_limits SET resource = left(resource, -3) || '_bytes',
               limit_value = CASE WHEN limit_value < 0 THEN limit_value ELSE limit_value * u.factor END,
               overage_price = overage_price / u.factor
        WHERE resource LIKE '%' || u.suffix AND length(resource) > 3;
        UPDATE tenant.usage_counters SET resource = left(resource, -3) || '_bytes',
               used = used * u.factor, rolled = rolled * u.factor
        WHERE resource LIKE '%' || u.suffix AND length(resource) > 3;
        UPDATE tenant.usage_daily SET resource = left(resource, -3) || '_bytes', used = used * u.factor
        WHERE resource LIKE '%' || u.suffix AND length(resource) > 3;
        UPDATE tenant.row_limits SET resource = left(resource, -3) || '_bytes'
        WHERE resource LIKE '%' || u.suffix AND length(resource) > 3;
    END LOOP;
END
$units$;

-- Tokens carry the id of the secret that signed them instead of the database oid (one id
-- for all nodes of a Citus cluster).
ALTER TABLE tenant.secret ADD COLUMN key_id uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid();
-- a backend that read the secret before the update cached it without an id: the statement
-- trigger on tenant.secret makes every backend read it again
UPDATE tenant.secret SET key_id = key_id;

-- Citus: the workers' part of verify_audit, purge_audit and purge (Rust).
CREATE FUNCTION tenant_internal."_audit_verify_node"("tenant" uuid) RETURNS jsonb
    VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '_audit_verify_node_wrapper';
CREATE FUNCTION tenant_internal."_audit_purge_node"("default_retention_days" integer,
    "feature_retention_days" integer, "feature_tenants" text[]) RETURNS bigint
    STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '_audit_purge_node_wrapper';
CREATE FUNCTION tenant_internal."_audit_erase_node"("tenant" uuid) RETURNS bigint
    STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '_audit_erase_node_wrapper';
COMMENT ON FUNCTION tenant_internal._audit_verify_node(uuid) IS 'Internal (Citus, on a worker): verify a tenant''s audit chains there, for the coordinator''s verify_audit.';
COMMENT ON FUNCTION tenant_internal._audit_purge_node(integer, integer, text[]) IS 'Internal (Citus, on a worker): remove its audit entries past retention, for the coordinator''s purge_audit.';
COMMENT ON FUNCTION tenant_internal._audit_erase_node(uuid) IS 'Internal (Citus, on a worker): erase a purged tenant''s audit chains there.';

-- Tables guarded by tenant.protect: the resource and the row fields its checks read. With
-- Citus, isolate's policies carry these checks and contexts carry the caller's permissions.
CREATE TABLE tenant.protected_tables (
    relid        regclass PRIMARY KEY,
    resource     text NOT NULL,
    fields       jsonb NOT NULL DEFAULT '[]',
    owner_column name,
    protected_at timestamptz NOT NULL DEFAULT now()
);
SELECT pg_catalog.pg_extension_config_dump('tenant.protected_tables', '');
COMMENT ON TABLE tenant.protected_tables IS 'Tables guarded by tenant.protect: resource, condition fields (field, column), owner column.';

-- Citus (docs/citus.md). The isolation policies of a distributed table run on the workers'
-- shards, where they verify the context: the coordinator gives each worker its context secret
-- (and the secret's id, which every token carries) and its tenant registry (the status decides
-- whether a verified context may read or write). Statement triggers keep the workers'
-- registry up to date; tenant.citus_sync() pushes everything (after CREATE EXTENSION, after adding a worker).
CREATE FUNCTION tenant_internal._citus_role() RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN
        RETURN 'none';
    END IF;
    IF pg_catalog.citus_is_coordinator() THEN
        RETURN 'coordinator';
    END IF;
    RETURN 'worker';
END $$;
COMMENT ON FUNCTION tenant_internal._citus_role() IS
    'Internal: none (no Citus), coordinator or worker.';

CREATE FUNCTION tenant_internal._citus_has_workers() RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- nested: pg_dist_node exists only with Citus
    IF tenant_internal._citus_role() = 'coordinator' THEN
        RETURN EXISTS (SELECT 1 FROM pg_catalog.pg_dist_node WHERE groupid <> 0);
    END IF;
    RETURN false;
END $$;
COMMENT ON FUNCTION tenant_internal._citus_has_workers() IS
    'Internal: this is a Citus coordinator with workers registered.';

-- The audited tables (all, or those of relids), as [{name, ignore_columns, changed_only}]:
-- a worker registers the shells of the distributed ones, whose shards carry the audit trigger.
CREATE FUNCTION tenant_internal._citus_audited(relids oid[]) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'name', pg_catalog.format('%I.%I', n.nspname, c.relname),
               'ignore_columns', a.ignore_columns, 'changed_only', a.changed_only)), '[]'::jsonb)
    FROM tenant.audited_tables a
    JOIN pg_catalog.pg_class c ON c.oid = a.relid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE relids IS NULL OR a.relid::oid = ANY (relids)
$$;
COMMENT ON FUNCTION tenant_internal._citus_audited(oid[]) IS
    'Internal (Citus): audited tables as a worker registers them.';

-- The row-limited tables (all, or those of relids), as [{name, resource, tenant_column}]: a
-- worker registers the distributed ones, whose shards count their rows (docs/citus.md).
CREATE FUNCTION tenant_internal._citus_row_limits(relids oid[]) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'name', pg_catalog.format('%I.%I', n.nspname, c.relname),
               'resource', r.resource, 'tenant_column', r.tenant_column)), '[]'::jsonb)
    FROM tenant.row_limits r
    JOIN pg_catalog.pg_class c ON c.oid = r.relid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE relids IS NULL OR r.relid::oid = ANY (relids)
$$;
COMMENT ON FUNCTION tenant_internal._citus_row_limits(oid[]) IS
    'Internal (Citus): row-limited tables as a worker registers them.';

-- What a worker needs, as JSON: the secret (when with_secret) and the tenants (all when ids is
-- NULL; else those, or with deleted their removal).
CREATE FUNCTION tenant_internal._citus_payload(ids uuid[], with_secret boolean, deleted boolean)
RETURNS text LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.jsonb_build_object(
        'secret', CASE WHEN with_secret THEN
            (SELECT pg_catalog.jsonb_build_object('key', pg_catalog.encode(s.key, 'hex'),
                                                   'key_id', s.key_id, 'created_at', s.created_at)
             FROM tenant.secret s) END,
        'full', ids IS NULL,
        'deleted', CASE WHEN deleted THEN pg_catalog.to_jsonb(ids) ELSE '[]'::jsonb END,
        'tenants', CASE WHEN deleted THEN '[]'::jsonb ELSE
            (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(t)), '[]'::jsonb)
             FROM tenant.tenants t WHERE ids IS NULL OR t.id = ANY (ids)) END,
        'audited', CASE WHEN ids IS NULL THEN tenant_internal._citus_audited(NULL) END,
        'row_limits', CASE WHEN ids IS NULL THEN tenant_internal._citus_row_limits(NULL) END
    )::text
$$;
COMMENT ON FUNCTION tenant_internal._citus_payload(uuid[], boolean, boolean) IS
    'Internal (Citus): the secret and tenants a worker needs, as JSON text.';

-- Send a payload to every worker: each applies it in a transaction of its own (Citus'
-- run_command_on_workers), so a worker that cannot be reached fails the caller's statement.
CREATE FUNCTION tenant_internal._citus_push(payload text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    FOR r IN SELECT * FROM pg_catalog.run_command_on_workers(
                 pg_catalog.format('SELECT tenant_internal._citus_receive(%L)', payload)) LOOP
        IF NOT r.success THEN
            RAISE EXCEPTION 'multitenant: the Citus worker %:% was not updated: %', r.nodename, r.nodeport, r.result
                USING ERRCODE = '08006',
                      HINT = 'Bring the worker back, then run SELECT tenant.citus_sync(); as a superuser on the coordinator.';
        END IF;
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;
COMMENT ON FUNCTION tenant_internal._citus_push(text) IS
    'Internal (Citus): apply a payload on every worker; fails when a worker is not updated.';

-- On a worker: take the coordinator's secret and tenants. Run by the superuser that
-- run_command_on_workers connects as; revoked from PUBLIC like every internal function.
CREATE FUNCTION tenant_internal._citus_receive(payload text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p jsonb := payload::jsonb;
BEGIN
    IF tenant_internal._citus_role() <> 'worker' THEN
        RAISE EXCEPTION 'multitenant: only a Citus worker takes the coordinator''s registry'
            USING ERRCODE = '0A000';
    END IF;
    IF pg_catalog.jsonb_typeof(p->'secret') = 'object' THEN
        UPDATE tenant.secret
        SET key = pg_catalog.decode(p->'secret'->>'key', 'hex'),
            key_id = (p->'secret'->>'key_id')::uuid,
            created_at = (p->'secret'->>'created_at')::timestamptz;
    END IF;
    -- audited tables: the shells of the distributed ones (whose shards fire the trigger)
    IF pg_catalog.jsonb_typeof(p->'audited') = 'array' THEN
        IF (p->>'full')::boolean THEN
            DELETE FROM tenant.audited_tables;
        END IF;
        INSERT INTO tenant.audited_tables (relid, ignore_columns, changed_only)
        SELECT r.relid, ARRAY(SELECT pg_catalog.jsonb_array_elements_text(e->'ignore_columns')),
               (e->>'changed_only')::boolean
        FROM pg_catalog.jsonb_array_elements(p->'audited') e,
             LATERAL (SELECT pg_catalog.to_regclass(e->>'name') AS relid) r
        WHERE r.relid IS NOT NULL
          AND EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition d WHERE d.logicalrelid = r.relid)
        ON CONFLICT (relid) DO UPDATE SET
            ignore_columns = EXCLUDED.ignore_columns, changed_only = EXCLUDED.changed_only;
    END IF;
    IF pg_catalog.jsonb_typeof(p->'unaudited') = 'array' THEN
        DELETE FROM tenant.audited_tables
        WHERE relid::oid IN (SELECT pg_catalog.to_regclass(e)::oid
                             FROM pg_catalog.jsonb_array_elements_text(p->'unaudited') e);
    END IF;
    -- row-limited tables: the shells of the distributed ones (whose shards count the rows)
    IF pg_catalog.jsonb_typeof(p->'row_limits') = 'array' THEN
        IF (p->>'full')::boolean THEN
            DELETE FROM tenant.row_limits;
        END IF;
        INSERT INTO tenant.row_limits (relid, resource, tenant_column)
        SELECT r.relid, e->>'resource', e->>'tenant_column'
        FROM pg_catalog.jsonb_array_elements(p->'row_limits') e,
             LATERAL (SELECT pg_catalog.to_regclass(e->>'name') AS relid) r
        WHERE r.relid IS NOT NULL
          AND EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition d WHERE d.logicalrelid = r.relid)
        ON CONFLICT (relid) DO UPDATE SET
            resource = EXCLUDED.resource, tenant_column = EXCLUDED.tenant_column;
    END IF;
    IF pg_catalog.jsonb_typeof(p->'unlimited') = 'array' THEN
        DELETE FROM tenant.row_limits
        WHERE relid::oid IN (SELECT pg_catalog.to_regclass(e)::oid
                             FROM pg_catalog.jsonb_array_elements_text(p->'unlimited') e);
    END IF;
    IF pg_catalog.jsonb_typeof(p->'tenants') <> 'array' THEN
        RETURN;
    END IF;
    -- a tenant purged on the coordinator: its chains here are erased too
    PERFORM tenant_internal._audit_erase_node((e->>'id')::uuid)
    FROM pg_catalog.jsonb_array_elements(p->'tenants') e
    WHERE e->>'status' = 'purged'
      AND NOT EXISTS (SELECT 1 FROM tenant.tenants t
                      WHERE t.id = (e->>'id')::uuid AND t.status = 'purged');
    DELETE FROM tenant.tenants t
    WHERE t.id IN (SELECT e::uuid FROM pg_catalog.jsonb_array_elements_text(p->'deleted') e)
       OR ((p->>'full')::boolean
           AND t.id NOT IN (SELECT (e->>'id')::uuid FROM pg_catalog.jsonb_array_elements(p->'tenants') e))
       -- a slug (or schema) now held by another tenant: the old holder's row goes first
       OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(p->'tenants') e
                  WHERE (e->>'id')::uuid <> t.id
                    AND (e->>'slug' = t.slug OR e->>'schema_name' = t.schema_name::text));
    INSERT INTO tenant.tenants
    SELECT * FROM pg_catalog.jsonb_populate_recordset(NULL::tenant.tenants, p->'tenants')
    ON CONFLICT (id) DO UPDATE SET
        slug = EXCLUDED.slug, name = EXCLUDED.name, plan = EXCLUDED.plan, status = EXCLUDED.status,
        region = EXCLUDED.region, settings = EXCLUDED.settings, trial_ends_at = EXCLUDED.trial_ends_at,
        created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,
        suspended_at = EXCLUDED.suspended_at, deleted_at = EXCLUDED.deleted_at,
        purge_after = EXCLUDED.purge_after, period_end = EXCLUDED.period_end,
        placement = EXCLUDED.placement, schema_name = EXCLUDED.schema_name;
END $$;
COMMENT ON FUNCTION tenant_internal._citus_receive(text) IS
    'Internal (Citus, on a worker): take the coordinator''s secret and tenants.';

-- Tenants created, changed or removed on the coordinator: the same on every worker, one
-- push per statement (transition tables: one trigger per event).
CREATE FUNCTION tenant_internal._citus_tenants_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ids uuid[];
BEGIN
    IF NOT tenant_internal._citus_has_workers() THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        SELECT pg_catalog.array_agg(id) INTO ids FROM gone;
    ELSE
        SELECT pg_catalog.array_agg(id) INTO ids FROM changed;
    END IF;
    IF ids IS NOT NULL THEN
        PERFORM tenant_internal._citus_push(tenant_internal._citus_payload(ids, false, TG_OP = 'DELETE'));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER tenants_to_citus_workers_insert AFTER INSERT ON tenant.tenants
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tenant_internal._citus_tenants_changed();
CREATE TRIGGER tenants_to_citus_workers_update AFTER UPDATE ON tenant.tenants
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tenant_internal._citus_tenants_changed();
CREATE TRIGGER tenants_to_citus_workers_delete AFTER DELETE ON tenant.tenants
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION tenant_internal._citus_tenants_changed();
COMMENT ON FUNCTION tenant_internal._citus_tenants_changed() IS
    'Internal (Citus): tenants changed on the coordinator are changed on every worker.';

-- Roles, permissions or memberships changed or removed on the coordinator: contexts minted
-- before then carry permissions (claim g) the workers must no longer trust. The tenant's
-- updated_at moves, reaches the workers with the tenant (above), and a worker reads a
-- context's carried permissions only when it was minted since (docs/citus.md).
CREATE FUNCTION tenant_internal._citus_rbac_narrowed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT tenant_internal._citus_has_workers() THEN
        RETURN NULL;
    END IF;
    UPDATE tenant.tenants SET updated_at = pg_catalog.clock_timestamp()
    WHERE id IN (SELECT DISTINCT tenant_id FROM gone);
    RETURN NULL;
END $$;
DO $narrowed$
DECLARE t text; op text;
BEGIN
    FOREACH t IN ARRAY ARRAY['members', 'roles', 'permissions'] LOOP
        FOREACH op IN ARRAY ARRAY['update', 'delete'] LOOP
            EXECUTE pg_catalog.format(
                'CREATE TRIGGER %I AFTER %s ON tenant.%I REFERENCING OLD TABLE AS gone '
                'FOR EACH STATEMENT EXECUTE FUNCTION tenant_internal._citus_rbac_narrowed()',
                t || '_narrowed_' || op, pg_catalog.upper(op), t);
        END LOOP;
    END LOOP;
END
$narrowed$;
COMMENT ON FUNCTION tenant_internal._citus_rbac_narrowed() IS
    'Internal (Citus): a tenant whose roles, permissions or memberships changed is pushed to the workers with a new updated_at.';

-- Tables audited or row-limited on the coordinator (or no longer): registered the same on
-- every worker, whose shards fire the triggers.
CREATE FUNCTION tenant_internal._citus_tables_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    payload jsonb;
    audited boolean := TG_TABLE_NAME = 'audited_tables';
BEGIN
    IF NOT tenant_internal._citus_has_workers() THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        -- a table dropped meanwhile has no name left (its shell went with it on the workers)
        SELECT pg_catalog.jsonb_build_object(CASE WHEN audited THEN 'unaudited' ELSE 'unlimited' END,
                   pg_catalog.jsonb_agg(pg_catalog.format('%I.%I', n.nspname, c.relname)))
        INTO payload
        FROM gone g JOIN pg_catalog.pg_class c ON c.oid = g.relid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        HAVING pg_catalog.count(*) > 0;
    ELSIF audited THEN
        SELECT pg_catalog.jsonb_build_object('audited',
                   tenant_internal._citus_audited(pg_catalog.array_agg(relid::oid)))
        INTO payload FROM changed
        HAVING pg_catalog.count(*) > 0;
    ELSE
        SELECT pg_catalog.jsonb_build_object('row_limits',
                   tenant_internal._citus_row_limits(pg_catalog.array_agg(relid::oid)))
        INTO payload FROM changed
        HAVING pg_catalog.count(*) > 0;
    END IF;
    IF payload IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM tenant_internal._citus_push(payload::text);
    RETURN NULL;
END $$;
CREATE TRIGGER audited_to_citus_workers_insert AFTER INSERT ON tenant.audited_tables
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tenant_internal._citus_tables_changed();
CREATE TRIGGER audited_to_citus_workers_update AFTER UPDATE ON tenant.audited_tables
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tenant_internal._citus_tables_changed();
CREATE TRIGGER audited_to_citus_workers_delete AFTER DELETE ON tenant.audited_tables
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION tenant_internal._citus_tables_changed();
CREATE TRIGGER row_limits_to_citus_workers_insert AFTER INSERT ON tenant.row_limits
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tenant_internal._citus_tables_changed();
CREATE TRIGGER row_limits_to_citus_workers_update AFTER UPDATE ON tenant.row_limits
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tenant_internal._citus_tables_changed();
CREATE TRIGGER row_limits_to_citus_workers_delete AFTER DELETE ON tenant.row_limits
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION tenant_internal._citus_tables_changed();
COMMENT ON FUNCTION tenant_internal._citus_tables_changed() IS
    'Internal (Citus): tables audited or row-limited on the coordinator are registered on every worker.';

-- The whole registry and the secret to every worker. For the superuser, on the coordinator.
CREATE FUNCTION tenant.citus_sync() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF tenant_internal._citus_role() <> 'coordinator' THEN
        RAISE EXCEPTION 'multitenant: tenant.citus_sync() runs on the coordinator of a Citus cluster'
            USING ERRCODE = '0A000';
    END IF;
    RETURN tenant_internal._citus_push(tenant_internal._citus_payload(NULL, true, false));
END $$;
COMMENT ON FUNCTION tenant.citus_sync() IS
    'Citus: give every worker the coordinator''s context secret, tenant registry, audited and row-limited tables; returns the number of workers. Superuser only.';

-- A new context secret (and id): every context minted before stops verifying, on every node.
CREATE FUNCTION tenant.rotate_context_secret() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE tenant.secret
    SET key = pg_catalog.decode(replace(pg_catalog.gen_random_uuid()::text, '-', '')
                                || replace(pg_catalog.gen_random_uuid()::text, '-', ''), 'hex'),
        key_id = pg_catalog.gen_random_uuid(),
        created_at = pg_catalog.now();
    IF tenant_internal._citus_has_workers() THEN
        PERFORM tenant_internal._citus_push(tenant_internal._citus_payload(NULL, true, false));
    END IF;
END $$;
COMMENT ON FUNCTION tenant.rotate_context_secret() IS
    'Replace the key that signs context tokens (on every Citus node): every context minted before stops verifying. Superuser only.';

-- Privileges, as a fresh 0.2.0 install has them.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA tenant FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA tenant_internal FROM PUBLIC;
-- What PUBLIC may execute (docs/security.md lists it; tests/integration/hostile/surface.rs checks it): the
-- documented API and tenant_internal._allow, the policy helper above. Everything else is revoked.
GRANT EXECUTE ON FUNCTION
    tenant.current_tenant(), tenant.require_tenant(), tenant.current_user_id(),
    tenant.context_status(), tenant.clear_context(),
    tenant.current_claims(), tenant.current_roles(),
    tenant.has_feature(text), tenant.require_feature(text),
    tenant.consume(text, bigint, text), tenant.check(text, bigint), tenant.usage_report(timestamptz, timestamptz),
    tenant.verify_audit(text),
    tenant.can(text, text, jsonb), tenant.authorize(text, text, jsonb),
    tenant.create_role(text, text[]), tenant.drop_role(text),
    tenant.grant_permission(text, text, text, jsonb), tenant.revoke_permission(text, text, text),
    tenant.invite(text, text, integer),
    tenant.effective_roles(), tenant.has_role(text), tenant.can_user(text, text, text, jsonb),
    tenant.pending_invitations(), tenant.revoke_invitation(uuid), tenant.resend_invitation(uuid, integer),
    tenant.log_event(text, jsonb, text),
    tenant.forget_user(text), tenant.adopt(regclass, text, text),
    tenant.set_setting(text, jsonb), tenant.get_setting(text, jsonb),
    tenant.my_tenants(text),
    tenant.create_organization(text, text), tenant.drop_organization(text),
    tenant.set_member_organization(text, text), tenant.current_organization(),
    tenant.isolate(regclass, text), tenant.unisolate(regclass), tenant.protect(regclass, text, text, jsonb),
    tenant_internal._allow()
TO PUBLIC;

-- Registration functions that write shared state (counters, audit chains): tenant_admin.
GRANT EXECUTE ON FUNCTION
    tenant.limit_rows(regclass, text, text), tenant.unlimit_rows(regclass),
    tenant.audit(regclass, text[], boolean), tenant.unaudit(regclass),
    -- CREATE TRIGGER (run as the table's owner by the two above) needs EXECUTE on them; they
    -- read their registration when they fire, so a trigger attached by hand only raises
    tenant_internal._audit_trigger(), tenant_internal._limit_rows_trigger()
TO tenant_admin;
-- The schema is usable by everyone (CREATE POLICY by a table owner names
-- tenant_internal._allow, CREATE TRIGGER by a tenant_admin the trigger functions); what is in
-- it is not: every function but _allow is revoked from PUBLIC above.
GRANT USAGE ON SCHEMA tenant_internal TO PUBLIC;
GRANT EXECUTE ON FUNCTION tenant.check_isolation() TO tenant_admin, tenant_service;
GRANT EXECUTE ON FUNCTION tenant.activity() TO tenant_service, tenant_admin;
GRANT EXECUTE ON FUNCTION tenant.export_rows(text, regclass) TO tenant_service, tenant_admin;
GRANT EXECUTE ON FUNCTION tenant.update(text, text, text, jsonb, text, boolean) TO tenant_service, tenant_admin;
GRANT EXECUTE ON FUNCTION tenant.set_setting_default(text, jsonb) TO tenant_admin;
GRANT SELECT ON tenant.setting_defaults TO tenant_service, tenant_admin;
GRANT EXECUTE ON FUNCTION
    tenant.export(text, boolean), tenant.import(text, jsonb), tenant.tenant_stats()
TO tenant_service, tenant_admin;
GRANT EXECUTE ON FUNCTION
    tenant.purge(text, boolean), tenant.exclude_from_export(regclass, text[])
TO tenant_admin;
GRANT EXECUTE ON FUNCTION
    tenant.define_role_template(text, text[], jsonb), tenant.drop_role_template(text)
TO tenant_admin;
GRANT EXECUTE ON FUNCTION tenant.apply_role_templates(text) TO tenant_service, tenant_admin;

GRANT EXECUTE ON FUNCTION tenant.set_context(text, text, boolean, text) TO tenant_service;
GRANT EXECUTE ON FUNCTION tenant.authenticate(text, text) TO tenant_user, tenant_service;
-- Plans, metering, alerts and billing (issue 15)
GRANT SELECT ON tenant.usage_alerts, tenant.usage_events, tenant.metric_daily, tenant.subscriptions,
    tenant.invoices, tenant.invoice_lines, tenant.credits TO PUBLIC;
GRANT EXECUTE ON FUNCTION
    tenant.track(text, numeric, text, jsonb), tenant.has_restriction(text), tenant.plans()
TO PUBLIC;
-- giving usage back or setting a gauge is for the trusted backend: an application role that
-- could would lift its own limits
GRANT EXECUTE ON FUNCTION
    tenant.release(text, bigint, text), tenant.set_usage(text, bigint, text),
    tenant.subscribe(text, text, text, text), tenant.cancel_subscription(text),
    tenant.add_credit(text, numeric, text), tenant.generate_invoices(date),
    tenant.record_payment(uuid, boolean, text)
TO tenant_service, tenant_admin;
GRANT EXECUTE ON FUNCTION tenant.load_plan(text), tenant.install_default_plans() TO tenant_admin;
-- Where a request lands (issue 14)
GRANT EXECUTE ON FUNCTION
    tenant.add_domain(text), tenant.remove_domain(text), tenant.set_branding(jsonb),
    tenant.define_custom_field(text, text, text, boolean, text[], text), tenant.drop_custom_field(text, text),
    tenant.validate_custom_fields(text, jsonb),
    tenant.complete_step(text, jsonb), tenant.onboarding(),
    tenant.storage_path(text), tenant.register_object(text, bigint), tenant.unregister_object(text)
TO PUBLIC;
GRANT EXECUTE ON FUNCTION tenant.resolve(text, text) TO tenant_service, tenant_admin;
GRANT EXECUTE ON FUNCTION tenant.get_branding(text) TO tenant_user, tenant_service, tenant_admin;
GRANT EXECUTE ON FUNCTION tenant.set_context_for_host(text, text, text, boolean, text) TO tenant_service;
GRANT EXECUTE ON FUNCTION
    tenant.mark_domain_verified(text, text), tenant.set_tls_status(text, text, timestamptz),
    tenant.pending_domains(interval), tenant.take_events(integer)
TO tenant_service, tenant_admin;
GRANT EXECUTE ON FUNCTION
    tenant.define_onboarding_step(text, text, text, boolean, integer), tenant.drop_onboarding_step(text),
    tenant.enforce_custom_fields(regclass, text, text, text), tenant.unenforce_custom_fields(regclass),
    tenant_internal._custom_fields_trigger(),
    tenant.provision_schema(text, text), tenant.migrate_schemas(text, text)
TO tenant_admin;
GRANT EXECUTE ON FUNCTION
    tenant.add_jwt_key(text, text, text, text, text, timestamptz, timestamptz),
    tenant.deactivate_jwt_key(text),
    tenant.rotate_jwt_key(text, text, text, text, integer),
    tenant.jwt_key_list()
TO tenant_admin;
GRANT EXECUTE ON FUNCTION
    tenant.add_member(text, text, text[]), tenant.remove_member(text, text),
    tenant.set_plan(text, text), tenant.invoice(text, date), tenant.run_maintenance(interval),
    tenant.accept_invitation(text, text)
TO tenant_service, tenant_admin;
GRANT EXECUTE ON FUNCTION
    tenant.load_plan(jsonb), tenant.set_limit_override(text, text, bigint, text, double precision),
    tenant.set_feature_override(text, text, boolean), tenant.purge_audit(integer, integer)
TO tenant_admin;
GRANT EXECUTE ON FUNCTION
    tenant.create(text, text, text, text, jsonb, text, text), tenant.set_status(text, text)
TO tenant_service, tenant_admin;

-- Every function and table says what it is (\df+ and \dt+ show it); docs/reference.md has the
-- details and examples.
COMMENT ON SCHEMA tenant IS 'multitenant: tenant isolation, plans, permissions and audit (docs/reference.md).';
COMMENT ON FUNCTION tenant."check"(text, bigint) IS 'Would amount of resource fit the current tenant''s limit now? Consumes nothing.';
COMMENT ON FUNCTION tenant."create"(text, text, text, text, jsonb, text, text) IS 'Create a tenant (slug, name, plan, status, settings over the defaults, region, owner member) with its built-in roles and the role templates; returns its id. For tenant_service and tenant_admin.';
COMMENT ON TABLE tenant.setting_defaults IS 'Settings every new tenant starts with (tenant.set_setting_default).';
COMMENT ON FUNCTION tenant.update(text, text, text, jsonb, text, boolean) IS 'Edit a tenant (display name, slug, settings merged or replaced, region); returns it. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.set_setting(text, jsonb) IS 'Set (or with NULL remove) one setting of the current tenant. For the backend and members allowed settings/update.';
COMMENT ON FUNCTION tenant.get_setting(text, jsonb) IS 'One setting of the current tenant, or fallback.';
COMMENT ON FUNCTION tenant.set_setting_default(text, jsonb) IS 'The value new tenants get for a setting (NULL removes it). For tenant_admin.';
COMMENT ON FUNCTION tenant.accept_invitation(text, text) IS 'Redeem an invitation token for a user (once, before it expires); returns the tenant. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.add_jwt_key(text, text, text, text, text, timestamptz, timestamptz) IS 'Register a key (kid, alg, key, issuer, audience, validity) that verifies JWTs for tenant.authenticate. For tenant_admin.';
COMMENT ON FUNCTION tenant.add_member(text, text, text[]) IS 'Make a user an active member of a tenant with roles. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.audit(regclass, text[], boolean) IS 'Log every INSERT, UPDATE, DELETE and TRUNCATE of a table in tenant.audit_log (hash-chained per tenant). For tenant_admin members who own the table.';
COMMENT ON FUNCTION tenant.add_domain(text) IS 'Register a custom domain for the current tenant (plan feature custom_domains); returns the DNS records (TXT token, CNAME) to create. Resolves once verified.';
COMMENT ON FUNCTION tenant.remove_domain(text) IS 'Remove a custom domain of the current tenant.';
COMMENT ON FUNCTION tenant.mark_domain_verified(text, text) IS 'For the DNS worker: the TXT record of hostname holds token; that claim owns the hostname and resolves, other claims are dropped. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.set_tls_status(text, text, timestamptz) IS 'For the certificate worker: TLS status (pending, active, failed, expired) and expiry of a domain. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.pending_domains(interval) IS 'What the DNS/TLS worker has to do: unverified domains, no active certificate, or one expiring within renew_within. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.resolve(text, text) IS 'The tenant a request is for: verified custom domain, else <slug>.<multitenant.base_domain>, else the header (uuid or slug); NULL when none; MT006 when host and header disagree.';
COMMENT ON FUNCTION tenant.set_context_for_host(text, text, text, boolean, text) IS 'set_context for the tenant tenant.resolve(host, header_tenant) finds; MT002 when none. For tenant_service.';
COMMENT ON FUNCTION tenant.authenticate(text, text) IS 'Enter the tenant named by a JWT verified with tenant.jwt_keys, for the rest of the transaction; MT006 when expected_tenant (the request''s) is another. For tenant_user and tenant_service.';
COMMENT ON FUNCTION tenant.set_branding(jsonb) IS 'Change keys of the current tenant''s branding (checked; null removes one); returns the whole record. Plan feature custom_branding, not with restriction no_custom_branding.';
COMMENT ON FUNCTION tenant.get_branding(text) IS 'Branding of the tenant served at host (login pages, before any login): {slug, name, branding}, or NULL.';
COMMENT ON FUNCTION tenant.define_custom_field(text, text, text, boolean, text[], text) IS 'Define a custom field (text, number, boolean, date, select) of an entity for the current tenant; plan limit custom_fields.';
COMMENT ON FUNCTION tenant.drop_custom_field(text, text) IS 'Drop a custom field of the current tenant.';
COMMENT ON FUNCTION tenant.validate_custom_fields(text, jsonb) IS 'True when the document fits the current tenant''s custom fields of entity, else MT030 naming every bad field.';
COMMENT ON FUNCTION tenant.enforce_custom_fields(regclass, text, text, text) IS 'Check a jsonb column of a table against the custom fields of entity on every INSERT and UPDATE. For tenant_admin members who own the table.';
COMMENT ON FUNCTION tenant.unenforce_custom_fields(regclass) IS 'Stop checking custom fields on a table.';
COMMENT ON FUNCTION tenant_internal._custom_fields_trigger() IS 'Trigger of tenant.enforce_custom_fields; reads its registration in tenant.custom_field_columns.';
COMMENT ON FUNCTION tenant.define_onboarding_step(text, text, text, boolean, integer) IS 'Define an onboarding step every tenant goes through. For tenant_admin.';
COMMENT ON FUNCTION tenant.drop_onboarding_step(text) IS 'Drop an onboarding step. For tenant_admin.';
COMMENT ON FUNCTION tenant.complete_step(text, jsonb) IS 'Mark an onboarding step done for the current tenant. For the backend and members allowed onboarding/update.';
COMMENT ON FUNCTION tenant.onboarding() IS 'The current tenant''s onboarding checklist, in order.';
COMMENT ON FUNCTION tenant.take_events(integer) IS 'Take queued events (tenant.created, domain.added, ...) for delivery outside the database, in the caller''s transaction. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.storage_path(text) IS 'tenants/<current tenant id>/<sanitised filename>: where the current tenant keeps a file. MT001 without a context.';
COMMENT ON FUNCTION tenant.register_object(text, bigint) IS 'Record an object of the current tenant (a storage_path) and its size against the storage limit; returns the total bytes.';
COMMENT ON FUNCTION tenant.unregister_object(text) IS 'Forget an object of the current tenant; returns the total bytes.';
COMMENT ON FUNCTION tenant.provision_schema(text, text) IS 'Place a tenant in a schema of its own created from a template schema, guarded by RLS; set_context puts it on the search_path. For tenant_admin.';
COMMENT ON FUNCTION tenant.migrate_schemas(text, text) IS 'Apply a migration (version, SQL) to every tenant schema that lacks it, as the caller, recording it. For tenant_admin.';
COMMENT ON TABLE tenant.domains IS 'Custom domains of tenants (tenant.add_domain); verified and TLS state set by a worker.';
COMMENT ON TABLE tenant.branding IS 'Branding record of each tenant (tenant.set_branding).';
COMMENT ON TABLE tenant.custom_fields IS 'Custom field definitions per tenant and entity (tenant.define_custom_field).';
COMMENT ON TABLE tenant.custom_field_columns IS 'jsonb columns checked against custom fields (tenant.enforce_custom_fields).';
COMMENT ON TABLE tenant.onboarding_steps IS 'Onboarding steps every tenant goes through (tenant.define_onboarding_step).';
COMMENT ON TABLE tenant.onboarding_progress IS 'Onboarding steps each tenant completed (tenant.complete_step).';
COMMENT ON TABLE tenant.outbox IS 'Events for workers outside the database (tenant.take_events).';
COMMENT ON TABLE tenant.storage_objects IS 'Objects tenants keep outside the database, with their size (tenant.register_object).';
COMMENT ON TABLE tenant.schema_migrations IS 'Migrations applied to tenant schemas (tenant.migrate_schemas).';
COMMENT ON FUNCTION tenant.authorize(text, text, jsonb) IS 'Like tenant.can, but raises MT020 when the current user may not do action on resource.';
COMMENT ON FUNCTION tenant.can(text, text, jsonb) IS 'May the current user do action on resource (role inheritance, wildcards, conditions on ctx)? False without a context.';
COMMENT ON FUNCTION tenant.clear_context() IS 'Leave the tenant context (for the session).';
COMMENT ON FUNCTION tenant.consume(text, bigint, text) IS 'Atomically use amount of resource (per key, when given) in the current window of the current tenant; returns what is left (NULL: unlimited); MT010 past a hard limit, nothing consumed.';
COMMENT ON FUNCTION tenant.release(text, bigint, text) IS 'Give back amount of resource in the current window (never below 0); returns what is left. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.set_usage(text, bigint, text) IS 'Set a gauge (storage, seats) of the current tenant to value; recorded, not refused; alerts on thresholds. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.track(text, numeric, text, jsonb) IS 'Record a usage event of any metric for the current tenant (tenant.usage_events, rolled up daily in tenant.metric_daily); returns its id.';
COMMENT ON FUNCTION tenant.has_restriction(text) IS 'Does the current tenant''s plan carry the restriction (e.g. no_api_access), not lifted by an override? False without context.';
COMMENT ON FUNCTION tenant.plans() IS 'The plans loaded, with display names and limits.';
COMMENT ON FUNCTION tenant.load_plan(text) IS 'Create or replace a plan from its YAML (as the design documents write plans) or JSON text. For tenant_admin.';
COMMENT ON FUNCTION tenant.install_default_plans() IS 'Load the free, pro, premium and enterprise plans the design documents describe; returns their keys. For tenant_admin.';
COMMENT ON FUNCTION tenant.subscribe(text, text, text, text) IS 'Start (or restart) a tenant''s subscription, trialing or active, optionally on another plan. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.cancel_subscription(text) IS 'Cancel a tenant''s subscription (no more invoices). For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.add_credit(text, numeric, text) IS 'Grant a tenant a credit, applied to its next invoices. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.generate_invoices(date) IS 'Store one invoice with numbered lines per subscribed tenant for the month (idempotent, safe concurrently); returns how many were created. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.record_payment(uuid, boolean, text) IS 'A payment provider''s verdict on an invoice: paid (subscription active, billing suspension lifted) or failed (past due; suspended after multitenant.payment_grace). For tenant_service and tenant_admin.';
COMMENT ON TABLE tenant.usage_alerts IS 'Usage thresholds crossed (multitenant.alert_thresholds), one per tenant, resource, key, window and threshold.';
COMMENT ON TABLE tenant.usage_events IS 'Usage events of any metric (tenant.track), partitioned by month.';
COMMENT ON TABLE tenant.usage_events_default IS 'Usage events outside the monthly partitions run_maintenance creates.';
COMMENT ON TABLE tenant.metric_daily IS 'Daily totals of tracked metrics per tenant.';
COMMENT ON TABLE tenant.subscriptions IS 'One subscription per tenant: plan, status, period.';
COMMENT ON TABLE tenant.invoices IS 'Invoices stored by tenant.generate_invoices, one per tenant and month.';
COMMENT ON TABLE tenant.invoice_lines IS 'Numbered lines of stored invoices.';
COMMENT ON TABLE tenant.credits IS 'Credits granted to tenants and the invoice each was applied to.';
COMMENT ON FUNCTION tenant.context_status() IS 'The current context (tenant, user, expiry, read-only) or why it does not verify.';
COMMENT ON FUNCTION tenant.create_role(text, text[]) IS 'Create or redefine a role of the current tenant inheriting other roles (cycles refused).';
COMMENT ON FUNCTION tenant.current_claims() IS 'The verified JWT claims of the current context, or NULL.';
COMMENT ON TABLE tenant.role_templates IS 'Roles defined once for every tenant (tenant.define_role_template), copied by tenant.create and tenant.apply_role_templates.';
COMMENT ON FUNCTION tenant.define_role_template(text, text[], jsonb) IS 'Define or redefine a role template (inherits, permissions in either shape); copied into tenants created from now on. For tenant_admin.';
COMMENT ON FUNCTION tenant.drop_role_template(text) IS 'Drop a role template; tenants keep the roles it gave them. For tenant_admin.';
COMMENT ON FUNCTION tenant.apply_role_templates(text) IS 'Copy every role template into a tenant (NULL: every tenant); returns the number of roles applied. For tenant_service and tenant_admin.';
COMMENT ON TABLE tenant.organizations IS 'Organizations inside a tenant (B2B); a member belongs to at most one (members.organization_id).';
COMMENT ON FUNCTION tenant.create_organization(text, text) IS 'Create an organization (slug, name) in the current tenant; returns its id. For the backend and members allowed organizations/manage.';
COMMENT ON FUNCTION tenant.drop_organization(text) IS 'Drop an organization (slug or id) of the current tenant; its members stay, without an organization.';
COMMENT ON FUNCTION tenant.set_member_organization(text, text) IS 'Put a member of the current tenant into an organization (slug or id; NULL: none).';
COMMENT ON FUNCTION tenant.current_organization() IS 'The organization of the current user in the current tenant, or NULL.';
COMMENT ON TABLE tenant.export_exclusions IS 'Columns tenant.export leaves out, per table (tenant.exclude_from_export).';
COMMENT ON FUNCTION tenant.export(text, boolean) IS 'One tenant''s data as one JSON document (registered tables, members, roles, permissions, organizations, usage; audit with include_audit). For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.import(text, jsonb) IS 'Load an export document into a tenant in one transaction (tables and columns checked, tenant column rewritten, row limits kept); returns counts.';
COMMENT ON FUNCTION tenant.exclude_from_export(regclass, text[]) IS 'Leave sensitive columns of a table out of every export. For tenant_admin members who own the table.';
COMMENT ON FUNCTION tenant.purge(text, boolean) IS 'Erase a deleted tenant''s data everywhere (tables, members, roles, usage, audit entries), anonymise its row; returns the receipt. For tenant_admin.';
COMMENT ON FUNCTION tenant.my_tenants(text) IS 'The tenants the current user belongs to, with roles and organization (tenant_service/tenant_admin may name a user).';
COMMENT ON FUNCTION tenant.tenant_stats() IS 'Per tenant: estimated rows in registered tables, audit entries, last activity, current usage. For tenant_admin and tenant_service.';
COMMENT ON FUNCTION tenant.export_rows(text, regclass) IS 'One tenant''s rows of one registered table, one jsonb per row, streamed. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.forget_user(text) IS 'Erase one user inside the current tenant (membership, accepted invitations, inviter name). For the backend and members allowed members/manage.';
COMMENT ON FUNCTION tenant.adopt(regclass, text, text) IS 'Make an existing table multi-tenant: add the tenant column, give its rows to one tenant in batches, NOT NULL, isolate. For the table owner.';
COMMENT ON TABLE tenant.backend_contexts IS 'Internal: the tenant each backend entered last (multitenant.track_activity).';
COMMENT ON FUNCTION tenant.activity() IS 'Backends of this database with the tenant and user they entered last (multitenant.track_activity = on). For tenant_admin and tenant_service.';
COMMENT ON FUNCTION tenant.current_roles() IS 'The roles the current user holds directly (JWT roles claim and membership roles), sorted; empty without a context.';
COMMENT ON FUNCTION tenant.effective_roles() IS 'Every role the current user holds in the current tenant (membership and JWT roles with what they inherit), sorted; empty without a context.';
COMMENT ON FUNCTION tenant.has_role(text) IS 'Does the current user hold role in the current tenant, directly or by inheritance? False without a context.';
COMMENT ON FUNCTION tenant.can_user(text, text, text, jsonb) IS 'May user_id (by its membership roles in the current tenant) do action on resource? For tenant_service, tenant_admin and members allowed members/manage.';
COMMENT ON FUNCTION tenant.pending_invitations() IS 'The current tenant''s invitations that can still be accepted (no tokens). For tenant_service, tenant_admin and members allowed members/invite.';
COMMENT ON FUNCTION tenant.revoke_invitation(uuid) IS 'Withdraw a pending invitation of the current tenant; its token stops working.';
COMMENT ON FUNCTION tenant.resend_invitation(uuid, integer) IS 'A new token (returned) for a pending invitation of the current tenant; the old token stops working.';
COMMENT ON FUNCTION tenant.log_event(text, jsonb, text) IS 'Write an application event (operation APP) into the current tenant''s audit chain, with the context''s user.';
COMMENT ON FUNCTION tenant.current_tenant() IS 'The current tenant''s id from the verified context, or NULL (no rows of isolated tables then).';
COMMENT ON FUNCTION tenant.current_user_id() IS 'The current user id from the verified context, or NULL.';
COMMENT ON FUNCTION tenant.deactivate_jwt_key(text) IS 'Stop accepting tokens signed with a key, at once in every session. For tenant_admin.';
COMMENT ON FUNCTION tenant.drop_role(text) IS 'Drop a role of the current tenant and its permissions.';
COMMENT ON FUNCTION tenant.grant_permission(text, text, text, jsonb) IS 'Let a role of the current tenant do action on resource (wildcards), when the condition holds.';
COMMENT ON FUNCTION tenant.has_feature(text) IS 'Does the current tenant''s plan (with overrides) include the feature? False without a context.';
COMMENT ON FUNCTION tenant.invite(text, text, integer) IS 'Invite an e-mail address to the current tenant with a role; returns the single-use token (only its hash is stored).';
COMMENT ON FUNCTION tenant.invoice(text, date) IS 'Invoice lines of a tenant for a month: the plan''s price and overage above monthly limits. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.jwt_key_list() IS 'The JWT keys without their key material. For tenant_admin.';
COMMENT ON FUNCTION tenant.isolate(regclass, text) IS 'Enable and force RLS with tenant policies, a default and an index on the tenant column, on the table and every partition and child. For the table owner. Idempotent.';
COMMENT ON FUNCTION tenant.limit_rows(regclass, text, text) IS 'Count each tenant''s rows of a table against the limit of a resource; an INSERT past it raises MT010. For tenant_admin members who own the table.';
COMMENT ON FUNCTION tenant.load_plan(jsonb) IS 'Create or replace a plan from a JSON document (price, features, limits). For tenant_admin.';
COMMENT ON FUNCTION tenant.protect(regclass, text, text, jsonb) IS 'Restrictive per-command policies that call tenant.can(resource, read|create|update|delete, ctx) with ctx built from the row (owner_column as owner_id, columns: field -> column); rows for another owner also need assign. With Citus the checks are ANDed into the isolated table''s policies. For the table owner.';
COMMENT ON FUNCTION tenant.purge_audit(integer, integer) IS 'Remove audit entries past retention (chains stay verifiable); returns how many. For tenant_admin.';
COMMENT ON FUNCTION tenant.remove_member(text, text) IS 'Remove a user from a tenant. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.require_feature(text) IS 'Raise MT011 unless the current tenant has the feature; true otherwise (usable in policies and checks).';
COMMENT ON FUNCTION tenant.require_tenant() IS 'The current tenant''s id; MT001 without a context, MT003 when read-only or inactive. Default and write check of isolated tables.';
COMMENT ON FUNCTION tenant.revoke_permission(text, text, text) IS 'Remove a role''s permissions for action on resource; returns how many.';
COMMENT ON FUNCTION tenant.rotate_jwt_key(text, text, text, text, integer) IS 'Add a new key and let the old one expire after an overlap. For tenant_admin.';
COMMENT ON FUNCTION tenant.run_maintenance(interval) IS 'Roll usage counters into daily history, drop old windows and history; suspend expired trials, delete tenants suspended past multitenant.suspension_grace, purge deleted ones past their retention (schedule with pg_cron). For tenant_admin and tenant_service.';
COMMENT ON FUNCTION tenant.set_context(text, text, boolean, text) IS 'Enter a tenant (uuid or slug) as a user, for the transaction (or the session), for a request from client_ip (signed into the context, recorded by the audit trail). For tenant_service.';
COMMENT ON FUNCTION tenant.set_feature_override(text, text, boolean) IS 'Grant (true) or withhold (false) a feature for one tenant regardless of its plan; NULL removes the override. For tenant_admin.';
COMMENT ON FUNCTION tenant.set_limit_override(text, text, bigint, text, double precision) IS 'Give one tenant its own limit for a resource (-1: unlimited). For tenant_admin.';
COMMENT ON FUNCTION tenant.set_plan(text, text) IS 'Move a tenant to another plan. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.set_status(text, text) IS 'Move a tenant along its lifecycle (provisioning, trial, active, suspended, deleted, purged); MT040 for a transition not allowed.';
COMMENT ON FUNCTION tenant.unaudit(regclass) IS 'Stop auditing a table (its entries stay). For tenant_admin members who own the table.';
COMMENT ON FUNCTION tenant.unisolate(regclass) IS 'Reverse tenant.isolate on a table and everything below it. For the table owner.';
COMMENT ON FUNCTION tenant.unlimit_rows(regclass) IS 'Stop counting a table''s rows. For tenant_admin members who own the table.';
COMMENT ON FUNCTION tenant.usage_report(timestamptz, timestamptz) IS 'Usage of the current tenant per limited resource: window used, percent of the limit, reset time, used in a range.';
COMMENT ON FUNCTION tenant.verify_audit(text) IS 'Walk a tenant''s audit chains (NULL: the global ones) and report the first broken link.';
COMMENT ON FUNCTION tenant_internal._audit_content(uuid, text, text, text, text, text, timestamptz, bigint, text, text, text) IS 'Internal: the bytes an audit entry''s hash covers.';
COMMENT ON FUNCTION tenant_internal._lifecycle() IS 'Internal: the lifecycle moves of tenant.run_maintenance.';
COMMENT ON FUNCTION tenant_internal._audit_guard() IS 'Internal: keeps tenant.audit_log and tenant.audit_heads append-only.';
COMMENT ON FUNCTION tenant_internal._audit_link(bytea, bigint, bytea) IS 'Internal: the hash of a chain''s next audit entry.';
COMMENT ON FUNCTION tenant_internal._audit_trigger() IS 'Internal: the audit trigger tenant.audit attaches.';
COMMENT ON FUNCTION tenant_internal._chain_tenant(text) IS 'Internal: the tenant an audit chain belongs to.';
COMMENT ON FUNCTION tenant_internal._invalidate(oid) IS 'Internal: sends a cache invalidation to every backend.';
COMMENT ON FUNCTION tenant_internal._limit_rows_trigger() IS 'Internal: the row-count trigger tenant.limit_rows attaches.';
COMMENT ON FUNCTION tenant_internal._on_ddl() IS 'Internal: isolates partitions and children created or attached below an isolated table.';
COMMENT ON FUNCTION tenant_internal._tables_changed() IS 'Internal: invalidates the per-backend caches when the extension''s tables change.';
COMMENT ON FUNCTION tenant_internal._tenant_id(text) IS 'Internal: the tenant resolver (uuid or slug).';
COMMENT ON TABLE tenant.secret IS 'The per-database key that signs context tokens; readable only by the extension owner.';
COMMENT ON TABLE tenant.jwt_keys IS 'Keys that verify JWTs for tenant.authenticate; readable only by the extension owner (tenant.jwt_key_list shows them without key material).';
COMMENT ON TABLE tenant.members IS 'Who belongs to which tenant, with roles; a user may belong to many tenants.';
COMMENT ON TABLE tenant.plans IS 'Plans: price, currency, billing cycle, features, restrictions (tenant.load_plan).';
COMMENT ON TABLE tenant.plan_limits IS 'Limits per plan and resource (-1 = unlimited), with their period and overage price.';
COMMENT ON TABLE tenant.tenant_limits IS 'Per-tenant limit overrides (tenant.set_limit_override).';
COMMENT ON TABLE tenant.tenant_features IS 'Per-tenant feature overrides (tenant.set_feature_override).';
COMMENT ON TABLE tenant.usage_counters IS 'One counter per tenant, resource and window (tenant.consume, tenant.limit_rows).';
COMMENT ON TABLE tenant.usage_daily IS 'Daily usage history rolled up by tenant.run_maintenance.';
COMMENT ON TABLE tenant.row_limits IS 'Tables whose rows count against a limit (tenant.limit_rows).';
COMMENT ON TABLE tenant.audit_log IS 'Append-only audit trail, hash-chained per tenant (tenant.audit, tenant.verify_audit); an entry is readable as far as its table is.';
COMMENT ON TABLE tenant.audit_heads IS 'The last entry of each audit chain (and where a purged chain now starts).';
COMMENT ON TABLE tenant.audited_tables IS 'Tables audited with tenant.audit, with their ignored columns and changed_only setting.';
COMMENT ON TABLE tenant.roles IS 'Roles per tenant (built-in and custom) and what they inherit.';
COMMENT ON TABLE tenant.permissions IS 'Permissions of roles: resource, action, optional condition.';
COMMENT ON TABLE tenant.invitations IS 'Invitations to a tenant (only the token''s SHA-256 is stored); single use, expiring.';

-- Tables isolated with 0.1.0: isolate again (idempotent) so that their policies compare with
-- OPERATOR(pg_catalog.=), the permissive policy depends on the extension, and partitions and
-- children get isolated too. Runs as the role running ALTER EXTENSION (a superuser).
SELECT tenant.isolate(t.relid, t.tenant_column::text)
FROM tenant.isolated_tables t
ORDER BY t.isolated_at, t.relid::oid;

-- Every backend forgets what it cached about the 0.1.0 schema (the "legacy" answer of
-- state::registry among it) at its next statement.
SELECT tenant_internal._invalidate('tenant.audit_log'::pg_catalog.regclass);
