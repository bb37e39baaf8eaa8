-- multitenant bootstrap: roles and the extension's own tables.
-- Runs first in CREATE EXTENSION; the schema "tenant" is created by the control file.

-- Functions nobody calls by name: triggers, the policy helper, the extension's own
-- plumbing. Their EXECUTE is revoked from PUBLIC (finalize.sql grants what is needed).
CREATE SCHEMA tenant_internal;
REVOKE ALL ON SCHEMA tenant_internal FROM PUBLIC;
COMMENT ON SCHEMA tenant_internal IS 'multitenant internals: not an API.';

DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'tenant_service') THEN
        CREATE ROLE tenant_service NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'tenant_user') THEN
        CREATE ROLE tenant_user NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'tenant_admin') THEN
        CREATE ROLE tenant_admin NOLOGIN;
    END IF;
    -- reads every audit entry of the tenant of its context, whatever the audited table
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'tenant_auditor') THEN
        CREATE ROLE tenant_auditor NOLOGIN;
    END IF;
END
$roles$;

CREATE TABLE tenant.tenants (
    id            uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
    slug          text NOT NULL UNIQUE
                  CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    name          text NOT NULL CHECK (length(btrim(name)) > 0),
    plan          text NOT NULL DEFAULT 'free',
    status        text NOT NULL DEFAULT 'active'
                  CHECK (status IN ('provisioning', 'trial', 'active', 'suspended', 'deleted', 'purged')),
    region        text,
    settings      jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(settings) = 'object'),
    trial_ends_at timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    -- the lifecycle: when it was suspended or deleted, from when it may be purged, the end
    -- of the paid period a renewal (active -> active) extends
    suspended_at  timestamptz,
    deleted_at    timestamptz,
    purge_after   timestamptz,
    period_end    timestamptz,
    -- where its rows live: in the shared tables (isolated by tenant_id) or in a schema of its
    -- own (tenant.provision_schema), which set_context puts first on the search_path
    placement     text NOT NULL DEFAULT 'shared' CHECK (placement IN ('shared', 'schema')),
    schema_name   name UNIQUE
);
COMMENT ON TABLE tenant.tenants IS 'One row per tenant; created with tenant.create(), status changed with tenant.set_status().';

