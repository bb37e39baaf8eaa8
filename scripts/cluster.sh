#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the demo, the client integration tests and the benches.
# It runs as the unprivileged OS user 'postgres' (initdb refuses root), on a local port.
#   scripts/cluster.sh install   build (release) and install the extension into the Debian PostgreSQL
#   scripts/cluster.sh start     initdb if needed, start; prints nothing else
#   scripts/cluster.sh stop      stop the cluster
#   scripts/cluster.sh destroy   stop and delete its data directory
# Env: MT_PGPORT (default 28815), MT_PGDATA (default /tmp/multitenant-pg/data),
#      MT_PG_FORCE_PARALLEL=1 (at initdb: every parallel-safe query runs under a Gather)
set -euo pipefail

PG_MAJOR="${PG_MAJOR:-15}"
BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
PORT="${MT_PGPORT:-28815}"
ROOT="${MT_PGROOT:-/tmp/multitenant-pg}"
DATA="${MT_PGDATA:-$ROOT/data}"
LOG="$ROOT/server.log"
HERE="$(cd "$(dirname "$0")/.." && pwd)"

as_pg() {
    if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

case "${1:-}" in
install)
    export PATH="$HOME/.cargo/bin:$PATH"
    cd "$HERE"
    cargo pgrx install --release --pg-config "$BIN/pg_config" >"$ROOT.install.log" 2>&1 || { cat "$ROOT.install.log" >&2; exit 1; }
    ;;
start)
    mkdir -p "$ROOT"
    chown postgres:postgres "$ROOT" 2>/dev/null || true
    if [ ! -s "$DATA/PG_VERSION" ]; then
        as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
        cat >> "$DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$ROOT'
max_connections = 200
shared_buffers = 512MB
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
        if [ -n "${MT_PG_FORCE_PARALLEL:-}" ]; then
            # PostgreSQL 16 renamed it debug_parallel_query
            if [ "$PG_MAJOR" -ge 16 ]; then echo "debug_parallel_query = on"; else echo "force_parallel_mode = on"; fi >> "$DATA/postgresql.conf"
        fi
    fi
    if ! as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
        # a Rust backtrace setting in the caller's environment would put backtraces into the
        # DETAIL of errors raised through pgrx; the server should not inherit it
        as_pg env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start >/dev/null
    fi
    ;;
stop)
    if [ -d "$DATA" ]; then as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null 2>&1 || true; fi
    ;;
destroy)
    "$0" stop
    rm -rf "$ROOT"
    ;;
*)
    echo "usage: $0 install|start|stop|destroy" >&2
    exit 2
    ;;
esac
