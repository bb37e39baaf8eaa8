#!/usr/bin/env bash
# The Citus test layer (docs/citus.md): builds Citus 13.2.2 from ../shared/citus (a test
# dependency, AGPL, never shipped) when that folder is there, starts a throwaway 3-node
# cluster (coordinator 56432, workers 56433 and 56434, data under /tmp/mt-citus), and runs
# the Citus suite tests/citus/ against it. Without ../shared/citus it says so and skips.
# Needs the extension installed (scripts/cluster.sh install; scripts/test.sh has done it).
#   scripts/citus.sh            build if needed, fresh cluster, suite, stop the cluster
#   MT_CITUS_KEEP=1 ...         leave the cluster running afterwards
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
cd "$HERE"
export PATH="$HOME/.cargo/bin:$PATH"
# MT_CITUS_DIR, else ../shared/citus beside the checkout, else the project machine's
# /work/shared/citus (a clone elsewhere, e.g. CI's, still finds it)
CITUS_DIR=""
for d in ${MT_CITUS_DIR:-} "$HERE/../shared/citus" /work/shared/citus; do
    if [[ -f $d/build.sh && -f $d/cluster.sh ]]; then CITUS_DIR=$d; break; fi
done
if [[ -z $CITUS_DIR ]]; then
    echo "[citus] no Citus source and scripts (MT_CITUS_DIR, $HERE/../shared/citus, /work/shared/citus): the Citus suite is SKIPPED"
    exit 0
fi
echo "[citus] Citus from $CITUS_DIR"
export CITUS_DATA_ROOT="${CITUS_DATA_ROOT:-/tmp/mt-citus}"
export CITUS_COORD_PORT="${CITUS_COORD_PORT:-56432}" CITUS_WORKER_PORTS="${CITUS_WORKER_PORTS:-56433 56434}"
export CITUS_EXTRA_CONF="${CITUS_EXTRA_CONF:-fsync = off}"

echo "[citus] build Citus (a no-op once installed)"
bash "$CITUS_DIR/build.sh"
[[ -f $(/usr/lib/postgresql/15/bin/pg_config --pkglibdir)/multitenant.so ]] || "$HERE/scripts/cluster.sh" install

echo "[citus] a fresh 3-node cluster in $CITUS_DATA_ROOT"
mkdir -p "$CITUS_DATA_ROOT" && chown postgres:postgres "$CITUS_DATA_ROOT"
bash "$CITUS_DIR/cluster.sh" destroy
[[ ${MT_CITUS_KEEP:-0} == 1 ]] || trap 'bash "$CITUS_DIR/cluster.sh" stop' EXIT
bash "$CITUS_DIR/cluster.sh" start

echo "[citus] the Citus suite (tests/citus)"
MT_CITUS_PORTS="$CITUS_COORD_PORT $CITUS_WORKER_PORTS" \
    cargo test --features citus --test citus -- --test-threads 1
