-- multitenant quickstart: paste into psql, connected as postgres (a superuser) to a fresh
-- database, or run it:
--   createdb -h 127.0.0.1 -p 28815 -U postgres app
--   psql -h 127.0.0.1 -p 28815 -U postgres -d app -v ON_ERROR_STOP=1 -f scripts/quickstart.sql
-- docs/quickstart.md explains each step. Roles are cluster-wide, so they are created only if
-- missing: the script runs on any fresh database of a cluster, again and again.
\set ON_ERROR_STOP on

\echo '== 1. as postgres: the extension, a table owner and a backend role'
CREATE EXTENSION multitenant;   -- schema tenant; roles tenant_service, tenant_user, tenant_admin, tenant_auditor
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_owner') THEN
        CREATE ROLE app_owner NOLOGIN;    -- owns the tables (migrations run as it: SET ROLE)
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'api_backend') THEN
        CREATE ROLE api_backend LOGIN;    -- the application connects as it (give it a password)
    END IF;
END $$;
GRANT tenant_service TO api_backend;      -- may call tenant.set_context and tenant.create
GRANT CREATE ON SCHEMA public TO app_owner;   -- PostgreSQL 15: public is not writable by default

\echo '== 2. as the table owner: the table, isolated, and the grants the backend needs'
SET ROLE app_owner;
CREATE TABLE public.events (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id uuid NOT NULL,
    kind      text NOT NULL
);
SELECT tenant.isolate('public.events');   -- RLS enabled and forced, policies, default, index
GRANT SELECT, INSERT, UPDATE, DELETE ON public.events TO api_backend;
SELECT relname, relrowsecurity AS rls_enabled, relforcerowsecurity AS rls_forced
FROM pg_class WHERE oid = 'public.events'::regclass;
RESET ROLE;

\echo '== 3. as the backend: two tenants'
SET ROLE api_backend;
SELECT tenant.create('acme', 'Acme Corp')   AS acme_id \gset
SELECT tenant.create('globex', 'Globex Inc') AS globex_id \gset
SELECT slug, name, status FROM tenant.tenants ORDER BY slug;

\echo '== 4. as the backend, one transaction per request: set_context, then write'
BEGIN;
SELECT tenant.set_context('acme', 'alice') AS context_tenant;   -- transaction-local
INSERT INTO public.events (kind) VALUES ('signup'), ('login');  -- tenant_id from the context
COMMIT;
BEGIN;
SELECT tenant.set_context('globex', 'bob') AS context_tenant;
INSERT INTO public.events (kind) VALUES ('signup');
COMMIT;

\echo '== 5. acme sees only its 2 rows, and cannot change globex''s row even by naming it'
BEGIN;
SELECT tenant.set_context('acme') AS context_tenant;
SELECT e.id, t.slug AS tenant, e.kind
FROM public.events e JOIN tenant.tenants t ON t.id = e.tenant_id ORDER BY e.id;
WITH u AS (UPDATE public.events SET kind = 'hacked' WHERE tenant_id = :'globex_id' RETURNING 1)
SELECT count(*) AS globex_rows_changed FROM u;
COMMIT;

\echo '== 6. globex sees only its 1 row'
BEGIN;
SELECT tenant.set_context('globex') AS context_tenant;
SELECT e.id, t.slug AS tenant, e.kind
FROM public.events e JOIN tenant.tenants t ON t.id = e.tenant_id ORDER BY e.id;
COMMIT;

\echo '== 7. after COMMIT the context is gone: no rows, and a write fails with MT001'
SELECT tenant.current_tenant() AS current_tenant, count(*) AS visible_rows FROM public.events;
DO $$
BEGIN
    INSERT INTO public.events (kind) VALUES ('orphan');
    RAISE EXCEPTION 'expected MT001, but the insert succeeded';
EXCEPTION WHEN SQLSTATE 'MT001' THEN
    RAISE NOTICE 'write without a context refused: SQLSTATE % (%)', SQLSTATE, SQLERRM;
END $$;
RESET ROLE;

\echo '== 8. the table owner is held too: without a context it sees no rows'
SET ROLE app_owner;
SELECT current_user, count(*) AS visible_rows FROM public.events;
DO $$
BEGIN
    INSERT INTO public.events (kind) VALUES ('owner-orphan');
    RAISE EXCEPTION 'expected MT001, but the insert succeeded';
EXCEPTION WHEN SQLSTATE 'MT001' THEN
    RAISE NOTICE 'owner write without a context refused: SQLSTATE % (%)', SQLSTATE, SQLERRM;
END $$;
RESET ROLE;

\echo '== 9. ... and with a context only that tenant''s rows (the backend mints it, any role carries it)'
BEGIN;
SET LOCAL ROLE api_backend;
SELECT tenant.set_context('acme') AS context_tenant;
SET LOCAL ROLE app_owner;               -- the signed context stays in multitenant.context
SELECT current_user, e.id, t.slug AS tenant, e.kind
FROM public.events e JOIN tenant.tenants t ON t.id = e.tenant_id ORDER BY e.id;
COMMIT;

\echo '== 10. but postgres is a superuser: superusers bypass row level security and see every row'
\echo '==     (never connect an application as a superuser)'
SELECT t.slug AS tenant, count(*) AS rows FROM public.events e JOIN tenant.tenants t ON t.id = e.tenant_id
GROUP BY t.slug ORDER BY t.slug;

-- Self-check, for CI: the promises above as assertions (the script fails if one does not hold).
\echo '== self-check'
BEGIN;
DO $$
DECLARE
    n bigint;
BEGIN
    SET LOCAL ROLE api_backend;
    PERFORM tenant.set_context('acme');
    SELECT count(*) INTO n FROM public.events;
    IF n <> 2 THEN RAISE EXCEPTION 'acme sees % rows, expected 2', n; END IF;
    PERFORM tenant.set_context('globex');
    SELECT count(*) INTO n FROM public.events WHERE kind = 'signup';  -- acme's UPDATE changed nothing
    IF n <> 1 OR (SELECT count(*) FROM public.events) <> 1 THEN
        RAISE EXCEPTION 'globex should see exactly its 1 row, unchanged';
    END IF;
    PERFORM tenant.clear_context();
    SELECT count(*) INTO n FROM public.events;
    IF n <> 0 THEN RAISE EXCEPTION 'the backend without a context sees % rows, expected 0', n; END IF;
    SET LOCAL ROLE app_owner;
    SELECT count(*) INTO n FROM public.events;
    IF n <> 0 THEN RAISE EXCEPTION 'the owner without a context sees % rows, expected 0', n; END IF;
    SET LOCAL ROLE api_backend;
    PERFORM tenant.set_context('globex');
    SET LOCAL ROLE app_owner;
    SELECT count(*) INTO n FROM public.events;
    IF n <> 1 THEN RAISE EXCEPTION 'the owner in globex''s context sees % rows, expected 1', n; END IF;
    RAISE NOTICE 'quickstart: every isolation check passed';
END $$;
COMMIT;
