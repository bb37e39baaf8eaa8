\set id :base + random(1, :rows)
SELECT payload FROM public.events_iso WHERE id = :id;
