SELECT count(*), sum(length(payload)), max(created_at) FROM public.events_naive;
