\set t random(1, :tenants)
BEGIN;
SELECT tenant.set_context('t' || :t::text);
SELECT tenant.consume('api_calls');
COMMIT;
