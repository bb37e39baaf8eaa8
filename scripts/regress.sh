#!/usr/bin/env bash
# Golden SQL tests, pg_regress style: each tests/regress/sql/NAME.sql runs in a fresh database
# (CREATE EXTENSION multitenant) through `psql -X -a -q` (input echoed, as pg_regress does);
# its output goes to tests/regress/results/NAME.out and is compared with
# tests/regress/expected/NAME.out (diff -u). The last line is `N passed, M failed`; the exit
# status is non-zero when any file differs.
#   scripts/regress.sh                 run every file
#   scripts/regress.sh context jwt     run only these
#   scripts/regress.sh --accept [...]  run, then copy results over expected (read them first!)
# Env: MT_PGPORT (default 28815), MT_PGHOST (default 127.0.0.1); the cluster must be running
# with the extension installed (scripts/cluster.sh start); user postgres, trust auth.
# MT_REGRESS_KEEP=1 keeps the databases (mt_regress_NAME) for inspection.
# Normalized in the results, because they change from run to run or with every edit of the
# sources: `LOCATION:` lines (source file:line, printed by VERBOSITY verbose) are removed; in
# ERROR/DETAIL/HINT/NOTICE/WARNING/CONTEXT lines a uuid (but the nil uuid) becomes <uuid> and a temporary schema
# pg_temp_<n> becomes pg_temp_N. Everything else is compared as psql printed it.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
DIR="$HERE/tests/regress"
PG_MAJOR="${PG_MAJOR:-15}"
BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
PORT="${MT_PGPORT:-28815}"
HOST="${MT_PGHOST:-127.0.0.1}"

if [ ! -x "$BIN/psql" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "postgresql-client-${PG_MAJOR}" >/dev/null
fi

accept=0
names=()
for a in "$@"; do
    case "$a" in
    --accept) accept=1 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) names+=("$(basename "$a" .sql)") ;;
    esac
done
if [ ${#names[@]} -eq 0 ]; then
    for f in "$DIR"/sql/*.sql; do names+=("$(basename "$f" .sql)"); done
fi

# what pg_regress pins, so that output does not depend on the caller's environment
export PGHOST="$HOST" PGPORT="$PORT" PGUSER=postgres
export PGTZ=UTC PGDATESTYLE='ISO, MDY' PGAPPNAME=mt_regress PGCLIENTENCODING=UTF8
export PGOPTIONS="-c lc_messages=C -c intervalstyle=postgres -c extra_float_digits=0"
unset PGDATABASE PGSERVICE PGPASSWORD PGSSLMODE || true
export LC_ALL=C

psql_() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
if ! psql_ -d postgres -c 'SELECT 1' >/dev/null 2>&1; then
    echo "regress: no server on $HOST:$PORT (start one: MT_PGPORT=$PORT scripts/cluster.sh start)" >&2
    exit 2
fi

mkdir -p "$DIR/results"
rm -f "$DIR/regression.diffs"
passed=0
failed=0
failed_names=()
for name in "${names[@]}"; do
    sql="$DIR/sql/$name.sql"
    out="$DIR/results/$name.out"
    exp="$DIR/expected/$name.out"
    db="mt_regress_${name}"
    if [ ! -f "$sql" ]; then
        echo "regress: no such test $sql" >&2
        failed=$((failed + 1)); failed_names+=("$name"); continue
    fi
    psql_ -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
    psql_ -d postgres -c "CREATE DATABASE $db TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'" >/dev/null
    psql_ -d "$db" -c 'CREATE EXTENSION multitenant' >/dev/null
    psql_ -d "$db" -f "$DIR/setup.sql" >/dev/null   # the shared roles (tests/regress/setup.sql)
    start=$(date +%s%N)
    "$BIN/psql" -X -a -q -d "$db" <"$sql" >"$out" 2>&1 || true
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    sed -i -E -e '/^LOCATION:  /d' \
        -e '/^(ERROR|DETAIL|HINT|NOTICE|WARNING|CONTEXT):  /{s/00000000-0000-0000-0000-000000000000/<nil-uuid>/g;s/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/<uuid>/g;s/pg_temp_[0-9]+/pg_temp_N/g;s/<nil-uuid>/00000000-0000-0000-0000-000000000000/g}' \
        "$out"
    if [ "${MT_REGRESS_KEEP:-}" != 1 ]; then
        psql_ -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    if [ "$accept" = 1 ]; then
        cp "$out" "$exp"
    fi
    if [ -f "$exp" ] && diff -u "$exp" "$out" >"$DIR/results/$name.diff"; then
        rm -f "$DIR/results/$name.diff"
        printf 'test %-20s ... ok        %6d ms\n' "$name" "$ms"
        passed=$((passed + 1))
    else
        [ -f "$exp" ] || echo "no expected file $exp" >"$DIR/results/$name.diff"
        cat "$DIR/results/$name.diff" >>"$DIR/regression.diffs"
        printf 'test %-20s ... FAILED    %6d ms\n' "$name" "$ms"
        failed=$((failed + 1)); failed_names+=("$name")
    fi
done

if [ "$failed" -gt 0 ]; then
    echo
    echo "The differences are in $DIR/regression.diffs (failed: ${failed_names[*]})."
    if [ "${MT_REGRESS_SHOW_DIFFS:-1}" = 1 ]; then head -n 200 "$DIR/regression.diffs"; fi
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
