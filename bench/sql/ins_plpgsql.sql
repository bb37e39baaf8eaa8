INSERT INTO public.audit_plpgsql (tenant_id, payload, n) VALUES (:tid, 'payload', 1);
