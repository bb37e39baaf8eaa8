#!/usr/bin/env bash
# Install what is missing, build and install the extension, start a throwaway cluster on
# 127.0.0.1:${MT_PGPORT:-28815} and run the demo (scripts/demo.sql) in a fresh database.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
"$HERE/scripts/setup.sh"
echo "[demo] building and installing the extension (release)"
"$HERE/scripts/cluster.sh" install
"$HERE/scripts/cluster.sh" start
PORT="${MT_PGPORT:-28815}"
PSQL=(psql -X -q -h 127.0.0.1 -p "$PORT" -U postgres)
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS multitenant_demo" -c "CREATE DATABASE multitenant_demo"
"${PSQL[@]}" -d multitenant_demo -f "$HERE/scripts/demo.sql"
echo
echo "[demo] done. Explore with: psql -h 127.0.0.1 -p $PORT -U postgres multitenant_demo"
echo "[demo] stop the cluster with: scripts/cluster.sh stop"
