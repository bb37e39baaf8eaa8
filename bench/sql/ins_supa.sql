INSERT INTO public.audit_supa (tenant_id, payload, n) VALUES (:tid, 'payload', 1);
