#!/usr/bin/env bash
# Runs every ```sql block of docs/reference.md, then of docs/operations.md, in order, in a
# fresh database of a throwaway cluster (its own data directory and port, with pg_cron
# preloaded for the scheduling examples), as the superuser postgres with ON_ERROR_STOP.
# Before the first block it creates what the pages say the examples assume: the
# non-superuser table owner app_owner (member of tenant_admin) and the application tables it
# owns, the roles app_role and reporting, a database named app, and auth0.pem (an RSA public
# key) in the directory psql runs in. A block whose first line is `-- needs: role NAME` runs
# after `SET ROLE NAME;`. Each block is one psql run: a failure is reported with psql's output.
# The last line is `N passed, M failed`; the exit status is non-zero when a block failed.
# Env: MT_DOC_PGPORT (default 28833), MT_DOC_PGROOT (default /tmp/mt-pg-docs),
#      MT_DOC_KEEP=1 keeps the cluster running afterwards (destroy: MT_PGPORT=... MT_PGROOT=...
#      scripts/cluster.sh destroy).
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
PG_MAJOR="${PG_MAJOR:-15}"
BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
PORT="${MT_DOC_PGPORT:-28833}"
ROOT="${MT_DOC_PGROOT:-/tmp/mt-pg-docs}"
DB=mt_docs
DOCS=("docs/reference.md" "docs/operations.md")

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq "$@" >/dev/null 2>&1; then
        apt-get update -qq >/dev/null && apt-get install -y -qq "$@" >/dev/null
    fi
}
[ -x "$BIN/psql" ] || apt_install "postgresql-client-${PG_MAJOR}"
[ -f "/usr/share/postgresql/${PG_MAJOR}/extension/pg_cron.control" ] || apt_install "postgresql-${PG_MAJOR}-cron"
command -v openssl >/dev/null 2>&1 || apt_install openssl
if [ ! -f "/usr/share/postgresql/${PG_MAJOR}/extension/multitenant.control" ]; then
    echo "doc_examples: the extension is not installed (scripts/cluster.sh install)" >&2
    exit 2
fi

cluster() { MT_PGPORT="$PORT" MT_PGROOT="$ROOT" MT_PGDATA="$ROOT/data" "$HERE/scripts/cluster.sh" "$@"; }
WORK="$(mktemp -d /tmp/mt-doc-examples.XXXXXX)"
chmod 755 "$WORK"
cleanup() {
    rm -rf "$WORK"
    if [ "${MT_DOC_KEEP:-}" != 1 ]; then cluster destroy; fi
}
trap cleanup EXIT

# a fresh cluster with pg_cron preloaded for the mt_docs database
cluster destroy
cluster start
cat >>"$ROOT/data/postgresql.conf" <<CONF
shared_preload_libraries = 'pg_cron'
cron.database_name = '$DB'
CONF
cluster stop
cluster start

export PGHOST=127.0.0.1 PGPORT="$PORT" PGUSER=postgres PGOPTIONS='-c client_min_messages=warning'
psql_() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql_ -d postgres -c "CREATE DATABASE $DB" -c "CREATE DATABASE app"

# the public key the add_jwt_key example reads (auth0.pem, in psql's working directory)
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/auth0.key" 2>/dev/null
openssl pkey -in "$WORK/auth0.key" -pubout -out "$WORK/auth0.pem" 2>/dev/null
rm -f "$WORK/auth0.key"

# what the examples assume
psql_ -d "$DB" >/dev/null <<'SQL'
CREATE EXTENSION multitenant;
CREATE EXTENSION pg_cron;
CREATE ROLE app_owner NOLOGIN IN ROLE tenant_admin;
CREATE ROLE app_role NOLOGIN;
CREATE ROLE reporting NOLOGIN BYPASSRLS;
GRANT CREATE ON SCHEMA public TO app_owner;
SET ROLE app_owner;
CREATE TABLE public.events (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, kind text);
CREATE TABLE public.notes (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, slug text UNIQUE, body text);
CREATE TABLE public.notes_archive (tenant_id uuid NOT NULL, body text);
CREATE TABLE public.orders (id bigserial PRIMARY KEY, org_id uuid NOT NULL, total numeric);
CREATE TABLE public.orgs (id bigserial PRIMARY KEY, org uuid NOT NULL, name text);
CREATE TABLE public.campaigns (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, owner_id text, name text);
CREATE TABLE public.invoices (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, amount numeric, updated_at timestamptz DEFAULT now());
CREATE TABLE public.users (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, email text);
CREATE TABLE public.reports (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, title text);
CREATE TABLE public.codes (code text PRIMARY KEY, tenant_id uuid NOT NULL);
CREATE TABLE public.projects (id int PRIMARY KEY, tenant_id uuid NOT NULL);
CREATE TABLE public.tasks (id int PRIMARY KEY, tenant_id uuid NOT NULL,
                           project_id int REFERENCES public.projects (id) ON DELETE CASCADE);
CREATE VIEW public.all_notes AS SELECT * FROM public.notes;
CREATE FUNCTION public.note_bodies() RETURNS SETOF text LANGUAGE sql SECURITY DEFINER AS 'SELECT body FROM public.notes';
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO PUBLIC;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO PUBLIC;
GRANT TRUNCATE ON public.notes TO app_role;
GRANT SELECT ON public.notes TO reporting;
SELECT tenant.isolate('public.events');
RESET ROLE;
SQL

passed=0
failed=0
n=0
for doc in "${DOCS[@]}"; do
    if [ ! -f "$HERE/$doc" ]; then
        echo "doc_examples: $doc is missing"
        failed=$((failed + 1))
        continue
    fi
    # one file per block: first line "LINE <n>", then the block
    rm -f "$WORK"/block.*
    awk -v dir="$WORK" '
        /^```sql[[:space:]]*$/ { n++; f = sprintf("%s/block.%03d", dir, n); print "LINE " NR + 1 > f; inb = 1; next }
        /^```/ { if (inb) close(f); inb = 0; next }
        inb { print >> f }
    ' "$HERE/$doc"
    for f in "$WORK"/block.*; do
        [ -e "$f" ] || continue
        n=$((n + 1))
        line="$(head -1 "$f" | cut -d' ' -f2)"
        tail -n +2 "$f" >"$f.sql"
        role="$(sed -n '1s/^-- needs: role \([A-Za-z_][A-Za-z0-9_]*\)[[:space:]]*$/\1/p' "$f.sql")"
        if [ -n "$role" ]; then
            { echo "SET ROLE $role;"; cat "$f.sql"; } >"$f.run"
        else
            cp "$f.sql" "$f.run"
        fi
        label="$doc:$line${role:+ (as $role)}"
        if out="$(cd "$WORK" && "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$DB" -f "$f.run" 2>&1)"; then
            echo "ok      $label"
            passed=$((passed + 1))
        else
            echo "FAILED  $label"
            sed 's/^/        /' "$f.sql"
            echo "        --- psql said:"
            printf '%s\n' "$out" | sed 's/^/        /'
            failed=$((failed + 1))
        fi
    done
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
