INSERT INTO public.audit_plain (tenant_id, payload, n) VALUES (:tid, 'payload', 1);
