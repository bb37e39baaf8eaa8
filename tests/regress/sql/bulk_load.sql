-- Bulk loading and exporting an isolated table (docs/operations.md): COPY FROM is refused by
-- PostgreSQL on a table with row level security (0A000); COPY into a staging table, then
-- INSERT ... SELECT under a context. COPY TO is filtered by the policies.
\set VERBOSITY verbose
\set SHOW_CONTEXT never
SELECT tenant.create('rg-acme', 'Acme') AS acme \gset
SELECT tenant.create('rg-globex', 'Globex') AS globex \gset
SET ROLE rg_owner;
CREATE TABLE public.readings (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, sensor text, value numeric);
GRANT SELECT, INSERT ON public.readings TO rg_service;
GRANT USAGE ON SEQUENCE public.readings_id_seq TO rg_service;
SELECT tenant.isolate('public.readings');
RESET ROLE;
-- COPY FROM into the isolated table: refused, with or without a context, owner included
-- (psql still reads the data lines up to \. and drops them)
SET ROLE rg_service;
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
COPY public.readings (sensor, value) FROM STDIN;
s-0,0
\.
ROLLBACK;
RESET ROLE;
SET ROLE rg_owner;
COPY public.readings (tenant_id, sensor, value) FROM STDIN;
00000000-0000-0000-0000-000000000000,s-0,0
\.
RESET ROLE;
-- the documented path: COPY into a staging table (no row level security), then INSERT ...
-- SELECT in the tenant's context; the tenant column comes from the context
SET ROLE rg_service;
CREATE TEMP TABLE readings_staging (sensor text, value numeric);
COPY readings_staging FROM STDIN (FORMAT csv);
s-1,20.5
s-2,21.0
s-3,19.75
\.
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
INSERT INTO public.readings (sensor, value) SELECT sensor, value FROM readings_staging;
COMMIT;
-- a file with several tenants: one INSERT ... SELECT per tenant, each under its context
CREATE TEMP TABLE multi_staging (tenant text, sensor text, value numeric);
COPY multi_staging FROM STDIN (FORMAT csv);
rg-acme,s-4,1
rg-globex,g-1,2
rg-globex,g-2,3
\.
DO $$
DECLARE t text;
BEGIN
  FOR t IN SELECT DISTINCT tenant FROM multi_staging ORDER BY 1 LOOP
    PERFORM tenant.set_context(t);   -- transaction-local: this DO block's transaction
    INSERT INTO public.readings (sensor, value) SELECT sensor, value FROM multi_staging WHERE tenant = t;
  END LOOP;
  PERFORM tenant.clear_context();
END $$;
-- a row the staging data attributes to another tenant is refused by the WITH CHECK
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
INSERT INTO public.readings (tenant_id, sensor, value) VALUES (:'globex', 'forged', 0);
ROLLBACK;
RESET ROLE;
SELECT t.slug, r.sensor, r.value FROM public.readings r JOIN tenant.tenants t ON t.id = r.tenant_id ORDER BY r.id;
-- COPY TO applies the policies: each tenant exports only its rows, nothing without a context
SET ROLE rg_service;
BEGIN;
SELECT tenant.set_context('rg-globex') IS NOT NULL AS entered;
COPY public.readings (sensor, value) TO STDOUT (FORMAT csv);
COMMIT;
COPY public.readings (sensor, value) TO STDOUT (FORMAT csv);
RESET ROLE;
