//! The tenant context of this backend: the signed token in `multitenant.context`, verified
//! once per distinct value (and again when the tenant's status or the secret changes), with
//! what minting and storing a token needs.

use crate::core::error::{Code, MtError, MtResult};
use crate::core::lifecycle::{access_for, Access, Status};
use crate::core::token::{self, Claims, TokenError};
use crate::gucs::{
    SuspendedAccess, CONTEXT, CONTEXT_TTL, GUC_NAME, POSTGREST_CLAIMS, SUSPENDED_ACCESS,
};
use crate::pg::convert::now_unix;
use crate::pg::invalidation::{generation, Kind};
use crate::pg::owner::as_role_restricted;
use crate::state::secret::with_secret;
use crate::state::tenants::{self, TenantRow};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::ffi::{CStr, CString};

/// The last verified token of this backend and its claims, with `ro` set from the tenant's
/// status at verification time. Dropped whenever `tenant.tenants` changes (relcache callback),
/// so a suspension or deletion is seen by every backend at its next statement.
struct Verified {
    raw: Vec<u8>,
    claims: Claims,
    /// `multitenant.suspended_access` the status was judged under
    suspended_read: bool,
    /// generation of tenants and secret it was verified at
    generation: u64,
}

/// What a verified context depends on: the tenant's status and the secret.
const DEPENDS: &[Kind] = &[Kind::Tenants, Kind::Secret];

/// A `request.jwt.claims` value and what it resolved to.
type PostgrestCache = Option<(Vec<u8>, Result<Claims, TokenError>, u64)>;

thread_local! {
    static VERIFIED: RefCell<Option<Verified>> = const { RefCell::new(None) };
    /// the last `request.jwt.claims` value seen and what it resolved to
    static PGRST: RefCell<PostgrestCache> = const { RefCell::new(None) };
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
    let generation = generation(DEPENDS);
    let hit = PGRST.with(|c| match &*c.borrow() {
        Some((r, res, g)) if r == raw && *g == generation => Some(res.clone()),
        _ => None,
    });
    let res = match hit {
        Some(res) => res,
        None => {
            let res = resolve_postgrest(raw);
            PGRST.with(|c| *c.borrow_mut() = Some((raw.to_vec(), res.clone(), generation)));
            res
        }
    };
    res.map(|c| f(&c))
}

