#!/usr/bin/env bash
# Run the client examples (examples/python, examples/node) against a running cluster.
#   - installs what they need: a venv in examples/python/.venv (pip install -r requirements.txt)
#     and examples/node/node_modules (npm ci);
#   - creates a fresh database on 127.0.0.1:${MT_PGPORT:-28815} as user postgres (the cluster of
#     scripts/cluster.sh start, with the extension installed), runs both demos in it, drops it.
# Each demo checks what it shows; the script exits non-zero on the first failure. Unattended and
# idempotent: it can run again at any time (a database left by an interrupted run is replaced).
# Env: MT_PGPORT (default 28815), MT_EXAMPLES_DB (default multitenant_examples),
#      MT_EXAMPLES_KEEP_DB=1 keeps the database afterwards, PYTHON (default python3).
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
EX="$HERE/examples"
PORT="${MT_PGPORT:-28815}"
DB="${MT_EXAMPLES_DB:-multitenant_examples}"
PYTHON="${PYTHON:-python3}"
log() { echo "[examples] $*"; }

# --- what the examples need -------------------------------------------------------------------
command -v node >/dev/null && command -v npm >/dev/null || { echo "node and npm are needed" >&2; exit 1; }
VENV="$EX/python/.venv"
if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "creating $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
fi
log "pip install -r examples/python/requirements.txt"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$EX/python/requirements.txt"
log "npm ci (examples/node)"
(cd "$EX/node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

# --- a fresh database -------------------------------------------------------------------------
export PGHOST=127.0.0.1 PGPORT="$PORT" PGUSER=postgres PGDATABASE="$DB" PGCONNECT_TIMEOUT=10
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -d postgres)
if ! pg_isready -q -h "$PGHOST" -p "$PGPORT"; then
    echo "no PostgreSQL on $PGHOST:$PGPORT; start one with: MT_PGPORT=$PORT scripts/cluster.sh start" >&2
    exit 1
fi
drop_db() { "${PSQL[@]}" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)"; }
drop_db
"${PSQL[@]}" -c "CREATE DATABASE \"$DB\""
if [ "${MT_EXAMPLES_KEEP_DB:-}" != 1 ]; then
    trap 'drop_db || true' EXIT
fi
log "database $DB on $PGHOST:$PGPORT"

# --- the demos (both in the same database: each creates its own tenants) ----------------------
log "python examples/python/demo.py"
(cd "$EX/python" && "$VENV/bin/python" demo.py)
log "node examples/node/demo.js"
(cd "$EX/node" && node demo.js)
log "both demos passed"
