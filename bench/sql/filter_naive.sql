SELECT count(*) FROM public.events_naive WHERE payload LIKE '%ab%';
