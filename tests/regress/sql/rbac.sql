-- Roles and permissions: built-in roles, create_role/drop_role, grant/revoke_permission,
-- can/authorize with conditions and wildcards, protect(), members, invitations.
\set VERBOSITY verbose
\set SHOW_CONTEXT never
-- in a transaction block, a failed statement rolls back to an implicit savepoint (psql), so
-- that several refusals can be shown under one context
\set ON_ERROR_ROLLBACK on
SET ROLE rg_service;
SELECT tenant.create('rg-acme', 'Acme') AS acme \gset
SELECT tenant.create('rg-globex', 'Globex') AS globex \gset
SELECT tenant.add_member('rg-acme', 'u-owner', ARRAY['owner']);
SELECT tenant.add_member('rg-acme', 'u-admin', ARRAY['admin']);
SELECT tenant.add_member('rg-acme', 'u-member');
SELECT tenant.add_member('rg-acme', 'u-viewer', ARRAY['viewer']);
SELECT tenant.add_member('rg-globex', 'u-globex', ARRAY['owner']);
SELECT tenant.add_member('rg-nope', 'u-x');
SELECT tenant.add_member('rg-acme', '');
RESET ROLE;
-- every tenant starts with the built-in roles and their permissions
SELECT r.name, r.inherits FROM tenant.roles r WHERE r.tenant_id = :'acme' ORDER BY r.name;
SELECT role, resource, action, condition FROM tenant.permissions WHERE tenant_id = :'acme' ORDER BY role, resource, action;
-- roles and permissions are managed in a context, by tenant_service
SET ROLE rg_service;
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SELECT tenant.create_role('explorer');
SELECT tenant.create_role('business', ARRAY['explorer']);
SELECT tenant.create_role('agency', ARRAY['business']);
SELECT tenant.create_role('inviter');
SELECT tenant.grant_permission('explorer', 'campaigns', 'read');
SELECT tenant.grant_permission('business', 'campaigns', 'update', '{"owner_id": "self"}');
SELECT tenant.grant_permission('business', 'campaigns', 'create');
SELECT tenant.grant_permission('agency', 'reports', '*');
SELECT tenant.grant_permission('agency', 'billing.*', 'read');
SELECT tenant.grant_permission('business', 'budgets', 'approve', '{"amount": {"lte": 100}, "status": {"in": ["draft", "open"]}}');
SELECT tenant.grant_permission('inviter', 'members', 'invite');
SELECT tenant.grant_permission('inviter', 'campaigns', 'read');
-- granting twice is a no-op
SELECT tenant.grant_permission('explorer', 'campaigns', 'read');
SELECT role, resource, action, condition FROM tenant.permissions
WHERE tenant_id = :'acme' AND role NOT IN ('viewer', 'member', 'admin', 'owner') ORDER BY role, resource, action;
-- refused (MT030)
SELECT tenant.create_role('explorer', ARRAY['agency']);
SELECT tenant.create_role('loop', ARRAY['loop']);
SELECT tenant.create_role('ghost', ARRAY['no-such-role']);
SELECT tenant.create_role('star*');
SELECT tenant.create_role('Bad Name');
SELECT tenant.grant_permission('business', 'campaigns', 'update', '{"owner_id": {"like": "x%"}}');
SELECT tenant.grant_permission('business', 'campaigns', 'update', '{"status": {"in": "draft"}}');
SELECT tenant.grant_permission('business', 'campaigns', 'update', '{"amount": {"lt": "ten"}}');
SELECT tenant.grant_permission('business', 'campaigns', 'update', '[1]');
SELECT tenant.grant_permission('no-such-role', 'campaigns', 'read');
SELECT tenant.grant_permission('business', 'Campaigns!', 'read');
COMMIT;
-- roles belong to their tenant: globex has no role "business"
BEGIN;
SELECT tenant.set_context('rg-globex') IS NOT NULL AS entered;
SELECT tenant.grant_permission('business', 'campaigns', 'read');
ROLLBACK;
-- without a context: MT001
SELECT tenant.create_role('x');
RESET ROLE;
SELECT tenant.add_member('rg-acme', 'u-biz', ARRAY['business']);
SELECT tenant.add_member('rg-acme', 'u-agency', ARRAY['agency']);
SELECT tenant.add_member('rg-acme', 'u-inviter', ARRAY['inviter']);
-- can(): the user's membership roles, inheritance, conditions, wildcards
SET ROLE rg_service;
CREATE TEMP TABLE checks (user_id text, resource text, action text, ctx jsonb);
INSERT INTO checks VALUES
  ('u-viewer', 'campaigns', 'read', '{}'),
  ('u-viewer', 'campaigns', 'create', '{}'),
  ('u-member', 'campaigns', 'create', '{}'),
  ('u-member', 'campaigns', 'update', '{"owner_id": "u-member"}'),
  ('u-member', 'campaigns', 'update', '{"owner_id": "u-viewer"}'),
  ('u-member', 'campaigns', 'delete', '{"owner_id": "u-member"}'),
  ('u-member', 'roles', 'manage', '{}'),
  ('u-admin', 'roles', 'manage', '{}'),
  ('u-owner', 'anything', 'at-all', '{}'),
  ('u-biz', 'campaigns', 'read', '{}'),
  ('u-biz', 'campaigns', 'update', '{"owner_id": "u-biz"}'),
  ('u-biz', 'campaigns', 'update', '{"owner_id": "u-agency"}'),
  ('u-biz', 'campaigns', 'update', '{}'),
  ('u-biz', 'reports', 'export', '{}'),
  ('u-biz', 'budgets', 'approve', '{"amount": 100, "status": "open"}'),
  ('u-biz', 'budgets', 'approve', '{"amount": 101, "status": "open"}'),
  ('u-biz', 'budgets', 'approve', '{"amount": 50, "status": "closed"}'),
  ('u-biz', 'budgets', 'approve', '{"amount": 50}'),
  ('u-agency', 'reports', 'export', '{}'),
  ('u-agency', 'billing.invoices', 'read', '{}'),
  ('u-agency', 'billing', 'read', '{}'),
  ('u-agency', 'campaigns', 'update', '{"owner_id": "u-agency"}'),
  ('u-nobody', 'campaigns', 'read', '{}');
