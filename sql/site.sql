-- Where a request lands (issue 14): custom domains, branding, custom fields, onboarding, the
-- outbox of events for workers outside the database, storage objects, schema placement.

-- Custom domains: claims by tenants, one verified owner per hostname. Verification (DNS) and
-- certificates (TLS) are done by a worker outside the database, which reports back with
-- mark_domain_verified (the claim whose token it found in DNS wins) and set_tls_status; only
-- verified domains resolve.
CREATE TABLE tenant.domains (
    hostname           text NOT NULL CHECK (hostname = lower(hostname) AND length(hostname) BETWEEN 3 AND 253),
    tenant_id          uuid NOT NULL REFERENCES tenant.tenants (id) ON DELETE CASCADE,
    verification_token text NOT NULL,
    verified_at        timestamptz,
    tls_status         text NOT NULL DEFAULT 'pending' CHECK (tls_status IN ('pending', 'active', 'failed', 'expired')),
    tls_expires_at     timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hostname, tenant_id)
);
CREATE INDEX domains_tenant_idx ON tenant.domains (tenant_id);
CREATE UNIQUE INDEX domains_verified_idx ON tenant.domains (hostname) WHERE verified_at IS NOT NULL;

-- A tenant's branding (keys checked by tenant.set_branding).
CREATE TABLE tenant.branding (
    tenant_id  uuid PRIMARY KEY REFERENCES tenant.tenants (id) ON DELETE CASCADE,
    branding   jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(branding) = 'object'),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Custom fields a tenant defines per entity, and the jsonb columns they are enforced on.
CREATE TABLE tenant.custom_fields (
    tenant_id  uuid NOT NULL REFERENCES tenant.tenants (id) ON DELETE CASCADE,
    entity     text NOT NULL CHECK (entity ~ '^[a-z][a-z0-9_]{0,62}$'),
    name       text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    type       text NOT NULL CHECK (type IN ('text', 'number', 'boolean', 'date', 'select')),
    required   boolean NOT NULL DEFAULT false,
    options    text[],
    label      text CHECK (length(label) <= 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, entity, name)
);
CREATE TABLE tenant.custom_field_columns (
    relid         regclass PRIMARY KEY,
    column_name   name NOT NULL,
    entity        text NOT NULL,
    tenant_column name NOT NULL
);

-- Onboarding: the steps every tenant goes through, and each tenant's progress.
CREATE TABLE tenant.onboarding_steps (
    step        text PRIMARY KEY CHECK (step ~ '^[a-z0-9_-]{1,100}$'),
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description text,
    required    boolean NOT NULL DEFAULT false,
    position    integer NOT NULL DEFAULT 0
);
CREATE TABLE tenant.onboarding_progress (
    tenant_id    uuid NOT NULL REFERENCES tenant.tenants (id) ON DELETE CASCADE,
    step         text NOT NULL REFERENCES tenant.onboarding_steps (step) ON DELETE CASCADE,
    completed_at timestamptz NOT NULL DEFAULT now(),
    completed_by text,
    data         jsonb,
    PRIMARY KEY (tenant_id, step)
);

-- Events for workers outside the database (welcome e-mail, DNS checks): written in the
-- transaction that caused them, taken with tenant.take_events(); pg_notify on the channel
-- multitenant_events wakes the worker.
CREATE TABLE tenant.outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event      text NOT NULL,
    tenant_id  uuid,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Objects a tenant stores outside the database (its storage prefix), with their size.
CREATE TABLE tenant.storage_objects (
    tenant_id     uuid NOT NULL REFERENCES tenant.tenants (id) ON DELETE CASCADE,
    path          text NOT NULL,
    bytes         bigint NOT NULL CHECK (bytes >= 0),
    registered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, path)
);

-- Migrations applied to tenant schemas (tenant.migrate_schemas).
CREATE TABLE tenant.schema_migrations (
    tenant_id   uuid NOT NULL REFERENCES tenant.tenants (id) ON DELETE CASCADE,
    version     text NOT NULL,
    schema_name name NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    applied_by  name NOT NULL DEFAULT current_user,
    PRIMARY KEY (tenant_id, version)
);

SELECT pg_catalog.pg_extension_config_dump('tenant.domains', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.branding', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.custom_fields', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.custom_field_columns', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.onboarding_steps', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.onboarding_progress', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.outbox_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.storage_objects', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.schema_migrations', '');
