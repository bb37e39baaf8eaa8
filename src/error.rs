//! One error type for the whole extension, each variant mapped to the SQLSTATE of DESIGN.md.
//!
//! pgrx's `ereport!` only knows the SQLSTATEs of `PgSqlErrorCode`, and maps any other code
//! to `XX000`. Applications must be able to catch our errors by code (`MT001` ...), so
//! [`MtError::raise`] calls Postgres' `errstart`/`errcode`/`errfinish` itself. Its one caller
//! is [`boundary`], the whole body of every `#[pg_extern]`/`#[pg_trigger]`: it raises after
//! the function's work has returned and every Rust value it made has been dropped, so the
//! `longjmp` inside `errfinish` skips no pending destructor. Nothing else raises.

use std::fmt;

/// Error codes of class `MT` (see DESIGN.md "Errors").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// MT001 no tenant context
    NoContext,
    /// MT002 tenant not found
    TenantNotFound,
    /// MT003 tenant not active
    TenantNotActive,
    /// MT004 invalid or expired token
    InvalidToken,
    /// MT005 tenant mismatch
    TenantMismatch,
    /// MT010 plan limit exceeded
    LimitExceeded,
    /// MT011 feature not in plan
    FeatureNotInPlan,
    /// MT020 permission denied
    PermissionDenied,
    /// MT030 invalid argument or definition
    InvalidArgument,
    /// MT040 invalid state transition
    InvalidTransition,
    /// MT050 audit chain broken
    AuditChainBroken,
}

impl Code {
    pub const fn sqlstate(self) -> &'static str {
        match self {
            Code::NoContext => "MT001",
            Code::TenantNotFound => "MT002",
            Code::TenantNotActive => "MT003",
            Code::InvalidToken => "MT004",
            Code::TenantMismatch => "MT005",
            Code::LimitExceeded => "MT010",
            Code::FeatureNotInPlan => "MT011",
            Code::PermissionDenied => "MT020",
            Code::InvalidArgument => "MT030",
            Code::InvalidTransition => "MT040",
            Code::AuditChainBroken => "MT050",
        }
    }

    pub fn packed(self) -> i32 {
        pack_sqlstate(self.sqlstate())
    }
}

/// Postgres' packed representation of a SQLSTATE (`MAKE_SQLSTATE`): six bits per character.
pub fn pack_sqlstate(code: &str) -> i32 {
    code.bytes().enumerate().fold(0i32, |acc, (i, b)| {
        acc + (((b.wrapping_sub(b'0') & 0x3F) as i32) << (6 * i))
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MtError {
    pub code: Code,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

pub type MtResult<T> = Result<T, MtError>;

impl MtError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        MtError {
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn no_context() -> Self {
        MtError::new(Code::NoContext, "no tenant context").hint(
            "Call tenant.set_context(...) or tenant.authenticate(...) in this transaction first.",
        )
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        MtError::new(Code::InvalidArgument, message)
    }
    pub fn denied(message: impl Into<String>) -> Self {
        MtError::new(Code::PermissionDenied, message)
    }
    pub fn tenant_not_found(key: &str) -> Self {
        MtError::new(Code::TenantNotFound, format!("tenant \"{key}\" not found"))
            .hint("Pass the tenant's uuid or its slug.")
    }
}

impl fmt::Display for MtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.sqlstate(), self.message)
    }
}

impl std::error::Error for MtError {}

mod raise {
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

    impl MtError {
        /// Raise this error as a Postgres ERROR with its own SQLSTATE. Never returns.
        #[track_caller]
        pub(super) fn raise(self) -> ! {
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
        Err(e) => e.raise(),
    }
}

/// SPI errors inside our functions are internal failures; keep their text.
impl From<pgrx::spi::Error> for MtError {
    fn from(e: pgrx::spi::Error) -> Self {
        MtError::new(Code::InvalidArgument, format!("internal query failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_sqlstate_matches_postgres_macro() {
        use pgrx::pg_sys::errcodes::PgSqlErrorCode as P;
        assert_eq!(
            pack_sqlstate("42501"),
            P::ERRCODE_INSUFFICIENT_PRIVILEGE as i32
        );
        assert_eq!(pack_sqlstate("23505"), P::ERRCODE_UNIQUE_VIOLATION as i32);
        assert_eq!(pack_sqlstate("XX000"), P::ERRCODE_INTERNAL_ERROR as i32);
        let all = [
            Code::NoContext,
            Code::TenantNotFound,
            Code::TenantNotActive,
            Code::InvalidToken,
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.packed(), b.packed());
            }
        }
    }

    #[test]
    fn builder_keeps_detail_and_hint() {
        let e = MtError::invalid("bad").detail("d").hint("h");
        assert_eq!(e.code.sqlstate(), "MT030");
        assert_eq!(e.detail.as_deref(), Some("d"));
        assert_eq!(e.hint.as_deref(), Some("h"));
        assert_eq!(e.to_string(), "MT030: bad");
    }
}
