#!/usr/bin/env bash
# Single-tenant lookups through a Citus coordinator: the extension's policy vs a hand-written
# WHERE, same transaction shape, measured in one run (pgbench, BENCH_CLIENTS clients x
# BENCH_SECONDS s each, as a non-superuser member of tenant_service).
#   plain_tx       BEGIN; SELECT <the tenant's uuid>; SELECT ... WHERE tenant_id = $tid AND id = $id; END
#                  on an unisolated distributed copy of the table (the baseline)
#   policy_router  BEGIN; SELECT tenant.set_context(slug) (returns the id); SELECT ... WHERE
#                  tenant_id = $tid AND id = $id; END on the isolated table: a router query
#   policy_only    the same without WHERE tenant_id: the policy alone, routed to the tenant's
#                  shard by the extension's planner hook (multitenant.route_by_context)
#   policy_fanout  policy_only with multitenant.route_by_context = off: a fan-out to every shard
#   router_nohook  policy_router with multitenant.route_by_context = off (what the hook costs
#                  a statement that names the tenant itself)
#   schema_plain   a schema per tenant (Citus schema-based sharding), no policies: BEGIN;
#                  SELECT set_config('search_path', <its schema>, true); SELECT ... WHERE
#                  id = $id; END
#   schema_policy  tenant schemas from tenant.provision_schema (guarded): BEGIN;
#                  SELECT tenant.set_context(slug) (puts the schema first); the same SELECT;
#                  END: no tenant id in the query, one task (both in simple protocol: the
#                  baseline names its schema in the statement text)
# Prints each variant's tps and the ratios plain_tx / policy (goal for policy_router <= 1.1).
# Needs the cluster of ../shared/citus/cluster.sh (scripts/citus.sh with MT_CITUS_KEEP=1
# leaves one running); uses its own database mt_bench on every node.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
COORD=${CITUS_COORD_PORT:-56432}
WORKERS=${CITUS_WORKER_PORTS:-56433 56434}
DB=mt_bench
SECS=${BENCH_SECONDS:-10}
CLIENTS=${BENCH_CLIENTS:-2}
one() { "$PGBIN/psql" -h 127.0.0.1 -p "$1" -U "${3:-postgres}" -d "${4:-$DB}" -XAtq -v ON_ERROR_STOP=1 -c "$2"; }

for p in $COORD $WORKERS; do
    one "$p" "DROP DATABASE IF EXISTS $DB WITH (FORCE)" postgres postgres
    one "$p" "CREATE DATABASE $DB" postgres postgres
    one "$p" "CREATE EXTENSION citus"
done
one "$COORD" "SELECT citus_set_coordinator_host('127.0.0.1', $COORD)" >/dev/null
for w in $WORKERS; do one "$COORD" "SELECT citus_add_node('127.0.0.1', $w)" >/dev/null; done
one "$COORD" "CREATE EXTENSION multitenant"
one "$COORD" "SELECT tenant.citus_sync()" >/dev/null
for r in mt_bench_owner mt_bench_backend; do
    [[ $(one "$COORD" "SELECT count(*) FROM pg_roles WHERE rolname = '$r'") == 1 ]] || one "$COORD" "CREATE ROLE $r LOGIN"
