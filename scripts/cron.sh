#!/usr/bin/env bash
# pg_cron runs tenant.run_maintenance(): installs postgresql-15-cron when missing, creates a
# throwaway cluster of its own (port MT_CRON_PGPORT, default 28832; data in MT_CRON_PGROOT,
# default /tmp/mt-pg-cron) with pg_cron preloaded, creates the extensions, schedules the
# maintenance as the reference shows (every minute; every 5 seconds where pg_cron >= 1.5
# accepts '<n> seconds'), plus the same call keeping its JSON in a table (pg_cron records only
# the command tag, "1 row", in cron.job_run_details.return_message), waits (at most
# MT_CRON_WAIT seconds, default 75) for a finished run of both in cron.job_run_details, prints
# them and the run_maintenance JSON, checks that the lifecycle moved its three tenants (an
# expired trial suspended, one suspended past the grace period deleted, a deleted one past its
# retention purged, each status change audited with its reason), destroys the cluster. Exit
# status non-zero when a run failed or none finished in time, no JSON was recorded or a
# tenant was not moved.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
PG_MAJOR="${PG_MAJOR:-15}"
BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
PORT="${MT_CRON_PGPORT:-28832}"
ROOT="${MT_CRON_PGROOT:-/tmp/mt-pg-cron}"
WAIT="${MT_CRON_WAIT:-75}"
DB=mt_cron

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq "$@" >/dev/null 2>&1; then
        apt-get update -qq >/dev/null && apt-get install -y -qq "$@" >/dev/null
    fi
}
[ -f "/usr/share/postgresql/${PG_MAJOR}/extension/pg_cron.control" ] || apt_install "postgresql-${PG_MAJOR}-cron"
[ -x "$BIN/psql" ] || apt_install "postgresql-client-${PG_MAJOR}"

cluster() { MT_PGPORT="$PORT" MT_PGROOT="$ROOT" MT_PGDATA="$ROOT/data" "$HERE/scripts/cluster.sh" "$@"; }
trap 'cluster destroy' EXIT
cluster destroy
cluster start
cat >>"$ROOT/data/postgresql.conf" <<CONF
shared_preload_libraries = 'pg_cron'
cron.database_name = '$DB'
CONF
cluster stop
cluster start

export PGHOST=127.0.0.1 PGPORT="$PORT" PGUSER=postgres PGOPTIONS='-c client_min_messages=warning'
psql_() { "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$@"; }
psql_ -d postgres -c "CREATE DATABASE $DB"
psql_ -d "$DB" -c 'CREATE EXTENSION pg_cron' -c 'CREATE EXTENSION multitenant'
version="$(psql_ -d "$DB" -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'")"
# something for the maintenance to do: an expired trial that it suspends, a tenant
# suspended past the grace period that it deletes, a deleted one past its retention that it
# purges (the clock is moved back by editing the timestamps the lifecycle reads)
psql_ -d "$DB" >/dev/null <<'SQL'
SELECT tenant.create('cron-trial', 'Trial', status => 'trial');
UPDATE tenant.tenants SET trial_ends_at = now() - interval '1 day' WHERE slug = 'cron-trial';
SELECT tenant.create('cron-idle', 'Idle');
SELECT tenant.set_status('cron-idle', 'suspended');
UPDATE tenant.tenants SET suspended_at = now() - interval '40 days' WHERE slug = 'cron-idle';
SELECT tenant.create('cron-gone', 'Gone');
SELECT tenant.set_status('cron-gone', 'deleted');
UPDATE tenant.tenants SET purge_after = now() - interval '1 minute' WHERE slug = 'cron-gone';
SQL
GONE_ID="$(psql_ -d "$DB" -c "SELECT id FROM tenant.tenants WHERE slug = 'cron-gone'")"
# pg_cron records a job's command tag, not its result ("1 row" for a SELECT), so a second job
# keeps the JSON of each run in a table; the first is the reference's statement as it is
psql_ -d "$DB" -c 'CREATE TABLE public.maintenance_runs (at timestamptz NOT NULL DEFAULT now(), result jsonb NOT NULL)'
# '<n> seconds' schedules came with pg_cron 1.5
if psql_ -d "$DB" -c "SELECT cron.schedule('multitenant', '5 seconds', 'SELECT tenant.run_maintenance()')" >/dev/null 2>&1; then
    schedule='5 seconds'
