-- Verified identity: tenant.authenticate(jwt) and JWT key management.
-- The tokens below are fixed HS256/HS384 JWTs (exp 2100-01-01) minted once by
-- tests/regress/mint_jwt.py with the secrets registered below; rerun it to reproduce them.
\set VERBOSITY verbose
\set SHOW_CONTEXT never
\set tok_valid 'eyJhbGciOiJIUzI1NiIsImtpZCI6InJnLWsxIiwidHlwIjoiSldUIn0.eyJlbWFpbCI6InUxQGV4YW1wbGUuY29tIiwiZXhwIjo0MTAyNDQ0ODAwLCJyb2xlcyI6WyJlZGl0b3IiXSwic3ViIjoidXNlci0xIiwidGVuYW50X2lkIjoicmctand0LWFjbWUifQ.R4JRVNALBTpAXUASrkFygIK1M1yQ7SNOgwK4XyvGWpw'
\set tok_nonmember 'eyJhbGciOiJIUzI1NiIsImtpZCI6InJnLWsxIiwidHlwIjoiSldUIn0.eyJlbWFpbCI6InUxQGV4YW1wbGUuY29tIiwiZXhwIjo0MTAyNDQ0ODAwLCJyb2xlcyI6WyJlZGl0b3IiXSwic3ViIjoidXNlci0yIiwidGVuYW50X2lkIjoicmctand0LWFjbWUifQ.SmVd3mjOvi-jbJfMozDXGivYfiUmSlfHGs49st-7Y90'
\set tok_expired 'eyJhbGciOiJIUzI1NiIsImtpZCI6InJnLWsxIiwidHlwIjoiSldUIn0.eyJlbWFpbCI6InUxQGV4YW1wbGUuY29tIiwiZXhwIjo5NDY2ODQ4MDAsInJvbGVzIjpbImVkaXRvciJdLCJzdWIiOiJ1c2VyLTEiLCJ0ZW5hbnRfaWQiOiJyZy1qd3QtYWNtZSJ9.HzCfJbOHfmO3-603krjSPV84NLMGJibcwsqv-lOvM3Y'
\set tok_not_yet 'eyJhbGciOiJIUzI1NiIsImtpZCI6InJnLWsxIiwidHlwIjoiSldUIn0.eyJlbWFpbCI6InUxQGV4YW1wbGUuY29tIiwiZXhwIjo0MTAyNDQ0ODAwLCJuYmYiOjQxMDIzNTg0MDAsInJvbGVzIjpbImVkaXRvciJdLCJzdWIiOiJ1c2VyLTEiLCJ0ZW5hbnRfaWQiOiJyZy1qd3QtYWNtZSJ9.T7--JSoCalfmqPQ_-_LZJXWNaKqAVFb5llWrKY-nwA0'
\set tok_no_exp 'eyJhbGciOiJIUzI1NiIsImtpZCI6InJnLWsxIiwidHlwIjoiSldUIn0.eyJlbWFpbCI6InUxQGV4YW1wbGUuY29tIiwicm9sZXMiOlsiZWRpdG9yIl0sInN1YiI6InVzZXItMSIsInRlbmFudF9pZCI6InJnLWp3dC1hY21lIn0.n-jsLyO5NCfYjSndpEZC7b3o3qtWVkoflEWNIitLaQY'
\set tok_no_tenant 'eyJhbGciOiJIUzI1NiIsImtpZCI6InJnLWsxIiwidHlwIjoiSldUIn0.eyJlbWFpbCI6InUxQGV4YW1wbGUuY29tIiwiZXhwIjo0MTAyNDQ0ODAwLCJyb2xlcyI6WyJlZGl0b3IiXSwic3ViIjoidXNlci0xIn0.rV0JCsqJRLr6kc1AgzSsh2GiKSNHbgieUyiPsh0E2zE'
\set tok_bad_roles 'eyJhbGciOiJIUzI1NiIsImtpZCI6InJnLWsxIiwidHlwIjoiSldUIn0.eyJlbWFpbCI6InUxQGV4YW1wbGUuY29tIiwiZXhwIjo0MTAyNDQ0ODAwLCJyb2xlcyI6eyJhZG1pbiI6dHJ1ZX0sInN1YiI6InVzZXItMSIsInRlbmFudF9pZCI6InJnLWp3dC1hY21lIn0._pt4O9eyaCy4-U-dnleD5XtmeHRmmzab3NjqL0gGYRA'
\set tok_bad_sig 'eyJhbGciOiJIUzI1NiIsImtpZCI6InJnLWsxIiwidHlwIjoiSldUIn0.eyJlbWFpbCI6InUxQGV4YW1wbGUuY29tIiwiZXhwIjo0MTAyNDQ0ODAwLCJyb2xlcyI6WyJlZGl0b3IiXSwic3ViIjoidXNlci0xIiwidGVuYW50X2lkIjoicmctand0LWFjbWUifQ.AGVya7OYXF27_0COsoQsvn2-vdYIejnPmLhPISVuNno'
\set tok_alg_none 'eyJhbGciOiJub25lIiwia2lkIjoicmctazEiLCJ0eXAiOiJKV1QifQ.eyJlbWFpbCI6InUxQGV4YW1wbGUuY29tIiwiZXhwIjo0MTAyNDQ0ODAwLCJyb2xlcyI6WyJlZGl0b3IiXSwic3ViIjoidXNlci0xIiwidGVuYW50X2lkIjoicmctand0LWFjbWUifQ.'
\set tok_alg_confusion 'eyJhbGciOiJIUzM4NCIsImtpZCI6InJnLWsxIiwidHlwIjoiSldUIn0.eyJlbWFpbCI6InUxQGV4YW1wbGUuY29tIiwiZXhwIjo0MTAyNDQ0ODAwLCJyb2xlcyI6WyJlZGl0b3IiXSwic3ViIjoidXNlci0xIiwidGVuYW50X2lkIjoicmctand0LWFjbWUifQ.vC_eTYvoYnAWoZWIlgHNrO9oa4TKCoeShCVLmrSllVsWyZFaC2D9eFINhElCUWKz'
\set tok_unknown_kid 'eyJhbGciOiJIUzI1NiIsImtpZCI6InJnLWs5IiwidHlwIjoiSldUIn0.eyJlbWFpbCI6InUxQGV4YW1wbGUuY29tIiwiZXhwIjo0MTAyNDQ0ODAwLCJyb2xlcyI6WyJlZGl0b3IiXSwic3ViIjoidXNlci0xIiwidGVuYW50X2lkIjoicmctand0LWFjbWUifQ.u1yCqfwHu4mNWWqvrOwTVIYrzKYfeOEWeLMEWh6CAyw'
\set tok_unknown_tenant 'eyJhbGciOiJIUzI1NiIsImtpZCI6InJnLWsxIiwidHlwIjoiSldUIn0.eyJlbWFpbCI6InUxQGV4YW1wbGUuY29tIiwiZXhwIjo0MTAyNDQ0ODAwLCJyb2xlcyI6WyJlZGl0b3IiXSwic3ViIjoidXNlci0xIiwidGVuYW50X2lkIjoicmctand0LW5vcGUifQ.3TwlG8jAgbIjYSoxXgMzW0q0duc0xQ6NJ4E9aLnTzjs'
\set tok_suspended 'eyJhbGciOiJIUzI1NiIsImtpZCI6InJnLWsxIiwidHlwIjoiSldUIn0.eyJlbWFpbCI6InUxQGV4YW1wbGUuY29tIiwiZXhwIjo0MTAyNDQ0ODAwLCJyb2xlcyI6WyJlZGl0b3IiXSwic3ViIjoidXNlci0xIiwidGVuYW50X2lkIjoicmctand0LWluaXRlY2gifQ.A3OeLB0oUsnGPdcV50H8raIQAjg3hLJC9vN1oILrLio'
\set tok_no_kid 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJlbWFpbCI6InUxQGV4YW1wbGUuY29tIiwiZXhwIjo0MTAyNDQ0ODAwLCJyb2xlcyI6WyJlZGl0b3IiXSwic3ViIjoiYW55b25lIiwidGVuYW50X2lkIjoicmctand0LWdsb2JleCJ9.ZJejSuOCa1kuih2UxijF3-iF0EMRCDAJGI1VWg7t0Pw'
\set tok_nested 'eyJhbGciOiJIUzI1NiIsImtpZCI6InJnLWsxIiwidHlwIjoiSldUIn0.eyJhcHBfbWV0YWRhdGEiOnsidGVuYW50X2lkIjoicmctand0LWFjbWUifSwiZXhwIjo0MTAyNDQ0ODAwLCJzdWIiOiJ1c2VyLTEifQ.6t3JaohqyBjwt3HqnZxnbFZJn53WoCdnyeGP6_r5Vko'
\set tok_iss_ok 'eyJhbGciOiJIUzI1NiIsImtpZCI6InJnLWsyIiwidHlwIjoiSldUIn0.eyJhdWQiOiJhcGkiLCJlbWFpbCI6InUxQGV4YW1wbGUuY29tIiwiZXhwIjo0MTAyNDQ0ODAwLCJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlLyIsInJvbGVzIjpbImVkaXRvciJdLCJzdWIiOiJ1c2VyLTEiLCJ0ZW5hbnRfaWQiOiJyZy1qd3QtYWNtZSJ9.wjaauJ41hy7LKF_EkStiO9ISGKiI6UzfwahlNIEVGvM'
\set tok_iss_wrong 'eyJhbGciOiJIUzI1NiIsImtpZCI6InJnLWsyIiwidHlwIjoiSldUIn0.eyJhdWQiOiJhcGkiLCJlbWFpbCI6InUxQGV4YW1wbGUuY29tIiwiZXhwIjo0MTAyNDQ0ODAwLCJpc3MiOiJodHRwczovL2V2aWwuZXhhbXBsZS8iLCJyb2xlcyI6WyJlZGl0b3IiXSwic3ViIjoidXNlci0xIiwidGVuYW50X2lkIjoicmctand0LWFjbWUifQ.lD-iIYzurnHiq7t-bKwvarAroZrE5tGSEFJ3MOqoliU'
\set tok_aud_wrong 'eyJhbGciOiJIUzI1NiIsImtpZCI6InJnLWsyIiwidHlwIjoiSldUIn0.eyJhdWQiOiJvdGhlciIsImVtYWlsIjoidTFAZXhhbXBsZS5jb20iLCJleHAiOjQxMDI0NDQ4MDAsImlzcyI6Imh0dHBzOi8vaXNzdWVyLmV4YW1wbGUvIiwicm9sZXMiOlsiZWRpdG9yIl0sInN1YiI6InVzZXItMSIsInRlbmFudF9pZCI6InJnLWp3dC1hY21lIn0.0pn08OvtvsXnGb5d0OIvBx0iU6kKC47UhYYYfSX_zHc'
\set tok_aud_missing 'eyJhbGciOiJIUzI1NiIsImtpZCI6InJnLWsyIiwidHlwIjoiSldUIn0.eyJlbWFpbCI6InUxQGV4YW1wbGUuY29tIiwiZXhwIjo0MTAyNDQ0ODAwLCJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlLyIsInJvbGVzIjpbImVkaXRvciJdLCJzdWIiOiJ1c2VyLTEiLCJ0ZW5hbnRfaWQiOiJyZy1qd3QtYWNtZSJ9.iVZzCLGWHsIfWq1UVw2U-6Eh-aIeGaFLeFKHbsD02aw'
\set tok_old_key 'eyJhbGciOiJIUzI1NiIsImtpZCI6InJnLWszIiwidHlwIjoiSldUIn0.eyJlbWFpbCI6InUxQGV4YW1wbGUuY29tIiwiZXhwIjo0MTAyNDQ0ODAwLCJyb2xlcyI6WyJlZGl0b3IiXSwic3ViIjoidXNlci0xIiwidGVuYW50X2lkIjoicmctand0LWFjbWUifQ.3wqZllCJRnzg22qHNGk7UmrjTSQi7xlL9DhxP3tF5Mc'
\set tok_new_key 'eyJhbGciOiJIUzI1NiIsImtpZCI6InJnLWs0IiwidHlwIjoiSldUIn0.eyJlbWFpbCI6InUxQGV4YW1wbGUuY29tIiwiZXhwIjo0MTAyNDQ0ODAwLCJyb2xlcyI6WyJlZGl0b3IiXSwic3ViIjoidXNlci0xIiwidGVuYW50X2lkIjoicmctand0LWFjbWUifQ.Z2_NGWerYb-_9Qq2ZW3LXHNIfFX4PkLzryUqp7pYMU8'
SELECT tenant.create('rg-jwt-acme', 'Acme') AS acme \gset
SELECT tenant.create('rg-jwt-globex', 'Globex') AS globex \gset
SELECT tenant.create('rg-jwt-initech', 'Initech') IS NOT NULL AS created;
SELECT tenant.set_status('rg-jwt-initech', 'suspended');
SELECT tenant.add_member('rg-jwt-acme', 'user-1', ARRAY['member']);
SET ROLE rg_owner;
CREATE TABLE public.docs (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tenant_id uuid NOT NULL, title text);
GRANT SELECT, INSERT ON public.docs TO rg_anon;
SELECT tenant.isolate('public.docs');
RESET ROLE;
INSERT INTO public.docs (tenant_id, title) VALUES (:'acme', 'acme doc'), (:'globex', 'globex doc');
-- key management is for tenant_admin
SET ROLE rg_owner;
SELECT tenant.add_jwt_key('rg-k1', 'HS256', 'rg-regress-hs256-secret-0123456789abcdef');
SELECT tenant.add_jwt_key('rg-k2', 'HS256', 'rg-regress-issuer-secret-0123456789abcdef',
                          issuer => 'https://issuer.example/', audience => 'api');
