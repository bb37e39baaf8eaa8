\set t random(1, :tenants)
BEGIN;
SELECT 't' || :t::text;
UPDATE public.bench_counters SET used = used + 1 WHERE id = :t;
COMMIT;
