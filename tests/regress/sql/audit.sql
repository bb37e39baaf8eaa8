-- Audit trail: tenant.audit / unaudit, what an entry holds, who reads which entries,
-- append-only, verify_audit (hash chains), purge_audit.
\set VERBOSITY verbose
\set SHOW_CONTEXT never
SELECT tenant.create('rg-acme', 'Acme') AS acme \gset
SELECT tenant.create('rg-globex', 'Globex') AS globex \gset
SET ROLE rg_owner;
CREATE TABLE public.invoices (id int PRIMARY KEY, tenant_id uuid NOT NULL, amount numeric, note text, updated_at timestamptz DEFAULT now());
CREATE TABLE public.secrets (id int PRIMARY KEY, tenant_id uuid NOT NULL, value text);
GRANT SELECT, INSERT, UPDATE, DELETE ON public.invoices, public.secrets TO rg_service;
GRANT SELECT ON public.invoices TO rg_app;
SELECT tenant.isolate('public.invoices');
SELECT tenant.isolate('public.secrets');
SELECT tenant.audit('public.invoices', ignore_columns => ARRAY['updated_at']);
SELECT tenant.audit('public.secrets', changed_only => true);
SELECT relid, ignore_columns, changed_only FROM tenant.audited_tables ORDER BY relid::text;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'public.invoices'::regclass AND NOT tgisinternal ORDER BY tgname;
-- idempotent
SELECT tenant.audit('public.invoices', ignore_columns => ARRAY['updated_at']);
-- refused: temporary table (MT030), not the owner (MT020), not tenant_admin (42501)
CREATE TEMP TABLE tmp_audit (id int);
SELECT tenant.audit('tmp_audit');
RESET ROLE;
CREATE TABLE public.not_mine (id int PRIMARY KEY);
SET ROLE rg_owner;
SELECT tenant.audit('public.not_mine');
RESET ROLE;
SET ROLE rg_service;
SELECT tenant.audit('public.invoices');
RESET ROLE;
-- writes under a context are logged to that tenant's chain
SET ROLE rg_service;
BEGIN;
SELECT tenant.set_context('rg-acme', 'user-42') IS NOT NULL AS entered;
INSERT INTO public.invoices (id, amount, note) VALUES (42, 100, 'first'), (43, 5, 'second');
UPDATE public.invoices SET amount = 120 WHERE id = 42;
UPDATE public.invoices SET updated_at = now() WHERE id = 42;
DELETE FROM public.invoices WHERE id = 43;
INSERT INTO public.secrets VALUES (1, :'acme', 'hunter2');
UPDATE public.secrets SET value = 'hunter3' WHERE id = 1;
COMMIT;
BEGIN;
SELECT tenant.set_context('rg-globex', 'user-7') IS NOT NULL AS entered;
INSERT INTO public.invoices (id, amount, note) VALUES (44, 1, 'globex');
COMMIT;
RESET ROLE;
SELECT table_name, operation, record_id, user_id, db_role, client_addr, application_name,
       old_data - 'updated_at' - 'tenant_id' AS old_data, new_data - 'updated_at' - 'tenant_id' AS new_data, changed,
       tenant_id = :'acme' AS acme, chain LIKE :'acme' || '/%' AS acme_chain
