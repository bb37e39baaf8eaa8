-- Tenant lifecycle: tenant.create (statuses, settings, plan) and tenant.set_status
-- transitions, and what a status change does to contexts minted before it.
\set VERBOSITY verbose
\set SHOW_CONTEXT never
-- deleted tenants may be purged at once here (default: 30 days after the deletion)
SET multitenant.deletion_retention = 0;
-- create, as the backend role
SET ROLE rg_service;
SELECT tenant.create('rg-acme', 'Acme Corp') AS acme \gset
SELECT tenant.create('rg-globex', 'Globex', status => 'trial', settings => '{"locale": "de"}') IS NOT NULL AS created;
SELECT tenant.create('rg-initech', 'Initech', status => 'provisioning') IS NOT NULL AS created;
SELECT slug, name, plan, status, settings, region,
       trial_ends_at IS NOT NULL AND trial_ends_at BETWEEN now() + interval '14 days' - interval '1 minute'
                                                      AND now() + interval '14 days' AS trial_ends_in_14_days
FROM tenant.tenants ORDER BY slug;
-- refused (MT030)
SELECT tenant.create('rg-acme', 'Acme again');
SELECT tenant.create('RG-Upper', 'x');
SELECT tenant.create('-rg', 'x');
SELECT tenant.create(repeat('a', 64), 'x');
SELECT tenant.create('11111111-2222-3333-4444-555555555555', 'x');
SELECT tenant.create('rg-blank', '   ');
SELECT tenant.create('rg-status', 'x', status => 'suspended');
SELECT tenant.create('rg-status', 'x', status => 'paused');
SELECT tenant.create('rg-settings', 'x', settings => '[1, 2]');
SELECT tenant.create('rg-plan', 'x', plan => '');
-- a plan that was never loaded is refused by create, as by set_plan (MT030); 'free', the
-- default, may stay undefined: no plan exists right after CREATE EXTENSION
SELECT tenant.create('rg-plan', 'x', plan => 'no-such-plan') IS NOT NULL AS created_on_unknown_plan;
SELECT count(*) AS plans FROM tenant.plans;
RESET ROLE;
-- only tenant_service and tenant_admin (42501 otherwise)
SET ROLE rg_owner;
SELECT tenant.create('rg-by-admin', 'By admin') IS NOT NULL AS admin_may_create;
RESET ROLE;
SET ROLE rg_app;
SELECT tenant.create('rg-by-app', 'x');
SELECT tenant.set_status('rg-acme', 'suspended');
RESET ROLE;
-- every transition, from each status to each status ('ok' or the SQLSTATE)
CREATE TEMP TABLE transitions (from_status text, to_status text, result text);
DO $$
DECLARE
  statuses text[] := ARRAY['provisioning', 'trial', 'active', 'suspended', 'deleted', 'purged'];
  f text; t text; n int := 0; s text;
BEGIN
  FOREACH f IN ARRAY statuses LOOP
    FOREACH t IN ARRAY statuses LOOP
      n := n + 1;
      s := 'rg-lc-' || n;
      PERFORM tenant.create(s, s, status => CASE WHEN f IN ('provisioning', 'trial') THEN f ELSE 'active' END);
      IF f = 'suspended' THEN PERFORM tenant.set_status(s, 'suspended'); END IF;
      IF f IN ('deleted', 'purged') THEN PERFORM tenant.set_status(s, 'deleted'); END IF;
      IF f = 'purged' THEN PERFORM tenant.set_status(s, 'purged'); END IF;
      BEGIN
        PERFORM tenant.set_status(s, t);
        INSERT INTO transitions VALUES (f, t, 'ok');
      EXCEPTION WHEN OTHERS THEN
        INSERT INTO transitions VALUES (f, t, SQLSTATE);
      END;
    END LOOP;
  END LOOP;
END $$;
SELECT from_status AS "from \ to",
       max(result) FILTER (WHERE to_status = 'provisioning') AS provisioning,
       max(result) FILTER (WHERE to_status = 'trial') AS trial,
       max(result) FILTER (WHERE to_status = 'active') AS active,
       max(result) FILTER (WHERE to_status = 'suspended') AS suspended,
       max(result) FILTER (WHERE to_status = 'deleted') AS deleted,
       max(result) FILTER (WHERE to_status = 'purged') AS purged
