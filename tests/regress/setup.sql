-- Fixtures every golden file may use, run by scripts/regress.sh (not echoed) in each fresh
-- database after CREATE EXTENSION: the cluster-wide roles (idempotent) and the owner's
-- right to create tables in public.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rg_owner') THEN
    CREATE ROLE rg_owner NOLOGIN IN ROLE tenant_admin;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rg_service') THEN
    CREATE ROLE rg_service NOLOGIN IN ROLE tenant_service;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rg_app') THEN
    CREATE ROLE rg_app NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rg_anon') THEN
    CREATE ROLE rg_anon NOLOGIN IN ROLE tenant_user;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rg_auditor') THEN
    CREATE ROLE rg_auditor NOLOGIN IN ROLE tenant_auditor;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rg_bypass') THEN
    CREATE ROLE rg_bypass NOLOGIN BYPASSRLS;
  END IF;
END $$;
GRANT CREATE ON SCHEMA public TO rg_owner;