CREATE TEMP TABLE answers (n serial, user_id text, resource text, action text, ctx jsonb, allowed boolean);
DO $$
DECLARE c record;
BEGIN
  FOR c IN SELECT * FROM checks LOOP
    PERFORM tenant.set_context('rg-acme', c.user_id);
    INSERT INTO answers (user_id, resource, action, ctx, allowed)
    VALUES (c.user_id, c.resource, c.action, c.ctx, tenant.can(c.resource, c.action, c.ctx));
  END LOOP;
END $$;
SELECT user_id, resource, action, ctx, allowed FROM answers ORDER BY n;
-- without a context can() is false
SELECT tenant.can('campaigns', 'read') AS without_context;
-- authorize raises MT020 instead of returning false
BEGIN;
SELECT tenant.set_context('rg-acme', 'u-biz') IS NOT NULL AS entered;
SELECT tenant.authorize('campaigns', 'read');
SELECT tenant.authorize('reports', 'export');
ROLLBACK;
SELECT tenant.authorize('campaigns', 'read');
-- revoke returns how many permissions went; answers change at once. The backend manages
-- roles without a user in the context (naming one, it acts as that user: u-biz may not)
BEGIN;
SELECT tenant.set_context('rg-acme', 'u-biz') IS NOT NULL AS entered;
SELECT tenant.revoke_permission('business', 'campaigns', 'update');
ROLLBACK;
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SELECT tenant.revoke_permission('business', 'campaigns', 'update');
SELECT tenant.revoke_permission('business', 'campaigns', 'update');
SELECT tenant.set_context('rg-acme', 'u-biz') IS NOT NULL AS entered;
SELECT tenant.can('campaigns', 'update', '{"owner_id": "u-biz"}') AS after_revoke;
ROLLBACK;
-- drop_role: not while another role inherits it
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SELECT tenant.drop_role('explorer');
ROLLBACK;
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SELECT tenant.create_role('temporary');
SELECT tenant.drop_role('temporary');
SELECT tenant.drop_role('temporary');
COMMIT;
-- a JWT's roles claim adds to the membership roles (see jwt.sql); current_roles() shows them
RESET ROLE;
-- a plain role with a carried context manages roles only with permission roles/manage
SET ROLE rg_service;
BEGIN;
SELECT tenant.set_context('rg-acme', 'u-member') IS NOT NULL AS entered;
SELECT current_setting('multitenant.context') AS member_token \gset
COMMIT;
BEGIN;
SELECT tenant.set_context('rg-acme', 'u-admin') IS NOT NULL AS entered;
SELECT current_setting('multitenant.context') AS admin_token \gset
COMMIT;
BEGIN;
SELECT tenant.set_context('rg-acme', 'u-inviter') IS NOT NULL AS entered;
SELECT current_setting('multitenant.context') AS inviter_token \gset
COMMIT;
RESET ROLE;
SET ROLE rg_app;
BEGIN;
SET LOCAL multitenant.context = :'member_token';
SELECT tenant.create_role('by-member');
ROLLBACK;
BEGIN;
SET LOCAL multitenant.context = :'admin_token';
SELECT tenant.create_role('by-admin');
SELECT tenant.grant_permission('by-admin', 'notes', 'read');
ROLLBACK;
-- members: application roles see their tenant's members only
BEGIN;
SET LOCAL multitenant.context = :'admin_token';
SELECT user_id, roles, status FROM tenant.members ORDER BY user_id;
ROLLBACK;
RESET ROLE;
-- protect(): per-command policies from can(); combined with isolate
SET ROLE rg_owner;
CREATE TABLE public.campaigns (id int PRIMARY KEY, tenant_id uuid NOT NULL, owner_id text, name text);
GRANT SELECT, INSERT, UPDATE, DELETE ON public.campaigns TO rg_app;
SELECT tenant.isolate('public.campaigns');
SELECT tenant.protect('public.campaigns', 'campaigns', owner_column => 'owner_id');
SELECT policyname, cmd, qual, with_check FROM pg_policies
WHERE tablename = 'campaigns' AND policyname LIKE 'tenant_protect%' ORDER BY policyname;
-- refused: missing column, bad resource, temporary table (MT030), not the owner (MT020)
SELECT tenant.protect('public.campaigns', 'campaigns', owner_column => 'no_such_column');
SELECT tenant.protect('public.campaigns', 'Bad Resource');
CREATE TEMP TABLE tmp_campaigns (owner_id text);
SELECT tenant.protect('tmp_campaigns', 'campaigns');
SELECT tenant.protect(NULL, 'campaigns');
RESET ROLE;
SET ROLE rg_app;
SELECT tenant.protect('public.campaigns', 'campaigns');
RESET ROLE;
INSERT INTO public.campaigns VALUES (1, :'acme', 'u-member', 'member''s'), (2, :'acme', 'u-biz', 'biz''s'),
                                    (3, :'globex', 'u-globex', 'globex''s');
