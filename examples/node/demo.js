#!/usr/bin/env node
// multitenant from a Node backend: node-postgres (pg) and its Pool.
//
// What it shows, and checks (it exits 1 on the first unexpected result):
//   1. per-request tenant context, set by a trusted backend role (a member of tenant_service)
//      inside the request's transaction, so that a pooled connection never carries one
//      request's tenant into the next;
//   2. fail closed: without a context an isolated table shows no rows and a write raises MT001;
//   3. verified identity: an untrusted API role (a member of tenant_user) enters a tenant only
//      with a JWT that tenant.authenticate() verifies (HS256, minted here with jsonwebtoken);
//   4. quotas: tenant.load_plan + tenant.set_plan, then consume() until MT010;
//   5. permissions: tenant.can() and tenant.authorize() (MT020).
//
// Connection: the libpq environment variables that pg reads (PGHOST, PGPORT, PGDATABASE). The
// one-time setup connects as PGUSER, a superuser (default postgres); the application connects
// as the roles the setup creates. scripts/examples.sh runs it against a fresh database. It can
// run again against the same database: each run creates its own two tenants.
//
// Queries pass parameters but never a `name`: no named prepared statements, so the same code
// works behind PgBouncer in transaction mode.
'use strict';

const crypto = require('node:crypto');
const jwt = require('jsonwebtoken');
const { Client, Pool } = require('pg');

const OWNER = 'mt_example_owner'; // owns the application table; NOLOGIN, used by the setup only
const BACKEND = 'mt_example_backend'; // the trusted backend: member of tenant_service
const API = 'mt_example_api'; // an untrusted SQL client: member of tenant_user, needs a JWT
const JWT_KID = 'example-node';
// An HS256 secret shared by the database (tenant.add_jwt_key) and the token issuer. In real
// life it comes from a secret store, at least 32 random bytes.
const JWT_SECRET = 'examples-only-hs256-secret-do-not-use-in-production';

// Plan documents are shaped like the usual YAML plan files (docs/reference.md, "Plans,
// features and quotas"): a limit key ending in _per_day names the resource and its window.
const STARTER_PLAN = {
  name: 'starter',
  price: 9,
  currency: 'USD',
  billing_cycle: 'month',
  limits: { api_requests_per_day: 3 },
  features: ['exports'],
};

let passed = 0;

class Failure extends Error {}

function check(condition, what) {
  if (!condition) throw new Failure(what);
  passed += 1;
  console.log(`  ok  ${what}`);
}

// Run fn (async); it must fail with one of the SQLSTATEs in codes. Returns the error.
async function expectSqlstate(codes, what, fn) {
  codes = Array.isArray(codes) ? codes : [codes];
  try {
    await fn();
  } catch (e) {
    if (e instanceof Failure) throw e;
    if (!codes.includes(e.code)) {
      throw new Failure(`${what}: expected SQLSTATE ${codes.join('/')}, got ${e.code}: ${e.message}`);
    }
    check(true, `${what} -> ${e.code}: ${e.message}`);
    return e;
  }
  throw new Failure(`${what}: expected SQLSTATE ${codes.join('/')}, but it succeeded`);
}

function section(title) {
  console.log(`== ${title}`);
}

// --- one-time setup, as a superuser (a migration, in a real application) ----------------------

const SETUP_SQL = `
CREATE EXTENSION IF NOT EXISTS multitenant;
DO $$
BEGIN
    -- roles are cluster-wide: create them once
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${OWNER}') THEN
        CREATE ROLE ${OWNER} NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${BACKEND}') THEN
        CREATE ROLE ${BACKEND} LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${API}') THEN
        CREATE ROLE ${API} LOGIN;
    END IF;
END $$;
GRANT tenant_service TO ${BACKEND};
GRANT tenant_user TO ${API};
-- PostgreSQL 15: only the database owner may create in schema public by default
GRANT CREATE ON SCHEMA public TO ${OWNER};
SET ROLE ${OWNER};
CREATE TABLE IF NOT EXISTS public.notes (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  uuid NOT NULL,
    author     text,
    body       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
SELECT tenant.isolate('public.notes');  -- idempotent
GRANT SELECT, INSERT, UPDATE, DELETE ON public.notes TO ${BACKEND}, ${API};
RESET ROLE;
`;

