//! Per-backend state and the few Postgres internals the extension leans on:
//! running a query as the extension owner, role checks, the secret, the tenant lookup cache
//! and its cross-backend invalidation.

use crate::error::{MtError, MtResult};
use crate::lifecycle::Status;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiTupleTable};
use pgrx::PgOid;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CStr;

#[derive(Clone, Debug)]
pub struct TenantRow {
    pub id: uuid::Uuid,
    pub status: Status,
}

#[derive(Default)]
struct State {
    ext_owner: Option<pg_sys::Oid>,
    secret: Option<Vec<u8>>,
    /// relids whose relcache invalidation flushes our caches
    watched: Vec<pg_sys::Oid>,
    tenants: HashMap<String, TenantRow>,
    /// parsed `tenant.jwt_keys`, loaded on first use
    jwt_keys: Option<Vec<crate::jwt::KeyEntry>>,
    /// JWTs already verified with those keys: (token, claim names) -> identity
    jwt_verified: HashMap<(String, String), crate::jwt::Identity>,
    /// plan features and limits per tenant, with overrides
    entitlements: HashMap<uuid::Uuid, std::rc::Rc<crate::plans::Entitlements>>,
    /// (tenant, user) -> may enter (membership rule of `authenticate`)
    membership: HashMap<(uuid::Uuid, Option<String>, bool), bool>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
    /// SPI plans kept for the backend's life, by SQL text: the extension's hot lookups
    /// would otherwise spend far longer planning than executing.
    /// (Shared out of the map while they run: a statement may call back into the extension,
    /// which may prepare another one.)
    static PREPARED: RefCell<HashMap<&'static str, std::rc::Rc<OwnedPreparedStatement>>> = RefCell::new(HashMap::new());
}

/// Run `sql` (a constant) with a plan prepared once per backend and kept; `f` reads the
/// result. Plans are revalidated by Postgres when the tables they use change.
/// `write`: the statement modifies data. Reads run as read-only SPI: they assign no
/// transaction id, so they work in parallel mode (a policy's InitPlan under a Gather) and on
/// a hot standby.
fn run_prepared<R>(
    sql: &'static str,
    write: bool,
    types: &[pg_sys::PgBuiltInOids],
    args: &[DatumWithOid],
    f: impl FnOnce(SpiTupleTable<'_>) -> MtResult<R>,
) -> MtResult<R> {
    Spi::connect(|c| {
        if !PREPARED.with(|m| m.borrow().contains_key(sql)) {
            let oids: Vec<PgOid> = types.iter().map(|t| PgOid::BuiltIn(*t)).collect();
            // a "mutating" plan runs with read_only = false; the write itself assigns the xid
            let plan = if write {
                c.prepare_mut(sql, &oids)?.keep()
            } else {
                c.prepare(sql, &oids)?.keep()
            };
            PREPARED.with(|m| m.borrow_mut().insert(sql, std::rc::Rc::new(plan)));
        }
        let plan = PREPARED.with(|m| m.borrow().get(sql).cloned().expect("prepared above"));
        let table = c.select(&*plan, None, args)?;
        f(table)
    })
}

/// A kept, read-only statement (see [`run_prepared`]).
pub fn with_prepared_read<R>(
    sql: &'static str,
    types: &[pg_sys::PgBuiltInOids],
    args: &[DatumWithOid],
    f: impl FnOnce(SpiTupleTable<'_>) -> MtResult<R>,
) -> MtResult<R> {
    run_prepared(sql, false, types, args, f)
}

/// A kept statement that writes (see [`run_prepared`]).
pub fn with_prepared<R>(
    sql: &'static str,
    types: &[pg_sys::PgBuiltInOids],
    args: &[DatumWithOid],
    f: impl FnOnce(SpiTupleTable<'_>) -> MtResult<R>,
) -> MtResult<R> {
    run_prepared(sql, true, types, args, f)
}

/// The first column (oids) of every row of a read-only query.
pub fn read_oids(sql: &str, args: &[DatumWithOid]) -> MtResult<Vec<pg_sys::Oid>> {
    Spi::connect(|c| {
        let mut v = Vec::new();
        for r in c.select(sql, None, args)? {
            v.extend(r.get::<pg_sys::Oid>(1)?);
        }
        Ok(v)
    })
}

/// The first column of the first row of a read-only query (no xid assigned, unlike
/// `Spi::get_one`, which runs every statement as a write).
pub fn read_one<T: pgrx::datum::FromDatum + pgrx::datum::IntoDatum>(
    sql: &str,
    args: &[DatumWithOid],
) -> MtResult<Option<T>> {
    Spi::connect(|c| {
        let t = c.select(sql, Some(1), args)?;
        match t.into_iter().next() {
            Some(r) => Ok(r.get::<T>(1)?),
            None => Ok(None),
        }
    })
}

/// Relcache invalidation callback (registered in `_PG_init`). A statement trigger on our
/// tables calls `CacheInvalidateRelcacheByRelid`, which every backend receives at its next
/// command, so a suspended tenant or a rotated secret is seen everywhere at once.
/// # Safety
/// Called by Postgres' invalidation machinery only, with a relation oid (or InvalidOid).
#[pg_guard]
pub unsafe extern "C-unwind" fn relcache_callback(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    crate::audit::forget_relation(relid);
    crate::quota::forget_relation(relid);
    STATE.with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            if relid == pg_sys::InvalidOid || s.watched.contains(&relid) {
                s.tenants.clear();
                s.jwt_keys = None;
                s.jwt_verified.clear();
                s.membership.clear();
                s.entitlements.clear();
                s.secret = None;
                s.ext_owner = None;
                s.watched.clear();
                crate::context::forget_verified();
                crate::rbac::forget_all();
            }
        }
    });
}

