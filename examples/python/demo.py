#!/usr/bin/env python3
"""multitenant from a Python backend: psycopg 3 and psycopg_pool.

What it shows, and checks (it exits 1 on the first unexpected result):
  1. per-request tenant context, set by a trusted backend role (a member of tenant_service)
     inside the request's transaction, so that a pooled connection never carries one
     request's tenant into the next;
  2. fail closed: without a context an isolated table shows no rows and a write raises MT001;
  3. verified identity: an untrusted API role (a member of tenant_user) enters a tenant only
     with a JWT that tenant.authenticate() verifies (HS256, minted here with PyJWT);
  4. quotas: tenant.load_plan + tenant.set_plan, then consume() until MT010;
  5. permissions: tenant.can() and tenant.authorize() (MT020).

Connection: the libpq environment (PGHOST, PGPORT, PGDATABASE). The one-time setup connects
as PGUSER, a superuser (default postgres); the application connects as the roles the setup
creates. scripts/examples.sh runs it against a fresh database. It can run again against the
same database: each run creates its own two tenants.
"""

import os
import secrets
import sys
import time
from contextlib import contextmanager

import jwt  # PyJWT
import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

OWNER = "mt_example_owner"  # owns the application table; NOLOGIN, used by the setup only
BACKEND = "mt_example_backend"  # the trusted backend: member of tenant_service
API = "mt_example_api"  # an untrusted SQL client: member of tenant_user, needs a JWT
JWT_KID = "example-python"
# An HS256 secret shared by the database (tenant.add_jwt_key) and the token issuer. In real
# life it comes from a secret store, at least 32 random bytes.
JWT_SECRET = "examples-only-hs256-secret-do-not-use-in-production"

# Plan documents are shaped like the usual YAML plan files (docs/reference.md, "Plans,
# features and quotas"): a limit key ending in _per_day names the resource and its window.
STARTER_PLAN = {
    "name": "starter",
    "price": 9,
    "currency": "USD",
    "billing_cycle": "month",
    "limits": {"api_requests_per_day": 3},
    "features": ["exports"],
}

PASSED = 0


class Failure(Exception):
    pass


def check(condition, what):
    global PASSED
    if not condition:
        raise Failure(what)
    PASSED += 1
    print(f"  ok  {what}")


def expect_sqlstate(codes, what, fn):
    """Run fn; it must fail with one of the SQLSTATEs in codes. Returns the error."""
    codes = (codes,) if isinstance(codes, str) else tuple(codes)
    try:
        fn()
    except psycopg.Error as e:
        if e.sqlstate not in codes:
            raise Failure(f"{what}: expected SQLSTATE {'/'.join(codes)}, got {e.sqlstate}: {e}")
        check(True, f"{what} -> {e.sqlstate}: {e.diag.message_primary}")
        return e
    raise Failure(f"{what}: expected SQLSTATE {'/'.join(codes)}, but it succeeded")


def section(title):
    print(f"== {title}")


# --- one-time setup, as a superuser (a migration, in a real application) --------------------

SETUP_SQL = f"""
CREATE EXTENSION IF NOT EXISTS multitenant;
DO $$
BEGIN
    -- roles are cluster-wide: create them once
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{OWNER}') THEN
        CREATE ROLE {OWNER} NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{BACKEND}') THEN
        CREATE ROLE {BACKEND} LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{API}') THEN
        CREATE ROLE {API} LOGIN;
    END IF;
END $$;
GRANT tenant_service TO {BACKEND};
GRANT tenant_user TO {API};
-- PostgreSQL 15: only the database owner may create in schema public by default
GRANT CREATE ON SCHEMA public TO {OWNER};
SET ROLE {OWNER};
CREATE TABLE IF NOT EXISTS public.notes (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  uuid NOT NULL,
    author     text,
    body       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
SELECT tenant.isolate('public.notes');  -- idempotent
GRANT SELECT, INSERT, UPDATE, DELETE ON public.notes TO {BACKEND}, {API};
RESET ROLE;
"""


def setup(admin_conninfo):
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        conn.execute(SETUP_SQL)
        # JWT verification key (tenant_admin, here the superuser); kids are unique
        if not conn.execute("SELECT 1 FROM tenant.jwt_keys WHERE kid = %s", (JWT_KID,)).fetchone():
            conn.execute("SELECT tenant.add_jwt_key(%s, 'HS256', %s)", (JWT_KID, JWT_SECRET))
        # creates or replaces the plan (tenant_admin)
        name = conn.execute("SELECT tenant.load_plan(%s)", (Jsonb(STARTER_PLAN),)).fetchone()[0]
        check(name == "starter", "tenant.load_plan() returned the plan's name")


# --- the application -----------------------------------------------------------------------


@contextmanager
def request(pool, tenant, user=None):
    """One request handled by the trusted backend: a pooled connection, one transaction, the
    tenant context local to it. It ends with COMMIT (or ROLLBACK on an exception), before the
    connection goes back to the pool."""
    with pool.connection() as conn, conn.transaction():
        conn.execute("SELECT tenant.set_context(%s, %s)", (tenant, user))
        yield conn


