BEGIN;
SELECT valid FROM public.verify(:tok, :hs);
COMMIT;