fn resolve_postgrest(raw: &[u8]) -> Result<Claims, TokenError> {
    let payload: serde_json::Value =
        serde_json::from_slice(raw).map_err(|_| TokenError::Malformed)?;
    let names = crate::gucs::Names::current();
    let tenant = crate::core::jwt::claim_at(&payload, &names.tenant)
        .and_then(crate::core::jwt::as_id)
        .ok_or(TokenError::Malformed)?;
    let user = crate::core::jwt::claim_at(&payload, &names.user).and_then(crate::core::jwt::as_id);
    let row = tenants::lookup(&tenant).map_err(|_| TokenError::Refused)?;
    let exp = payload.get("exp").and_then(|e| e.as_i64());
    let mut claims = mint_claims(&row, user, exp).map_err(|_| TokenError::Refused)?;
    if claims.exp <= now_unix() {
        return Err(TokenError::Expired);
    }
    claims.r = match crate::core::jwt::claim_at(&payload, &names.roles) {
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

thread_local! {
    /// The system context token `as_tenant_owner` has set in this backend, while it is set
    static OWN_SYSTEM_TOKEN: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

thread_local! {
    /// The tenant the extension itself works in while `as_tenant` runs (import and purge
    /// write a tenant's rows as each table's owner): never a GUC, so nothing can carry it
    /// out of that call.
    static SYSTEM: RefCell<Option<Claims>> = const { RefCell::new(None) };
}

/// Run `f` in `tenant`'s context, whatever the tenant's status and the GUC hold (the
/// extension's own bulk writes). Restored on return and on unwinding.
pub fn as_tenant<R>(tenant: uuid::Uuid, f: impl FnOnce() -> MtResult<R>) -> MtResult<R> {
    struct Restore(Option<Claims>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            SYSTEM.with(|s| *s.borrow_mut() = prev);
        }
    }
    let claims = Claims {
        t: tenant,
        u: None,
        iat: 0,
        exp: i64::MAX,
        // never signed nor verified: the system context of as_tenant lives in this backend only
        k: uuid::Uuid::nil(),
        ro: false,
        r: vec![],
        c: None,
        ip: None,
        o: None,
        p: false,
        l: None,
        g: None,
    };
    // plans routed by another tenant's context must not run in this one (api/router.rs)
    crate::gucs::forget_routes_unless(tenant);
    let _restore = Restore(SYSTEM.with(|s| s.borrow_mut().replace(claims)));
    f()
}

/// Does the extension act for the whole tenant right now: `as_tenant` (export, import,
/// purge, schema migrations on one node) or the signed system context of a Citus export,
/// import or purge? `can()` lets such a context through `protect`'s checks: they narrow a
/// caller to its permissions, and these act for no caller.
pub fn acting_for_tenant() -> bool {
    SYSTEM.with(|s| s.borrow().is_some()) || verified(Claims::is_system).unwrap_or(false)
}

/// The tenant of the verified token in `multitenant.context`: not `as_tenant`'s context nor
/// PostgREST's claims, only a value whose every change the setting's assign hook sees (the
/// planner may put this id into plans a cache keeps: api/router.rs).
pub fn token_tenant() -> Option<uuid::Uuid> {
    if SYSTEM.with(|s| s.borrow().is_some()) || raw_context().is_empty() {
        return None;
    }
    verified(|c| c.t).ok()
}

/// Verify the current context, reusing the cached result when the GUC holds the same value.
pub fn verified<R>(f: impl FnOnce(&Claims) -> R) -> Result<R, TokenError> {
    if let Some(c) = SYSTEM.with(|s| s.borrow().clone()) {
        return Ok(f(&c));
    }
    let raw = raw_context();
    if raw.is_empty() {
        if POSTGREST_CLAIMS.get() {
            return postgrest_claims(f);
        }
        return Err(TokenError::Empty);
    }
    let now = now_unix();
    let suspended_read = SUSPENDED_ACCESS.get() == SuspendedAccess::Read;
    let generation = generation(DEPENDS);
    let hit = VERIFIED.with(|v| match &*v.borrow() {
        Some(c)
            if c.raw == raw && c.suspended_read == suspended_read && c.generation == generation =>
        {
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
            let mut claims = with_secret(|secret| token::verify(&secret.key, text, now, secret.id))
                .map_err(|_| TokenError::BadSignature)??;
            // the signature proves who minted it; the tenant's status now decides what it may do
            let row = tenants::lookup(&claims.t.to_string()).map_err(|_| TokenError::Inactive)?;
            claims.ro = match access_for(row.status, suspended_read) {
                // the extension's own export, import or purge of a tenant (`as_tenant_owner`)
                _ if claims.o.is_some() && row.status != Status::Purged => false,
                Access::ReadWrite => false,
                Access::ReadOnly => true,
                Access::None => return Err(TokenError::Inactive),
            };
            VERIFIED.with(|v| {
                *v.borrow_mut() = Some(Verified {
                    raw: raw.to_vec(),
                    claims,
                    suspended_read,
                    generation,
                })
            });
        }
    }
    VERIFIED.with(|v| {
        let v = v.borrow();
        let claims = &v.as_ref().expect("just verified").claims;
        // a system context holds only for the role it was made for, and off the Citus
        // workers only in the backend that set it, while it is set (a copy taken by the
        // owner's code during an export is no context afterwards)
        if let Some(role) = &claims.o {
            // SAFETY: GetUserId only reads the backend's current user id
            let current = crate::pg::owner::role_name(unsafe { pg_sys::GetUserId() });
            if current.as_deref() != Some(role.as_str()) {
                return Err(TokenError::BadSignature);
            }
            let own = OWN_SYSTEM_TOKEN.with(|t| t.borrow().as_deref() == Some(raw));
            if !own && !crate::pg::citus::is_worker() {
                return Err(TokenError::BadSignature);
            }
        }
        Ok(f(claims))
    })
}

/// How long a system context of [`as_tenant_owner`] lives (the statements it covers may be
/// long; it holds only for the table owner's role, which owns those rows anyway).
const SYSTEM_CONTEXT_TTL: i64 = 3600;

/// Run `f` as `owner` (a registered table's owner, in a security-restricted operation)
/// in `tenant`'s system context ([`as_tenant`]). When `relid` is a Citus table the context
/// must also reach the workers, whose shards check it: a token for `tenant` valid only for
/// `owner` is set (transaction-local, propagated) for the duration, and what was there is
/// put back afterwards. `purge`: the deletions of a tenant's purge, which the shards' audit
/// trigger does not log (the purge erases the tenant's chains).
pub fn as_tenant_owner<R>(
    tenant: uuid::Uuid,
    owner: pg_sys::Oid,
    relid: pg_sys::Oid,
    purge: bool,
    f: impl FnOnce() -> MtResult<R>,
) -> MtResult<R> {
    as_tenant(tenant, || {
        if !crate::pg::citus::distributed(relid)? {
            return as_role_restricted(owner, f);
        }
        let role = crate::pg::owner::role_name(owner)
            .ok_or_else(|| MtError::invalid("the table's owner does not exist"))?;
        let now = now_unix();
        let claims = Claims {
            t: tenant,
            u: None,
            iat: now,
            exp: now + SYSTEM_CONTEXT_TTL,
            k: with_secret(|secret| secret.id)?,
            ro: false,
            r: vec![],
            c: None,
            ip: None,
            o: Some(role),
            p: purge,
            l: None,
            g: None,
        };
        let token = with_secret(|secret| token::encode(&secret.key, &claims))?;
        // what was set before goes back (only a token's characters; anything else was no
        // valid context either, and goes back as none)
        let prev = String::from_utf8_lossy(raw_context()).into_owned();
        let prev = if token::is_token_text(&prev) {
            prev
        } else {
            String::new()
        };
        struct Own;
        impl Drop for Own {
            fn drop(&mut self) {
                OWN_SYSTEM_TOKEN.with(|t| *t.borrow_mut() = None);
            }
        }
        OWN_SYSTEM_TOKEN.with(|t| *t.borrow_mut() = Some(token.clone().into_bytes()));
        let _own = Own;
        store_token(&token, true)?;
        let out = as_role_restricted(owner, || {
            crate::pg::citus::coordinate(relid, crate::pg::convert::pg_uuid(tenant))?;
            f()
        });
        if out.is_ok() {
            store_token(&prev, true)?;
        }
        out
    })
}

/// Put a freshly minted token into the GUC. Transaction-local unless `local` is false.
/// When Citus is loaded the value is set with a `SET [LOCAL]` statement through SPI, which
/// Citus propagates to worker nodes; otherwise `set_config_option` is called directly.
pub fn store_token(token: &str, local: bool) -> MtResult<()> {
    if !crate::pg::citus::loaded() {
        return set_setting(GUC_NAME, token, local);
    }
    // the token is base64url and dots (minted here): it goes into the statement as it is
    if !token::is_token_text(token) {
        return Err(MtError::invalid(
            "a context token holds only base64url and dots",
        ));
    }
    let lit = token;
    if local {
        // Citus sends SET LOCAL to the workers of this transaction only when told to, and
        // only in what it sees as a multi-statement transaction: outside BEGIN (one
        // statement calling a function of ours) a DO block makes it one
        set_setting(c"citus.propagate_set_commands", "local", true)?;
        let set = format!("SET LOCAL multitenant.context = '{lit}'");
        // SAFETY: reads the transaction state only
        if unsafe { pg_sys::IsTransactionBlock() } {
            Spi::run(&set)?;
        } else {
            Spi::run(&format!("DO $mt$ BEGIN {set}; END $mt$"))?;
        }
    } else {
        Spi::run(&format!("SET multitenant.context = '{lit}'"))?;
        pgrx::warning!(
            "a session-wide context is not sent to Citus workers: distributed tables show \
             no rows and refuse writes under it; call tenant.set_context with is_local => true \
             inside the transaction"
        );
    }
    Ok(())
}

/// Put `schema` (a tenant's own) first on the search_path, dropping any other tenant's
/// schema from it; with None only drop them. Transaction-local unless `local` is false.
pub fn place_schema(schema: Option<&str>, local: bool) -> MtResult<()> {
    // SAFETY: NUL-terminated name; search_path always exists; the value is copied at once
    let current = unsafe {
        let p = pg_sys::GetConfigOption(c"search_path".as_ptr(), false, false);
        if p.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    match crate::core::site::search_path_for(&current, schema) {
        Some(path) => set_setting(c"search_path", &path, local),
        None => Ok(()),
    }
}

/// Set the user-settable setting `name` to `value`, for the transaction (`local`) or the
/// session, as `SET [LOCAL]` would (without a statement).
fn set_setting(name: &CStr, value: &str, local: bool) -> MtResult<()> {
    let value =
        CString::new(value).map_err(|_| MtError::invalid("a setting's value contains NUL"))?;
    let action = if local {
        pg_sys::GucAction::GUC_ACTION_LOCAL
    } else {
        pg_sys::GucAction::GUC_ACTION_SET
    };
    // SAFETY: NUL-terminated name and value (CStr, CString above); a user-settable setting
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
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
    let now = now_unix();
    let mut exp = now + CONTEXT_TTL.get() as i64;
    if let Some(cap) = ttl_cap {
        exp = exp.min(cap);
    }
    Ok(Claims {
        t: tenant.id,
        u: user,
        iat: now,
        exp,
        k: with_secret(|secret| secret.id)?,
        ro,
        r: vec![],
        c: None,
        ip: None,
        o: None,
        p: false,
        l: crate::state::quota::shard_limits(tenant.id)?,
        g: None,
    })
}

/// Sign `claims` (minted for `tenant` by `mint_claims`), store them in the GUC, put the
/// tenant's own schema (placement 'schema') first on the search_path, and prime this
/// backend's verification cache.
pub fn enter(tenant: &TenantRow, mut claims: Claims, local: bool) -> MtResult<uuid::Uuid> {
    if claims.g.is_none() {
        claims.g = crate::state::rbac::carried(tenant.id, claims.u.as_deref(), &claims.r)?;
    }
    let token = with_secret(|secret| token::encode(&secret.key, &claims))?;
    store_token(&token, local)?;
    let id = claims.t;
    place_schema(tenant.schema.as_deref(), local)?;
    if crate::gucs::TRACK_ACTIVITY.get() {
        track(id, claims.u.as_deref())?;
    }
    let generation = generation(DEPENDS);
    VERIFIED.with(|v| {
        *v.borrow_mut() = Some(Verified {
            raw: token.into_bytes(),
            claims,
            suspended_read: SUSPENDED_ACCESS.get() == SuspendedAccess::Read,
            generation,
        })
    });
    Ok(id)
}

/// May the current role count or log a row of `row_tenant`? Only under that tenant's own
/// context, unless the role bypasses row level security anyway (superusers, BYPASSRLS:
/// trusted by definition). On an isolated table the policies already ensure it.
pub fn writes_for(row_tenant: uuid::Uuid) -> bool {
    verified(|c| c.t).ok() == Some(row_tenant) || crate::pg::roles::bypasses_rls()
}

/// The tenant of a writable context (MT001 without, MT003 read-only or inactive).
pub fn writable_tenant() -> MtResult<uuid::Uuid> {
    match verified(|c| (c.t, c.ro)) {
        Ok((t, false)) => Ok(t),
        Ok((_, true)) => Err(MtError::new(
            Code::TenantNotActive,
            "tenant is read-only (suspended)",
        )),
        Err(TokenError::Inactive) => {
            Err(MtError::new(Code::TenantNotActive, "tenant is not active"))
        }
        Err(_) => Err(MtError::no_context()),
    }
}

/// Record that this backend entered `tenant` (`multitenant.track_activity`), unless the
/// transaction cannot write (read-only, or a standby).
fn track(tenant: uuid::Uuid, user: Option<&str>) -> MtResult<()> {
    // SAFETY: reads of backend-global flags and the backend's start time, set by Postgres
    let (read_only, started) = unsafe {
        (
            pg_sys::XactReadOnly || pg_sys::RecoveryInProgress(),
            pg_sys::MyStartTimestamp,
        )
    };
    if read_only {
        return Ok(());
    }
    // SAFETY: MyProcPid is set once at backend start
    let pid = unsafe { pg_sys::MyProcPid };
    crate::pg::owner::as_owner_fast(|| {
        crate::pg::spi::with_prepared(
            "INSERT INTO tenant.backend_contexts AS b (pid, backend_start, tenant_id, user_id, since) \
             VALUES ($1, $2, $3, $4, pg_catalog.clock_timestamp()) \
             ON CONFLICT (pid) DO UPDATE SET backend_start = EXCLUDED.backend_start, \
               tenant_id = EXCLUDED.tenant_id, user_id = EXCLUDED.user_id, since = EXCLUDED.since",
            &[
                pg_sys::PgBuiltInOids::INT4OID,
                pg_sys::PgBuiltInOids::TIMESTAMPTZOID,
                pg_sys::PgBuiltInOids::UUIDOID,
                pg_sys::PgBuiltInOids::TEXTOID,
            ],
            &[
                pid.into(),
                pgrx::datum::TimestampWithTimeZone::try_from(started).ok().into(),
                crate::pg::convert::pg_uuid(tenant).into(),
                user.into(),
            ],
            |_| Ok(()),
        )
    })
}
