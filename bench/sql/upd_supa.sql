\set id random(1, 10000)
UPDATE public.audit_supa SET n = n + 1 WHERE id = :id;