SELECT tenant.add_jwt_key('rg-k3', 'HS256', 'rg-regress-old-secret-0123456789abcdefgh');
-- refused keys (MT030)
SELECT tenant.add_jwt_key('rg-k1', 'HS256', 'rg-regress-hs256-secret-0123456789abcdef');
SELECT tenant.add_jwt_key('rg-short', 'HS256', 'too-short');
SELECT tenant.add_jwt_key('rg-b64', 'HS256', 'base64:not base64!');
SELECT tenant.add_jwt_key('rg-none', 'none', 'rg-regress-hs256-secret-0123456789abcdef');
SELECT tenant.add_jwt_key('rg-hs1', 'HS1', 'rg-regress-hs256-secret-0123456789abcdef');
SELECT tenant.add_jwt_key('rg-rsa', 'RS256', E'-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n');
SELECT tenant.add_jwt_key('rg-rsa', 'RS256', 'not a pem');
SELECT tenant.add_jwt_key('', 'HS256', 'rg-regress-hs256-secret-0123456789abcdef');
-- the keys table is readable only by the extension owner
SELECT count(*) FROM tenant.jwt_keys;
RESET ROLE;
SELECT kid, alg, issuer, audience, active, valid_until IS NULL AS open_ended FROM tenant.jwt_keys ORDER BY kid;
-- not for tenant_service or other roles (42501)
SET ROLE rg_service;
SELECT tenant.add_jwt_key('rg-k8', 'HS256', 'rg-regress-hs256-secret-0123456789abcdef');
RESET ROLE;
SET ROLE rg_anon;
SELECT tenant.deactivate_jwt_key('rg-k1');
RESET ROLE;
-- an untrusted role with a valid token enters the token's tenant, transaction-local
SET ROLE rg_anon;
BEGIN;
SELECT tenant.authenticate(:'tok_valid') = :'acme' AS entered_acme;
SELECT tenant.current_user_id() AS user_id, tenant.current_roles() AS roles,
       tenant.current_claims()->>'email' AS email;