-- The per-database key that signs context tokens. Readable only by the extension owner.
CREATE TABLE tenant.secret (
    id         int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    key        bytea NOT NULL CHECK (length(key) >= 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    -- carried by every token: one per database, the same on all nodes of a Citus cluster
    key_id     uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid()
);
-- 2 x 122 random bits from pg_strong_random (gen_random_uuid)
INSERT INTO tenant.secret (key)
SELECT decode(replace(pg_catalog.gen_random_uuid()::text, '-', '')
           || replace(pg_catalog.gen_random_uuid()::text, '-', ''), 'hex');
REVOKE ALL ON tenant.secret FROM PUBLIC;

CREATE TABLE tenant.isolated_tables (
    relid            regclass PRIMARY KEY,
    tenant_column    name NOT NULL,
    created_index    text,        -- quoted, qualified name of the index isolate created
    previous_default text,
    rls_was_enabled  boolean NOT NULL DEFAULT false,
    rls_was_forced   boolean NOT NULL DEFAULT false,
    isolated_at      timestamptz NOT NULL DEFAULT now(),
    isolated_by      name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE tenant.isolated_tables IS 'Tables isolated with tenant.isolate(); rows kept by pg_dump.';

-- Tables guarded by tenant.protect: the resource and the row fields its checks read. With
-- Citus, isolate's policies carry these checks and contexts carry the caller's permissions.
CREATE TABLE tenant.protected_tables (
    relid        regclass PRIMARY KEY,
    resource     text NOT NULL,
    fields       jsonb NOT NULL DEFAULT '[]',
    owner_column name,
    protected_at timestamptz NOT NULL DEFAULT now()
);

-- Columns left out of tenant.export (tenant.exclude_from_export).
CREATE TABLE tenant.export_exclusions (
    relid   regclass PRIMARY KEY,
    columns text[] NOT NULL DEFAULT '{}'
);

-- Settings every new tenant starts with (tenant.set_setting_default), under those given to create.
CREATE TABLE tenant.setting_defaults (
    key   text PRIMARY KEY CHECK (key ~ '^[a-z0-9_.-]{1,100}$'),
    value jsonb NOT NULL
);

-- Which tenant each backend entered last (multitenant.track_activity), for tenant.activity.
CREATE UNLOGGED TABLE tenant.backend_contexts (
    pid           integer PRIMARY KEY,
    backend_start timestamptz NOT NULL,
    tenant_id     uuid NOT NULL,
    user_id       text,
    since         timestamptz NOT NULL
);

-- Keys that verify JWTs for tenant.authenticate(). Only the extension owner and
-- tenant_admin (through the key functions) ever see them.
CREATE TABLE tenant.jwt_keys (
    kid         text PRIMARY KEY CHECK (length(kid) BETWEEN 1 AND 200),
    alg         text NOT NULL CHECK (alg IN ('HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512',
                                             'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'EdDSA')),
    key         text NOT NULL,
    issuer      text,
    audience    text,
    valid_from  timestamptz NOT NULL DEFAULT now(),
    valid_until timestamptz,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON tenant.jwt_keys FROM PUBLIC;

-- Who belongs to which tenant (a user may belong to many).
CREATE TABLE tenant.members (
    tenant_id uuid NOT NULL REFERENCES tenant.tenants (id) ON DELETE CASCADE,
    user_id   text NOT NULL CHECK (length(user_id) BETWEEN 1 AND 256),
    roles     text[] NOT NULL DEFAULT ARRAY['member'],
    status    text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'invited', 'disabled')),
    joined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id),
    organization_id uuid
);
CREATE INDEX members_user_idx ON tenant.members (user_id);
-- Organizations inside a tenant (B2B): a member belongs to at most one.
CREATE TABLE tenant.organizations (
    id         uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
    tenant_id  uuid NOT NULL REFERENCES tenant.tenants (id) ON DELETE CASCADE,
    slug       text NOT NULL CHECK (slug ~ '^[a-z0-9_-]{1,100}$'),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, slug),
    UNIQUE (tenant_id, id)
);
ALTER TABLE tenant.members ADD CONSTRAINT members_organization_fkey
    FOREIGN KEY (tenant_id, organization_id) REFERENCES tenant.organizations (tenant_id, id)
    ON DELETE SET NULL (organization_id);

-- Plans: price, features, restrictions; limits per resource (-1 = unlimited).
CREATE TABLE tenant.plans (
    name          text PRIMARY KEY CHECK (name ~ '^[a-z0-9_-]{1,100}$'),
    price         numeric(12, 2) NOT NULL DEFAULT 0 CHECK (price >= 0),
    currency      text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    billing_cycle text NOT NULL DEFAULT 'month' CHECK (billing_cycle IN ('month', 'year', 'none')),
    features      text[] NOT NULL DEFAULT '{}',
    restrictions  text[] NOT NULL DEFAULT '{}',
    definition    jsonb,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    -- the name shown to people ("Free") when it differs from the key
    display_name  text
);
CREATE TABLE tenant.plan_limits (
    plan          text NOT NULL REFERENCES tenant.plans (name) ON UPDATE CASCADE ON DELETE CASCADE,
    resource      text NOT NULL,
    limit_value   bigint NOT NULL CHECK (limit_value >= -1),
    period        text NOT NULL DEFAULT 'none' CHECK (period IN ('none', 'minute', 'hour', 'day', 'month')),
    overage_price numeric(14, 6) CHECK (overage_price >= 0),
    PRIMARY KEY (plan, resource)
);
-- Per-tenant overrides (custom deals).
CREATE TABLE tenant.tenant_limits (
    tenant_id     uuid NOT NULL REFERENCES tenant.tenants (id) ON DELETE CASCADE,
    resource      text NOT NULL,
    limit_value   bigint NOT NULL CHECK (limit_value >= -1),
    period        text NOT NULL DEFAULT 'none' CHECK (period IN ('none', 'minute', 'hour', 'day', 'month')),
    overage_price numeric(14, 6) CHECK (overage_price >= 0),
    PRIMARY KEY (tenant_id, resource)
);
CREATE TABLE tenant.tenant_features (
    tenant_id uuid NOT NULL REFERENCES tenant.tenants (id) ON DELETE CASCADE,
    feature   text NOT NULL,
    enabled   boolean NOT NULL,
    PRIMARY KEY (tenant_id, feature)
);
-- One counter per tenant, resource and fixed window (UTC, aligned to the clock; the window
-- of period 'none' starts at the epoch and never ends). `rolled` is what run_maintenance()
-- already moved into usage_daily.
CREATE TABLE tenant.usage_counters (
    tenant_id    uuid NOT NULL,
    resource     text NOT NULL,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    used         bigint NOT NULL DEFAULT 0 CHECK (used >= 0),
    rolled       bigint NOT NULL DEFAULT 0,
    -- a dimension under the same limit (one endpoint's rate limit: consume(..., key => ...));
    -- '' for the tenant's own counter
    key          text NOT NULL DEFAULT '' CHECK (length(key) <= 200),
    CONSTRAINT usage_counters_pkey PRIMARY KEY (tenant_id, resource, key, window_start)
);
CREATE TABLE tenant.usage_daily (
    tenant_id uuid NOT NULL,
    resource  text NOT NULL,
    day       date NOT NULL,
    used      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, resource, day)
);
-- Tables whose rows count against a limit (tenant.limit_rows).
CREATE TABLE tenant.row_limits (
    relid         regclass PRIMARY KEY,
    resource      text NOT NULL,
    tenant_column name NOT NULL
);

-- Audit trail: append-only, one hash chain per tenant ('global' for rows without one).
CREATE TABLE tenant.audit_log (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain            text NOT NULL,
    seq              bigint NOT NULL,
    tenant_id        uuid,
    table_oid        oid,
    table_name       text,
    operation        text NOT NULL,
    record_id        text,
    user_id          text,
    db_role          text NOT NULL,
    client_addr      inet,
    application_name text,
    txid             bigint NOT NULL,
    at               timestamptz NOT NULL,
    old_data         jsonb,
    new_data         jsonb,
    changed          text[],
    hash             bytea NOT NULL,
    UNIQUE (chain, seq),
    -- what the hash covers: 1 (0.1.0) left out table_oid, client_addr, application_name;
    -- 2 covers every column (tenant_internal._audit_content_all)
    hash_format      smallint NOT NULL DEFAULT 1 CHECK (hash_format IN (1, 2)),
    -- who, beyond the connection: the database role the write ran as (current_user, after
    -- SET ROLE; db_role is session_user) and the end user's address signed into the context
    db_user          text,
    end_user_addr    inet
);
CREATE INDEX audit_log_tenant_at ON tenant.audit_log (tenant_id, at);
CREATE INDEX audit_log_record ON tenant.audit_log (table_oid, record_id);
CREATE TABLE tenant.audit_heads (
    chain     text PRIMARY KEY,
    seq       bigint NOT NULL,
    hash      bytea NOT NULL,
    base_seq  bigint NOT NULL DEFAULT 0,
    base_hash bytea NOT NULL DEFAULT ''::bytea
);
CREATE TABLE tenant.audited_tables (
    relid          regclass PRIMARY KEY,
    ignore_columns text[] NOT NULL DEFAULT '{}',
    changed_only   boolean NOT NULL DEFAULT false,
    audited_at     timestamptz NOT NULL DEFAULT now()
);

-- Roles per tenant (built-ins copied at tenant creation), what they inherit, permissions.
CREATE TABLE tenant.roles (
    tenant_id uuid NOT NULL REFERENCES tenant.tenants (id) ON DELETE CASCADE,
    name      text NOT NULL CHECK (name ~ '^[a-z0-9_.-]{1,100}$'),
    inherits  text[] NOT NULL DEFAULT '{}',
    builtin   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (tenant_id, name)
);
CREATE TABLE tenant.permissions (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id uuid NOT NULL,
    role      text NOT NULL,
    resource  text NOT NULL,
    action    text NOT NULL,
    condition jsonb,
    FOREIGN KEY (tenant_id, role) REFERENCES tenant.roles (tenant_id, name) ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE UNIQUE INDEX permissions_unique ON tenant.permissions
    (tenant_id, role, resource, action, coalesce(condition, 'null'::jsonb));
-- Role templates (issue 17): roles defined once, copied into every new tenant by create()
-- and into existing ones by apply_role_templates(). permissions: [{resource, action, condition}].
CREATE TABLE tenant.role_templates (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z0-9_.-]{1,100}$'),
    inherits    text[] NOT NULL DEFAULT '{}',
    permissions jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(permissions) = 'array'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE tenant.invitations (
    id          uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenant.tenants (id) ON DELETE CASCADE,
    email       text NOT NULL,
    role        text NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,
    invited_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz,
    accepted_by text
);

SELECT pg_catalog.pg_extension_config_dump('tenant.roles', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.permissions', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.invitations', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.role_templates', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.audit_heads', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.audited_tables', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.tenants', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.plans', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.plan_limits', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.tenant_limits', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.tenant_features', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.usage_counters', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.usage_daily', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.row_limits', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.jwt_keys', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.members', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.organizations', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.isolated_tables', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.export_exclusions', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.protected_tables', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.setting_defaults', '');
-- identity sequences too: after a restore the next id must follow the restored rows
SELECT pg_catalog.pg_extension_config_dump('tenant.audit_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.permissions_id_seq', '');