done
one "$COORD" "GRANT tenant_service TO mt_bench_backend; GRANT CREATE ON SCHEMA public TO mt_bench_owner"
one "$COORD" "GRANT tenant_admin TO mt_bench_owner; GRANT CREATE ON DATABASE $DB TO mt_bench_owner"
one "$COORD" "SELECT count(tenant.create('bt' || n, 'Bench ' || n)) FROM generate_series(1, 20) n" >/dev/null
"$PGBIN/psql" -h 127.0.0.1 -p "$COORD" -U mt_bench_owner -d "$DB" -XAtq -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE TABLE public.bench_iso (id bigint, tenant_id uuid NOT NULL, kind text, PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('bench_iso', 'tenant_id');
SELECT tenant.isolate('public.bench_iso');
CREATE TABLE public.bench_plain (id bigint, tenant_id uuid NOT NULL, kind text, PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('bench_plain', 'tenant_id');
GRANT SELECT ON public.bench_iso, public.bench_plain TO mt_bench_backend;
SQL
one "$COORD" "INSERT INTO public.bench_iso SELECT g, t.id, 'k' || g FROM tenant.tenants t, generate_series(1, 500) g"
one "$COORD" "INSERT INTO public.bench_plain SELECT * FROM public.bench_iso"
one "$COORD" "ANALYZE public.bench_iso; ANALYZE public.bench_plain"
# a schema per tenant: the guarded ones from a template, and unguarded ones as the baseline
# (as the superuser: distributing a schema makes Citus create or alter the roles its grants
# name on the workers, which a non-superuser may not do)
"$PGBIN/psql" -h 127.0.0.1 -p "$COORD" -U postgres -d "$DB" -XAtq -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE SCHEMA bench_tpl;
CREATE TABLE bench_tpl.docs (id bigint PRIMARY KEY, kind text);
GRANT USAGE ON SCHEMA bench_tpl TO mt_bench_backend;
GRANT SELECT ON bench_tpl.docs TO mt_bench_backend;
SET citus.enable_schema_based_sharding = on;
SELECT count(tenant.provision_schema('bt' || n, 'bench_tpl')) FROM generate_series(1, 20) n;
SQL
for n in $(seq 1 20); do
    "$PGBIN/psql" -h 127.0.0.1 -p "$COORD" -U postgres -d "$DB" -XAtq -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET citus.enable_schema_based_sharding = on;
CREATE SCHEMA bench_plain_$n;
CREATE TABLE bench_plain_$n.docs (id bigint PRIMARY KEY, kind text);
GRANT USAGE ON SCHEMA bench_plain_$n TO mt_bench_backend;
GRANT SELECT ON bench_plain_$n.docs TO mt_bench_backend;
INSERT INTO bench_plain_$n.docs SELECT g, 'k' || g FROM generate_series(1, 500) g;
SQL
    # the guarded copy, written by the superuser past row security (VALUES: Citus refuses
    # INSERT ... SELECT into a table with row security when it has to pull the rows)
    s=$(one "$COORD" "SELECT schema_name FROM tenant.tenants WHERE slug = 'bt$n'")
    vals=$(one "$COORD" "SELECT string_agg(format('(%s, %L)', g, 'k' || g), ',') FROM generate_series(1, 500) g")
    one "$COORD" "INSERT INTO $s.docs VALUES $vals"
done

T=$(mktemp -d "${TMPDIR:-/tmp}/mt-citus-bench.XXXXXX")
trap 'rm -rf "$T"' EXIT
head='\set n random(1, 20)
\set id random(1, 500)'
# \gset fails the run on 0 rows: every transaction must see its row
printf '%s\nBEGIN;\nSELECT id AS tid FROM tenant.tenants WHERE slug = %s || :n \\gset\nSELECT kind AS k FROM public.bench_plain WHERE tenant_id = :tid AND id = :id \\gset\nEND;\n' "$head" "'bt'" >"$T/plain_tx.sql"
printf '%s\nBEGIN;\nSELECT tenant.set_context(%s || :n) AS tid \\gset\nSELECT kind AS k FROM public.bench_iso WHERE tenant_id = :tid AND id = :id \\gset\nEND;\n' "$head" "'bt'" >"$T/policy_router.sql"
printf '%s\nBEGIN;\nSELECT tenant.set_context(%s || :n) AS tid \\gset\nSELECT kind AS k FROM public.bench_iso WHERE id = :id \\gset\nEND;\n' "$head" "'bt'" >"$T/policy_only.sql"

printf '%s\nBEGIN;\nSELECT pg_catalog.set_config(%s, %s || :n || %s, true) AS p \\gset\nSELECT kind AS k FROM docs WHERE id = :id \\gset\nEND;\n' "$head" "'search_path'" "'bench_plain_'" "', public'" >"$T/schema_plain.sql"
printf '%s\nBEGIN;\nSELECT tenant.set_context(%s || :n) AS tid \\gset\nSELECT kind AS k FROM docs WHERE id = :id \\gset\nEND;\n' "$head" "'bt'" >"$T/schema_policy.sql"

declare -A TPS
cp "$T/policy_only.sql" "$T/policy_fanout.sql"
cp "$T/policy_router.sql" "$T/router_nohook.sql"
for s in plain_tx policy_router router_nohook policy_only policy_fanout plain_tx policy_router router_nohook policy_only schema_plain schema_policy schema_plain schema_policy; do
    mode=extended
    [[ $s == schema_* ]] && mode=simple
    opts=
    [[ $s == policy_fanout || $s == router_nohook ]] && opts="-c multitenant.route_by_context=off"
    out=$(PGOPTIONS="$opts" "$PGBIN/pgbench" -h 127.0.0.1 -p "$COORD" -U mt_bench_backend -n -M "$mode" -c "$CLIENTS" -j "$CLIENTS" -T "$SECS" -f "$T/$s.sql" "$DB" 2>&1) || { echo "$out" >&2; exit 1; }
    tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
    printf '%-14s %9s tps  failed %s\n' "$s" "$tps" "${failed:-0}"
    # the better of two runs of the baseline and the router variant
    if [[ -z ${TPS[$s]:-} ]] || awk -v a="$tps" -v b="${TPS[$s]}" 'BEGIN { exit !(a > b) }'; then TPS[$s]=$tps; fi
done
awk -v p="${TPS[plain_tx]}" -v r="${TPS[policy_router]}" -v o="${TPS[policy_only]}" -v f="${TPS[policy_fanout]}" -v n="${TPS[router_nohook]}" \
    -v sp="${TPS[schema_plain]}" -v sg="${TPS[schema_policy]}" 'BEGIN {
    printf "ratio plain_tx/policy_router %.3f (goal <= 1.1)\n", p / r
    printf "ratio plain_tx/router_nohook %.3f (policy_router without the planner hook)\n", p / n
    printf "ratio plain_tx/policy_only   %.3f (the policy alone, routed by the planner hook; goal <= 1.1)\n", p / o
    printf "ratio plain_tx/policy_fanout %.3f (the policy alone, route_by_context off: every shard)\n", p / f
    printf "ratio schema_plain/schema_policy %.3f (a schema per tenant, no tenant id in the query; goal <= 1.1)\n", sp / sg }'
for p in $COORD $WORKERS; do one "$p" "DROP DATABASE IF EXISTS $DB WITH (FORCE)" postgres postgres; done
