SELECT id, payload FROM public.events_plain WHERE tenant_id = :tid ORDER BY created_at DESC LIMIT 20;