async function setup() {
  const admin = new Client({
    user: process.env.PGUSER || 'postgres',
    application_name: 'multitenant-example-setup',
  });
  await admin.connect();
  try {
    await admin.query(SETUP_SQL); // no parameters: a simple query, several statements
    // JWT verification key (tenant_admin, here the superuser); kids are unique
    const key = await admin.query('SELECT 1 FROM tenant.jwt_keys WHERE kid = $1', [JWT_KID]);
    if (key.rowCount === 0) {
      await admin.query("SELECT tenant.add_jwt_key($1, 'HS256', $2)", [JWT_KID, JWT_SECRET]);
    }
    // creates or replaces the plan (tenant_admin)
    const r = await admin.query('SELECT tenant.load_plan($1::jsonb) AS name', [JSON.stringify(STARTER_PLAN)]);
    check(r.rows[0].name === 'starter', "tenant.load_plan() returned the plan's name");
  } finally {
    await admin.end();
  }
}

// --- the application ---------------------------------------------------------------------------

// One transaction on a pooled connection: COMMIT when fn resolves, ROLLBACK when it throws,
// always before the connection goes back to the pool.
async function transaction(pool, fn) {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    let result;
    try {
      result = await fn(client);
    } catch (e) {
      await client.query('ROLLBACK');
      throw e;
    }
    await client.query('COMMIT');
    return result;
  } finally {
    client.release();
  }
}

// One request handled by the trusted backend: the tenant context is local to its transaction.
function request(pool, tenant, user, fn) {
  return transaction(pool, async (client) => {
    await client.query('SELECT tenant.set_context($1, $2)', [tenant, user]);
    return fn(client);
  });
}

// One request of the untrusted API role: it may only present a token.
function apiRequest(pool, token, fn) {
  return transaction(pool, async (client) => {
    await client.query('SELECT tenant.authenticate($1)', [token]);
    return fn(client);
  });
}

function mint(tenant, sub, { roles = [], ttl = 300, secret = JWT_SECRET } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const claims = { tenant_id: tenant, sub, roles, iat: now, exp: now + ttl };
  return jwt.sign(claims, secret, { algorithm: 'HS256', keyid: JWT_KID });
}

async function one(client, sql, params) {
  const r = await client.query(sql, params);
  return r.rows[0] ? Object.values(r.rows[0])[0] : undefined;
}

function addNote(pool, tenant, user, body) {
  return request(pool, tenant, user, async (c) => {
    const r = await c.query(
      'INSERT INTO public.notes (author, body) VALUES ($1, $2) RETURNING id, tenant_id', [user, body]);
    return r.rows[0];
  });
}

