BEGIN;
SELECT tenant.authenticate(:tok);
COMMIT;