@contextmanager
def api_request(pool, token):
    """One request of the untrusted API role: it may only present a token."""
    with pool.connection() as conn, conn.transaction():
        conn.execute("SELECT tenant.authenticate(%s)", (token,))
        yield conn


def mint(tenant, sub, roles=(), ttl=300, secret=JWT_SECRET):
    now = int(time.time())
    claims = {"tenant_id": tenant, "sub": sub, "roles": list(roles), "iat": now, "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": JWT_KID})


def add_note(pool, tenant, user, body):
    with request(pool, tenant, user) as conn:
        return conn.execute(
            "INSERT INTO public.notes (author, body) VALUES (%s, %s) RETURNING id, tenant_id",
            (user, body),
        ).fetchone()


def note_bodies(conn):
    return [r[0] for r in conn.execute("SELECT body FROM public.notes ORDER BY id")]


def run():
    admin = make_conninfo("", user=os.environ.get("PGUSER", "postgres"),
                          application_name="multitenant-example-setup")
    section("setup as superuser: extension, roles, isolated table, JWT key, plan")
    setup(admin)

    # prepare_threshold=None: no server-side prepared statements, so the same code works
    # behind PgBouncer in transaction mode. autocommit: every transaction is an explicit
    # `with conn.transaction()`. max_size=1: every request reuses the same connection, which
    # shows that no tenant context survives a request.
    kwargs = {"prepare_threshold": None, "autocommit": True}
    backend = ConnectionPool(make_conninfo("", user=BACKEND, application_name="example-backend"),
                             min_size=1, max_size=1, kwargs=kwargs, open=False)
    api = ConnectionPool(make_conninfo("", user=API, application_name="example-api"),
                         min_size=1, max_size=1, kwargs=kwargs, open=False)
    backend.open(wait=True, timeout=15)
    api.open(wait=True, timeout=15)
    try:
        run_app(backend, api)
    finally:
        api.close()
        backend.close()


