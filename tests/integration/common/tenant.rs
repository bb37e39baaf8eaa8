//! Statements in a tenant's context: set by the trusted backend with `tenant.set_context`
//! inside a transaction, or carried as a minted token the way a pooler does.
//!
//! Two flavours of "BEGIN; SELECT tenant.set_context(..); statements; COMMIT":
//! - `in_tenant_tx` and what is built on it (`in_tenant`, `one_in`, `texts_in`,
//!   `token_for`): a client transaction, extended protocol, parameters; a failing
//!   set_context or COMMIT panics, an error of the statements is returned (rolled back);
//! - `batch_in` and what is built on it (`exec_in`, `err_in`): one simple-protocol batch, in
//!   which set_context is one of the statements whose SQLSTATE is returned.

use super::{count, expect_code, q1, run, short, sq, sqlstate, texts, Db};
use postgres::{Client, Row, Transaction};
use std::fmt;

/// Whose context: a tenant (slug or id) and, optionally, the user id.
#[derive(Clone, Copy, Debug)]
pub struct Ctx<'a> {
    pub tenant: &'a str,
    pub user: Option<&'a str>,
}

impl<'a> From<&'a str> for Ctx<'a> {
    fn from(tenant: &'a str) -> Self {
        Ctx { tenant, user: None }
    }
}

impl<'a> From<&'a String> for Ctx<'a> {
    fn from(tenant: &'a String) -> Self {
        Ctx { tenant, user: None }
    }
}

impl<'a> From<(&'a str, &'a str)> for Ctx<'a> {
    fn from((tenant, user): (&'a str, &'a str)) -> Self {
        Ctx {
            tenant,
            user: Some(user),
        }
    }
}

impl fmt::Display for Ctx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.user {
            None => write!(f, "{}", self.tenant),
            Some(u) => write!(f, "{} as {u}", self.tenant),
        }
    }
}

impl Ctx<'_> {
    /// `SELECT tenant.set_context('tenant'[, 'user'])`, with literals.
    fn set_sql(&self) -> String {
        match self.user {
            None => format!("SELECT tenant.set_context('{}')", sq(self.tenant)),
            Some(u) => format!(
                "SELECT tenant.set_context('{}', '{}')",
                sq(self.tenant),
                sq(u)
            ),
        }
    }
}

/// `f` in a transaction of `c` whose context `ctx` is set first (a failing set_context
/// panics); committed when `f` succeeds (a failing COMMIT panics), rolled back when it fails.
pub fn in_tenant_tx<'a, T>(
    c: &mut Client,
    ctx: impl Into<Ctx<'a>>,
    f: impl FnOnce(&mut Transaction<'_>) -> Result<T, postgres::Error>,
) -> Result<T, postgres::Error> {
    let ctx = ctx.into();
    let mut tx = c.transaction().unwrap();
    match ctx.user {
        None => tx.execute("SELECT tenant.set_context($1)", &[&ctx.tenant]),
        Some(user) => tx.execute("SELECT tenant.set_context($1, $2)", &[&ctx.tenant, &user]),
    }
    .unwrap_or_else(|e| panic!("set_context({ctx}): {e:?}"));
    let out = f(&mut tx)?;
    tx.commit()
        .unwrap_or_else(|e| panic!("commit in {ctx}: {e:?}"));
    Ok(out)
}

/// One statement in `ctx`: its rows, or its SQLSTATE.
pub fn in_tenant<'a>(
    c: &mut Client,
    ctx: impl Into<Ctx<'a>>,
    sql: &str,
) -> Result<Vec<Row>, String> {
    in_tenant_tx(c, ctx, |tx| tx.query(sql, &[])).map_err(|e| sqlstate(&e))
}

/// The one value a statement returns in `ctx`.
#[track_caller]
pub fn one_in<'a, T: for<'b> postgres::types::FromSql<'b>>(
    c: &mut Client,
    ctx: impl Into<Ctx<'a>>,
    sql: &str,
) -> T {
    match in_tenant_tx(c, ctx, |tx| tx.query_one(sql, &[])) {
        Ok(row) => row.get(0),
        Err(e) => panic!("`{}` failed: {e:?}", short(sql)),
    }
}

