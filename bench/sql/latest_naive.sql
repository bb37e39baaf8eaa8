SELECT id, payload FROM public.events_naive ORDER BY created_at DESC LIMIT 20;