FROM tenant.audit_log WHERE operation <> 'EVENT' ORDER BY id;
-- the entry holds every column but the ignored ones
SELECT new_data ? 'updated_at' AS has_ignored_column, new_data ? 'tenant_id' AS has_tenant_id
FROM tenant.audit_log WHERE table_name = 'public.invoices' AND operation = 'INSERT' ORDER BY id LIMIT 1;
-- the reference example
SELECT operation, record_id FROM tenant.audit_log
WHERE table_oid = 'public.invoices'::regclass AND record_id = '42' ORDER BY at, id;
-- who reads what: a role in a tenant's context reads that tenant's entries about tables it
-- may SELECT (rg_app may read invoices, not secrets)
SET ROLE rg_service;
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SELECT current_setting('multitenant.context') AS acme_token \gset
COMMIT;
RESET ROLE;
SET ROLE rg_app;
BEGIN;
SET LOCAL multitenant.context = :'acme_token';
SELECT table_name, operation, record_id FROM tenant.audit_log ORDER BY id;
COMMIT;
-- without a context: nothing
SELECT count(*) AS without_context FROM tenant.audit_log;
RESET ROLE;
-- tenant_auditor reads every entry of its context's tenant, management events included
SET ROLE rg_auditor;
BEGIN;
SET LOCAL multitenant.context = :'acme_token';
SELECT table_name, operation, record_id FROM tenant.audit_log ORDER BY id;
COMMIT;
RESET ROLE;
-- tenant_service reads all
SET ROLE rg_service;
SELECT count(*) AS service_reads, count(DISTINCT tenant_id) AS tenants FROM tenant.audit_log;
RESET ROLE;
-- a row of another tenant written without its context goes to the global chain
-- (a BYPASSRLS-free writer cannot do that on an isolated table; the owner of a table that is
-- not isolated can)
SET ROLE rg_owner;
CREATE TABLE public.ledger (id int PRIMARY KEY, tenant_id uuid);
SELECT tenant.audit('public.ledger');
INSERT INTO public.ledger VALUES (1, :'globex');
RESET ROLE;
SELECT operation, record_id, tenant_id IS NULL AS no_tenant, chain LIKE 'global/%' AS global_chain
FROM tenant.audit_log WHERE table_name = 'public.ledger';
-- TRUNCATE is logged once per statement
SET ROLE rg_owner;
TRUNCATE public.ledger;
RESET ROLE;
SELECT operation, record_id, old_data FROM tenant.audit_log WHERE table_name = 'public.ledger' ORDER BY id;
-- append-only: UPDATE, DELETE and TRUNCATE raise MT020 for every role, superusers included
UPDATE tenant.audit_log SET user_id = 'someone-else' WHERE record_id = '42';
DELETE FROM tenant.audit_log WHERE record_id = '42';
TRUNCATE tenant.audit_log;
SET ROLE rg_service;
DELETE FROM tenant.audit_log;
RESET ROLE;
-- verify_audit: every chain of a tenant (NULL: the global chains)
SELECT tenant.verify_audit('rg-acme') - 'tenant' AS acme;
SELECT tenant.verify_audit('rg-globex') - 'tenant' AS globex;
SELECT tenant.verify_audit(NULL) - 'tenant' AS global;
SELECT tenant.verify_audit('rg-nope');
-- a tenant may verify its own chains, not another's
SET ROLE rg_app;
BEGIN;
SET LOCAL multitenant.context = :'acme_token';
SELECT (tenant.verify_audit('rg-acme'))->'valid' AS own_chain_valid;
SELECT tenant.verify_audit('rg-globex');
ROLLBACK;
RESET ROLE;
-- tampering (a superuser disabling the guard trigger) is found: an edit ...
SET session_replication_role = replica;
UPDATE tenant.audit_log SET new_data = jsonb_set(new_data, '{amount}', '1') WHERE record_id = '42' AND operation = 'INSERT';
RESET session_replication_role;
SELECT v->'valid' AS valid, v->'broken_at_seq' AS broken_at_seq,
       regexp_replace(v->>'reason', '[0-9a-f-]{36}/[0-7]', '<chain>', 'g') AS reason
FROM tenant.verify_audit('rg-acme') AS v;
-- ... and a deletion
SET session_replication_role = replica;
DELETE FROM tenant.audit_log WHERE record_id = '44';
RESET session_replication_role;
SELECT v->'valid' AS valid, v->'broken_at_seq' AS broken_at_seq,
       regexp_replace(v->>'reason', '[0-9a-f-]{36}/[0-7]', '<chain>', 'g') AS reason
FROM tenant.verify_audit('rg-globex') AS v;
-- purge_audit: nothing is past retention yet; for tenant_admin only
SET ROLE rg_owner;
SELECT tenant.purge_audit(30, 730);
SELECT tenant.purge_audit(0, 730);
RESET ROLE;
SET ROLE rg_service;
SELECT tenant.purge_audit();
RESET ROLE;
-- unaudit: true once, then false; later writes are not logged
SET ROLE rg_owner;
SELECT tenant.unaudit('public.secrets');
SELECT tenant.unaudit('public.secrets');
RESET ROLE;
SET ROLE rg_app;
SELECT tenant.unaudit('public.invoices');
RESET ROLE;
SELECT count(*) AS audited FROM tenant.audited_tables;
-- the trigger function called directly, or attached by hand (it reads tenant.audited_tables)
SET ROLE rg_owner;
CREATE TRIGGER by_hand AFTER INSERT ON public.secrets FOR EACH ROW EXECUTE FUNCTION tenant_internal._audit_trigger();
RESET ROLE;
INSERT INTO public.secrets VALUES (2, :'acme', 'x');
SELECT tenant_internal._audit_trigger();