pub fn register_callbacks() {
    // SAFETY: called once from _PG_init; the callback is a #[pg_guard] extern fn that lives
    // as long as the library (never unloaded)
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(relcache_callback), pg_sys::Datum::from(0usize));
    }
}

/// Send a relcache invalidation for `relid` to every backend (at commit).
#[pg_extern(volatile, parallel_unsafe)]
fn _invalidate(relid: pg_sys::Oid) {
    // SAFETY: queues an invalidation message; an unknown relid is harmless (nobody watches it)
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) }
}

pub fn ensure_watched() -> MtResult<()> {
    let empty = STATE.with(|s| s.borrow().watched.is_empty());
    if empty {
        let watched = as_owner(|| {
            read_oids(
                "SELECT c.oid FROM pg_catalog.pg_class c \
                 WHERE c.relnamespace = 'tenant'::regnamespace \
                   AND c.relname IN ('tenants', 'secret', 'jwt_keys', 'members', 'plans', \
                                     'plan_limits', 'tenant_limits', 'tenant_features', \
                                     'roles', 'permissions')",
                &[],
            )
        })?;
        STATE.with(|s| s.borrow_mut().watched = watched);
    }
    Ok(())
}

fn ext_owner() -> MtResult<pg_sys::Oid> {
    if let Some(o) = STATE.with(|s| s.borrow().ext_owner) {
        return Ok(o);
    }
    // runs as the caller, before as_owner can pin anything: the operator is qualified so
    // that an `=` of the caller's earlier in its search_path is never picked
    let owner = read_one::<pg_sys::Oid>(
        "SELECT extowner FROM pg_catalog.pg_extension \
         WHERE extname OPERATOR(pg_catalog.=) 'multitenant'::pg_catalog.name",
        &[],
    )?
    .ok_or_else(|| MtError::invalid("extension multitenant is not installed in this database"))?;
    STATE.with(|s| s.borrow_mut().ext_owner = Some(owner));
    Ok(owner)
}

/// Restores the settings a `with_settings` changed (and the user, for `as_owner`), also
/// when unwinding.
struct Restore {
    user: Option<(pg_sys::Oid, i32)>,
    guc_nest_level: i32,
}
impl Drop for Restore {
    fn drop(&mut self) {
        // SAFETY: undoes exactly what push_settings/as_owner did, with the nest level and
        // user they recorded; called once per guard, also while unwinding
        unsafe {
            pg_sys::AtEOXact_GUC(true, self.guc_nest_level);
            if let Some((user, sec_context)) = self.user {
                pg_sys::SetUserIdAndSecContext(user, sec_context);
            }
        }
    }
}