FROM transitions
GROUP BY from_status
ORDER BY array_position(ARRAY['provisioning', 'trial', 'active', 'suspended', 'deleted', 'purged'], from_status);
-- the messages
SELECT tenant.set_status('rg-initech', 'suspended');
SELECT tenant.set_status('rg-acme', 'paused');
SELECT tenant.set_status('rg-nope', 'active');
-- only trial and active tenants can be entered
SET ROLE rg_service;
SELECT tenant.set_context('rg-initech');
SELECT tenant.set_context('rg-globex') IS NOT NULL AS trial_can_be_entered;
RESET ROLE;
-- an isolated table with a row of acme
SET ROLE rg_owner;
CREATE TABLE public.notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tenant_id uuid NOT NULL, body text);
GRANT SELECT, INSERT, UPDATE, DELETE ON public.notes TO rg_service, rg_app;
SELECT tenant.isolate('public.notes');
RESET ROLE;
SET ROLE rg_service;
BEGIN;
SELECT tenant.set_context('rg-acme', 'user-1') IS NOT NULL AS entered;
INSERT INTO public.notes (body) VALUES ('before suspension');
COMMIT;
-- a session context minted before the suspension
SELECT tenant.set_context('rg-acme', 'user-1', is_local => false) IS NOT NULL AS entered;
SELECT current_setting('multitenant.context') AS acme_token \gset
RESET ROLE;
SELECT tenant.set_status('rg-acme', 'suspended');
-- at its next statement the old context reads nothing and writes nothing (MT003)
SET ROLE rg_service;
SELECT tenant.current_tenant() IS NULL AS no_tenant_while_suspended, count(*) AS visible FROM public.notes;
SELECT tenant.context_status();
INSERT INTO public.notes (body) VALUES ('while suspended');
SELECT tenant.require_tenant();
-- and the suspended tenant cannot be entered anew
SELECT tenant.set_context('rg-acme');
RESET ROLE;
-- with multitenant.suspended_access = read, a suspended tenant may be read, not written
SET multitenant.suspended_access = 'read';
SET ROLE rg_service;
SELECT tenant.current_tenant() = :'acme' AS readable, count(*) AS visible FROM public.notes;
SELECT (tenant.context_status()->>'read_only')::boolean AS read_only;
INSERT INTO public.notes (body) VALUES ('read-only');
UPDATE public.notes SET body = 'changed';
DELETE FROM public.notes;
SELECT tenant.require_tenant();
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered_read_only;
SELECT (tenant.context_status()->>'read_only')::boolean AS read_only;
ROLLBACK;
RESET ROLE;
SET ROLE rg_app;
SET multitenant.suspended_access = 'none';
RESET ROLE;
RESET multitenant.suspended_access;
-- after reactivation the same context works again
SELECT tenant.set_status('rg-acme', 'active');
SET ROLE rg_service;
SELECT tenant.current_tenant() = :'acme' AS works_again, count(*) AS visible FROM public.notes;
INSERT INTO public.notes (body) VALUES ('after reactivation');
SELECT tenant.clear_context();
RESET ROLE;
-- a carried token of a deleted tenant is no context either
SELECT tenant.set_status('rg-acme', 'deleted');
SET ROLE rg_app;
BEGIN;
SET LOCAL multitenant.context = :'acme_token';
SELECT tenant.current_tenant() IS NULL AS deleted_is_no_context, count(*) AS visible FROM public.notes;
SELECT tenant.context_status()->>'reason' AS reason;
ROLLBACK;
RESET ROLE;
SELECT tenant.set_status('rg-acme', 'purged');
SELECT tenant.set_status('rg-acme', 'active');
-- run_maintenance suspends trials whose trial_ends_at has passed
SELECT tenant.create('rg-trial', 'Trial', status => 'trial') IS NOT NULL AS created;
UPDATE tenant.tenants SET trial_ends_at = now() - interval '1 minute' WHERE slug = 'rg-trial';
SELECT tenant.run_maintenance()->'trials_expired' AS trials_expired;
SELECT status FROM tenant.tenants WHERE slug = 'rg-trial';
SELECT tenant.run_maintenance()->'trials_expired' AS trials_expired_again;
-- a status change is a management event, whoever makes it
SELECT record_id, new_data FROM tenant.audit_log
WHERE operation = 'EVENT' AND tenant_id = (SELECT id FROM tenant.tenants WHERE slug = 'rg-trial') ORDER BY id;
-- the management events
SELECT record_id, count(*) FROM tenant.audit_log
WHERE operation = 'EVENT' AND record_id LIKE 'tenant.%' GROUP BY record_id ORDER BY record_id;
SELECT new_data->>'from' AS "from", new_data->>'to' AS "to"
FROM tenant.audit_log WHERE operation = 'EVENT' AND record_id = 'tenant.status_changed' AND tenant_id = :'acme'
ORDER BY id;
