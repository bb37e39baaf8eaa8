SELECT id, payload FROM public.events_iso ORDER BY created_at DESC LIMIT 20;