fn push_settings(settings: &[(&CStr, &CStr)]) -> i32 {
    // SAFETY: names and values are NUL-terminated constants; GUC_ACTION_SAVE inside a new
    // nest level is what fmgr does for a function's SET clause (allowed in parallel mode)
    unsafe {
        let level = pg_sys::NewGUCNestLevel();
        for (name, value) in settings {
            pg_sys::set_config_option(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                0,
                false,
            );
        }
        level
    }
}

/// Run `f` as the current user without NOTICEs reaching the client (our `DROP ... IF
/// EXISTS` and the like are implementation details), with the settings that decide how SQL
/// text is read pinned: the DDL we build on the caller's tables resolves nothing through
/// the caller's search_path.
pub fn quietly<R>(f: impl FnOnce() -> MtResult<R>) -> MtResult<R> {
    let _restore = Restore {
        user: None,
        guc_nest_level: push_settings(&[
            (c"search_path", c"pg_catalog, pg_temp"),
            (c"client_min_messages", c"warning"),
            (c"standard_conforming_strings", c"on"),
        ]),
    };
    f()
}

/// Run `f` as the extension owner with `search_path = pg_catalog, pg_temp`, the way a
/// SECURITY DEFINER function with a pinned search_path would, but without a function
/// boundary (which would roll back a `SET LOCAL` made by the caller's function). Our kept
/// plans are parameterized lookups and writes, so generic plans are forced: re-planning per
/// call would cost more than the query. On error the (sub)transaction abort restores user
/// and settings too.
pub fn as_owner<R>(f: impl FnOnce() -> MtResult<R>) -> MtResult<R> {
    let owner = ext_owner()?;
    let mut prev_user = pg_sys::InvalidOid;
    let mut prev_ctx = 0i32;
    let guc_nest_level = push_settings(&[
        (c"search_path", c"pg_catalog, pg_temp"),
        (c"plan_cache_mode", c"force_generic_plan"),
        (c"client_min_messages", c"warning"),
        // how SQL text is read must not depend on the caller's session
        (c"standard_conforming_strings", c"on"),
        (c"backslash_quote", c"safe_encoding"),
    ]);
    // SAFETY: the out-pointers are valid locals; the previous user and security context are
    // restored by `Restore` on return and on unwinding (and by the abort otherwise)
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut prev_user, &mut prev_ctx);
        pg_sys::SetUserIdAndSecContext(
            owner,
            prev_ctx
                | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        );
    }
    let _restore = Restore {
        user: Some((prev_user, prev_ctx)),
        guc_nest_level,
    };
    f()
}

/// Does the current user have the privileges of `role` (superusers always do)?
pub fn has_role(role: &CStr) -> bool {
    // SAFETY: `role` is NUL-terminated; get_role_oid with missing_ok returns InvalidOid
    unsafe {
        let oid = pg_sys::get_role_oid(role.as_ptr(), true);
        oid != pg_sys::InvalidOid && pg_sys::has_privs_of_role(pg_sys::GetUserId(), oid)
    }
}

pub fn require_any_role(roles: &[&CStr], what: &str) -> MtResult<()> {
    if roles.iter().any(|r| has_role(r)) {
        return Ok(());
    }
    let names: Vec<_> = roles
        .iter()
        .map(|r| r.to_string_lossy().into_owned())
        .collect();
    Err(
        MtError::denied(format!("permission denied to {what}")).hint(format!(
            "Grant one of the roles {} to the calling role.",
            names.join(", ")
        )),
    )
}

/// The per-database context secret, loaded once per backend as the extension owner.
pub fn with_secret<R>(f: impl FnOnce(&[u8]) -> R) -> MtResult<R> {
    let cached = STATE.with(|s| s.borrow().secret.is_some());
    if !cached {
        ensure_watched()?;
        let key = as_owner(|| read_one::<Vec<u8>>("SELECT key FROM tenant.secret", &[]))?
            .ok_or_else(|| {
                MtError::invalid("the context secret is missing").hint("Reinstall the extension.")
            })?;
        STATE.with(|s| s.borrow_mut().secret = Some(key));
    }
    Ok(STATE.with(|s| f(s.borrow().secret.as_deref().unwrap_or_default())))
}