def run_app(backend, api):
    run_id = secrets.token_hex(3)
    acme, globex = f"acme-{run_id}", f"globex-{run_id}"

    section(f"backend: create tenants {acme} and {globex}, plan, members")
    with backend.connection() as conn:
        acme_id = conn.execute("SELECT tenant.create(%s, 'Acme Corp')", (acme,)).fetchone()[0]
        globex_id = conn.execute("SELECT tenant.create(%s, 'Globex')", (globex,)).fetchone()[0]
        for t in (acme, globex):
            conn.execute("SELECT tenant.set_plan(%s, 'starter')", (t,))
        # once a tenant has members, a JWT's user must be one of them
        conn.execute("SELECT tenant.add_member(%s, 'alice', ARRAY['member'])", (acme,))
        conn.execute("SELECT tenant.add_member(%s, 'vera', ARRAY['viewer'])", (acme,))
    check(acme_id != globex_id, "two tenants with their own ids")

    section("1. per-request context (tenant.set_context), transaction-local")
    _, tid = add_note(backend, acme, "alice", "acme: first note")
    check(tid == acme_id, "tenant_id of a new row comes from the context")
    add_note(backend, acme, "alice", "acme: second note")
    globex_note, _ = add_note(backend, globex, "bob", "globex: only note")
    with request(backend, acme) as conn:
        check(note_bodies(conn) == ["acme: first note", "acme: second note"],
              f"{acme} sees its 2 notes only")
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        cur = conn.execute("UPDATE public.notes SET body = 'hacked' WHERE id = %s", (globex_note,))
        check(cur.rowcount == 0, f"{acme} updating {globex}'s note by its id changes 0 rows")
    with request(backend, globex) as conn:
        check(note_bodies(conn) == ["globex: only note"], f"{globex} sees its 1 note only")
    expect_sqlstate("42501", f"{acme} inserting a row with {globex}'s tenant_id",
                    lambda: _insert_for(backend, acme, globex_id))

    section("2. fail closed: the pooled connection, after the request")
    with backend.connection() as conn:
        same = conn.execute("SELECT pg_backend_pid()").fetchone()[0] == pid
        check(same, "the pool hands out the same server connection again")
        check(conn.execute("SELECT tenant.current_tenant()").fetchone()[0] is None,
              "no tenant context left on it")
        check(conn.execute("SELECT count(*) FROM public.notes").fetchone()[0] == 0,
              "without a context, no rows")
        expect_sqlstate("MT001", "a write without a context",
                        lambda: conn.execute("INSERT INTO public.notes (body) VALUES ('orphan')"))

    section("3. verified identity: the API role presents a JWT (tenant.authenticate)")
    with api_request(api, mint(acme, "alice")) as conn:
        row = conn.execute("SELECT tenant.current_tenant(), tenant.current_user_id()").fetchone()
        check(row == (acme_id, "alice"), f"a token for alice@{acme} enters {acme} as alice")
        check(len(note_bodies(conn)) == 2, f"... and reads {acme}'s 2 notes")
    with api.connection() as conn:
        check(conn.execute("SELECT count(*) FROM public.notes").fetchone()[0] == 0,
              "the API role without a token sees no rows")
        expect_sqlstate(("42501", "MT020"), "the API role calling set_context()",
                        lambda: conn.execute("SELECT tenant.set_context(%s)", (acme,)))
    for what, token, code in [
        ("a token signed with another secret", mint(acme, "alice", secret="x" * 40), "MT004"),
        ("an expired token", mint(acme, "alice", ttl=-3600), "MT004"),
        (f"a token for mallory, not a member of {acme}", mint(acme, "mallory"), "MT005"),
    ]:
        expect_sqlstate(code, what, lambda: _authenticate(api, token))

    section("4. quotas: plan 'starter' allows 3 api_requests per day")
    remaining = []
    for _ in range(3):
        with request(backend, acme) as conn:
            remaining.append(conn.execute("SELECT tenant.consume('api_requests')").fetchone()[0])
    check(remaining == [2, 1, 0], f"consume() returns the remaining allowance: {remaining}")
    err = expect_sqlstate("MT010", "a 4th consume()", lambda: _consume(backend, acme))
    print(f"      detail: {err.diag.message_detail}")
    with request(backend, acme) as conn:
        check(conn.execute("SELECT tenant.check('api_requests')").fetchone()[0] is False,
              "check() now says it would not fit")
        used = conn.execute("SELECT window_used, limit_value FROM tenant.usage_report() "
                            "WHERE resource = 'api_requests'").fetchone()
        check(used == (3, 3), f"usage_report(): used {used[0]} of {used[1]}")
        check(conn.execute("SELECT tenant.has_feature('exports')").fetchone()[0] is True,
              "has_feature('exports') from the plan")
    with request(backend, globex) as conn:
        left = conn.execute("SELECT tenant.consume('api_requests')").fetchone()[0]
        check(left == 2, f"{globex} has its own counter (remaining {left})")

    section("5. permissions: tenant.can() / tenant.authorize()")
    with request(backend, acme, "vera") as conn:  # vera is a viewer
        can = lambda r, a, ctx={}: conn.execute(  # noqa: E731
            "SELECT tenant.can(%s, %s, %s)", (r, a, Jsonb(ctx))).fetchone()[0]
        check(can("notes", "read") is True, "viewer vera can read notes")
        check(can("notes", "delete") is False, "viewer vera cannot delete notes")
    err = expect_sqlstate("MT020", "authorize('notes', 'delete') as vera",
                          lambda: _authorize(backend, acme, "vera", "notes", "delete"))
    print(f"      detail: {err.diag.message_detail}")
    with request(backend, acme, "alice") as conn:  # alice is a member
        own = conn.execute("SELECT tenant.can('notes', 'update', %s)",
                           (Jsonb({"owner_id": "alice"}),)).fetchone()[0]
        other = conn.execute("SELECT tenant.can('notes', 'update', %s)",
                             (Jsonb({"owner_id": "bob"}),)).fetchone()[0]
        check(own is True and other is False, "member alice may update her own notes only")
    with api_request(api, mint(acme, "vera", roles=["admin"])) as conn:
        ok = conn.execute("SELECT tenant.authorize('notes', 'delete')").fetchone()[0]
        check(ok is True, "vera with the JWT roles claim ['admin'] may delete")

    section("linter: tenant.check_isolation()")
    with backend.connection() as conn:
        bad = conn.execute("SELECT severity, kind, object FROM tenant.check_isolation() "
                           "WHERE severity IN ('critical', 'high')").fetchall()
        check(bad == [], "no critical or high finding")


def _insert_for(pool, tenant, other_tenant_id):
    with request(pool, tenant) as conn:
        conn.execute("INSERT INTO public.notes (tenant_id, body) VALUES (%s, 'sneaky')",
                     (other_tenant_id,))


def _authenticate(pool, token):
    with api_request(pool, token):
        pass


def _consume(pool, tenant):
    with request(pool, tenant) as conn:
        conn.execute("SELECT tenant.consume('api_requests')")


def _authorize(pool, tenant, user, resource, action):
    with request(pool, tenant, user) as conn:
        conn.execute("SELECT tenant.authorize(%s, %s)", (resource, action))


def main():
    try:
        run()
    except Failure as e:
        print(f"FAILED: {e}", file=sys.stderr)
        print(f"demo.py: {PASSED} passed, 1 failed")
        return 1
    except psycopg.Error as e:
        print(f"FAILED: unexpected SQLSTATE {e.sqlstate}: {e}", file=sys.stderr)
        print(f"demo.py: {PASSED} passed, 1 failed")
        return 1
    print(f"demo.py: {PASSED} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