SET ROLE rg_app;
-- a member reads the tenant's campaigns (viewer: read *)
BEGIN;
SET LOCAL multitenant.context = :'member_token';
SELECT id, name FROM public.campaigns ORDER BY id;
-- a member updates and deletes its own campaigns only
UPDATE public.campaigns SET name = 'renamed' WHERE id IN (1, 2) RETURNING id, name;
DELETE FROM public.campaigns WHERE id = 2 RETURNING id;
-- and cannot hand a row over to another user
UPDATE public.campaigns SET owner_id = 'u-biz' WHERE id = 1;
ROLLBACK;
BEGIN;
SET LOCAL multitenant.context = :'member_token';
INSERT INTO public.campaigns VALUES (4, :'acme', 'u-member', 'new');
INSERT INTO public.campaigns VALUES (5, :'globex', 'u-member', 'planted');
ROLLBACK;
RESET ROLE;
SET ROLE rg_service;
BEGIN;
SELECT tenant.set_context('rg-acme', 'u-viewer') IS NOT NULL AS entered;
SELECT current_setting('multitenant.context') AS viewer_token \gset
COMMIT;
RESET ROLE;
SET ROLE rg_app;
BEGIN;
SET LOCAL multitenant.context = :'viewer_token';
SELECT id, name FROM public.campaigns ORDER BY id;
INSERT INTO public.campaigns VALUES (6, :'acme', 'u-viewer', 'viewer''s');
ROLLBACK;
BEGIN;
SET LOCAL multitenant.context = :'viewer_token';
UPDATE public.campaigns SET name = 'x' RETURNING id;
DELETE FROM public.campaigns RETURNING id;
ROLLBACK;
RESET ROLE;
-- invitations: tenant_service without a user id may invite to any role
SET ROLE rg_service;
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SELECT tenant.invite('new@example.com', 'owner') AS invitation \gset
SELECT length(:'invitation') AS token_length;
-- refused arguments (MT030)
SELECT tenant.invite('not-an-email', 'member');
COMMIT;
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SELECT tenant.invite('new@example.com', 'no-such-role');
ROLLBACK;
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SELECT tenant.invite('new@example.com', 'member', 0);
ROLLBACK;
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SELECT tenant.invite('new@example.com', 'member', 2161);
ROLLBACK;
SELECT tenant.invite('new@example.com', 'member');
-- only the token's SHA-256 is stored
RESET ROLE;
SELECT email, role, invited_by, accepted_at IS NULL AS open,
       token_hash = sha256(convert_to(:'invitation', 'UTF8')) AS stores_sha256,
       expires_at BETWEEN now() + interval '71 hours' AND now() + interval '72 hours' AS expires_in_72h
