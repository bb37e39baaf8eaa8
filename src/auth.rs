//! Verified identity: `tenant.authenticate(jwt)`, JWT key management, memberships (minimal;
//! roles and permissions build on them) and the claims of the current context.

use crate::backend;
use crate::context::{self, verified};
use crate::error::{boundary, Code, MtError, MtResult};
use crate::jwt::{self, ClaimNames};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};
use pgrx::prelude::*;
use std::ffi::CString;

pub static JWT_LEEWAY: GucSetting<i32> = GucSetting::<i32>::new(30);
pub static JWT_CACHE_SIZE: GucSetting<i32> = GucSetting::<i32>::new(1024);
pub static JWT_TENANT_CLAIM: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"tenant_id"));
pub static JWT_USER_CLAIM: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"sub"));
pub static JWT_ROLES_CLAIM: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"roles"));

#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Membership {
    /// a tenant that has members admits only its active members; one without admits anyone
    #[name = c"auto"]
    Auto,
    /// the token's user must be an active member
    #[name = c"required"]
    Required,
    /// no membership check (the token's tenant claim is trusted as is)
    #[name = c"off"]
    Off,
}
pub static JWT_MEMBERSHIP: GucSetting<Membership> = GucSetting::<Membership>::new(Membership::Auto);

pub fn register_gucs() {
    GucRegistry::define_int_guc(
        c"multitenant.jwt_leeway",
        c"Seconds of clock skew allowed on exp and nbf of a JWT.",
        c"",
        &JWT_LEEWAY,
        0,
        3600,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"multitenant.jwt_cache_size",
        c"Verified JWTs remembered per backend (0 disables the cache).",
        c"A token seen again is not re-verified while it, and the key that verified it, are valid; any change to tenant.jwt_keys empties the cache in every backend.",
        &JWT_CACHE_SIZE,
        0,
        1_000_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    for (name, desc, setting) in [
        (
            c"multitenant.jwt_tenant_claim",
            c"JWT claim (dotted path) that names the tenant (uuid or slug).",
            &JWT_TENANT_CLAIM,
        ),
        (
            c"multitenant.jwt_user_claim",
            c"JWT claim (dotted path) that names the user.",
            &JWT_USER_CLAIM,
        ),
        (
            c"multitenant.jwt_roles_claim",
            c"JWT claim (dotted path) that lists the user's roles.",
            &JWT_ROLES_CLAIM,
        ),
    ] {
        GucRegistry::define_string_guc(
            name,
            desc,
            c"",
            setting,
            GucContext::Suset,
            GucFlags::default(),
        );
    }
    GucRegistry::define_enum_guc(
        c"multitenant.jwt_membership",
        c"Membership rule of tenant.authenticate: auto, required or off.",
        c"",
        &JWT_MEMBERSHIP,
        GucContext::Suset,
        GucFlags::default(),
    );
}

fn guc_text(s: &GucSetting<Option<CString>>, default: &str) -> String {
    s.get()
        .and_then(|c| c.into_string().ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| default.to_string())
}

pub struct Names {
    pub tenant: String,
    pub user: String,
    pub roles: String,
}

impl Names {
    pub fn current() -> Names {
        Names {
            tenant: guc_text(&JWT_TENANT_CLAIM, "tenant_id"),
            user: guc_text(&JWT_USER_CLAIM, "sub"),
            roles: guc_text(&JWT_ROLES_CLAIM, "roles"),
        }
    }
    /// identifies the mapping in the verification cache
    pub fn cache_key(&self) -> String {
        format!("{}\u{1}{}\u{1}{}", self.tenant, self.user, self.roles)
    }
    pub fn as_claim_names(&self) -> ClaimNames<'_> {
        ClaimNames {
            tenant: &self.tenant,
            user: &self.user,
            roles: &self.roles,
        }
    }
}

fn authenticate_impl(token: &str) -> MtResult<uuid::Uuid> {
    backend::require_any_role(&[c"tenant_user", c"tenant_service"], "authenticate")?;
    let names = Names::current();
    let now = backend::now_unix();
    let leeway = JWT_LEEWAY.get().max(0) as u64;
    let names_key = names.cache_key();
    let ident = match backend::cached_jwt(token, &names_key, now, leeway) {
        Some(id) => id,
        None => {
            let id = backend::with_jwt_keys(|keys| {
                jwt::verify(token, keys, now, leeway, &names.as_claim_names())
            })??;
            backend::remember_jwt(token, &names_key, &id, JWT_CACHE_SIZE.get().max(0) as usize);
            id
        }
    };
    let row = backend::lookup_tenant(&ident.tenant)?;
    let mut claims = context::mint_claims(&row, ident.user.clone(), Some(ident.exp))?;
    let rule = JWT_MEMBERSHIP.get();
    if rule != Membership::Off
        && !backend::membership_allows(row.id, ident.user.as_deref(), rule == Membership::Required)?
    {
        return Err(MtError::new(
            Code::TenantMismatch,
            "tenant mismatch: the token's user is not a member of its tenant",
        )
        .detail(format!(
            "tenant {}, user {}",
            row.id,
            ident.user.as_deref().unwrap_or("(none)")
        )));
    }
    claims.r = ident.roles;
    claims.c = Some(ident.claims);
    context::enter(claims, true)
}

