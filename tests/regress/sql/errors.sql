-- Every SQLSTATE of docs/reference.md "Errors", reached once each as a DBA meets it, and
-- caught by code in PL/pgSQL as the reference suggests.
\set VERBOSITY verbose
\set SHOW_CONTEXT never
-- fixed JWTs of tests/regress/mint_jwt.py (see jwt.sql)
\set tok_valid 'eyJhbGciOiJIUzI1NiIsImtpZCI6InJnLWsxIiwidHlwIjoiSldUIn0.eyJlbWFpbCI6InUxQGV4YW1wbGUuY29tIiwiZXhwIjo0MTAyNDQ0ODAwLCJyb2xlcyI6WyJlZGl0b3IiXSwic3ViIjoidXNlci0xIiwidGVuYW50X2lkIjoicmctand0LWFjbWUifQ.R4JRVNALBTpAXUASrkFygIK1M1yQ7SNOgwK4XyvGWpw'
\set tok_nonmember 'eyJhbGciOiJIUzI1NiIsImtpZCI6InJnLWsxIiwidHlwIjoiSldUIn0.eyJlbWFpbCI6InUxQGV4YW1wbGUuY29tIiwiZXhwIjo0MTAyNDQ0ODAwLCJyb2xlcyI6WyJlZGl0b3IiXSwic3ViIjoidXNlci0yIiwidGVuYW50X2lkIjoicmctand0LWFjbWUifQ.SmVd3mjOvi-jbJfMozDXGivYfiUmSlfHGs49st-7Y90'
\set tok_expired 'eyJhbGciOiJIUzI1NiIsImtpZCI6InJnLWsxIiwidHlwIjoiSldUIn0.eyJlbWFpbCI6InUxQGV4YW1wbGUuY29tIiwiZXhwIjo5NDY2ODQ4MDAsInJvbGVzIjpbImVkaXRvciJdLCJzdWIiOiJ1c2VyLTEiLCJ0ZW5hbnRfaWQiOiJyZy1qd3QtYWNtZSJ9.HzCfJbOHfmO3-603krjSPV84NLMGJibcwsqv-lOvM3Y'
-- (psql does not expand variables inside a dollar-quoted body: pass the token as a setting)
SELECT set_config('rg.tok_nonmember', :'tok_nonmember', false) IS NOT NULL AS passed;
SELECT tenant.load_plan('{"name": "free", "limits": {"seats": 1}, "features": ["basic"]}');
SELECT tenant.create('rg-jwt-acme', 'Acme') AS acme \gset
SELECT tenant.create('rg-closed', 'Closed') IS NOT NULL AS created;
SELECT tenant.set_status('rg-closed', 'suspended');
SELECT tenant.add_member('rg-jwt-acme', 'user-1');
SELECT tenant.add_jwt_key('rg-k1', 'HS256', 'rg-regress-hs256-secret-0123456789abcdef');
SET ROLE rg_owner;
CREATE TABLE public.items (id int PRIMARY KEY, tenant_id uuid NOT NULL);
GRANT SELECT, INSERT ON public.items TO rg_service;
SELECT tenant.isolate('public.items');
RESET ROLE;
SET ROLE rg_service;
-- MT001 no tenant context (or it does not verify) on a write
INSERT INTO public.items (id) VALUES (1);
-- MT002 tenant not found
SELECT tenant.set_context('rg-nope');
-- MT003 tenant not active (or read-only)
SELECT tenant.set_context('rg-closed');
-- MT004 invalid or expired token
SELECT tenant.authenticate(:'tok_expired');
-- MT005 tenant mismatch: the token's user is not a member
SELECT tenant.authenticate(:'tok_nonmember');
BEGIN;
SELECT tenant.set_context('rg-jwt-acme') IS NOT NULL AS entered;
-- MT010 plan limit exceeded
SELECT tenant.consume('seats', 2);
ROLLBACK;
BEGIN;
SELECT tenant.set_context('rg-jwt-acme') IS NOT NULL AS entered;
-- MT011 feature not in plan
SELECT tenant.require_feature('sso');
ROLLBACK;
-- MT020 permission denied by the extension's own role checks
SELECT tenant.isolate('public.items');
-- MT030 invalid argument or definition
SELECT tenant.create('Not A Slug', 'x');
-- MT040 invalid state transition
SELECT tenant.set_status('rg-closed', 'trial');
-- 42501 privilege missing (EXECUTE) ...
SELECT tenant.add_jwt_key('rg-k2', 'HS256', 'rg-regress-hs256-secret-0123456789abcdef');
-- ... or a row written for another tenant
BEGIN;
SELECT tenant.authenticate(:'tok_valid') IS NOT NULL AS entered;
INSERT INTO public.items (id, tenant_id) VALUES (1, gen_random_uuid());
ROLLBACK;
RESET ROLE;
SET ROLE rg_service;
DO $$
DECLARE
  codes text[] := '{}';
