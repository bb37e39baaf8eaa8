#!/usr/bin/env bash
# Isolation behind PgBouncer in transaction pooling mode.
# Starts PgBouncer (Debian package, installed when missing) as the postgres OS user with its
# own ini in a temporary directory, in front of the cluster at MT_PGPORT (which must be
# running with the extension installed: scripts/cluster.sh start), prepares a database
# mt_pooler there, then runs tests/regress/pooler_check.py (python3 + psycopg 3 in a venv,
# prepare_threshold=None): 50 concurrent clients, each transaction sets a transaction-local
# context, inserts and reads back; any row of another tenant fails the run. It also shows on a
# pool of one server connection why session-scoped contexts must not be used behind such a
# pooler. PgBouncer is stopped and its directory removed on exit.
# Env: MT_PGPORT (default 28815), MT_PGBOUNCER_PORT (default 6433), MT_POOLER_CLIENTS (50),
#      MT_POOLER_ITERATIONS (20), MT_VENV (default tests/regress/.venv).
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
PG_MAJOR="${PG_MAJOR:-15}"
BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
export MT_PGPORT="${MT_PGPORT:-28815}"
export MT_PGBOUNCER_PORT="${MT_PGBOUNCER_PORT:-6433}"
VENV="${MT_VENV:-$HERE/tests/regress/.venv}"
DB=mt_pooler

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq "$@" >/dev/null 2>&1; then
        apt-get update -qq >/dev/null && apt-get install -y -qq "$@" >/dev/null
    fi
}
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || apt_install pgbouncer
PGBOUNCER="$(command -v pgbouncer || echo /usr/sbin/pgbouncer)"
# the Debian package starts a pgbouncer service on 6432 with /etc/pgbouncer; it is not used here
[ -x "$BIN/psql" ] || apt_install "postgresql-client-${PG_MAJOR}"
PY=/usr/bin/python3
[ -x "$PY" ] || { apt_install python3; }
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV" 2>/dev/null || { apt_install python3-venv; rm -rf "$VENV"; "$PY" -m venv "$VENV"; }
fi
"$VENV/bin/python" -c 'import psycopg' 2>/dev/null \
    || "$VENV/bin/pip" install -q --disable-pip-version-check 'psycopg[binary]>=3.1'

psql_() { PGOPTIONS='-c client_min_messages=warning' "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$MT_PGPORT" -U postgres "$@"; }
if ! psql_ -d postgres -c 'SELECT 1' >/dev/null 2>&1; then
    echo "pgbouncer.sh: no server on 127.0.0.1:$MT_PGPORT (MT_PGPORT=$MT_PGPORT scripts/cluster.sh start)" >&2
    exit 2
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$MT_PGBOUNCER_PORT") 2>/dev/null; then
    echo "pgbouncer.sh: port $MT_PGBOUNCER_PORT is taken; set MT_PGBOUNCER_PORT" >&2
    exit 2
fi

# the database, roles (cluster-wide, created once) and data behind the pooler
psql_ -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
psql_ -d "$DB" >/dev/null <<'SQL'
CREATE EXTENSION multitenant;
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rg_pool_app') THEN
    CREATE ROLE rg_pool_app LOGIN IN ROLE tenant_service;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rg_owner') THEN
    CREATE ROLE rg_owner NOLOGIN IN ROLE tenant_admin;
  END IF;
END $$;
GRANT CREATE ON SCHEMA public TO rg_owner;
SELECT count(tenant.create(s, s)) FROM unnest(ARRAY['rg-pool-a', 'rg-pool-b', 'rg-pool-c']) s;
SET ROLE rg_owner;
CREATE TABLE public.pool_events (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, client int, n int);
GRANT SELECT, INSERT ON public.pool_events TO rg_pool_app;
GRANT USAGE ON SEQUENCE public.pool_events_id_seq TO rg_pool_app;
SELECT tenant.isolate('public.pool_events');
RESET ROLE;
SQL

WORK="$(mktemp -d /tmp/mt-pgbouncer.XXXXXX)"
chown postgres:postgres "$WORK"
cat >"$WORK/pgbouncer.ini" <<INI
[databases]
$DB = host=127.0.0.1 port=$MT_PGPORT dbname=$DB
; one server connection only: shows what a session-scoped context does to the next client
${DB}_one = host=127.0.0.1 port=$MT_PGPORT dbname=$DB pool_size=1

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $MT_PGBOUNCER_PORT
unix_socket_dir = $WORK
auth_type = trust
auth_file = $WORK/userlist.txt
pool_mode = transaction
max_client_conn = 500
default_pool_size = 10
; what psycopg and psql may send at startup that PgBouncer cannot keep per client
ignore_startup_parameters = extra_float_digits,options
logfile = $WORK/pgbouncer.log
pidfile = $WORK/pgbouncer.pid
admin_users = postgres
INI
printf '"rg_pool_app" ""\n"postgres" ""\n' >"$WORK/userlist.txt"
chown postgres:postgres "$WORK"/*

cleanup() {
    if [ -s "$WORK/pgbouncer.pid" ]; then
        kill "$(cat "$WORK/pgbouncer.pid")" 2>/dev/null || true
        for _ in $(seq 50); do [ -e "$WORK/pgbouncer.pid" ] || break; sleep 0.1; done
    fi
    rm -rf "$WORK"
    psql_ -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

runuser -u postgres -- "$PGBOUNCER" -d "$WORK/pgbouncer.ini"
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$MT_PGBOUNCER_PORT") 2>/dev/null && break
    sleep 0.1
done
echo "PgBouncer $("$PGBOUNCER" --version | head -1 | awk '{print $2}') on 127.0.0.1:$MT_PGBOUNCER_PORT, pool_mode = transaction, in front of 127.0.0.1:$MT_PGPORT"

rc=0
MT_POOLER_DB="$DB" "$VENV/bin/python" "$HERE/tests/regress/pooler_check.py" || rc=$?
if [ "$rc" -ne 0 ]; then
    echo "--- pgbouncer.log (tail)"; tail -n 20 "$WORK/pgbouncer.log" || true
fi
exit "$rc"
