\set id random(1, 10000)
UPDATE public.audit_plpgsql SET n = n + 1 WHERE id = :id;
