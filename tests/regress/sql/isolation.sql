-- Row-level isolation: tenant.isolate / tenant.unisolate, what they generate, and what each
-- role sees and may write with and without a context. Run as non-superusers via SET ROLE.
\set VERBOSITY verbose
\set SHOW_CONTEXT never
SELECT tenant.create('rg-acme', 'Acme Corp') AS acme \gset
SELECT tenant.create('rg-globex', 'Globex') AS globex \gset
-- the application table, owned by a non-superuser
SET ROLE rg_owner;
CREATE TABLE public.events (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, kind text);
GRANT SELECT, INSERT, UPDATE, DELETE ON public.events TO rg_service, rg_app;
GRANT USAGE ON SEQUENCE public.events_id_seq TO rg_service, rg_app;
SELECT tenant.isolate('public.events');
RESET ROLE;
-- what isolate generated: RLS enabled and forced, policies, default, index, registry row
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'public.events'::regclass;
SELECT policyname, permissive, roles, cmd, qual, with_check
FROM pg_policies WHERE schemaname = 'public' AND tablename = 'events' ORDER BY policyname;
SELECT pg_get_expr(adbin, adrelid) AS tenant_id_default
FROM pg_attrdef WHERE adrelid = 'public.events'::regclass
  AND adnum = (SELECT attnum FROM pg_attribute WHERE attrelid = 'public.events'::regclass AND attname = 'tenant_id');
SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'events' ORDER BY indexname;
SELECT relid, tenant_column, created_index IS NOT NULL AS created_index, previous_default,
       rls_was_enabled, rls_was_forced, isolated_by
FROM tenant.isolated_tables;
-- each tenant writes and reads only its own rows
SET ROLE rg_service;
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
INSERT INTO public.events (kind) VALUES ('signup'), ('login');
SELECT kind, tenant_id = :'acme' AS own FROM public.events ORDER BY id;
COMMIT;
BEGIN;
SELECT tenant.set_context('rg-globex') IS NOT NULL AS entered;
INSERT INTO public.events (kind) VALUES ('signup');
SELECT kind, tenant_id = :'globex' AS own FROM public.events ORDER BY id;
COMMIT;
BEGIN;
SELECT tenant.set_context('rg-globex') IS NOT NULL AS entered;
-- another tenant's rows cannot be updated or deleted: they are not there
UPDATE public.events SET kind = 'hijacked' WHERE tenant_id = :'acme' RETURNING id;
DELETE FROM public.events WHERE tenant_id = :'acme' RETURNING id;
-- a row written with another tenant's id fails the WITH CHECK (42501)
INSERT INTO public.events (tenant_id, kind) VALUES (:'acme', 'planted');
ROLLBACK;
BEGIN;
SELECT tenant.set_context('rg-globex') IS NOT NULL AS entered;
-- nor can a row be moved to another tenant
UPDATE public.events SET tenant_id = :'acme';
ROLLBACK;
-- without a context: no rows, and every write fails with MT001
SELECT count(*) AS visible_without_context FROM public.events;
INSERT INTO public.events (kind) VALUES ('orphan');
INSERT INTO public.events (tenant_id, kind) VALUES (:'acme', 'orphan');
UPDATE public.events SET kind = 'x';
DELETE FROM public.events;
RESET ROLE;
-- the owner is held too (FORCE ROW LEVEL SECURITY)
SET ROLE rg_owner;
SELECT count(*) AS owner_sees_without_context FROM public.events;
RESET ROLE;
-- a role that is not tenant_service uses a context carried in multitenant.context
SET ROLE rg_service;
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SELECT current_setting('multitenant.context') AS acme_token \gset
COMMIT;
RESET ROLE;
SET ROLE rg_app;
BEGIN;
SET LOCAL multitenant.context = :'acme_token';
SELECT count(*) AS app_sees_acme_rows, bool_and(tenant_id = :'acme') AS all_acme FROM public.events;
INSERT INTO public.events (kind) VALUES ('via-app') RETURNING kind, tenant_id = :'acme' AS own;
ROLLBACK;
RESET ROLE;
-- superusers bypass row level security (never connect the application as one)
SELECT count(*) AS superuser_sees FROM public.events;
-- idempotent: a second call re-creates the policies
SET ROLE rg_owner;
SELECT tenant.isolate('public.events');
SELECT count(*) AS policies FROM pg_policies WHERE tablename = 'events';
-- a table whose tenant column has another name, and an index that already leads with it
CREATE TABLE public.orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, org_id uuid NOT NULL, total numeric);
CREATE INDEX orders_org_created ON public.orders (org_id, id);
SELECT tenant.isolate('public.orders', 'org_id');
SELECT indexname FROM pg_indexes WHERE tablename = 'orders' ORDER BY indexname;
SELECT relid, tenant_column, created_index FROM tenant.isolated_tables ORDER BY relid::text;
-- the tenant column cannot change while isolated
SELECT tenant.isolate('public.orders', 'id');
-- partitions: isolate covers the tree, and partitions created or attached later
CREATE TABLE public.metrics (tenant_id uuid NOT NULL, day date NOT NULL, value int) PARTITION BY RANGE (day);
CREATE TABLE public.metrics_2025 PARTITION OF public.metrics FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
SELECT tenant.isolate('public.metrics');
CREATE TABLE public.metrics_2026 PARTITION OF public.metrics FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE public.metrics_2027 (tenant_id uuid NOT NULL, day date NOT NULL, value int);
ALTER TABLE public.metrics ATTACH PARTITION public.metrics_2027 FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, i.relid IS NOT NULL AS registered
FROM pg_class c LEFT JOIN tenant.isolated_tables i ON i.relid = c.oid
WHERE c.relname LIKE 'metrics%' AND c.relkind IN ('r', 'p') ORDER BY c.relname;
-- a partition of a table that stays isolated cannot be opened on its own (MT030); the
-- message names the parent (an oid would still be masked)
DO $$
BEGIN
  PERFORM tenant.unisolate('public.metrics_2026');
