\set t random(1, :tenants)
\set k random(1, 8)
BEGIN;
SELECT tenant.set_context('t' || :t::text);
SELECT tenant.consume('api_calls', 1, 'endpoint-' || :k::text);
COMMIT;
