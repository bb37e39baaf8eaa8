\set lo :base + random(1, :rows - 20)
\set hi :lo + 19
SELECT id, payload FROM public.events_naive WHERE id BETWEEN :lo AND :hi;
