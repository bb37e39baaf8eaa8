-- bench data: 1,000 tenants x 1,000 rows in an isolated table and in a plain copy.
\set ON_ERROR_STOP on
CREATE EXTENSION IF NOT EXISTS multitenant;
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mt_bench') THEN
    CREATE ROLE mt_bench LOGIN;
  END IF;
END $$;
GRANT tenant_service TO mt_bench;
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mt_bench_api') THEN
    CREATE ROLE mt_bench_api LOGIN;
  END IF;
END $$;
GRANT tenant_user TO mt_bench_api;
SELECT tenant.add_jwt_key('bench-hs', 'HS256', :'hs_secret');
SELECT tenant.add_jwt_key('bench-es', 'ES256', :'es_public');

SELECT tenant.load_plan('{"name": "bench", "limits": {"api_calls_per_month": 1000000000000}}');
SELECT count(tenant.create('t' || g, 'Tenant ' || g, plan => 'bench')) AS tenants FROM generate_series(1, :tenants) g;
-- baseline of consume(): a bare counter UPDATE
CREATE TABLE public.bench_counters (id int PRIMARY KEY, used bigint NOT NULL DEFAULT 0);
INSERT INTO public.bench_counters SELECT g, 0 FROM generate_series(1, :tenants) g;
GRANT SELECT, UPDATE ON public.bench_counters TO mt_bench;

CREATE TABLE public.events_iso (
    id         bigint PRIMARY KEY,
    tenant_id  uuid NOT NULL,
    payload    text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE public.events_plain (LIKE public.events_iso INCLUDING ALL);

-- tenant tN owns ids N*1000+1 .. N*1000+rows
INSERT INTO public.events_iso
SELECT t.n * 1000 + r, t.id, md5((t.n * 1000 + r)::text), now() - r * interval '1 minute'
FROM (SELECT id, substr(slug, 2)::int AS n FROM tenant.tenants) t,
     generate_series(1, :rows) r;
INSERT INTO public.events_plain SELECT * FROM public.events_iso;

SELECT tenant.isolate('public.events_iso');
CREATE INDEX ON public.events_plain (tenant_id);   -- the same index isolate created
GRANT SELECT ON public.events_iso, public.events_plain TO mt_bench, mt_bench_api;
VACUUM ANALYZE public.events_iso;
VACUUM ANALYZE public.events_plain;
SELECT count(*) AS rows_iso FROM public.events_iso;
