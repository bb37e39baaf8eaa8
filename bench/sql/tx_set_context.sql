\set t random(1, :tenants)
\set id :t * 1000 + random(1, :rows)
BEGIN;
SELECT tenant.set_context('t' || :t::text);
SELECT payload FROM public.events_iso WHERE id = :id;
COMMIT;
