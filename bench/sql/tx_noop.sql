\set t random(1, :tenants)
\set id :t * 1000 + random(1, :rows)
BEGIN;
SELECT 't' || :t::text;
SELECT payload FROM public.events_plain WHERE id = :id;
COMMIT;
