//! Tenant context: the signed token in the `multitenant.context` GUC, minted by
//! `set_context`, verified (once per distinct value per backend) by every reader.

use crate::backend::{self, TenantRow};
use crate::error::{boundary, Code, MtError, MtResult};
use crate::lifecycle::{access_for, Access};
use crate::token::{self, Claims, TokenError};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::ffi::{CStr, CString};

pub const GUC_NAME: &CStr = c"multitenant.context";

pub static CONTEXT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static CONTEXT_TTL: GucSetting<i32> = GucSetting::<i32>::new(3600);

#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum SuspendedAccess {
    #[name = c"none"]
    None,
    #[name = c"read"]
    Read,
}
pub static POSTGREST_CLAIMS: GucSetting<bool> = GucSetting::<bool>::new(false);

pub static SUSPENDED_ACCESS: GucSetting<SuspendedAccess> =
    GucSetting::<SuspendedAccess>::new(SuspendedAccess::None);

pub fn register_gucs() {
    GucRegistry::define_string_guc(
        GUC_NAME,
        c"Signed tenant context token (minted by tenant.set_context / tenant.authenticate).",
        c"Any role may set it so that poolers and Citus can carry it; only the extension can mint a value that verifies.",
        &CONTEXT,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"multitenant.context_ttl",
        c"Lifetime in seconds of a context token minted by tenant.set_context.",
        c"",
        &CONTEXT_TTL,
        1,
        7 * 24 * 3600,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_bool_guc(
        c"multitenant.postgrest_claims",
        c"Without a signed context, take the tenant from request.jwt.claims (trusts the proxy that sets it).",
        c"Off by default. Turn on only when every connection comes through PostgREST (or a proxy that verified the JWT), since any SQL client can set request.jwt.claims.",
        &POSTGREST_CLAIMS,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"multitenant.suspended_access",
        c"What a context for a suspended tenant may do: none (refused) or read (reads only).",
        c"",
        &SUSPENDED_ACCESS,
        GucContext::Suset,
        GucFlags::default(),
    );
}

/// The last verified token of this backend and its claims, with `ro` set from the tenant's
/// status at verification time. Dropped whenever `tenant.tenants` changes (relcache callback),
/// so a suspension or deletion is seen by every backend at its next statement.
struct Verified {
    raw: Vec<u8>,
    claims: Claims,
    /// `multitenant.suspended_access` the status was judged under
    suspended_read: bool,
}

/// A `request.jwt.claims` value and what it resolved to.
type PostgrestCache = Option<(Vec<u8>, Result<Claims, TokenError>)>;

thread_local! {
    static VERIFIED: RefCell<Option<Verified>> = const { RefCell::new(None) };
    /// the last `request.jwt.claims` value seen and what it resolved to
    static PGRST: RefCell<PostgrestCache> = const { RefCell::new(None) };
}

pub fn forget_verified() {
    VERIFIED.with(|v| {
        if let Ok(mut v) = v.try_borrow_mut() {
            *v = None;
        }
    });
    PGRST.with(|v| {
        if let Ok(mut v) = v.try_borrow_mut() {
            *v = None;
        }
    });
}

/// PostgREST interop: claims from `request.jwt.claims`, only when the DBA turned
/// `multitenant.postgrest_claims` on. The tenant must exist and allow access.
fn postgrest_claims<R>(f: impl FnOnce(&Claims) -> R) -> Result<R, TokenError> {
    // SAFETY: a NUL-terminated name; missing_ok, so NULL when the setting does not exist
    let p = unsafe { pg_sys::GetConfigOption(c"request.jwt.claims".as_ptr(), true, false) };
    if p.is_null() {
        return Err(TokenError::Empty);
    }
    // SAFETY: non-NULL, NUL-terminated GUC value, read before anything can assign it again
    let raw = unsafe { CStr::from_ptr(p).to_bytes() };
    if raw.is_empty() {
        return Err(TokenError::Empty);
    }
    let hit = PGRST.with(|c| match &*c.borrow() {
        Some((r, res)) if r == raw => Some(res.clone()),
        _ => None,
    });
    let res = match hit {
        Some(res) => res,
        None => {
            let res = resolve_postgrest(raw);
            PGRST.with(|c| *c.borrow_mut() = Some((raw.to_vec(), res.clone())));
            res
        }
    };
    res.map(|c| f(&c))
}

fn resolve_postgrest(raw: &[u8]) -> Result<Claims, TokenError> {
    let payload: serde_json::Value =
        serde_json::from_slice(raw).map_err(|_| TokenError::Malformed)?;
    let names = crate::auth::Names::current();
    let tenant = crate::jwt::claim_at(&payload, &names.tenant)
        .and_then(crate::jwt::as_id)
        .ok_or(TokenError::Malformed)?;
    let user = crate::jwt::claim_at(&payload, &names.user).and_then(crate::jwt::as_id);
    let row = backend::lookup_tenant(&tenant).map_err(|_| TokenError::Refused)?;
    let exp = payload.get("exp").and_then(|e| e.as_i64());
    let mut claims = mint_claims(&row, user, exp).map_err(|_| TokenError::Refused)?;
    if claims.exp <= backend::now_unix() {
        return Err(TokenError::Expired);
    }
    claims.r = match crate::jwt::claim_at(&payload, &names.roles) {
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect(),
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        _ => vec![],
    };
    claims.c = Some(payload);
    Ok(claims)
}

/// The raw GUC value without copying it.
fn raw_context() -> &'static [u8] {
    // SAFETY: the GUC's backing variable, registered in _PG_init; read on the main thread
    let p = unsafe { *CONTEXT.as_ptr() };
    if p.is_null() {
        return b"";
    }
    // SAFETY: a non-NULL GUC string is NUL-terminated and stays allocated until the setting
    // is assigned again; callers compare or copy it before calling anything that could
    unsafe { CStr::from_ptr(p).to_bytes() }
}