/// Enter the tenant named by a JWT that the database verifies itself (keys in
/// tenant.jwt_keys). Transaction-local. For `tenant_user` (and `tenant_service`).
#[pg_extern(volatile, parallel_unsafe)]
fn authenticate(token: &str) -> pgrx::Uuid {
    boundary(|| authenticate_impl(token).map(backend::pg_uuid))
}

/// The verified claims of the current context (the JWT payload for `authenticate`), or NULL.
#[pg_extern(stable, parallel_restricted)]
fn current_claims() -> Option<pgrx::JsonB> {
    verified(|c| c.c.clone()).ok().flatten().map(pgrx::JsonB)
}

/// The roles carried by the current context (from the JWT's roles claim), empty without.
#[pg_extern(stable, parallel_restricted)]
fn current_roles() -> Vec<String> {
    verified(|c| c.r.clone()).unwrap_or_default()
}

fn validate_kid(kid: &str) -> MtResult<()> {
    if kid.is_empty() || kid.len() > 200 {
        return Err(MtError::invalid("kid must be 1-200 characters"));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn add_key_impl(
    kid: &str,
    alg: &str,
    key: &str,
    issuer: Option<&str>,
    audience: Option<&str>,
    valid_from: Option<TimestampWithTimeZone>,
    valid_until: Option<TimestampWithTimeZone>,
) -> MtResult<()> {
    backend::require_any_role(&[c"tenant_admin"], "manage JWT keys")?;
    validate_kid(kid)?;
    let parsed = jwt::parse_alg(alg)?;
    jwt::parse_key(parsed, key)?;
    backend::as_owner(|| {
        let exists = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM tenant.jwt_keys WHERE kid = $1)",
            &[kid.into()],
        )?
        .unwrap_or(false);
        if exists {
            return Err(
                MtError::invalid(format!("a JWT key with kid \"{kid}\" already exists"))
                    .hint("Use tenant.rotate_jwt_key(...) to replace a key."),
            );
        }
        Spi::run_with_args(
            "INSERT INTO tenant.jwt_keys (kid, alg, key, issuer, audience, valid_from, valid_until) \
             VALUES ($1, $2, $3, $4, $5, coalesce($6, now()), $7)",
            &[kid.into(), alg.into(), key.into(), issuer.into(), audience.into(), valid_from.into(), valid_until.into()],
        )?;
        crate::audit::event(
            None,
            "jwt_key.added",
            serde_json::json!({"kid": kid, "alg": alg}),
        )?;
        Ok(())
    })
}

/// Register a key that verifies JWTs for `tenant.authenticate`. For `tenant_admin`.
#[pg_extern(volatile, parallel_unsafe)]
fn add_jwt_key(
    kid: &str,
    alg: &str,
    key: &str,
    issuer: default!(Option<&str>, "NULL"),
    audience: default!(Option<&str>, "NULL"),
    valid_from: default!(Option<TimestampWithTimeZone>, "NULL"),
    valid_until: default!(Option<TimestampWithTimeZone>, "NULL"),
) {
    boundary(|| add_key_impl(kid, alg, key, issuer, audience, valid_from, valid_until))
}

fn deactivate_key_impl(kid: &str) -> MtResult<bool> {
    backend::require_any_role(&[c"tenant_admin"], "manage JWT keys")?;
    backend::as_owner(|| {
        let n = Spi::get_one_with_args::<i64>(
            "WITH u AS (UPDATE tenant.jwt_keys SET active = false WHERE kid = $1 AND active RETURNING 1) \
             SELECT count(*) FROM u",
            &[kid.into()],
        )?;
        let done = n.unwrap_or(0) > 0;
        if done {
            crate::audit::event(None, "jwt_key.deactivated", serde_json::json!({"kid": kid}))?;
        }
        Ok(done)
    })
}

