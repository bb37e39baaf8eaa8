//! One error type for the whole extension, each variant mapped to the SQLSTATE of DESIGN.md.
//!
//! Pure Rust: the values. Raising them is the pgrx boundary, in pg/raise.rs.

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
    /// MT006 request tenant mismatch: the request's host or header and its token (or each
    /// other) name different tenants
    RequestMismatch,
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
    /// 0A000 feature_not_supported: what Citus cannot carry (docs/citus.md)
    NotSupported,
    /// 08006 connection_failure: a Citus worker the operation needs did not answer
    ConnectionFailure,
}

impl Code {
    pub const fn sqlstate(self) -> &'static str {
        match self {
            Code::NoContext => "MT001",
            Code::TenantNotFound => "MT002",
            Code::TenantNotActive => "MT003",
            Code::InvalidToken => "MT004",
            Code::TenantMismatch => "MT005",
            Code::RequestMismatch => "MT006",
            Code::LimitExceeded => "MT010",
            Code::FeatureNotInPlan => "MT011",
            Code::PermissionDenied => "MT020",
            Code::InvalidArgument => "MT030",
            Code::InvalidTransition => "MT040",
            Code::AuditChainBroken => "MT050",
            Code::NotSupported => "0A000",
            Code::ConnectionFailure => "08006",
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