SELECT title FROM public.docs ORDER BY id;
-- tenant_user sees its own tenant's row of tenant.tenants, no other
SELECT slug FROM tenant.tenants ORDER BY slug;
INSERT INTO public.docs (title) VALUES ('written with a jwt') RETURNING tenant_id = :'acme' AS own;
COMMIT;
SELECT tenant.current_tenant() IS NULL AS gone_after_commit;
-- the same token again (answered from the cache of verified tokens)
SELECT tenant.authenticate(:'tok_valid') = :'acme' AS again;
-- it cannot mint a context of its own choice
SELECT tenant.set_context('rg-jwt-globex');
-- rejected tokens: MT004 with the reason in DETAIL, and no context afterwards
SELECT tenant.authenticate(:'tok_expired');
SELECT tenant.authenticate(:'tok_not_yet');
SELECT tenant.authenticate(:'tok_no_exp');
SELECT tenant.authenticate(:'tok_no_tenant');
SELECT tenant.authenticate(:'tok_bad_roles');
SELECT tenant.authenticate(:'tok_bad_sig');
SELECT tenant.authenticate(:'tok_alg_none');
SELECT tenant.authenticate(:'tok_alg_confusion');
SELECT tenant.authenticate(:'tok_unknown_kid');
SELECT tenant.authenticate('');
SELECT tenant.authenticate('not.a.jwt');
SELECT tenant.authenticate(repeat('a', 20000));
SELECT tenant.authenticate(:'tok_iss_wrong');
SELECT tenant.authenticate(:'tok_aud_wrong');
SELECT tenant.authenticate(:'tok_aud_missing');
SELECT tenant.authenticate(:'tok_iss_ok') = :'acme' AS issuer_and_audience_ok;
-- valid tokens naming a tenant that is unknown (MT002), not active (MT003), or a user that
-- is not a member of a tenant that has members (MT005)
SELECT tenant.authenticate(:'tok_unknown_tenant');
SELECT tenant.authenticate(:'tok_suspended');
SELECT tenant.authenticate(:'tok_nonmember');
-- a tenant without members accepts any user of a valid token (jwt_membership = auto);
-- without a kid every active key of the algorithm is tried
SELECT tenant.authenticate(:'tok_no_kid') = :'globex' AS globex_without_kid;
BEGIN;
SELECT tenant.authenticate(:'tok_no_kid') IS NOT NULL AS entered;
SELECT title FROM public.docs ORDER BY id;
COMMIT;
-- a failed authenticate leaves no context behind
BEGIN;
SELECT tenant.authenticate(:'tok_valid') IS NOT NULL AS entered;
SAVEPOINT s;
SELECT tenant.authenticate(:'tok_nonmember');
ROLLBACK TO SAVEPOINT s;
SELECT tenant.current_tenant() = :'acme' AS still_acme;
ROLLBACK;
RESET ROLE;
-- roles outside tenant_user/tenant_service may not call it (42501)
SET ROLE rg_app;
SELECT tenant.authenticate(:'tok_valid');
RESET ROLE;
-- tenant_service may
SET ROLE rg_service;
SELECT tenant.authenticate(:'tok_valid') = :'acme' AS service_authenticates;
RESET ROLE;
-- claim names are settings (superuser): the tenant in a nested claim
SET multitenant.jwt_tenant_claim = 'app_metadata.tenant_id';
SET ROLE rg_anon;
SELECT tenant.authenticate(:'tok_nested') = :'acme' AS nested_claim;
SELECT tenant.authenticate(:'tok_valid');
RESET ROLE;
RESET multitenant.jwt_tenant_claim;
SET ROLE rg_anon;
SET multitenant.jwt_tenant_claim = 'x';
RESET ROLE;
-- jwt_membership = required refuses users of a tenant without members; off skips the check
SET multitenant.jwt_membership = 'required';
SET ROLE rg_anon;
SELECT tenant.authenticate(:'tok_no_kid');
RESET ROLE;
SET multitenant.jwt_membership = 'off';
SET ROLE rg_anon;
SELECT tenant.authenticate(:'tok_nonmember') = :'acme' AS membership_off;
RESET ROLE;
RESET multitenant.jwt_membership;
-- a removed member's tokens stop working at once
SELECT tenant.remove_member('rg-jwt-acme', 'user-1');
SELECT tenant.add_member('rg-jwt-acme', 'someone-else');
SET ROLE rg_anon;
SELECT tenant.authenticate(:'tok_valid');
RESET ROLE;
SELECT tenant.add_member('rg-jwt-acme', 'user-1', ARRAY['member']);
-- rotation: both keys verify during the overlap
SET ROLE rg_owner;
SELECT tenant.rotate_jwt_key('rg-k3', 'rg-k4', 'HS256', 'rg-regress-new-secret-0123456789abcdefgh', 600);
SELECT tenant.rotate_jwt_key('rg-k3', 'rg-k5', 'HS256', 'rg-regress-new-secret-0123456789abcdefgh', -1);
SELECT tenant.rotate_jwt_key('rg-nope', 'rg-k5', 'HS256', 'rg-regress-new-secret-0123456789abcdefgh');
RESET ROLE;
SELECT kid, valid_until IS NOT NULL AS expires, valid_until > now() + interval '9 minutes'
       AND valid_until <= now() + interval '10 minutes' AS in_ten_minutes