/// Stop accepting tokens signed with key `kid` (at once, in every session).
#[pg_extern(volatile, parallel_unsafe)]
fn deactivate_jwt_key(kid: &str) -> bool {
    boundary(|| deactivate_key_impl(kid))
}

fn rotate_key_impl(
    old_kid: &str,
    new_kid: &str,
    alg: &str,
    key: &str,
    overlap_seconds: i32,
) -> MtResult<()> {
    if overlap_seconds < 0 {
        return Err(MtError::invalid("overlap_seconds must not be negative"));
    }
    let (issuer, audience) = backend::as_owner(|| {
        let r = Spi::get_two_with_args::<String, String>(
            "SELECT issuer, audience FROM tenant.jwt_keys WHERE kid = $1",
            &[old_kid.into()],
        );
        match r {
            Ok(v) => Ok(v),
            Err(pgrx::spi::Error::InvalidPosition) => Err(MtError::invalid(format!(
                "no JWT key with kid \"{old_kid}\""
            ))),
            Err(e) => Err(e.into()),
        }
    })?;
    add_key_impl(
        new_kid,
        alg,
        key,
        issuer.as_deref(),
        audience.as_deref(),
        None,
        None,
    )?;
    backend::as_owner(|| {
        Spi::run_with_args(
            "UPDATE tenant.jwt_keys SET valid_until = now() + make_interval(secs => $2) \
             WHERE kid = $1 AND (valid_until IS NULL OR valid_until > now() + make_interval(secs => $2))",
            &[old_kid.into(), (overlap_seconds as f64).into()],
        )?;
        crate::audit::event(
            None,
            "jwt_key.rotated",
            serde_json::json!({"old_kid": old_kid, "new_kid": new_kid, "overlap_seconds": overlap_seconds}),
        )?;
        Ok(())
    })
}

/// Add `new_kid` and let `old_kid` expire after `overlap_seconds` (both verify meanwhile).
#[pg_extern(volatile, parallel_unsafe)]
fn rotate_jwt_key(
    old_kid: &str,
    new_kid: &str,
    alg: &str,
    key: &str,
    overlap_seconds: default!(i32, 3600),
) {
    boundary(|| rotate_key_impl(old_kid, new_kid, alg, key, overlap_seconds))
}

fn add_member_impl(tenant: &str, user_id: &str, roles: Vec<String>) -> MtResult<()> {
    backend::require_any_role(&[c"tenant_service", c"tenant_admin"], "manage members")?;
    if user_id.is_empty() || user_id.len() > 256 {
        return Err(MtError::invalid("user_id must be 1-256 characters"));
    }
    let row = backend::lookup_tenant(tenant)?;
    backend::as_owner(|| {
        Spi::run_with_args(
            "INSERT INTO tenant.members (tenant_id, user_id, roles) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, user_id) DO UPDATE SET roles = EXCLUDED.roles, status = 'active'",
            &[backend::pg_uuid(row.id).into(), user_id.into(), roles.clone().into()],
        )?;
        crate::audit::event(
            Some(row.id),
            "member.added",
            serde_json::json!({"user_id": user_id, "roles": roles}),
        )?;
        Ok(())
    })
}

/// Make `user_id` an active member of `tenant` with `roles` (insert or update).
#[pg_extern(volatile, parallel_unsafe)]
fn add_member(tenant: &str, user_id: &str, roles: default!(Vec<String>, "ARRAY['member']")) {
    boundary(|| add_member_impl(tenant, user_id, roles))
}

fn remove_member_impl(tenant: &str, user_id: &str) -> MtResult<bool> {
    backend::require_any_role(&[c"tenant_service", c"tenant_admin"], "manage members")?;
    let row = backend::lookup_tenant(tenant)?;
    backend::as_owner(|| {
        let n = Spi::get_one_with_args::<i64>(
            "WITH d AS (DELETE FROM tenant.members WHERE tenant_id = $1 AND user_id = $2 RETURNING 1) \
             SELECT count(*) FROM d",
            &[backend::pg_uuid(row.id).into(), user_id.into()],
        )?;
        let done = n.unwrap_or(0) > 0;
        if done {
            crate::audit::event(
                Some(row.id),
                "member.removed",
                serde_json::json!({"user_id": user_id}),
            )?;
        }
        Ok(done)
    })
}

/// Remove `user_id` from `tenant`; returns whether a membership was removed.
#[pg_extern(volatile, parallel_unsafe)]
fn remove_member(tenant: &str, user_id: &str) -> bool {
    boundary(|| remove_member_impl(tenant, user_id))
}
