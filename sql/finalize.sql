-- multitenant finalize: SQL wrappers, triggers, policies and grants (runs last).

CREATE FUNCTION tenant.isolate(tbl regclass, tenant_column name DEFAULT 'tenant_id')
RETURNS void LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT tenant._isolate($1::oid, $2::text) $$;
COMMENT ON FUNCTION tenant.isolate(regclass, name) IS
    'Enable and force RLS with tenant policies, a default and an index on the tenant column. Idempotent.';

CREATE FUNCTION tenant.unisolate(tbl regclass)
RETURNS boolean LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT tenant._unisolate($1::oid) $$;
COMMENT ON FUNCTION tenant.unisolate(regclass) IS
    'Reverse tenant.isolate(): drop its policies, index and default, restore the previous RLS state.';

-- Cross-backend cache invalidation when tenants or the secret change.
CREATE FUNCTION tenant._tables_changed() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$ BEGIN PERFORM tenant._invalidate(TG_RELID); RETURN NULL; END $$;

CREATE TRIGGER tenants_changed AFTER UPDATE OR DELETE OR TRUNCATE ON tenant.tenants
    FOR EACH STATEMENT EXECUTE FUNCTION tenant._tables_changed();
CREATE TRIGGER secret_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenant.secret
    FOR EACH STATEMENT EXECUTE FUNCTION tenant._tables_changed();
CREATE TRIGGER jwt_keys_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenant.jwt_keys
    FOR EACH STATEMENT EXECUTE FUNCTION tenant._tables_changed();
CREATE TRIGGER members_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenant.members
    FOR EACH STATEMENT EXECUTE FUNCTION tenant._tables_changed();

-- Application roles see only their own tenant's row; the backend and admins see all.
ALTER TABLE tenant.tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenants_own ON tenant.tenants FOR SELECT TO PUBLIC
    USING (id = (SELECT tenant.current_tenant()));
CREATE POLICY tenants_service ON tenant.tenants FOR SELECT TO tenant_service, tenant_admin
    USING (true);
ALTER TABLE tenant.members ENABLE ROW LEVEL SECURITY;
CREATE POLICY members_own ON tenant.members FOR SELECT TO PUBLIC
    USING (tenant_id = (SELECT tenant.current_tenant()));
CREATE POLICY members_service ON tenant.members FOR SELECT TO tenant_service, tenant_admin
    USING (true);

-- Privileges: least by default.
REVOKE ALL ON SCHEMA tenant FROM PUBLIC;
GRANT USAGE ON SCHEMA tenant TO PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA tenant FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA tenant FROM PUBLIC;

GRANT SELECT ON tenant.tenants TO PUBLIC;
GRANT SELECT ON tenant.isolated_tables TO PUBLIC;
GRANT SELECT ON tenant.members TO PUBLIC;

GRANT EXECUTE ON FUNCTION
    tenant.current_tenant(), tenant.require_tenant(), tenant.current_user_id(),
    tenant.context_status(), tenant.clear_context(),
    tenant.current_claims(), tenant.current_roles(),
    tenant.isolate(regclass, name), tenant.unisolate(regclass),
    tenant._isolate(oid, text), tenant._unisolate(oid)
TO PUBLIC;

GRANT EXECUTE ON FUNCTION tenant.set_context(text, text, boolean) TO tenant_service;
GRANT EXECUTE ON FUNCTION tenant.authenticate(text) TO tenant_user, tenant_service;
GRANT EXECUTE ON FUNCTION
    tenant.add_jwt_key(text, text, text, text, text, timestamptz, timestamptz),
    tenant.deactivate_jwt_key(text),
    tenant.rotate_jwt_key(text, text, text, text, integer)
TO tenant_admin;
GRANT EXECUTE ON FUNCTION
    tenant.add_member(text, text, text[]), tenant.remove_member(text, text)
TO tenant_service, tenant_admin;
GRANT EXECUTE ON FUNCTION
    tenant.create(text, text, text, text, jsonb), tenant.set_status(text, text)
TO tenant_service, tenant_admin;