FROM tenant.jwt_keys WHERE kid IN ('rg-k3', 'rg-k4') ORDER BY kid;
SET ROLE rg_anon;
SELECT tenant.authenticate(:'tok_old_key') = :'acme' AS old_key_during_overlap;
SELECT tenant.authenticate(:'tok_new_key') = :'acme' AS new_key;
RESET ROLE;
-- deactivation stops a key at once, in every session (and the cached verification)
SET ROLE rg_owner;
SELECT tenant.deactivate_jwt_key('rg-k1');
SELECT tenant.deactivate_jwt_key('rg-nope');
RESET ROLE;
SET ROLE rg_anon;
SELECT tenant.authenticate(:'tok_valid');
RESET ROLE;
-- key events are in the audit trail
SELECT record_id FROM tenant.audit_log WHERE operation = 'EVENT' AND record_id LIKE 'jwt%' ORDER BY id;
-- multitenant.postgrest_claims = on: without a signed context, the tenant comes from
-- request.jwt.claims (set by PostgREST after it verified the JWT); off by default
SET ROLE rg_anon;
BEGIN;
SET LOCAL request.jwt.claims = '{"tenant_id": "rg-jwt-acme", "sub": "user-1"}';
SELECT tenant.current_tenant() IS NULL AS ignored_when_off;
ROLLBACK;
SET multitenant.postgrest_claims = on;
RESET ROLE;
SET multitenant.postgrest_claims = on;
SET ROLE rg_anon;
BEGIN;
SET LOCAL request.jwt.claims = '{"tenant_id": "rg-jwt-acme", "sub": "user-1"}';
SELECT tenant.current_tenant() = :'acme' AS from_postgrest_claims, tenant.current_user_id() AS user_id;
SELECT title FROM public.docs ORDER BY id;
ROLLBACK;
-- the claims must still name an active tenant
BEGIN;
SET LOCAL request.jwt.claims = '{"tenant_id": "rg-jwt-initech", "sub": "user-1"}';
SELECT tenant.current_tenant() IS NULL AS suspended_tenant_refused;
ROLLBACK;
-- jwt_cache_size is for anyone
SET multitenant.jwt_cache_size = 0;
SELECT tenant.authenticate(:'tok_new_key') = :'acme' AS without_cache;
RESET ROLE;
RESET multitenant.postgrest_claims;
