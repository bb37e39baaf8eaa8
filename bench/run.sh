#!/usr/bin/env bash
# Isolation and context benchmarks. Every figure is a ratio or difference against a baseline
# measured in the same run on the same cluster. Prints a report and writes bench/results/.
#   bench/run.sh            (env: BENCH_SECONDS=5 BENCH_ROUNDS=3 BENCH_CLIENTS=4 TENANTS=1000 ROWS=1000,
#                            BENCH_PGPORT=28816 BENCH_PGROOT=/tmp/multitenant-pg-bench)
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
cd "$HERE"
SECS="${BENCH_SECONDS:-5}"
ROUNDS="${BENCH_ROUNDS:-3}"
CLIENTS="${BENCH_CLIENTS:-4}"
TENANTS="${TENANTS:-1000}"
ROWS="${ROWS:-1000}"
# a cluster of its own: the test command's runs with force_parallel_mode = on, which would
# put every parallel-safe benchmark query under a Gather
PORT="${BENCH_PGPORT:-28816}"
export MT_PGPORT="$PORT"
export MT_PGROOT="${BENCH_PGROOT:-/tmp/multitenant-pg-bench}"
unset MT_PG_FORCE_PARALLEL
BIN=/usr/lib/postgresql/${PG_MAJOR:-15}/bin
OUT="$HERE/bench/results"
mkdir -p "$OUT"

# `cargo pgrx test --runas` installs its debug build into the server's library directory:
# always measure the release build.
if [ "${BENCH_SKIP_INSTALL:-0}" != 1 ]; then
    "$HERE/scripts/setup.sh" >/dev/null
    "$HERE/scripts/cluster.sh" install
fi
if ! cmp -s "$("$BIN/pg_config" --pkglibdir)/multitenant.so" "$HERE/target/release/libmultitenant.so"; then
    echo "[bench] the installed multitenant.so is not target/release: run without BENCH_SKIP_INSTALL" >&2
    exit 1
fi
"$HERE/scripts/cluster.sh" stop   # new backends load the library fresh
"$HERE/scripts/cluster.sh" start

PSQL=("$BIN/psql" -X -q -At -h 127.0.0.1 -p "$PORT")
echo "[bench] building ${TENANTS} tenants x ${ROWS} rows (isolated table and plain copy)"
"${PSQL[@]}" -U postgres -d postgres -c "DROP DATABASE IF EXISTS mt_bench" -c "CREATE DATABASE mt_bench"
HS_SECRET="bench-hmac-secret-0123456789abcdefghijklmnop"
"${PSQL[@]}" -U postgres -d mt_bench -v tenants="$TENANTS" -v rows="$ROWS" -v hs_secret="$HS_SECRET" \
    -v es_public="$(cat "$HERE/tests/keys/ec256_public.pem")" -f "$HERE/bench/setup.sql" >/dev/null
cargo build -q --example mint_jwt
MINT="$HERE/target/debug/examples/mint_jwt"

# one tenant in the middle for the query comparison
T=$(( (TENANTS + 1) / 2 ))
TID=$("${PSQL[@]}" -U postgres -d mt_bench -c "SELECT id FROM tenant.tenants WHERE slug = 't$T'")
TOKEN=$("${PSQL[@]}" -U mt_bench -d mt_bench -c "SELECT tenant.set_context('t$T', NULL, false)" -c "SHOW multitenant.context" | tail -1)

JWT_HS=$("$MINT" HS256 bench-hs "$HS_SECRET" "t$T" bench-user 7200)
JWT_ES=$("$MINT" ES256 bench-es "$HERE/tests/keys/ec256_private.pem" "t$T" bench-user 7200)

