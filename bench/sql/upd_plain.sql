\set id random(1, 10000)
UPDATE public.audit_plain SET n = n + 1 WHERE id = :id;