async function noteBodies(client) {
  const r = await client.query('SELECT body FROM public.notes ORDER BY id');
  return r.rows.map((row) => row.body);
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

async function runApp(backend, api) {
  const runId = crypto.randomBytes(3).toString('hex');
  const acme = `acme-${runId}`;
  const globex = `globex-${runId}`;

  section(`backend: create tenants ${acme} and ${globex}, plan, members`);
  let acmeId, globexId;
  {
    const c = await backend.connect();
    try {
      acmeId = await one(c, "SELECT tenant.create($1, 'Acme Corp')", [acme]);
      globexId = await one(c, "SELECT tenant.create($1, 'Globex')", [globex]);
      for (const t of [acme, globex]) await c.query("SELECT tenant.set_plan($1, 'starter')", [t]);
      // once a tenant has members, a JWT's user must be one of them
      await c.query("SELECT tenant.add_member($1, 'alice', ARRAY['member'])", [acme]);
      await c.query("SELECT tenant.add_member($1, 'vera', ARRAY['viewer'])", [acme]);
    } finally {
      c.release();
    }
  }
  check(acmeId && acmeId !== globexId, 'two tenants with their own ids');

  section('1. per-request context (tenant.set_context), transaction-local');
  const first = await addNote(backend, acme, 'alice', 'acme: first note');
  check(first.tenant_id === acmeId, 'tenant_id of a new row comes from the context');
  await addNote(backend, acme, 'alice', 'acme: second note');
  const globexNote = await addNote(backend, globex, 'bob', 'globex: only note');
  const pid = await request(backend, acme, null, async (c) => {
    check(same(await noteBodies(c), ['acme: first note', 'acme: second note']), `${acme} sees its 2 notes only`);
    const u = await c.query("UPDATE public.notes SET body = 'hacked' WHERE id = $1", [globexNote.id]);
    check(u.rowCount === 0, `${acme} updating ${globex}'s note by its id changes 0 rows`);
    return one(c, 'SELECT pg_backend_pid()');
  });
  await request(backend, globex, null, async (c) => {
    check(same(await noteBodies(c), ['globex: only note']), `${globex} sees its 1 note only`);
  });
  await expectSqlstate('42501', `${acme} inserting a row with ${globex}'s tenant_id`, () =>
    request(backend, acme, null, (c) =>
      c.query("INSERT INTO public.notes (tenant_id, body) VALUES ($1, 'sneaky')", [globexId])));

  section('2. fail closed: the pooled connection, after the request');
  {
    const c = await backend.connect();
    try {
      check((await one(c, 'SELECT pg_backend_pid()')) === pid, 'the pool hands out the same server connection again');
      check((await one(c, 'SELECT tenant.current_tenant()')) === null, 'no tenant context left on it');
      check(Number(await one(c, 'SELECT count(*) FROM public.notes')) === 0, 'without a context, no rows');
      await expectSqlstate('MT001', 'a write without a context', () =>
        c.query("INSERT INTO public.notes (body) VALUES ('orphan')"));
    } finally {
      c.release();
    }
  }

  section('3. verified identity: the API role presents a JWT (tenant.authenticate)');
  await apiRequest(api, mint(acme, 'alice'), async (c) => {
    const r = await c.query('SELECT tenant.current_tenant() AS t, tenant.current_user_id() AS u');
    check(r.rows[0].t === acmeId && r.rows[0].u === 'alice', `a token for alice@${acme} enters ${acme} as alice`);
    check((await noteBodies(c)).length === 2, `... and reads ${acme}'s 2 notes`);
  });
  {
    const c = await api.connect();
    try {
      check(Number(await one(c, 'SELECT count(*) FROM public.notes')) === 0, 'the API role without a token sees no rows');
      await expectSqlstate(['42501', 'MT020'], 'the API role calling set_context()', () =>
        c.query('SELECT tenant.set_context($1)', [acme]));
    } finally {
      c.release();
    }
  }
  const cases = [
    ['a token signed with another secret', mint(acme, 'alice', { secret: 'x'.repeat(40) }), 'MT004'],
    ['an expired token', mint(acme, 'alice', { ttl: -3600 }), 'MT004'],
    [`a token for mallory, not a member of ${acme}`, mint(acme, 'mallory'), 'MT005'],
  ];
  for (const [what, token, code] of cases) {
    await expectSqlstate(code, what, () => apiRequest(api, token, async () => {}));
  }

  section("4. quotas: plan 'starter' allows 3 api_requests per day");
  const remaining = [];
  for (let i = 0; i < 3; i++) {
    remaining.push(await request(backend, acme, null, (c) => one(c, "SELECT tenant.consume('api_requests')")));
  }
  // bigint arrives as a string in node-postgres
  check(same(remaining.map(Number), [2, 1, 0]), `consume() returns the remaining allowance: ${remaining.join(', ')}`);
  const over = await expectSqlstate('MT010', 'a 4th consume()', () =>
    request(backend, acme, null, (c) => c.query("SELECT tenant.consume('api_requests')")));
  console.log(`      detail: ${over.detail}`);
  await request(backend, acme, null, async (c) => {
    check((await one(c, "SELECT tenant.check('api_requests')")) === false, 'check() now says it would not fit');
    const u = (await c.query(
      "SELECT window_used, limit_value FROM tenant.usage_report() WHERE resource = 'api_requests'")).rows[0];
    check(Number(u.window_used) === 3 && Number(u.limit_value) === 3,
      `usage_report(): used ${u.window_used} of ${u.limit_value}`);
    check((await one(c, "SELECT tenant.has_feature('exports')")) === true, "has_feature('exports') from the plan");
  });
  const left = await request(backend, globex, null, (c) => one(c, "SELECT tenant.consume('api_requests')"));
  check(Number(left) === 2, `${globex} has its own counter (remaining ${left})`);

  section('5. permissions: tenant.can() / tenant.authorize()');
  const can = (c, resource, action, ctx = {}) =>
    one(c, 'SELECT tenant.can($1, $2, $3::jsonb)', [resource, action, JSON.stringify(ctx)]);
  await request(backend, acme, 'vera', async (c) => { // vera is a viewer
    check((await can(c, 'notes', 'read')) === true, 'viewer vera can read notes');
    check((await can(c, 'notes', 'delete')) === false, 'viewer vera cannot delete notes');
  });
  const denied = await expectSqlstate('MT020', "authorize('notes', 'delete') as vera", () =>
    request(backend, acme, 'vera', (c) => c.query("SELECT tenant.authorize('notes', 'delete')")));
  console.log(`      detail: ${denied.detail}`);
  await request(backend, acme, 'alice', async (c) => { // alice is a member
    const own = await can(c, 'notes', 'update', { owner_id: 'alice' });
    const other = await can(c, 'notes', 'update', { owner_id: 'bob' });
    check(own === true && other === false, 'member alice may update her own notes only');
  });
  await apiRequest(api, mint(acme, 'vera', { roles: ['admin'] }), async (c) => {
    check((await one(c, "SELECT tenant.authorize('notes', 'delete')")) === true,
      "vera with the JWT roles claim ['admin'] may delete");
  });

  section('linter: tenant.check_isolation()');
  {
    const c = await backend.connect();
    try {
      const bad = await c.query("SELECT severity, kind, object FROM tenant.check_isolation() " +
        "WHERE severity IN ('critical', 'high')");
      check(bad.rowCount === 0, 'no critical or high finding');
    } finally {
      c.release();
    }
  }
}

async function main() {
  section('setup as superuser: extension, roles, isolated table, JWT key, plan');
  await setup();
  // max: 1: every request reuses the same connection, which shows that no tenant context
  // survives a request. A real application uses more.
  const backend = new Pool({ user: BACKEND, application_name: 'example-backend', max: 1 });
  const api = new Pool({ user: API, application_name: 'example-api', max: 1 });
  for (const pool of [backend, api]) pool.on('error', (e) => console.error(`idle client error: ${e.message}`));
  try {
    await runApp(backend, api);
  } finally {
    await Promise.all([backend.end(), api.end()]);
  }
}

main().then(
  () => {
    console.log(`demo.js: ${passed} passed, 0 failed`);
  },
  (e) => {
    if (e instanceof Failure) console.error(`FAILED: ${e.message}`);
    else console.error(`FAILED: unexpected error ${e.code || ''}: ${e.stack || e}`);
    console.log(`demo.js: ${passed} passed, 1 failed`);
    process.exitCode = 1;
  },
);