/// Find a tenant by uuid or slug, cached per backend until `tenant.tenants` changes.
pub fn lookup_tenant(key: &str) -> MtResult<TenantRow> {
    if let Some(row) = STATE.with(|s| s.borrow().tenants.get(key).cloned()) {
        return Ok(row);
    }
    ensure_watched()?;
    use pg_sys::PgBuiltInOids as O;
    let by_id = uuid::Uuid::parse_str(key).ok();
    let read = |t: SpiTupleTable<'_>| -> MtResult<(Option<pgrx::Uuid>, Option<String>)> {
        match t.into_iter().next() {
            Some(r) => Ok((r.get::<pgrx::Uuid>(1)?, r.get::<String>(2)?)),
            None => Ok((None, None)),
        }
    };
    let found = as_owner(|| match by_id {
        Some(id) => with_prepared_read(
            "SELECT id, status FROM tenant.tenants WHERE id = $1",
            &[O::UUIDOID],
            &[pg_uuid(id).into()],
            read,
        ),
        None => with_prepared_read(
            "SELECT id, status FROM tenant.tenants WHERE slug = $1",
            &[O::TEXTOID],
            &[key.into()],
            read,
        ),
    })?;
    match found {
        (Some(id), Some(status)) => {
            let row = TenantRow {
                id: from_pg_uuid(id),
                status: Status::parse(&status)?,
            };
            STATE.with(|s| s.borrow_mut().tenants.insert(key.to_string(), row.clone()));
            Ok(row)
        }
        _ => Err(MtError::tenant_not_found(key)),
    }
}

/// uuid crate -> SQL uuid.
pub fn pg_uuid(u: uuid::Uuid) -> pgrx::Uuid {
    pgrx::Uuid::from_bytes(*u.as_bytes())
}

/// SQL uuid -> uuid crate.
pub fn from_pg_uuid(u: pgrx::Uuid) -> uuid::Uuid {
    uuid::Uuid::from_bytes(*u.as_bytes())
}

/// Seconds since the Unix epoch, from Postgres' clock.
pub fn now_unix() -> i64 {
    const PG_EPOCH_OFFSET_SECS: i64 = 946_684_800;
    // SAFETY: reads the clock, no arguments
    let ts = unsafe { pg_sys::GetCurrentTimestamp() };
    ts.div_euclid(1_000_000) + PG_EPOCH_OFFSET_SECS
}

pub fn database_oid() -> u32 {
    // SAFETY: MyDatabaseId is set at connection start and never changes afterwards
    unsafe { pg_sys::MyDatabaseId.to_u32() }
}

/// Run `f` over the parsed JWT keys, loading them (as the extension owner) on first use.
/// Rows whose key no longer parses are skipped: they cannot verify anything.
pub fn with_jwt_keys<R>(f: impl FnOnce(&[crate::jwt::KeyEntry]) -> R) -> MtResult<R> {
    use crate::jwt::{parse_alg, parse_key, KeyEntry};
    let cached = STATE.with(|s| s.borrow().jwt_keys.is_some());
    if !cached {
        ensure_watched()?;
        let keys = as_owner(|| {
            Spi::connect(|c| {
                let t = c.select(
                    "SELECT kid, alg, key, issuer, audience, \
                            floor(extract(epoch FROM valid_from))::int8, floor(extract(epoch FROM valid_until))::int8, active \
                     FROM tenant.jwt_keys",
                    None,
                    &[],
                )?;
                let mut keys = Vec::new();
                for r in t {
                    let alg = r.get::<String>(2)?.unwrap_or_default();
                    let material = r.get::<String>(3)?.unwrap_or_default();
                    let Ok(alg) = parse_alg(&alg) else { continue };
                    let Ok(key) = parse_key(alg, &material) else {
                        continue;
                    };
                    keys.push(KeyEntry {
                        kid: r.get::<String>(1)?.unwrap_or_default(),
                        alg,
                        key,
                        issuer: r.get::<String>(4)?,
                        audience: r.get::<String>(5)?,
                        valid_from: r.get::<i64>(6)?.unwrap_or(0),
                        valid_until: r.get::<i64>(7)?,
                        active: r.get::<bool>(8)?.unwrap_or(false),
                    });
                }
                Ok(keys)
            })
        })?;
        STATE.with(|s| s.borrow_mut().jwt_keys = Some(keys));
    }
    Ok(STATE.with(|s| f(s.borrow().jwt_keys.as_deref().unwrap_or_default())))
}