BEGIN
  BEGIN
    INSERT INTO public.items (id) VALUES (2);
  EXCEPTION WHEN SQLSTATE 'MT001' THEN codes := array_append(codes, 'MT001');
  END;
  BEGIN
    PERFORM tenant.set_context('rg-nope');
  EXCEPTION WHEN SQLSTATE 'MT002' THEN codes := array_append(codes, 'MT002');
  END;
  BEGIN
    PERFORM tenant.set_context('rg-closed');
  EXCEPTION WHEN SQLSTATE 'MT003' THEN codes := array_append(codes, 'MT003');
  END;
  BEGIN
    PERFORM tenant.authenticate('x.y.z');
  EXCEPTION WHEN SQLSTATE 'MT004' THEN codes := array_append(codes, 'MT004');
  END;
  BEGIN
    PERFORM tenant.authenticate(current_setting('rg.tok_nonmember'));
  EXCEPTION WHEN SQLSTATE 'MT005' THEN codes := array_append(codes, 'MT005');
  END;
  BEGIN
    PERFORM tenant.set_context('rg-jwt-acme');
    PERFORM tenant.consume('seats', 2);
  EXCEPTION WHEN SQLSTATE 'MT010' THEN codes := array_append(codes, 'MT010');
  END;
  BEGIN
    PERFORM tenant.set_context('rg-jwt-acme');
    PERFORM tenant.require_feature('sso');
  EXCEPTION WHEN SQLSTATE 'MT011' THEN codes := array_append(codes, 'MT011');
  END;
  BEGIN
    PERFORM tenant.isolate('public.items');
  EXCEPTION WHEN SQLSTATE 'MT020' THEN codes := array_append(codes, 'MT020');
  END;
  BEGIN
    PERFORM tenant.create('Not A Slug', 'x');
  EXCEPTION WHEN SQLSTATE 'MT030' THEN codes := array_append(codes, 'MT030');
  END;
  BEGIN
    PERFORM tenant.set_status('rg-closed', 'trial');
  EXCEPTION WHEN SQLSTATE 'MT040' THEN codes := array_append(codes, 'MT040');
  END;
  BEGIN
    PERFORM tenant.add_jwt_key('rg-k2', 'HS256', 'rg-regress-hs256-secret-0123456789abcdef');
  EXCEPTION WHEN insufficient_privilege THEN codes := array_append(codes, '42501');
  END;
  RAISE NOTICE 'caught: %', array_to_string(codes, ', ');
END $$;
-- the error fields a client library sees: class MT (not a standard class), message, hint
DO $$
DECLARE st text; msg text; hint text; det text;
BEGIN
  PERFORM tenant.require_tenant();
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT, det = PG_EXCEPTION_DETAIL;
  RAISE NOTICE 'sqlstate=% message=% detail=% hint=%', st, msg, nullif(det, ''), hint;
END $$;
RESET ROLE;
-- the same errors with the default verbosity (what most psql sessions show)
\set VERBOSITY default
SET ROLE rg_service;
INSERT INTO public.items (id) VALUES (3);
SELECT tenant.set_status('rg-closed', 'trial');
RESET ROLE;