FROM tenant.invitations;
-- accepted once, by tenant_service, for a user id; a used or unknown token is MT004
SET ROLE rg_service;
SELECT tenant.accept_invitation(:'invitation', 'u-new') = :'acme' AS joined_acme;
SELECT tenant.accept_invitation(:'invitation', 'u-other');
SELECT tenant.accept_invitation('0123456789abcdef', 'u-other');
SELECT tenant.accept_invitation(:'invitation', '');
RESET ROLE;
SELECT user_id, roles, status FROM tenant.members WHERE tenant_id = :'acme' AND user_id = 'u-new';
SET ROLE rg_app;
SELECT tenant.accept_invitation(:'invitation', 'u-new');
-- a user inviter needs members/invite and every permission of the role it hands out
BEGIN;
SET LOCAL multitenant.context = :'inviter_token';
SELECT tenant.invite('friend@example.com', 'explorer') IS NOT NULL AS invited_to_explorer;
COMMIT;
BEGIN;
SET LOCAL multitenant.context = :'inviter_token';
SELECT tenant.invite('friend@example.com', 'viewer');
ROLLBACK;
BEGIN;
SET LOCAL multitenant.context = :'member_token';
SELECT tenant.invite('friend@example.com', 'viewer');
ROLLBACK;
-- an admin (everything but owner) invites to admin, not to owner: that is the backend's call
BEGIN;
SET LOCAL multitenant.context = :'admin_token';
SELECT tenant.invite('boss@example.com', 'admin') IS NOT NULL AS admin_invites_admin;
SELECT tenant.invite('boss@example.com', 'owner') IS NOT NULL AS admin_invites_owner;
ROLLBACK;
RESET ROLE;
-- a read-only (suspended) context changes no roles, permissions or invitations (MT003)
SET multitenant.suspended_access = 'read';
SELECT tenant.set_status('rg-acme', 'suspended');
SET ROLE rg_service;
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SELECT tenant.create_role('x');
ROLLBACK;
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SELECT tenant.grant_permission('explorer', 'x', 'read');
ROLLBACK;
BEGIN;
SELECT tenant.set_context('rg-acme') IS NOT NULL AS entered;
SELECT tenant.invite('x@example.com', 'member');
ROLLBACK;
BEGIN;
SELECT tenant.set_context('rg-acme', 'u-biz') IS NOT NULL AS entered;
SELECT tenant.can('campaigns', 'read') AS read_only_can_still_answer;
ROLLBACK;
RESET ROLE;
SELECT tenant.set_status('rg-acme', 'active');
RESET multitenant.suspended_access;
-- remove_member: true once, then false; the user's roles go with it
SET ROLE rg_service;
SELECT tenant.remove_member('rg-acme', 'u-biz');
SELECT tenant.remove_member('rg-acme', 'u-biz');
BEGIN;
SELECT tenant.set_context('rg-acme', 'u-biz') IS NOT NULL AS entered;
SELECT tenant.can('campaigns', 'read') AS removed_member_can;
ROLLBACK;
RESET ROLE;
SET ROLE rg_app;
SELECT tenant.add_member('rg-acme', 'u-x');
RESET ROLE;
-- the management events
SELECT record_id, count(*) FROM tenant.audit_log
WHERE operation = 'EVENT' AND tenant_id = :'acme' AND record_id NOT LIKE 'tenant.%'
GROUP BY record_id ORDER BY record_id;
