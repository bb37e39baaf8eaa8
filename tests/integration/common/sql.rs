//! Statements and their outcome: SQLSTATEs, single values, first columns, quoting.

use super::Db;
use postgres::Client;

pub fn sqlstate(e: &postgres::Error) -> String {
    e.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| format!("no sqlstate: {e}"))
}

/// At most 200 characters of a statement, for messages.
pub fn short(sql: &str) -> String {
    let s: String = sql.chars().take(200).collect();
    if sql.chars().count() > 200 {
        format!("{s}…")
    } else {
        s
    }
}

/// Run statements with the simple protocol; on error roll back and return the SQLSTATE
/// (the error itself is printed, for diagnosis).
pub fn run(c: &mut Client, sql: &str) -> Result<(), String> {
    match c.batch_execute(sql) {
        Ok(()) => Ok(()),
        Err(e) => {
            let code = sqlstate(&e);
            eprintln!("[it] {code} from `{}`: {e:?}", short(sql));
            let _ = c.batch_execute("ROLLBACK");
            Err(code)
        }
    }
}

/// Run `sql` (rolled back on error), expecting an error: its SQLSTATE and message.
#[track_caller]
pub fn error_of(c: &mut Client, sql: &str) -> (String, String) {
    match c.batch_execute(sql) {
        Ok(()) => panic!("expected an error from {}", short(sql)),
        Err(e) => {
            let _ = c.batch_execute("ROLLBACK");
            let db = e.as_db_error().expect("a server error");
            (db.code().code().to_string(), db.message().to_string())
        }
    }
}

/// Run `sql` (rolled back on error), expecting an error; returns its SQLSTATE.
#[track_caller]
pub fn err_of(c: &mut Client, sql: &str) -> String {
    match run(c, sql) {
        Ok(()) => panic!("expected an error from: {sql}"),
        Err(code) => code,
    }
}

#[track_caller]
pub fn expect_code(c: &mut Client, sql: &str, code: &str, what: &str) {
    match run(c, sql) {
        Ok(()) => panic!(
            "{what}: expected SQLSTATE {code}, but it succeeded: {}",
            short(sql)
        ),
        Err(got) => assert_eq!(got, code, "{what}: wrong SQLSTATE for {}", short(sql)),
    }
}

#[track_caller]
pub fn expect_one_of(c: &mut Client, sql: &str, codes: &[&str], what: &str) -> String {
    match run(c, sql) {
        Ok(()) => panic!(
            "{what}: expected one of {codes:?}, but it succeeded: {}",
            short(sql)
        ),
        Err(got) => {
            assert!(
                codes.contains(&got.as_str()),
                "{what}: got SQLSTATE {got}, expected one of {codes:?}: {}",
                short(sql)
            );
            got
        }
    }
}

#[track_caller]
pub fn expect_ok(c: &mut Client, sql: &str, what: &str) {
    if let Err(code) = run(c, sql) {
        panic!(
            "{what}: expected success, got SQLSTATE {code}: {}",
            short(sql)
        );
    }
}

/// Success or one of `codes`; returns the code on failure.
#[track_caller]
pub fn ok_or_one_of(c: &mut Client, sql: &str, codes: &[&str], what: &str) -> Option<String> {
    match run(c, sql) {
        Ok(()) => None,
        Err(got) => {
            assert!(
                codes.contains(&got.as_str()),
                "{what}: got SQLSTATE {got}, expected success or one of {codes:?}: {}",
                short(sql)
            );
            Some(got)
        }
    }
}

/// The SQLSTATE of a failed parameterized call (printing the error for diagnosis).
pub fn code_of<T>(r: Result<T, postgres::Error>, what: &str) -> Result<T, String> {
    r.map_err(|e| {
        eprintln!("[it] {what}: {e:?}");
        sqlstate(&e)
    })
}

/// The one value of a one-row, one-column query.
#[track_caller]
pub fn q1<T: for<'a> postgres::types::FromSql<'a>>(c: &mut Client, sql: &str) -> T {
    match c.query_one(sql, &[]) {
        Ok(row) => row.get(0),
        Err(e) => panic!("`{}` failed: {e:?}", short(sql)),
    }
}

#[track_caller]
pub fn one_i64(c: &mut Client, sql: &str) -> i64 {
    q1(c, sql)
}

#[track_caller]
pub fn one_bool(c: &mut Client, sql: &str) -> bool {
    q1(c, sql)
}

/// The first column of every row, as text.
pub fn first_column(rows: &[postgres::Row]) -> Vec<String> {
    rows.iter().map(|r| r.get(0)).collect()
}

#[track_caller]
pub fn texts(c: &mut Client, sql: &str) -> Vec<String> {
    match c.query(sql, &[]) {
        Ok(rows) => first_column(&rows),
        Err(e) => panic!("`{}` failed: {e:?}", short(sql)),
    }
}

/// The bodies of public.notes this connection sees, in order.
#[track_caller]
pub fn bodies(c: &mut Client) -> Vec<String> {
    texts(c, "SELECT body FROM public.notes ORDER BY body")
}

/// The number of rows of public.notes this connection sees.
#[track_caller]
pub fn count(c: &mut Client) -> i64 {
    one_i64(c, "SELECT count(*) FROM public.notes")
}

/// Statements run by `role` on a new connection, which must succeed.
#[track_caller]
pub fn exec_as(db: &Db, role: &str, sql: &str) {
    expect_ok(&mut db.as_role(role), sql, &format!("as {role}"));
}

/// The number `sql` counts as `role` on a new connection.
#[track_caller]
pub fn count_as(db: &Db, role: &str, sql: &str) -> i64 {
    one_i64(&mut db.as_role(role), sql)
}

/// As the superuser (who bypasses RLS): the ground truth.
#[track_caller]
pub fn su_i64(db: &Db, sql: &str) -> i64 {
    one_i64(&mut db.as_role("postgres"), sql)
}

#[track_caller]
pub fn su_text(db: &Db, sql: &str) -> String {
    q1(&mut db.as_role("postgres"), sql)
}

#[track_caller]
pub fn su_exec(db: &Db, sql: &str) {
    exec_as(db, "postgres", sql);
}

/// The text of a string literal (without the quotes).
pub fn sq(s: &str) -> String {
    s.replace('\'', "''")
}

/// A double-quoted identifier (safe under both standard_conforming_strings values).
pub fn qi(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
