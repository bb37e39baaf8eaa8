\set id :base + random(1, :rows)
SELECT payload FROM public.events_naive WHERE id = :id;
