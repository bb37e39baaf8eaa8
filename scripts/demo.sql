-- multitenant demo: run by scripts/demo.sh against a throwaway cluster.
\set ON_ERROR_STOP on
\pset footer off
\echo '== as the superuser: install the extension and create roles'
CREATE EXTENSION multitenant;
DROP ROLE IF EXISTS demo_owner, demo_backend;
CREATE ROLE demo_owner LOGIN;                      -- owns the application tables
CREATE ROLE demo_backend LOGIN IN ROLE tenant_service;  -- the trusted backend
GRANT CREATE ON SCHEMA public TO demo_owner;
SELECT tenant.load_plan('{"name": "pro", "price": 49, "features": ["sso", "custom_domains", "custom_branding"], "limits": {"seats": 50}}');

\echo '== as the backend: create two tenants'
SET ROLE demo_backend;
SELECT tenant.create('acme', 'Acme Corp') AS acme_id \gset
SELECT tenant.create('globex', 'Globex Inc', plan => 'pro') AS globex_id \gset
SELECT slug, name, plan, status FROM tenant.tenants ORDER BY slug;
RESET ROLE;

\echo '== as the table owner: an application table, isolated per tenant'
SET ROLE demo_owner;
CREATE TABLE public.events (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id uuid NOT NULL,
    kind      text NOT NULL,
    at        timestamptz NOT NULL DEFAULT now()
);
SELECT tenant.isolate('public.events');
GRANT SELECT, INSERT, UPDATE, DELETE ON public.events TO demo_backend;
SELECT policyname, permissive, cmd FROM pg_policies WHERE tablename = 'events' ORDER BY 1;
RESET ROLE;

\echo '== as the backend: each tenant writes its own rows (tenant_id comes from the context)'
SET ROLE demo_backend;
BEGIN;
SELECT tenant.set_context('acme', 'alice');
INSERT INTO public.events (kind) VALUES ('signup'), ('login'), ('purchase');
COMMIT;
BEGIN;
SELECT tenant.set_context('globex', 'bob');
INSERT INTO public.events (kind) VALUES ('signup');
COMMIT;

\echo '== acme sees only its 3 rows'
BEGIN;
SELECT tenant.set_context('acme');
SELECT e.kind, t.slug AS tenant FROM public.events e JOIN tenant.tenants t ON t.id = e.tenant_id ORDER BY e.id;
\echo '== ... and cannot touch globex rows, even by naming them'
WITH u AS (UPDATE public.events SET kind = 'hacked' WHERE tenant_id = :'globex_id' RETURNING 1)
SELECT count(*) AS globex_rows_changed FROM u;
COMMIT;

\echo '== globex sees only its 1 row'
BEGIN;
SELECT tenant.set_context('globex');
SELECT e.kind, t.slug AS tenant FROM public.events e JOIN tenant.tenants t ON t.id = e.tenant_id ORDER BY e.id;
COMMIT;

\echo '== the context was transaction-local: now there is none, so no rows'
SELECT tenant.current_tenant() AS current_tenant, count(*) AS visible_rows FROM public.events;

\echo '== a forged context is no context'
SET multitenant.context = 'mt1.eyJ0IjoiZm9yZ2VkIn0.AAAA';
SELECT tenant.context_status() AS status, (SELECT count(*) FROM public.events) AS visible_rows;
RESET multitenant.context;

\echo '== writing without a context fails with SQLSTATE MT001'
\set ON_ERROR_STOP off
\set VERBOSITY verbose
INSERT INTO public.events (kind) VALUES ('orphan');
\set VERBOSITY default
\set ON_ERROR_STOP on
RESET ROLE;
\echo '== the superuser sees everything (superusers bypass RLS; check the roles you grant)'
SELECT t.slug, count(*) FROM public.events e JOIN tenant.tenants t ON t.id = e.tenant_id GROUP BY 1 ORDER BY 1;

\echo '== where a request lands: every tenant at <slug>.myapp.test, globex also at its own domain'
SET multitenant.base_domain = 'myapp.test';
SELECT tenant.set_feature_override('acme', 'custom_branding', true);  -- acme's free plan lacks it
SET ROLE demo_backend;
BEGIN;
SELECT tenant.set_context('globex');
SELECT jsonb_pretty(tenant.add_domain('portal.globex.example') -> 'records') AS dns_records_to_create;
SELECT tenant.set_branding('{"primary_color": "#d7263d", "logo_url": "https://cdn.globex.example/logo.svg", "color_scheme": "dark"}') AS globex_branding;
COMMIT;
BEGIN;
SELECT tenant.set_context('acme');
SELECT tenant.set_branding('{"primary_color": "#0a84ff", "logo_url": "https://cdn.acme.example/logo.png", "color_scheme": "light"}') AS acme_branding;
COMMIT;
\echo '== the custom domain resolves only once the DNS worker has seen its TXT record'
SELECT tenant.resolve('portal.globex.example') AS before_verification;
-- the worker found the TXT record holding globex's token
SELECT tenant.mark_domain_verified(hostname, txt_value) FROM tenant.pending_domains()
WHERE hostname = 'portal.globex.example';
SELECT h.host, t.slug AS resolves_to, tenant.get_branding(h.host) -> 'branding' ->> 'primary_color' AS login_page_color
FROM (VALUES ('acme.myapp.test'), ('Portal.Globex.example:443'), ('globex.myapp.test'), ('unknown.example')) AS h(host)
LEFT JOIN tenant.tenants t ON t.id = tenant.resolve(h.host);
\echo '== one call per request: the context from the Host header (acme by subdomain, globex by its domain)'
BEGIN;
SELECT tenant.set_context_for_host('acme.myapp.test', 'alice') IS NOT NULL AS entered;
SELECT count(*) AS acme_rows_visible FROM public.events;
COMMIT;
BEGIN;
SELECT tenant.set_context_for_host('portal.globex.example', 'bob') IS NOT NULL AS entered;
SELECT count(*) AS globex_rows_visible FROM public.events;
COMMIT;
\echo '== a request whose host and X-Tenant-ID header disagree is refused (MT006)'
\set ON_ERROR_STOP off
\set VERBOSITY verbose
SELECT tenant.set_context_for_host('acme.myapp.test', NULL, 'globex');
\set VERBOSITY default
\set ON_ERROR_STOP on
RESET ROLE;

\echo '== one tenant''s data as one document (tenant.export), per-tenant stats, then erasure'
SET ROLE demo_backend;
SELECT jsonb_pretty(tenant.export('globex') -> 'tables') AS globex_export;
RESET ROLE;
ANALYZE public.events;
SELECT slug, status, estimated_rows, audit_entries FROM tenant.tenant_stats() ORDER BY slug;
SET multitenant.deletion_retention = 0;   -- (default 30 days: purge waits that long)
SELECT tenant.set_status('globex', 'deleted');
SELECT jsonb_pretty(tenant.purge('globex')) AS purge_receipt;
SELECT t.slug, count(e.id) AS rows_left FROM tenant.tenants t LEFT JOIN public.events e ON e.tenant_id = t.id GROUP BY 1 ORDER BY 1;
