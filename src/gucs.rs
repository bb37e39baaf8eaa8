//! Every `multitenant.*` setting.

use crate::core::jwt::ClaimNames;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};
use std::ffi::{CStr, CString};

pub fn register() {
    register_context();
    register_site();
    register_billing();
    register_jwt();
    register_lifecycle();
}

/// Record which tenant each backend entered last (`tenant.activity`): one write per
/// `set_context`/`authenticate`, so off by default.
pub static TRACK_ACTIVITY: GucSetting<bool> = GucSetting::<bool>::new(false);

/// Seconds a suspended tenant waits before `run_maintenance` deletes it (0: never).
pub static SUSPENSION_GRACE: GucSetting<i32> = GucSetting::<i32>::new(30 * 24 * 3600);
/// Seconds a deleted tenant is kept before it may be purged.
pub static DELETION_RETENTION: GucSetting<i32> = GucSetting::<i32>::new(30 * 24 * 3600);

fn register_lifecycle() {
    GucRegistry::define_bool_guc(
        c"multitenant.track_activity",
        c"Record the tenant and user each backend entered last, for the tenant.activity view.",
        c"One small write per set_context/authenticate; off by default.",
        &TRACK_ACTIVITY,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"multitenant.suspension_grace",
        c"How long a suspended tenant stays suspended before tenant.run_maintenance deletes it (0: never).",
        c"",
        &SUSPENSION_GRACE,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"multitenant.deletion_retention",
        c"How long a deleted tenant is kept before it may be purged (tenant.purge without force, tenant.run_maintenance).",
        c"Set when the tenant is deleted: its purge_after is the deletion time plus this.",
        &DELETION_RETENTION,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
}

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

/// On Citus, add `tenant_id = <the context's tenant>` to the statements on isolated
/// distributed tables before Citus plans them, so one tenant's statements are router queries
/// (api/router.rs). On by default; off plans them through the policies alone.
pub static ROUTE_BY_CONTEXT: GucSetting<bool> = GucSetting::<bool>::new(true);

thread_local! {
    /// The tenant whose id the planner put into this backend's plans since they were last
    /// reset (api/router.rs)
    static ROUTED_FOR: std::cell::Cell<Option<uuid::Uuid>> = const { std::cell::Cell::new(None) };
}

/// The planner put `tenant`'s id into a plan (which a plan cache may keep).
pub fn routed_for(tenant: uuid::Uuid) {
    ROUTED_FOR.with(|r| r.set(Some(tenant)));
}

/// `multitenant.context` changed (SET, SET LOCAL, set_config, a transaction's end, Citus
/// propagating it): when the new value names another tenant than the plans this backend
/// made with a tenant's id, every cached plan is marked for replanning, so no plan keeps a
/// tenant id across contexts. (A value without a tenant keeps them: under no context the
/// policies return nothing whatever the plan routes to.)
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn context_assigned(
    newval: *const std::ffi::c_char,
    _extra: *mut std::ffi::c_void,
) {
    let Some(planned) = ROUTED_FOR.with(|r| r.get()) else {
        return;
    };
    let tenant = if newval.is_null() {
        None
    } else {
        // SAFETY: a GUC string value is NUL-terminated and valid during the assign hook
        let new = unsafe { CStr::from_ptr(newval) };
        new.to_str().ok().and_then(crate::core::token::peek_tenant)
    };
    match tenant {
        Some(t) if t == planned => {}
        // no tenant in the setting: under no context the policies show nothing whatever a
        // kept plan routes to, unless PostgREST's claims name a tenant instead
        None if !POSTGREST_CLAIMS.get() => {}
        _ => forget_routes(),
    }
}

/// Mark every cached plan of the backend for replanning when plans were routed for another
/// tenant than `tenant` (the extension entering a tenant without the setting: `as_tenant`).
pub fn forget_routes_unless(tenant: uuid::Uuid) {
    if ROUTED_FOR.with(|r| r.get()).is_some_and(|t| t != tenant) {
        forget_routes();
    }
}

fn forget_routes() {
    ROUTED_FOR.with(|r| r.set(None));
    // SAFETY: only marks the saved plans invalid (no allocation, no catalog access, no
    // error): the next use of each replans it
    unsafe { pgrx::pg_sys::ResetPlanCache() };
}

fn register_context() {
    // SAFETY: the assign hook is pg_guard'ed and raises nothing
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            GUC_NAME,
            c"Signed tenant context token (minted by tenant.set_context / tenant.authenticate).",
            c"Any role may set it so that poolers and Citus can carry it; only the extension can mint a value that verifies.",
            &CONTEXT,
            GucContext::Userset,
            GucFlags::default(),
            None,
            Some(context_assigned),
            None,
        );
    }
    GucRegistry::define_bool_guc(
        c"multitenant.route_by_context",
        c"On Citus, add the context's tenant id to statements on isolated distributed tables so they are router queries.",
        c"The policies hold either way; off, a statement without the tenant id in its WHERE fans out to every shard.",
        &ROUTE_BY_CONTEXT,
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

fn register_jwt() {
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

/// The domain under which every tenant has a subdomain (`<slug>.<base_domain>`), for
/// tenant.resolve and the CNAME target of custom domains. Empty: no subdomains.
pub static BASE_DOMAIN: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// Does set_context require that the user it names is a member (like authenticate)?
pub static CONTEXT_MEMBERSHIP: GucSetting<Membership> =
    GucSetting::<Membership>::new(Membership::Off);

/// Percentages of a limit at which an alert is raised (tenant.usage_alerts).
pub static ALERT_THRESHOLDS: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"80,100"));
/// Seconds a subscription may stay past due before run_maintenance suspends the tenant.
pub static PAYMENT_GRACE: GucSetting<i32> = GucSetting::<i32>::new(14 * 24 * 3600);

fn register_billing() {
    GucRegistry::define_string_guc(
        c"multitenant.alert_thresholds",
        c"Percentages of a limit at which usage raises an alert (comma-separated, e.g. 80,100).",
        c"Empty: no alerts.",
        &ALERT_THRESHOLDS,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"multitenant.payment_grace",
        c"How long a subscription may stay past due before tenant.run_maintenance suspends its tenant (0: never).",
        c"",
        &PAYMENT_GRACE,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
}

/// The alert thresholds (an unparsable setting raises no alert rather than failing writes).
pub fn alert_thresholds() -> Vec<i64> {
    crate::core::plans::parse_thresholds(&guc_text(&ALERT_THRESHOLDS, "")).unwrap_or_default()
}

fn register_site() {
    GucRegistry::define_string_guc(
        c"multitenant.base_domain",
        c"Domain under which each tenant has a subdomain <slug>.<base_domain> (tenant.resolve, CNAME target of custom domains).",
        c"Empty: tenants are resolved by verified custom domains and headers only.",
        &BASE_DOMAIN,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"multitenant.context_membership",
        c"Membership rule of tenant.set_context for the user it names: off (default), auto or required.",
        c"auto: a tenant with members admits only its active members; required: the user must be an active member.",
        &CONTEXT_MEMBERSHIP,
        GucContext::Suset,
        GucFlags::default(),
    );
}

/// The base domain, lowercased, without a trailing dot ("" when unset).
pub fn base_domain() -> String {
    let b = guc_text(&BASE_DOMAIN, "").to_ascii_lowercase();
    b.strip_suffix('.').map(str::to_string).unwrap_or(b)
}