/// The first column, as text, of a query in `ctx`.
#[track_caller]
pub fn texts_in<'a>(c: &mut Client, ctx: impl Into<Ctx<'a>>, sql: &str) -> Vec<String> {
    match in_tenant(c, ctx, sql) {
        Ok(rows) => super::first_column(&rows),
        Err(code) => panic!("`{}` failed: {code}", short(sql)),
    }
}

/// `BEGIN; SELECT tenant.set_context(..); sql; COMMIT;` as one simple-protocol batch; on
/// error (set_context's included) rolled back, its SQLSTATE.
pub fn batch_in<'a>(c: &mut Client, ctx: impl Into<Ctx<'a>>, sql: &str) -> Result<(), String> {
    let ctx = ctx.into();
    let sql = sql.trim_end().trim_end_matches(';');
    run(c, &format!("BEGIN; {}; {sql}; COMMIT;", ctx.set_sql()))
}

/// `batch_in`, which must succeed.
#[track_caller]
pub fn exec_in<'a>(c: &mut Client, ctx: impl Into<Ctx<'a>>, sql: &str) {
    let ctx = ctx.into();
    if let Err(code) = batch_in(c, ctx, sql) {
        panic!("in {ctx}: SQLSTATE {code} from {}", short(sql));
    }
}

/// `batch_in`, which must fail: its SQLSTATE.
#[track_caller]
pub fn err_in<'a>(c: &mut Client, ctx: impl Into<Ctx<'a>>, sql: &str) -> String {
    let ctx = ctx.into();
    match batch_in(c, ctx, sql) {
        Ok(()) => panic!("expected an error from {} in {ctx}", short(sql)),
        Err(code) => code,
    }
}

/// `BEGIN; SELECT tenant.set_context(..)`: the transaction stays open for the caller.
#[track_caller]
pub fn begin_in<'a>(c: &mut Client, ctx: impl Into<Ctx<'a>>) {
    let ctx = ctx.into();
    if let Err(e) = c.batch_execute(&format!("BEGIN; {}", ctx.set_sql())) {
        panic!("BEGIN in {ctx}: {e:?}");
    }
}

/// A context token of `slug`, minted by the trusted backend.
pub fn token_for(db: &Db, slug: &str) -> String {
    in_tenant_tx(&mut db.as_role("mt_it_backend"), slug, |tx| {
        tx.query_one("SELECT current_setting('multitenant.context')", &[])
    })
    .unwrap()
    .get(0)
}

/// Carry a minted token the way a pooler does: a plain session-level SET.
pub fn set_token(c: &mut Client, token: &str) {
    c.batch_execute(&format!("SET multitenant.context = '{}'", sq(token)))
        .unwrap_or_else(|e| panic!("SET multitenant.context: {e:?}"));
}

/// Set any value (garbage included) through set_config and a parameter.
pub fn set_ctx(c: &mut Client, value: &str) {
    c.execute(
        "SELECT set_config('multitenant.context', $1, false)",
        &[&value],
    )
    .unwrap_or_else(|e| panic!("set_config(multitenant.context): {e:?}"));
}

pub fn with_token(db: &Db, role: &str, token: &str) -> Client {
    let mut c = db.as_role(role);
    set_token(&mut c, token);
    c
}

/// A connection as `role` carrying a token of `slug` minted by the backend.
pub fn as_tenant(db: &Db, role: &str, slug: &str) -> Client {
    let tok = token_for(db, slug);
    with_token(db, role, &tok)
}

/// The first column, as text, of what the application role sees with `slug`'s token carried
/// in its session.
pub fn app_texts(db: &Db, slug: &str, sql: &str) -> Vec<String> {
    texts(&mut as_tenant(db, "mt_it_app", slug), sql)
}

#[track_caller]
pub fn current_tenant(c: &mut Client) -> Option<String> {
    q1(c, "SELECT tenant.current_tenant()::text")
}

/// No context: NULL tenant, no rows, a write raises MT001 (the role needs the app grants).
#[track_caller]
pub fn assert_no_context(c: &mut Client, what: &str) {
    assert_eq!(current_tenant(c), None, "{what}: current_tenant()");
    assert_eq!(count(c), 0, "{what}: rows of public.notes");
    expect_code(
        c,
        "INSERT INTO public.notes (body) VALUES ('forged')",
        "MT001",
        what,
    );
}