else
    schedule='* * * * *'
    psql_ -d "$DB" -c "SELECT cron.schedule('multitenant', '$schedule', 'SELECT tenant.run_maintenance()')" >/dev/null
fi
psql_ -d "$DB" -c "SELECT cron.schedule('multitenant-log', '$schedule',
    'INSERT INTO public.maintenance_runs (result) SELECT tenant.run_maintenance()')" >/dev/null
echo "pg_cron $version: jobs scheduled '$schedule':"
psql_ -d "$DB" -F ': ' -c "SELECT jobname, command FROM cron.job ORDER BY jobid" | sed 's/^/  /'

# the first finished run of each job
deadline=$(( $(date +%s) + WAIT ))
done_jobs=0
while [ "$(date +%s)" -lt "$deadline" ]; do
    done_jobs="$(psql_ -d "$DB" -c "SELECT count(DISTINCT jobid) FROM cron.job_run_details WHERE status IN ('succeeded', 'failed')")"
    [ "$done_jobs" -ge 2 ] && break
    sleep 2
done
echo "cron.job_run_details (first run of each job):"
psql_ -d "$DB" -F ' | ' -c "SELECT DISTINCT ON (j.jobname) j.jobname, d.status, d.return_message
    FROM cron.job_run_details d JOIN cron.job j USING (jobid) ORDER BY j.jobname, d.runid" | sed 's/^/  /'
if [ "$done_jobs" -lt 2 ]; then
    echo "cron: the jobs did not both run within ${WAIT}s" >&2
    exit 1
fi
failed="$(psql_ -d "$DB" -c "SELECT count(*) FROM cron.job_run_details WHERE status <> 'succeeded'")"
if [ "$failed" != 0 ]; then
    echo "cron: $failed run(s) did not succeed" >&2
    exit 1
fi
json="$(psql_ -d "$DB" -c "SELECT result FROM public.maintenance_runs ORDER BY at LIMIT 1")"
if ! printf '%s' "$json" | grep -q '"trials_expired"'; then
    echo "cron: no run_maintenance JSON was recorded" >&2
    exit 1
fi
echo "run_maintenance returned: $json"
states="$(psql_ -d "$DB" -c "SELECT string_agg(coalesce(slug, '?') || '=' || status, ' ' ORDER BY created_at)
    FROM tenant.tenants WHERE slug LIKE 'cron-%' OR id = '$GONE_ID'")"
echo "tenants now: $states"
reasons="$(psql_ -d "$DB" -c "SELECT string_agg(DISTINCT new_data->>'reason', ',')
    FROM tenant.audit_log WHERE record_id = 'tenant.status_changed' AND new_data ? 'reason'")"
receipts="$(psql_ -d "$DB" -c "SELECT count(*) FROM tenant.audit_log
    WHERE tenant_id IS NULL AND record_id = 'tenant.purged' AND new_data->>'tenant_id' = '$GONE_ID'")"
echo "status changes by reason: $reasons; purge receipts for cron-gone: $receipts"
if [ "$states" != "cron-trial=suspended cron-idle=deleted purged-$(printf '%s' "$GONE_ID" | tr -d '-' | cut -c1-12)=purged" ] \
   || [ "$receipts" != 1 ] || ! printf '%s' "$reasons" | grep -q 'grace_expired' \
   || ! printf '%s' "$reasons" | grep -q 'trial_expired'; then
    echo "cron: the lifecycle did not move the tenants as expected" >&2
    exit 1
fi
