UPDATE public.bench_counters SET used = used + 1 WHERE id = 1;
