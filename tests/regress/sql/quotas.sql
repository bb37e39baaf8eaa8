-- Plans, features and quotas: load_plan, set_plan, overrides, has_feature/require_feature,
-- consume/check (hard and soft limits), limit_rows, usage_report, invoice, run_maintenance.
\set VERBOSITY verbose
\set SHOW_CONTEXT never
-- plans are loaded by tenant_admin
SET ROLE rg_owner;
SELECT tenant.load_plan('{
  "name": "free", "price": 0, "currency": "USD", "billing_cycle": "month",
  "limits": {"api_requests_per_hour": 1000, "storage_mb": 100, "users": 3, "campaigns": 1,
             "missions_per_month": 100},
  "features": ["basic_analytics", "community_support"],
  "restrictions": ["no_custom_branding"],
  "overage": {"missions": 0.50}}');
SELECT tenant.load_plan('{"name": "enterprise", "price": 499,
  "limits": {"api_requests_per_hour": -1, "users": -1},
  "features": ["sso_integration", "audit_logs", "custom_domains"]}');
SELECT name, price, currency, billing_cycle, features, restrictions FROM tenant.plans ORDER BY name;
SELECT * FROM tenant.plan_limits ORDER BY plan, resource;
-- a plan can be replaced
SELECT tenant.load_plan('{"name": "scratch", "price": 1, "limits": {"things": 1}}');
SELECT tenant.load_plan('{"name": "scratch", "price": 2, "limits": {"others_per_day": 5}}');
SELECT resource, period, limit_value FROM tenant.plan_limits WHERE plan = 'scratch';
-- refused definitions (MT030)
SELECT tenant.load_plan('[]');
SELECT tenant.load_plan('{"price": 1}');
SELECT tenant.load_plan('{"name": "!!!"}');
SELECT tenant.load_plan('{"name": "p", "price": -1}');
SELECT tenant.load_plan('{"name": "p", "limits": []}');
SELECT tenant.load_plan('{"name": "p", "limits": {"users": -2}}');
SELECT tenant.load_plan('{"name": "p", "limits": {"users": "ten"}}');
SELECT tenant.load_plan('{"name": "p", "features": "sso"}');
-- accepted: an unknown window suffix is part of the resource name ("users_per_week", no window)
SELECT tenant.load_plan('{"name": "p", "limits": {"users_per_week": 1}}');
SELECT resource, period, limit_value FROM tenant.plan_limits WHERE plan = 'p';
-- a negative overage price, or one for a resource without a limit, is refused (MT030)
SELECT tenant.load_plan('{"name": "p", "overage": {"users": -1}}');
SELECT resource, period, limit_value, overage_price FROM tenant.plan_limits WHERE plan = 'p';
SELECT definition->'overage' AS stored_overage FROM tenant.plans WHERE name = 'p';
RESET ROLE;
-- not for tenant_service (42501)
SET ROLE rg_service;
SELECT tenant.load_plan('{"name": "p"}');
SELECT tenant.create('rg-acme', 'Acme') AS acme \gset
SELECT tenant.create('rg-globex', 'Globex', plan => 'enterprise') IS NOT NULL AS created;
RESET ROLE;
-- features: from the plan, with overrides (tenant_admin)
SET ROLE rg_service;
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SELECT tenant.has_feature('basic_analytics') AS basic, tenant.has_feature('sso_integration') AS sso;
SELECT tenant.require_feature('basic_analytics');
SELECT tenant.require_feature('sso_integration');
ROLLBACK;
SELECT tenant.has_feature('basic_analytics') AS without_context;
SELECT tenant.require_feature('basic_analytics');
RESET ROLE;
SET ROLE rg_owner;
SELECT tenant.set_feature_override('rg-acme', 'sso_integration', true);
SELECT tenant.set_feature_override('rg-acme', 'basic_analytics', false);
RESET ROLE;
SET ROLE rg_service;
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SELECT tenant.has_feature('basic_analytics') AS basic, tenant.has_feature('sso_integration') AS sso;
ROLLBACK;
RESET ROLE;
SET ROLE rg_owner;
SELECT tenant.set_feature_override('rg-acme', 'basic_analytics', NULL);
SELECT tenant.set_feature_override('rg-acme', 'Bad Feature', true);
SELECT tenant.set_feature_override('rg-nope', 'sso_integration', true);
RESET ROLE;
SET ROLE rg_service;
SELECT tenant.set_feature_override('rg-acme', 'sso_integration', true);
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SELECT tenant.has_feature('basic_analytics') AS basic_back_from_plan;
ROLLBACK;
-- consume: remaining allowance, NULL when unlimited
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SELECT tenant.consume('api_requests') AS remaining;
SELECT tenant.consume('api_requests', 98) AS remaining;
SELECT tenant.consume('storage_mb', 25) AS remaining;
SELECT tenant.check('storage_mb', 75) AS fits, tenant.check('storage_mb', 76) AS too_much;
SELECT tenant.consume('storage_mb', 75) AS remaining;
-- a hard limit: MT010 with the numbers, and nothing consumed
SAVEPOINT s;
SELECT tenant.consume('storage_mb');
ROLLBACK TO SAVEPOINT s;
SELECT tenant.check('storage_mb') AS fits;
-- refused arguments (MT030)
SELECT tenant.consume('storage_mb', 0);
ROLLBACK;
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SELECT tenant.consume('storage_mb', -5);
ROLLBACK;
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SELECT tenant.consume('unlimited_thing');
ROLLBACK;
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SELECT tenant.consume('storage_mb', 9223372036854775807);
ROLLBACK;
-- a soft limit (overage priced): consumption continues past it and is billed
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SELECT tenant.consume('missions', 90) AS remaining;
SELECT tenant.consume('missions', 30) AS remaining_past_soft_limit;
SELECT tenant.check('missions', 1000) AS soft_limit_fits;
COMMIT;
-- unlimited (-1) on enterprise
BEGIN;
SELECT tenant.set_context('rg-globex') IS NOT NULL AS entered;
SELECT tenant.consume('api_requests', 1000000) IS NULL AS unlimited;
COMMIT;
-- without a context: MT001
SELECT tenant.consume('api_requests');
SELECT tenant.check('api_requests');
RESET ROLE;
-- overrides replace the plan's limit (tenant_admin)
SET ROLE rg_owner;
SELECT tenant.set_limit_override('rg-acme', 'storage_mb', 150);
SELECT tenant.set_limit_override('rg-acme', 'api_requests', -1, 'hour');
SELECT tenant.set_limit_override('rg-acme', 'users', -2);
SELECT tenant.set_limit_override('rg-acme', 'users', 5, 'fortnight');
SELECT tenant.set_limit_override('rg-acme', 'users', 5, 'none', -1);
SELECT tenant.set_limit_override('rg-nope', 'users', 5);
RESET ROLE;
SET ROLE rg_service;
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SELECT tenant.consume('storage_mb', 50) AS remaining_under_override;
SELECT tenant.consume('api_requests', 5000) IS NULL AS override_unlimited;
COMMIT;
-- the usage report of the current tenant
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SELECT resource, period, limit_value, window_used, percent_used, window_resets IS NOT NULL AS resets, used_in_range
FROM tenant.usage_report() ORDER BY resource;
COMMIT;
SELECT count(*) FROM tenant.usage_report();
RESET ROLE;
-- the invoice: base price, then overage of monthly limits
SET ROLE rg_service;
-- (the base line names the month: masked)
SELECT regexp_replace(line, '\(\d{4}-\d{2}\)', '(<month>)') AS line, quantity, unit_price, amount, currency
FROM tenant.invoice('rg-acme');
SELECT regexp_replace(line, '\(\d{4}-\d{2}\)', '(<month>)') AS line, quantity, unit_price, amount, currency
FROM tenant.invoice('rg-globex');
-- a past month without usage: the base price only
SELECT * FROM tenant.invoice('rg-acme', '2020-02-01');
SELECT * FROM tenant.invoice('rg-nope');
-- plan changes are seen at the next check
SELECT tenant.set_plan('rg-acme', 'enterprise');
SELECT tenant.set_plan('rg-acme', 'no-such-plan');
SELECT tenant.set_plan('rg-nope', 'free');
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SELECT tenant.has_feature('custom_domains') AS enterprise_feature;
COMMIT;
SELECT tenant.set_plan('rg-acme', 'free');
RESET ROLE;
SELECT record_id, new_data FROM tenant.audit_log WHERE record_id = 'tenant.plan_changed' ORDER BY id;
-- read-only (suspended) contexts consume nothing (MT003)
SET multitenant.suspended_access = 'read';
SELECT tenant.set_status('rg-acme', 'suspended');
SET ROLE rg_service;
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SELECT tenant.consume('api_requests');
ROLLBACK;
RESET ROLE;
SELECT tenant.set_status('rg-acme', 'active');
RESET multitenant.suspended_access;
-- row-count limits: limit_rows counts a tenant's rows against a limit (users: 3 on free)
SET ROLE rg_owner;
CREATE TABLE public.users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tenant_id uuid NOT NULL, email text);
GRANT SELECT, INSERT, DELETE ON public.users TO rg_service;
SELECT tenant.isolate('public.users');
SELECT tenant.limit_rows('public.users', 'users');
RESET ROLE;
SET ROLE rg_service;
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
INSERT INTO public.users (email) VALUES ('a@x'), ('b@x'), ('c@x');
SAVEPOINT s;
INSERT INTO public.users (email) VALUES ('d@x');
ROLLBACK TO SAVEPOINT s;
DELETE FROM public.users WHERE email = 'a@x';
INSERT INTO public.users (email) VALUES ('d@x');
SELECT count(*) AS users FROM public.users;
COMMIT;
-- another tenant's quota is its own (enterprise: unlimited)
BEGIN;
SELECT tenant.set_context('rg-globex') IS NOT NULL AS entered;
INSERT INTO public.users (email) SELECT 'g' || i || '@x' FROM generate_series(1, 5) i;
SELECT count(*) AS users FROM public.users;
COMMIT;
RESET ROLE;
-- limit_rows refusals
SET ROLE rg_owner;
CREATE TABLE public.users2 (tenant_id uuid NOT NULL);
SELECT tenant.limit_rows('public.users2', 'users');
SELECT tenant.limit_rows('public.users2', 'Bad Resource');
CREATE TEMP TABLE tmp_users (tenant_id uuid);
SELECT tenant.limit_rows('tmp_users', 'seats');
RESET ROLE;
CREATE TABLE public.users3 (tenant_id uuid NOT NULL);
SET ROLE rg_owner;
SELECT tenant.limit_rows('public.users3', 'seats');
RESET ROLE;
SET ROLE rg_service;
SELECT tenant.limit_rows('public.users', 'users');
RESET ROLE;
-- the trigger takes no arguments and counts nothing when attached by hand
SET ROLE rg_owner;
CREATE TRIGGER by_hand AFTER INSERT ON public.users2 FOR EACH ROW EXECUTE FUNCTION tenant_internal._limit_rows_trigger();
INSERT INTO public.users2 VALUES (:'acme');
-- called directly, outside a trigger (XX000 from pgrx's wrapper, see docs/security.md)
SELECT tenant_internal._limit_rows_trigger();
RESET ROLE;
-- unlimit_rows: tenant_admin owners only
SET ROLE rg_service;
SELECT tenant.unlimit_rows('public.users');
RESET ROLE;
SET ROLE rg_owner;
SELECT tenant.unlimit_rows('public.users');
SELECT tenant.unlimit_rows('public.users');
RESET ROLE;
-- maintenance (for pg_cron): a JSON summary
SELECT jsonb_typeof(tenant.run_maintenance()) AS maintenance;
SELECT array_agg(k ORDER BY k) AS maintenance_keys FROM jsonb_object_keys(tenant.run_maintenance()) AS k;
