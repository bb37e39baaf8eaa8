#!/usr/bin/env python3
"""Isolation through PgBouncer in transaction pooling mode (run by scripts/pgbouncer.sh).

1. CLIENTS concurrent clients, each ITERATIONS transactions through the pooler: in each,
   `SELECT tenant.set_context(<tenant>)` (transaction-local, the default) as a tenant_service
   role, insert a row, read every visible row back; every row must belong to the tenant that
   transaction set (0 foreign rows), and current_tenant() must be it.
2. Session scope vs transaction scope behind the pooler, on a pool of ONE server connection:
   a session-scoped context (is_local => false) set by client A is still there for client B
   (the server connection is handed over as it is); a transaction-local one is not.
Exit status 1 on any foreign row or wrong tenant; prints the counts.
psycopg 3 with prepare_threshold=None: no server-side prepared statements (PgBouncer before
1.21 cannot route them in transaction mode).
"""
import os
import sys
import threading
import time

import psycopg

HOST = "127.0.0.1"
PORT = int(os.environ.get("MT_PGBOUNCER_PORT", "6433"))
DIRECT_PORT = int(os.environ.get("MT_PGPORT", "28815"))
DB = os.environ.get("MT_POOLER_DB", "mt_pooler")
USER = os.environ.get("MT_POOLER_USER", "rg_pool_app")
CLIENTS = int(os.environ.get("MT_POOLER_CLIENTS", "50"))
ITERATIONS = int(os.environ.get("MT_POOLER_ITERATIONS", "20"))
TENANTS = ["rg-pool-a", "rg-pool-b", "rg-pool-c"]


def connect(dbname, port=PORT, user=USER):
    return psycopg.connect(host=HOST, port=port, dbname=dbname, user=user,
                           prepare_threshold=None, connect_timeout=10)


def main() -> int:
    with connect(DB, port=DIRECT_PORT, user="postgres") as c:
        ids = dict(c.execute("SELECT slug, id::text FROM tenant.tenants WHERE slug = ANY(%s)", [TENANTS]).fetchall())
    lock = threading.Lock()
    stats = {"transactions": 0, "rows_inserted": 0, "rows_read": 0, "foreign_rows": 0,
             "wrong_context": 0, "errors": 0}
    inserted = {t: 0 for t in TENANTS}
    first_errors = []
    start = threading.Barrier(CLIENTS)

    def client(n: int) -> None:
        local = {"transactions": 0, "rows_inserted": 0, "rows_read": 0, "foreign_rows": 0,
                 "wrong_context": 0, "errors": 0}
        mine = {t: 0 for t in TENANTS}
        try:
            conn = connect(DB)
        except Exception as e:  # noqa: BLE001
            with lock:
                stats["errors"] += 1
                first_errors.append(f"client {n}: connect: {e}")
            start.abort()
            return
        try:
            start.wait(timeout=60)
            for i in range(ITERATIONS):
                slug = TENANTS[(n + i) % len(TENANTS)]
                try:
                    with conn.transaction():
                        cur = conn.cursor()
                        cur.execute("SELECT tenant.set_context(%s)::text", [slug])
                        got = cur.fetchone()[0]
                        cur.execute("INSERT INTO public.pool_events (client, n) VALUES (%s, %s)", [n, i])
                        cur.execute("SELECT tenant.current_tenant()::text")
                        ctx = cur.fetchone()[0]
                        cur.execute("SELECT tenant_id::text FROM public.pool_events")
                        rows = cur.fetchall()
                    local["transactions"] += 1
                    local["rows_inserted"] += 1
                    mine[slug] += 1
                    local["rows_read"] += len(rows)
                    if got != ids[slug] or ctx != ids[slug]:
                        local["wrong_context"] += 1
                    local["foreign_rows"] += sum(1 for (t,) in rows if t != ids[slug])
                except Exception as e:  # noqa: BLE001
                    local["errors"] += 1
                    if len(first_errors) < 5:
                        first_errors.append(f"client {n} iteration {i}: {e}")
        finally:
            conn.close()
            with lock:
                for k, v in local.items():
                    stats[k] += v
                for k, v in mine.items():
                    inserted[k] += v

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0

    with connect(DB, port=DIRECT_PORT, user="postgres") as c:
        stored = dict(c.execute(
            "SELECT t.slug, count(e.*) FROM tenant.tenants t LEFT JOIN public.pool_events e ON e.tenant_id = t.id "
            "WHERE t.slug = ANY(%s) GROUP BY t.slug", [TENANTS]).fetchall())
        server_conns = c.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND usename = %s", [DB, USER]).fetchone()[0]

    print(f"pooler: {CLIENTS} clients x {ITERATIONS} transactions through PgBouncer (transaction pooling) "
          f"in {elapsed:.1f} s; server connections of {USER} now open: {server_conns}")
    for k in ("transactions", "rows_inserted", "rows_read", "foreign_rows", "wrong_context", "errors"):
        print(f"  {k:14} {stats[k]}")
    for slug in TENANTS:
        print(f"  {slug}: inserted {inserted[slug]}, stored {stored.get(slug, 0)}")
    for e in first_errors:
        print(f"  error: {e}")
    ok = (stats["foreign_rows"] == 0 and stats["wrong_context"] == 0 and stats["errors"] == 0
          and stats["transactions"] == CLIENTS * ITERATIONS
          and all(inserted[s] == stored.get(s, 0) for s in TENANTS))

    # 2. session scope vs transaction scope on a pool of one server connection
    one = DB + "_one"
    a = connect(one)
    a.autocommit = True
    a.execute("SELECT tenant.set_context('rg-pool-a', is_local => false)")
    a.close()   # client A is gone; its server connection goes back to the pool as it is
    b = connect(one)
    b.autocommit = True
    leaked = b.execute("SELECT tenant.current_tenant()::text").fetchone()[0]
    leaked_rows = b.execute("SELECT count(*) FROM public.pool_events").fetchone()[0]
    b.execute("SELECT tenant.clear_context()")
    b.close()
    session_leaks = leaked == ids["rg-pool-a"]
    print(f"session-scoped context (is_local => false) set by client A, seen by client B: "
          f"{'rg-pool-a' if session_leaks else leaked} ({leaked_rows} of rg-pool-a's rows visible to B)")

    a = connect(one)
    with a.transaction():
        a.execute("SELECT tenant.set_context('rg-pool-a')")
    a.close()
    b = connect(one)
    b.autocommit = True
    after_local = b.execute("SELECT tenant.current_tenant()::text").fetchone()[0]
    local_rows = b.execute("SELECT count(*) FROM public.pool_events").fetchone()[0]
    b.close()
    print(f"transaction-local context set by client A, seen by client B: {after_local or 'none'} "
          f"({local_rows} rows visible to B)")
    if after_local is not None or local_rows != 0:
        print("FAIL: a transaction-local context outlived its transaction")
        ok = False
    if not session_leaks:
        print("note: the session-scoped context did not reach client B (a reset query may be configured)")
    print("pooler isolation: " + ("ok, 0 foreign rows" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
