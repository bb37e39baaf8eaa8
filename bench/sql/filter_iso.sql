SELECT count(*) FROM public.events_iso WHERE payload LIKE '%ab%';
