//! The pgrx boundary: the one place an [`MtError`] becomes a Postgres ERROR.
//!
//! pgrx's `ereport!` only knows the SQLSTATEs of `PgSqlErrorCode`, and maps any other code
//! to `XX000`. Applications must be able to catch our errors by code (`MT001` ...), so
//! `raise` calls Postgres' `errstart`/`errcode`/`errfinish` itself. Its one caller is
//! [`boundary`], the whole body of every `#[pg_extern]`/`#[pg_trigger]`: it raises after the
//! function's work has returned and every Rust value it made has been dropped, so the
//! `longjmp` inside `errfinish` skips no pending destructor. Nothing else raises.

use crate::core::error::{Code, MtError, MtResult};

trait Raise {
    fn raise(self) -> !;
}

mod ereport {
    use super::MtError;
    use pgrx::pg_sys;
    use std::ffi::c_char;

    // SAFETY: Postgres' error API with its C signatures, declared here because pgrx keeps it
    // private (see `raise`).
    unsafe extern "C-unwind" {
        fn errstart(elevel: i32, domain: *const c_char) -> bool;
        fn errcode(sqlerrcode: i32) -> i32;
        fn errmsg(fmt: *const c_char, ...) -> i32;
        fn errdetail(fmt: *const c_char, ...) -> i32;
        fn errhint(fmt: *const c_char, ...) -> i32;
        fn errfinish(filename: *const c_char, lineno: i32, funcname: *const c_char);
    }

    /// Copy a Rust string into the current memory context (freed by the error cleanup).
    fn pstr(s: &str) -> *mut c_char {
        let clean = s.replace('\0', "");
        // SAFETY: palloc returns len + 1 writable bytes (or raises); we copy `clean` (no NUL
        // inside) and terminate it
        unsafe {
            let p = pg_sys::palloc(clean.len() + 1) as *mut c_char;
            std::ptr::copy_nonoverlapping(clean.as_ptr() as *const c_char, p, clean.len());
            *p.add(clean.len()) = 0;
            p
        }
    }

    impl super::Raise for MtError {
        /// Raise this error as a Postgres ERROR with its own SQLSTATE. Never returns.
        #[track_caller]
        fn raise(self) -> ! {
            let at = std::panic::Location::caller();
            let file = pstr(at.file());
            let line = at.line() as i32;
            let code = self.code.packed();
            let msg = pstr(&self.message);
            let detail = self.detail.as_deref().map(pstr);
            let hint = self.hint.as_deref().map(pstr);
            drop(self);
            const PCT_S: &std::ffi::CStr = c"%s";
            // SAFETY: pgrx cannot raise a SQLSTATE outside its own list (it maps MTxxx to
            // XX000), so this is Postgres' ereport() spelled out, like pgrx's do_ereport: only
            // `boundary` calls it, after the body returned and every Rust value it made was
            // dropped (`self` was consumed above; the strings are palloc'd and freed by the
            // error cleanup). "%s" keeps user text out of the format string.
            unsafe {
                if errstart(pg_sys::PGERROR as i32, std::ptr::null()) {
                    errcode(code);
                    errmsg(PCT_S.as_ptr(), msg);
                    if let Some(d) = detail {
                        errdetail(PCT_S.as_ptr(), d);
                    }
                    if let Some(h) = hint {
                        errhint(PCT_S.as_ptr(), h);
                    }
                    errfinish(file, line, c"multitenant".as_ptr());
                }
            }
            unreachable!("errfinish(ERROR) returned")
        }
    }
}

/// The pgrx boundary: every `#[pg_extern]`/`#[pg_trigger]` body is `boundary(|| ...)` and
/// nothing else. The closure does all the work and returns; by the time an error is raised
/// every value it created has been dropped, and what remains above this frame is pgrx's
/// argument conversion (borrowed datums, no destructors). This is the only caller of
/// [`MtError::raise`].
#[track_caller]
#[inline]
pub fn boundary<T>(body: impl FnOnce() -> MtResult<T>) -> T {
    let result = body();
    match result {
        Ok(v) => v,
        Err(e) => Raise::raise(e),
    }
}

/// A required argument of a function that also has optional ones (and so is not STRICT):
/// NULL is MT030, not a pgrx panic.
pub fn required<T>(name: &str, v: Option<T>) -> MtResult<T> {
    v.ok_or_else(|| MtError::invalid(format!("{name} must not be NULL")))
}

/// SPI errors inside our functions are internal failures; keep their text.
impl From<pgrx::spi::Error> for MtError {
    fn from(e: pgrx::spi::Error) -> Self {
        MtError::new(Code::InvalidArgument, format!("internal query failed: {e}"))
    }
}
