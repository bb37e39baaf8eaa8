-- Tenant context: set_context, clear_context, current_tenant, require_tenant,
-- current_user_id / current_roles / current_claims, context_status, carrying the token.
-- Roles are cluster-wide: created once, guarded, with the prefix rg_.
\set VERBOSITY verbose
\set SHOW_CONTEXT never
SELECT tenant.create('rg-acme', 'Acme Corp') AS acme \gset
SELECT tenant.create('rg-globex', 'Globex') AS globex \gset
-- no context: NULL / empty, and require_tenant raises MT001
SET ROLE rg_service;
SELECT tenant.current_tenant() IS NULL AS no_tenant,
       tenant.current_user_id() IS NULL AS no_user,
       tenant.current_roles() AS roles,
       tenant.current_claims() IS NULL AS no_claims;
SELECT tenant.require_tenant();
SELECT tenant.context_status();
-- transaction-local (the default): lasts until COMMIT
BEGIN;
SELECT tenant.set_context('rg-acme', 'user-42') = :'acme' AS entered_acme;
SELECT tenant.current_tenant() = :'acme' AS is_acme,
       tenant.require_tenant() = :'acme' AS required_acme,
       tenant.current_user_id() AS user_id,
       tenant.current_roles() AS roles;
SELECT tenant.context_status()->'valid' AS valid,
       tenant.context_status()->>'tenant_id' = :'acme' AS status_names_acme;
SELECT array_agg(k ORDER BY k) AS context_status_keys FROM jsonb_object_keys(tenant.context_status()) AS k;
COMMIT;
SELECT tenant.current_tenant() IS NULL AS gone_after_commit;
-- by uuid, too; outside a transaction block it lasts one statement, like SET LOCAL
SELECT tenant.set_context(:'globex') = :'globex' AS entered_globex_by_uuid;
SELECT tenant.current_tenant() IS NULL AS gone_after_statement;
-- a rollback ends it as well; a savepoint restores the outer context
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SAVEPOINT s1;
SELECT tenant.set_context('rg-globex') = :'globex' AS switched_to_globex;
ROLLBACK TO SAVEPOINT s1;
SELECT tenant.current_tenant() = :'acme' AS back_to_acme;
ROLLBACK;
SELECT tenant.current_tenant() IS NULL AS gone_after_rollback;
-- session scope (is_local => false) survives COMMIT until clear_context
SELECT tenant.set_context('rg-globex', 'user-7', is_local => false) = :'globex' AS session_globex;
BEGIN;
SELECT tenant.current_tenant() = :'globex' AS still_globex, tenant.current_user_id() AS user_id;
COMMIT;
SELECT tenant.current_tenant() = :'globex' AS still_globex_after_commit;
SELECT tenant.clear_context();
SELECT tenant.current_tenant() IS NULL AS cleared;
-- clear_context also ends a transaction-local context
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SELECT tenant.clear_context();
SELECT tenant.current_tenant() IS NULL AS cleared_in_transaction;
COMMIT;
-- RESET ALL and DISCARD ALL end a session context
SELECT tenant.set_context('rg-acme', is_local => false) IS NOT NULL AS entered;
RESET ALL;
SELECT tenant.current_tenant() IS NULL AS ended_by_reset_all;
SELECT tenant.set_context('rg-acme', is_local => false) IS NOT NULL AS entered;
DISCARD ALL;
SELECT current_user AS role_after_discard, tenant.current_tenant() IS NULL AS ended_by_discard_all;
SET ROLE rg_service;
-- errors of set_context
SELECT tenant.set_context('rg-nope');
SELECT tenant.set_context('00000000-0000-0000-0000-000000000000');
SELECT tenant.set_context('rg-acme', '');
SELECT tenant.set_context('rg-acme', repeat('u', 257));
RESET ROLE;
-- a role outside tenant_service cannot mint a context
SET ROLE rg_app;
SELECT tenant.set_context('rg-acme');
RESET ROLE;
-- EXECUTE granted by mistake is not enough: set_context checks tenant_service itself (MT020)
GRANT EXECUTE ON FUNCTION tenant.set_context(text, text, boolean, text) TO rg_app;
SET ROLE rg_app;
SELECT tenant.set_context('rg-acme');
RESET ROLE;
REVOKE EXECUTE ON FUNCTION tenant.set_context(text, text, boolean, text) FROM rg_app;
-- carrying a context: the minted value is in multitenant.context; any role may set it
SET ROLE rg_service;
BEGIN;
SELECT tenant.set_context('rg-acme', 'user-42') IS NOT NULL AS entered;
SELECT current_setting('multitenant.context') AS token \gset
SELECT left(:'token', 4) AS token_prefix;
COMMIT;
RESET ROLE;
SET ROLE rg_app;
BEGIN;
SET LOCAL multitenant.context = :'token';
SELECT tenant.current_tenant() = :'acme' AS carried_acme, tenant.current_user_id() AS user_id;
COMMIT;
-- a forged, tampered or truncated value is no context (NULL), never an error
BEGIN;
SET LOCAL multitenant.context = 'mt1.eyJ0IjoiYWNtZSJ9.AAAA';
SELECT tenant.current_tenant() IS NULL AS forged_is_no_context;
SELECT tenant.context_status();
SELECT tenant.require_tenant();
ROLLBACK;
BEGIN;
SELECT overlay(:'token' placing (CASE WHEN substr(:'token', 10, 1) = 'A' THEN 'B' ELSE 'A' END) from 10 for 1) AS tampered \gset
SET LOCAL multitenant.context = :'tampered';
SELECT tenant.current_tenant() IS NULL AS tampered_is_no_context;
SELECT tenant.context_status();
ROLLBACK;
BEGIN;
SET LOCAL multitenant.context = 'not a token at all';
SELECT tenant.current_tenant() IS NULL AS garbage_is_no_context;
SELECT tenant.context_status();
ROLLBACK;
RESET ROLE;
-- multitenant.context_ttl bounds the token's life (superuser setting)
SET multitenant.context_ttl = 1;
SET ROLE rg_service;
SELECT tenant.set_context('rg-acme', is_local => false) IS NOT NULL AS entered_for_one_second;
SELECT pg_sleep(2.1);
SELECT tenant.current_tenant() IS NULL AS expired;
SELECT tenant.context_status();
SELECT tenant.require_tenant();
SELECT tenant.clear_context();
RESET ROLE;
RESET multitenant.context_ttl;
-- only superusers set context_ttl
SET ROLE rg_service;
SET multitenant.context_ttl = 999999;
RESET ROLE;