/// Verify the current context, reusing the cached result when the GUC holds the same value.
pub fn verified<R>(f: impl FnOnce(&Claims) -> R) -> Result<R, TokenError> {
    let raw = raw_context();
    if raw.is_empty() {
        if POSTGREST_CLAIMS.get() {
            return postgrest_claims(f);
        }
        return Err(TokenError::Empty);
    }
    let now = backend::now_unix();
    let suspended_read = SUSPENDED_ACCESS.get() == SuspendedAccess::Read;
    let hit = VERIFIED.with(|v| match &*v.borrow() {
        Some(c) if c.raw == raw && c.suspended_read == suspended_read => {
            Some(if now < c.claims.exp {
                Ok(())
            } else {
                Err(TokenError::Expired)
            })
        }
        _ => None,
    });
    match hit {
        Some(Ok(())) => {}
        Some(Err(e)) => return Err(e),
        None => {
            let text = std::str::from_utf8(raw).map_err(|_| TokenError::Malformed)?;
            let mut claims = backend::with_secret(|secret| {
                token::verify(secret, text, now, backend::database_oid())
            })
            .map_err(|_| TokenError::BadSignature)??;
            // the signature proves who minted it; the tenant's status now decides what it may do
            let row =
                backend::lookup_tenant(&claims.t.to_string()).map_err(|_| TokenError::Inactive)?;
            claims.ro = match access_for(row.status, suspended_read) {
                Access::ReadWrite => false,
                Access::ReadOnly => true,
                Access::None => return Err(TokenError::Inactive),
            };
            VERIFIED.with(|v| {
                *v.borrow_mut() = Some(Verified {
                    raw: raw.to_vec(),
                    claims,
                    suspended_read,
                })
            });
        }
    }
    Ok(VERIFIED.with(|v| f(&v.borrow().as_ref().expect("just verified").claims)))
}

/// Put a freshly minted token into the GUC. Transaction-local unless `local` is false.
/// When Citus is loaded the value is set with a `SET [LOCAL]` statement through SPI, which
/// Citus propagates to worker nodes; otherwise `set_config_option` is called directly.
fn store_token(token: &str, local: bool) -> MtResult<()> {
    // SAFETY: NUL-terminated name, missing_ok
    let citus = unsafe {
        !pg_sys::GetConfigOption(c"citus.propagate_set_commands".as_ptr(), true, false).is_null()
    };
    if citus {
        let lit = token.replace('\'', "''");
        let scope = if local { "LOCAL " } else { "" };
        Spi::run(&format!("SET {scope}multitenant.context = '{lit}'"))?;
        return Ok(());
    }
    let value = CString::new(token).map_err(|_| MtError::invalid("token contains NUL"))?;
    let action = if local {
        pg_sys::GucAction::GUC_ACTION_LOCAL
    } else {
        pg_sys::GucAction::GUC_ACTION_SET
    };
    // SAFETY: NUL-terminated name and value (CString above); a user-settable GUC
    unsafe {
        pg_sys::set_config_option(
            GUC_NAME.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            action,
            true,
            0,
            false,
        );
    }
    Ok(())
}