EXCEPTION WHEN OTHERS THEN
  RAISE NOTICE '%: %', SQLSTATE, regexp_replace(SQLERRM, 'oid [0-9]+', 'oid <masked>');
END $$;
-- unisolate reverses everything on the tree; a second call returns false
SELECT tenant.unisolate('public.metrics');
SELECT tenant.unisolate('public.metrics');
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
       (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies
FROM pg_class c WHERE c.relname LIKE 'metrics%' AND c.relkind IN ('r', 'p') ORDER BY c.relname;
SELECT tenant.unisolate('public.orders');
SELECT indexname FROM pg_indexes WHERE tablename = 'orders' ORDER BY indexname;
SELECT column_default FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'org_id';
-- refusals (MT030 / MT020)
CREATE TEMP TABLE scratch (tenant_id uuid);
SELECT tenant.isolate('scratch');
CREATE VIEW public.events_view AS SELECT * FROM public.events;
SELECT tenant.isolate('public.events_view');
CREATE TABLE public.no_tenant (id int);
SELECT tenant.isolate('public.no_tenant');
CREATE TABLE public.text_tenant (tenant_id text);
SELECT tenant.isolate('public.text_tenant');
-- system and extension tables: a non-owner is refused for ownership first (MT020) ...
SELECT tenant.isolate('tenant.tenants');
SELECT tenant.isolate('pg_catalog.pg_class');
RESET ROLE;
-- ... and even their owner by schema (MT030)
SELECT tenant.isolate('tenant.tenants');
SELECT tenant.isolate('pg_catalog.pg_class');
-- only the owner may isolate a table
CREATE TABLE public.owned_by_postgres (tenant_id uuid);
SET ROLE rg_owner;
SELECT tenant.isolate('public.owned_by_postgres');
SELECT tenant.unisolate('public.owned_by_postgres');
RESET ROLE;
SET ROLE rg_app;
SELECT tenant.isolate('public.events');
SELECT tenant.unisolate('public.events');
RESET ROLE;
-- a partition tree with a child of another owner is refused whole
CREATE TABLE public.mixed (tenant_id uuid NOT NULL, k int) PARTITION BY LIST (k);
CREATE TABLE public.mixed_1 PARTITION OF public.mixed FOR VALUES IN (1);
ALTER TABLE public.mixed OWNER TO rg_owner;
SET ROLE rg_owner;
SELECT tenant.isolate('public.mixed');
SELECT relname, relrowsecurity FROM pg_class WHERE relname LIKE 'mixed%' ORDER BY relname;
RESET ROLE;
