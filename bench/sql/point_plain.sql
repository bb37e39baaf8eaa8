\set id :base + random(1, :rows)
SELECT payload FROM public.events_plain WHERE id = :id AND tenant_id = :tid;