# run_pgbench SCRIPT CLIENTS [ROLE] [TOKEN]: TPS of one run, counted after a warm-up of
# WARMUP seconds on the same connections (per-backend caches start cold in every run).
WARMUP="${BENCH_WARMUP:-2}"
run_pgbench() {
    local script=$1 clients=$2 role=${3:-mt_bench} tok=${4:-none}
    PGOPTIONS="-c multitenant.context=$TOKEN ${EXTRA_PGOPTIONS:-}" "$BIN/pgbench" -n -M prepared -h 127.0.0.1 -p "$PORT" -U "$role" \
        -c "$clients" -j "$(( clients < 2 ? 1 : 2 ))" -T "$(( SECS + WARMUP ))" -P 1 \
        -D base=$(( T * 1000 )) -D tid="$TID" -D rows="$ROWS" -D tenants="$TENANTS" -D tok="$tok" \
        -f "$HERE/bench/sql/$script.sql" mt_bench 2>&1 \
        | awk -v w="$WARMUP" '/^progress: /{ t=$2+0; if (t > w) { s += $4; n++ } } END { if (n) printf "%.1f\n", s/n }'
}
median() { sort -g | awk '{a[NR]=$1} END{print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

declare -A TPS
measure_pair() { # A B clients: alternate A and B, ROUNDS times each
    local a=$1 b=$2 c=$3 i
    : > "$OUT/$a.tps"; : > "$OUT/$b.tps"
    for i in $(seq "$ROUNDS"); do
        run_pgbench "$a" "$c" >> "$OUT/$a.tps"
        run_pgbench "$b" "$c" >> "$OUT/$b.tps"
    done
    TPS[$a]=$(median < "$OUT/$a.tps")
    TPS[$b]=$(median < "$OUT/$b.tps")
}

echo "[bench] queries through the policy vs hand-written WHERE tenant_id = ... ($CLIENTS clients, ${ROUNDS}x${SECS}s each, median)"
for q in point range latest; do
    measure_pair "${q}_iso" "${q}_plain" "$CLIENTS"
done
echo "[bench] set_context per transaction (1 client, latency)"
measure_pair tx_set_context tx_lookup 1
measure_pair tx_noop tx_lookup 1

echo "[bench] authenticate per transaction (1 client) vs BEGIN; SELECT 1; COMMIT"
for f in bare auth_hs auth_es auth_hs_nc auth_es_nc; do : > "$OUT/$f.tps"; done
for i in $(seq "$ROUNDS"); do
    run_pgbench tx_bare 1 mt_bench_api >> "$OUT/bare.tps"
    run_pgbench tx_auth 1 mt_bench_api "$JWT_HS" >> "$OUT/auth_hs.tps"
    run_pgbench tx_auth 1 mt_bench_api "$JWT_ES" >> "$OUT/auth_es.tps"
    EXTRA_PGOPTIONS="-c multitenant.jwt_cache_size=0" run_pgbench tx_auth 1 mt_bench_api "$JWT_HS" >> "$OUT/auth_hs_nc.tps"
    EXTRA_PGOPTIONS="-c multitenant.jwt_cache_size=0" run_pgbench tx_auth 1 mt_bench_api "$JWT_ES" >> "$OUT/auth_es_nc.tps"
done
for f in bare auth_hs auth_es auth_hs_nc auth_es_nc; do TPS[$f]=$(median < "$OUT/$f.tps"); done

echo "[bench] consume() vs a bare counter UPDATE (16 clients)"
measure_pair consume_one update_one 16
measure_pair consume_spread update_spread 16

echo "[bench] audited INSERT/UPDATE ($CLIENTS clients): unaudited, tenant.audit (Rust), PL/pgSQL jsonb trigger"
for f in ins_plain ins_rust ins_plpgsql upd_plain upd_rust upd_plpgsql; do : > "$OUT/$f.tps"; done
for i in $(seq "$ROUNDS"); do
    for f in ins_plain ins_rust ins_plpgsql upd_plain upd_rust upd_plpgsql; do
        run_pgbench "$f" "$CLIENTS" >> "$OUT/$f.tps"
    done
done
for f in ins_plain ins_rust ins_plpgsql upd_plain upd_rust upd_plpgsql; do TPS[$f]=$(median < "$OUT/$f.tps"); done

echo "[bench] set_context server-side cost per call (loop of 20000 in one statement)"
loop_ms() { # EXPR [ROLE] [N]
    "${PSQL[@]}" -U "${2:-mt_bench}" -d mt_bench -c "SET multitenant.jwt_cache_size = ${4:-1024}" -c "
      DO \$\$ DECLARE t0 timestamptz; BEGIN
        t0 := clock_timestamp();
        PERFORM $1 FROM generate_series(1, ${3:-20000}) g;
        RAISE NOTICE '%', 1000 * extract(epoch FROM clock_timestamp() - t0);
      END \$\$" 2>&1 | sed -n 's/.*NOTICE: *//p'
}
: > "$OUT/loop_set.ms"; : > "$OUT/loop_base.ms"
for i in $(seq "$ROUNDS"); do
    loop_ms "tenant.set_context('t' || (g % $TENANTS + 1))" >> "$OUT/loop_set.ms"
    loop_ms "length('t' || (g % $TENANTS + 1))" >> "$OUT/loop_base.ms"
done
LOOP_SET=$(median < "$OUT/loop_set.ms"); LOOP_BASE=$(median < "$OUT/loop_base.ms")
: > "$OUT/loop_hs.ms"; : > "$OUT/loop_es.ms"; : > "$OUT/loop_abase.ms"
for i in $(seq "$ROUNDS"); do
    loop_ms "tenant.authenticate('$JWT_HS' || left(g::text, 0))" mt_bench_api 5000 0 >> "$OUT/loop_hs.ms"
    loop_ms "tenant.authenticate('$JWT_ES' || left(g::text, 0))" mt_bench_api 1000 0 >> "$OUT/loop_es.ms"
    loop_ms "length('$JWT_ES' || left(g::text, 0))" mt_bench_api 5000 >> "$OUT/loop_abase.ms"
done
echo "[bench] can() from cache vs a hand-written SQL join (loop of 20000 in one statement)"
T1=$("${PSQL[@]}" -U postgres -d mt_bench -c "SELECT id FROM tenant.tenants WHERE slug = 't1'")
CAN_TOKEN=$("${PSQL[@]}" -U mt_bench -d mt_bench -c "SELECT tenant.set_context('t1', 'bob', false)" -c "SHOW multitenant.context" | tail -1)
JOIN_SQL="EXISTS (WITH RECURSIVE r(name) AS (
      SELECT unnest(m.roles) FROM tenant.members m WHERE m.tenant_id = '$T1' AND m.user_id = 'bob' AND m.status = 'active'
      UNION SELECT unnest(ro.inherits) FROM tenant.roles ro JOIN r ON ro.tenant_id = '$T1' AND ro.name = r.name)
    SELECT 1 FROM tenant.permissions p JOIN r ON p.role = r.name
    WHERE p.tenant_id = '$T1' AND p.resource IN ('campaigns', '*') AND p.action IN ('update', '*')
      AND (p.condition IS NULL OR p.condition->>'owner_id' IN ('self', 'bob')) AND g > 0)"
