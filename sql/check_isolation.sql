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
