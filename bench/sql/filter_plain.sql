SELECT count(*) FROM public.events_plain WHERE tenant_id = :tid AND payload LIKE '%ab%';