/// Claims that a context for `tenant` would carry, or why it is refused.
pub fn mint_claims(
    tenant: &TenantRow,
    user: Option<String>,
    ttl_cap: Option<i64>,
) -> MtResult<Claims> {
    let ro = match access_for(tenant.status, SUSPENDED_ACCESS.get() == SuspendedAccess::Read) {
        Access::ReadWrite => false,
        Access::ReadOnly => true,
        Access::None => {
            return Err(MtError::new(
                Code::TenantNotActive,
                format!("tenant is {}", tenant.status.as_str()),
            )
            .detail(format!("tenant id {}", tenant.id))
            .hint("Only trial and active tenants (and suspended ones when multitenant.suspended_access = read) can be entered."))
        }
    };
    let now = backend::now_unix();
    let mut exp = now + CONTEXT_TTL.get() as i64;
    if let Some(cap) = ttl_cap {
        exp = exp.min(cap);
    }
    Ok(Claims {
        t: tenant.id,
        u: user,
        iat: now,
        exp,
        db: backend::database_oid(),
        ro,
        r: vec![],
        c: None,
    })
}

/// Sign `claims`, store them in the GUC and prime this backend's verification cache.
pub fn enter(claims: Claims, local: bool) -> MtResult<uuid::Uuid> {
    let token = backend::with_secret(|secret| token::encode(secret, &claims))?;
    store_token(&token, local)?;
    let id = claims.t;
    VERIFIED.with(|v| {
        *v.borrow_mut() = Some(Verified {
            raw: token.into_bytes(),
            claims,
            suspended_read: SUSPENDED_ACCESS.get() == SuspendedAccess::Read,
        })
    });
    Ok(id)
}

fn validate_user(user: Option<&str>) -> MtResult<Option<String>> {
    match user {
        None => Ok(None),
        Some(u) if u.is_empty() || u.len() > 256 || u.contains('\0') => {
            Err(MtError::invalid("user_id must be 1-256 characters"))
        }
        Some(u) => Ok(Some(u.to_string())),
    }
}

fn set_context_impl(tenant: &str, user_id: Option<&str>, local: bool) -> MtResult<uuid::Uuid> {
    backend::require_any_role(&[c"tenant_service"], "set the tenant context")?;
    let user = validate_user(user_id)?;
    let row = backend::lookup_tenant(tenant)?;
    let claims = mint_claims(&row, user, None)?;
    enter(claims, local)
}

/// Enter `tenant` (uuid or slug) for the rest of the transaction (or the session when
/// `is_local => false`). Only for members of `tenant_service`.
#[pg_extern(volatile, parallel_unsafe)]
fn set_context(
    tenant: &str,
    user_id: default!(Option<&str>, "NULL"),
    is_local: default!(bool, true),
) -> pgrx::Uuid {
    boundary(|| set_context_impl(tenant, user_id, is_local).map(backend::pg_uuid))
}

/// Leave the tenant context (for the session, not just the transaction).
#[pg_extern(volatile, parallel_unsafe)]
fn clear_context() {
    forget_verified();
    boundary(|| store_token("", false))
}

/// The verified context's tenant id, or NULL when there is no valid context.
#[pg_extern(stable, parallel_restricted)]
fn current_tenant() -> Option<pgrx::Uuid> {
    verified(|c| backend::pg_uuid(c.t)).ok()
}

/// Like `current_tenant()` but raises MT001 without a valid context, and MT003 when the
/// context is read-only. Used in WITH CHECK and column defaults of isolated tables.
#[pg_extern(stable, parallel_restricted)]
fn require_tenant() -> pgrx::Uuid {
    boundary(|| match verified(|c| (c.t, c.ro)) {
        Ok((t, false)) => Ok(backend::pg_uuid(t)),
        Ok((t, true)) => Err(MtError::new(
            Code::TenantNotActive,
            "tenant is read-only (suspended)",
        )
        .detail(format!("tenant id {t}"))
        .hint("Reactivate the tenant with tenant.set_status(..., 'active').")),
        Err(TokenError::Empty) => Err(MtError::no_context()),
        Err(TokenError::Inactive) => {
            Err(MtError::new(Code::TenantNotActive, "tenant is not active")
                .detail(TokenError::Inactive.describe())
                .hint("Reactivate the tenant with tenant.set_status(..., 'active')."))
        }
        Err(e) => Err(MtError::no_context().detail(e.describe())),
    })
}

/// The verified context's user id, or NULL.
#[pg_extern(stable, parallel_restricted)]
fn current_user_id() -> Option<String> {
    verified(|c| c.u.clone()).ok().flatten()
}

/// What the current context is, or why it does not verify (for debugging; reveals nothing
/// that the caller could not already see).
#[pg_extern(stable, parallel_restricted)]
fn context_status() -> pgrx::JsonB {
    let v = match verified(|c| c.clone()) {
        Ok(c) => serde_json::json!({
            "valid": true, "tenant_id": c.t, "user_id": c.u, "issued_at": c.iat,
            "expires_at": c.exp, "read_only": c.ro,
        }),
        Err(e) => serde_json::json!({"valid": false, "reason": e.describe()}),
    };
    pgrx::JsonB(v)
}
