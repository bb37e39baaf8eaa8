#!/usr/bin/env bash
# Single-tenant lookups through a Citus coordinator: the extension's policy vs a hand-written
# WHERE, same transaction shape, measured in one run (pgbench, BENCH_CLIENTS clients x
# BENCH_SECONDS s each, as a non-superuser member of tenant_service).
#   plain_tx       BEGIN; SELECT <the tenant's uuid>; SELECT ... WHERE tenant_id = $tid AND id = $id; END
#                  on an unisolated distributed copy of the table (the baseline)
#   policy_router  BEGIN; SELECT tenant.set_context(slug) (returns the id); SELECT ... WHERE
#                  tenant_id = $tid AND id = $id; END on the isolated table: a router query
#   policy_only    the same without WHERE tenant_id: the policy alone, a fan-out to every shard
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

T=$(mktemp -d "${TMPDIR:-/tmp}/mt-citus-bench.XXXXXX")
trap 'rm -rf "$T"' EXIT
head='\set n random(1, 20)
\set id random(1, 500)'
# \gset fails the run on 0 rows: every transaction must see its row
printf '%s\nBEGIN;\nSELECT id AS tid FROM tenant.tenants WHERE slug = %s || :n \\gset\nSELECT kind AS k FROM public.bench_plain WHERE tenant_id = :tid AND id = :id \\gset\nEND;\n' "$head" "'bt'" >"$T/plain_tx.sql"
printf '%s\nBEGIN;\nSELECT tenant.set_context(%s || :n) AS tid \\gset\nSELECT kind AS k FROM public.bench_iso WHERE tenant_id = :tid AND id = :id \\gset\nEND;\n' "$head" "'bt'" >"$T/policy_router.sql"
printf '%s\nBEGIN;\nSELECT tenant.set_context(%s || :n) AS tid \\gset\nSELECT kind AS k FROM public.bench_iso WHERE id = :id \\gset\nEND;\n' "$head" "'bt'" >"$T/policy_only.sql"

declare -A TPS
for s in plain_tx policy_router policy_only plain_tx policy_router; do
    out=$("$PGBIN/pgbench" -h 127.0.0.1 -p "$COORD" -U mt_bench_backend -n -M extended -c "$CLIENTS" -j "$CLIENTS" -T "$SECS" -f "$T/$s.sql" "$DB" 2>&1) || { echo "$out" >&2; exit 1; }
    tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
    printf '%-14s %9s tps  failed %s\n' "$s" "$tps" "${failed:-0}"
    # the better of two runs of the baseline and the router variant
    if [[ -z ${TPS[$s]:-} ]] || awk -v a="$tps" -v b="${TPS[$s]}" 'BEGIN { exit !(a > b) }'; then TPS[$s]=$tps; fi
done
awk -v p="${TPS[plain_tx]}" -v r="${TPS[policy_router]}" -v o="${TPS[policy_only]}" 'BEGIN {
    printf "ratio plain_tx/policy_router %.3f (goal <= 1.1)\n", p / r
    printf "ratio plain_tx/policy_only   %.3f (the policy alone fans out to every shard)\n", p / o }'
for p in $COORD $WORKERS; do one "$p" "DROP DATABASE IF EXISTS $DB WITH (FORCE)" postgres postgres; done