: > "$OUT/loop_can.ms"; : > "$OUT/loop_join.ms"; : > "$OUT/loop_cbase.ms"
for i in $(seq "$ROUNDS"); do
    PGOPTIONS="-c multitenant.context=$CAN_TOKEN" loop_ms "tenant.can('campaigns', 'update', jsonb_build_object('owner_id', 'bob', 'g', g))" mt_bench >> "$OUT/loop_can.ms"
    loop_ms "$JOIN_SQL" postgres >> "$OUT/loop_join.ms"
    loop_ms "jsonb_build_object('owner_id', 'bob', 'g', g)" mt_bench >> "$OUT/loop_cbase.ms"
done
LOOP_CAN=$(median < "$OUT/loop_can.ms"); LOOP_JOIN=$(median < "$OUT/loop_join.ms"); LOOP_CBASE=$(median < "$OUT/loop_cbase.ms")
LOOP_HS=$(median < "$OUT/loop_hs.ms"); LOOP_ES=$(median < "$OUT/loop_es.ms"); LOOP_ABASE=$(median < "$OUT/loop_abase.ms")

{
echo "multitenant bench, $(date -u +%Y-%m-%dT%H:%M:%SZ), PostgreSQL $("${PSQL[@]}" -U postgres -d postgres -c 'SHOW server_version')"
echo "data: ${TENANTS} tenants x ${ROWS} rows; ${CLIENTS} clients; ${ROUNDS} rounds x ${SECS}s after ${WARMUP}s warm-up, medians"
echo
printf '%-34s %12s %12s %14s\n' "query (same tenant)" "policy tps" "plain tps" "cost ratio"
for q in point range latest; do
    a=${TPS[${q}_iso]}; b=${TPS[${q}_plain]}
    printf '%-34s %12.0f %12.0f %14.3f\n' "$q" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN{print b/a}')"
done
echo "(cost ratio = plain tps / policy tps; goal <= 1.05)"
echo
a=${TPS[tx_set_context]}; b=${TPS[tx_lookup]}; n=${TPS[tx_noop]}
printf 'txn BEGIN; lookup; COMMIT                       %10.1f us\n' "$(awk -v b="$b" 'BEGIN{print 1e6/b}')"
printf 'txn BEGIN; set_context; lookup; COMMIT          %10.1f us\n' "$(awk -v a="$a" 'BEGIN{print 1e6/a}')"
printf 'txn BEGIN; SELECT trivial; lookup; COMMIT       %10.1f us\n' "$(awk -v n="$n" 'BEGIN{print 1e6/n}')"
printf 'added by set_context, whole statement           %10.1f us\n' "$(awk -v a="$a" -v b="$b" 'BEGIN{print 1e6/a-1e6/b}')"
printf 'added by set_context beyond a trivial statement %10.1f us\n' "$(awk -v a="$a" -v n="$n" 'BEGIN{print 1e6/a-1e6/n}')"
printf 'set_context server time per call (loop)         %10.2f us\n' "$(awk -v s="$LOOP_SET" -v b="$LOOP_BASE" 'BEGIN{print (s-b)*1000/20000}')"
echo "(goal: set_context adds < 20 us to a transaction)"
echo
z=${TPS[bare]}
printf 'txn BEGIN; SELECT 1; COMMIT                     %10.1f us\n' "$(awk -v z="$z" 'BEGIN{print 1e6/z}')"
for v in auth_hs:"HS256, verified" auth_es:"ES256, verified" auth_hs_nc:"HS256, cache off" auth_es_nc:"ES256, cache off"; do
    k=${v%%:*}; label=${v#*:}; t=${TPS[$k]}
    printf 'txn BEGIN; authenticate(%-16s); COMMIT %8.1f us  (+%.1f us)\n' "$label" \
        "$(awk -v t="$t" 'BEGIN{print 1e6/t}')" "$(awk -v t="$t" -v z="$z" 'BEGIN{print 1e6/t-1e6/z}')"
done
echo "(verified: the same token again, answered from the per-backend cache of verified JWTs)"
printf 'authenticate HS256 server time per call, no cache %8.2f us\n' "$(awk -v s="$LOOP_HS" -v b="$LOOP_ABASE" 'BEGIN{print (s/5000-b/5000)*1000}')"
printf 'authenticate ES256 server time per call, no cache %8.2f us\n' "$(awk -v s="$LOOP_ES" -v b="$LOOP_ABASE" 'BEGIN{print (s/1000-b/5000)*1000}')"
echo "(goal: authenticate HS256 adds < 20 us to a transaction)"
echo
printf '%-40s %12s %12s %10s\n' "consume (16 clients)" "consume tps" "UPDATE tps" "ratio"
for v in one:"one tenant (one hot row)" spread:"1,000 tenants (spread)"; do
    k=${v%%:*}; label=${v#*:}
    a=${TPS[consume_$k]}; b=${TPS[update_$k]}
    printf '%-40s %12.0f %12.0f %10.3f\n' "$label" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN{print a/b}')"
done
echo "(ratio = consume tps / UPDATE tps; goal >= 0.8)"
echo
printf 'can() from cache, per call                      %10.2f us\n' "$(awk -v s="$LOOP_CAN" -v b="$LOOP_CBASE" 'BEGIN{print (s-b)*1000/20000}')"
printf 'hand-written SQL join (recursive roles), per call %8.2f us\n' "$(awk -v s="$LOOP_JOIN" -v b="$LOOP_CBASE" 'BEGIN{print (s-b)*1000/20000}')"
echo "(goal: can() under 5 us)"
echo
printf '%-10s %12s %14s %14s %12s %14s\n' "audit" "plain tps" "tenant.audit" "plpgsql jsonb" "cost ratio" "vs plpgsql"
for op in ins upd; do
    p=${TPS[${op}_plain]}; r=${TPS[${op}_rust]}; g=${TPS[${op}_plpgsql]}
    printf '%-10s %12.0f %14.0f %14.0f %12.3f %14.3f\n' "$([ $op = ins ] && echo INSERT || echo UPDATE)" "$p" "$r" "$g" \
        "$(awk -v p="$p" -v r="$r" 'BEGIN{print p/r}')" "$(awk -v g="$g" -v r="$r" 'BEGIN{print r/g}')"
done
echo "(cost ratio = plain tps / audited tps, goal <= 1.5; vs plpgsql = tenant.audit tps / PL/pgSQL tps, > 1 is faster)"
} | tee "$OUT/report.txt"
