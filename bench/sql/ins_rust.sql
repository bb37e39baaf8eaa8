INSERT INTO public.audit_rust (tenant_id, payload, n) VALUES (:tid, 'payload', 1);