/// May `user` enter `tenant`? When the tenant has members, only an active member may;
/// when it has none, anyone the token vouches for may (unless `required`).
pub fn membership_allows(tenant: uuid::Uuid, user: Option<&str>, required: bool) -> MtResult<bool> {
    let key = (tenant, user.map(str::to_string), required);
    if let Some(ok) = STATE.with(|s| s.borrow().membership.get(&key).copied()) {
        return Ok(ok);
    }
    ensure_watched()?;
    let (total, matched) = as_owner(|| {
        with_prepared_read(
            "SELECT count(*), count(*) FILTER (WHERE user_id = $2 AND status = 'active') \
             FROM tenant.members WHERE tenant_id = $1",
            &[
                pg_sys::PgBuiltInOids::UUIDOID,
                pg_sys::PgBuiltInOids::TEXTOID,
            ],
            &[pg_uuid(tenant).into(), user.into()],
            |t| match t.into_iter().next() {
                Some(r) => Ok((r.get::<i64>(1)?, r.get::<i64>(2)?)),
                None => Ok((None, None)),
            },
        )
    })?;
    let ok = match (total.unwrap_or(0), matched.unwrap_or(0)) {
        (_, m) if m > 0 => true,
        (0, _) => !required,
        _ => false,
    };
    STATE.with(|s| s.borrow_mut().membership.insert(key, ok));
    Ok(ok)
}

/// A JWT verified earlier in this backend with the current keys and claim names, if it
/// still may be relied on.
pub fn cached_jwt(
    token: &str,
    names_key: &str,
    now: i64,
    leeway: u64,
) -> Option<crate::jwt::Identity> {
    STATE.with(|s| {
        let s = s.borrow();
        s.jwt_keys.as_ref()?;
        s.jwt_verified
            .get(&(token.to_string(), names_key.to_string()))
            .filter(|id| id.still_valid(now, leeway))
            .cloned()
    })
}

pub fn remember_jwt(token: &str, names_key: &str, id: &crate::jwt::Identity, capacity: usize) {
    if capacity == 0 {
        return;
    }
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        if s.jwt_verified.len() >= capacity {
            s.jwt_verified.clear();
        }
        s.jwt_verified
            .insert((token.to_string(), names_key.to_string()), id.clone());
    })
}

/// Run `f` over the tenant's entitlements (plan features and limits with its overrides),
/// loaded once per backend and dropped whenever plans, limits, overrides or tenants change.
pub fn with_entitlements<R>(
    tenant: uuid::Uuid,
    f: impl FnOnce(&crate::plans::Entitlements) -> R,
) -> MtResult<R> {
    if let Some(e) = STATE.with(|s| s.borrow().entitlements.get(&tenant).cloned()) {
        return Ok(f(&e));
    }
    ensure_watched()?;
    let json = as_owner(|| {
        with_prepared_read(
            include_str!("../sql/entitlements.sql"),
            &[pg_sys::PgBuiltInOids::UUIDOID],
            &[pg_uuid(tenant).into()],
            |t| match t.into_iter().next() {
                Some(r) => Ok(r.get::<pgrx::JsonB>(1)?),
                None => Ok(None),
            },
        )
    })?;
    let e = match json {
        Some(j) => crate::plans::Entitlements::from_json(&j.0)?,
        None => return Err(MtError::tenant_not_found(&tenant.to_string())),
    };
    let e = std::rc::Rc::new(e);
    STATE.with(|s| s.borrow_mut().entitlements.insert(tenant, e.clone()));
    Ok(f(&e))
}
