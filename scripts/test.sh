#!/usr/bin/env bash
# Every test (docs/testing.md): installs what is missing, then
#   1. cargo fmt --check, the layer rule (scripts/check-layers.sh), cargo clippy -D warnings
#   2. plain #[test]s and #[pg_test]s (cargo pgrx test, its own cluster run as 'postgres')
#   3. the client suite tests/integration/ against a throwaway cluster with the extension
#   4. the demo, the README quick start, the Python and Node examples, the golden SQL tests,
#      PgBouncer, every doc example in order, pg_cron
#   5. the Citus suite tests/citus/ on a 3-node Citus cluster (scripts/citus.sh; skipped with
#      a message when ../shared/citus is not there)
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
cd "$HERE"
"$HERE/scripts/setup.sh"
export PATH="$HOME/.cargo/bin:$PATH"
PG_MAJOR="${PG_MAJOR:-15}"

echo "[test] cargo fmt --check"
cargo fmt --all -- --check

echo "[test] layers: the import rule and no module cycles"
"$HERE/scripts/check-layers.sh"

echo "[test] cargo clippy"
cargo clippy --all-targets --features "pg${PG_MAJOR} pg_test integration citus" --no-default-features -- -D warnings

echo "[test] unit tests and #[pg_test]s"
PGRX_DATA=/tmp/pgrx-test-data
mkdir -p "$PGRX_DATA" && chown postgres:postgres "$PGRX_DATA"
cargo pgrx test "pg${PG_MAJOR}" --runas postgres --pgdata "$PGRX_DATA"

echo "[test] client integration suite"
export MT_PGPORT="${MT_PGPORT:-28815}"
"$HERE/scripts/cluster.sh" install
"$HERE/scripts/cluster.sh" destroy
MT_PG_FORCE_PARALLEL=1 "$HERE/scripts/cluster.sh" start
# the frozen 0.1.0 install script, for the upgrade suite only (not shipped: a fresh install
# is always the current version)
EXTDIR="$(/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config --sharedir)/extension"
cp "$HERE/sql/multitenant--0.1.0.sql" "$EXTDIR/"
trap 'rm -f "$EXTDIR/multitenant--0.1.0.sql"; "$HERE/scripts/cluster.sh" stop' EXIT
# every client suite runs with force_parallel_mode = on in the cluster (scripts/cluster.sh
# MT_PG_FORCE_PARALLEL): what is marked parallel-safe or -restricted must work under a Gather
cargo test --features integration --test integration -- --test-threads 4

echo "[test] the demo (scripts/demo.sql, what scripts/demo.sh runs) on a fresh database"
psql -X -q -h 127.0.0.1 -p "$MT_PGPORT" -U postgres -d postgres -c "DROP DATABASE IF EXISTS multitenant_demo" -c "CREATE DATABASE multitenant_demo"
psql -X -q -h 127.0.0.1 -p "$MT_PGPORT" -U postgres -d multitenant_demo -f "$HERE/scripts/demo.sql" >/dev/null
psql -X -q -h 127.0.0.1 -p "$MT_PGPORT" -U postgres -d postgres -c "DROP DATABASE multitenant_demo"

echo "[test] the README's quick start, pasted into psql as postgres on a fresh database"
PSQL=(psql -X -q -h 127.0.0.1 -p "$MT_PGPORT" -U postgres)
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS mt_quickstart" -c "CREATE DATABASE mt_quickstart"
"${PSQL[@]}" -d mt_quickstart -v ON_ERROR_STOP=1 -f "$HERE/scripts/quickstart.sql" >/dev/null
"${PSQL[@]}" -d postgres -c "DROP DATABASE mt_quickstart"

echo "[test] examples: Python (psycopg 3) and Node (pg)"
"$HERE/scripts/examples.sh"

echo "[test] golden SQL tests (tests/regress)"
"$HERE/scripts/regress.sh"

echo "[test] isolation through PgBouncer in transaction pooling mode"
"$HERE/scripts/pgbouncer.sh"

echo "[test] every SQL example of docs/reference.md and docs/operations.md, in order"
"$HERE/scripts/doc_examples.sh"

echo "[test] pg_cron runs tenant.run_maintenance()"
"$HERE/scripts/cron.sh"

echo "[test] Citus: isolation on the shards, tokens, propagation, quotas, tenant moves"
"$HERE/scripts/citus.sh"
