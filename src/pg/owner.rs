//! Running as the extension owner, or as the caller with the settings that decide how SQL
//! text is read pinned: what a SECURITY DEFINER function with a SET clause does, without the
//! function boundary (which would roll back a `SET LOCAL` made inside it).

use crate::core::error::{MtError, MtResult};
use crate::pg::spi::read_one;
use pgrx::pg_sys;
use std::cell::Cell;
use std::ffi::CStr;

thread_local! {
    /// the extension's owner (dropped by the invalidation callback with everything else)
    static EXT_OWNER: Cell<Option<(pg_sys::Oid, u64)>> = const { Cell::new(None) };
    /// the role that was current when the outermost `as_owner`/`as_owner_fast` switched to
    /// the owner: who the extension acts for (recorded by the audit trail)
    static CALLER: Cell<Option<pg_sys::Oid>> = const { Cell::new(None) };
}

/// The role the extension acts for: the current role, or, inside `as_owner`, the role that
/// was current when it switched.
pub fn acting_role() -> pg_sys::Oid {
    // SAFETY: reads the current user id, always set in a backend
    CALLER
        .with(Cell::get)
        .unwrap_or_else(|| unsafe { pg_sys::GetUserId() })
}

/// The name of a role (None when it was dropped).
pub fn role_name(role: pg_sys::Oid) -> Option<String> {
    // SAFETY: noerr = true returns NULL for an unknown role instead of raising; the
    // returned name is palloc'd and copied at once
    unsafe {
        let p = pg_sys::GetUserNameFromId(role, true);
        (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
    }
}

fn ext_owner() -> MtResult<pg_sys::Oid> {
    let generation = crate::pg::invalidation::generation(&[crate::pg::invalidation::Kind::Secret]);
    if let Some((o, g)) = EXT_OWNER.with(Cell::get) {
        if g == generation {
            return Ok(o);
        }
    }
    // runs as the caller, before as_owner can pin anything: the operator is qualified so
    // that an `=` of the caller's earlier in its search_path is never picked
    let owner = read_one::<pg_sys::Oid>(
        "SELECT extowner FROM pg_catalog.pg_extension \
         WHERE extname OPERATOR(pg_catalog.=) 'multitenant'::pg_catalog.name",
        &[],
    )?
    .ok_or_else(|| MtError::invalid("extension multitenant is not installed in this database"))?;
    EXT_OWNER.with(|c| c.set(Some((owner, generation))));
    Ok(owner)
}

/// Restores the settings a `with_settings` changed (and the user, for `as_owner`), also
/// when unwinding.
struct Restore {
    user: Option<(pg_sys::Oid, i32)>,
    guc_nest_level: Option<i32>,
    /// `CALLER` as it was before (restored with the user)
    caller: Option<Option<pg_sys::Oid>>,
}
impl Drop for Restore {
    fn drop(&mut self) {
        // SAFETY: undoes exactly what push_settings/as_owner did, with the nest level and
        // user they recorded; called once per guard, also while unwinding
        unsafe {
            if let Some(level) = self.guc_nest_level {
                pg_sys::AtEOXact_GUC(true, level);
            }
            if let Some((user, sec_context)) = self.user {
                pg_sys::SetUserIdAndSecContext(user, sec_context);
            }
        }
        if let Some(prev) = self.caller {
            CALLER.with(|c| c.set(prev));
        }
    }
}

/// Remember `prev_user` as the caller unless an outer switch already did; returns what
/// `CALLER` was, for `Restore`.
fn enter_caller(prev_user: pg_sys::Oid) -> Option<pg_sys::Oid> {
    CALLER.with(|c| {
        let before = c.get();
        if before.is_none() {
            c.set(Some(prev_user));
        }
        before
    })
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

/// Run `f` as the current user with the settings that decide how SQL text is read pinned:
/// the catalog queries and DDL we run on the caller's behalf resolve nothing through the
/// caller's search_path.
pub fn pinned<R>(f: impl FnOnce() -> MtResult<R>) -> MtResult<R> {
    with_settings(
        &[
            (c"search_path", c"pg_catalog, pg_temp"),
            (c"standard_conforming_strings", c"on"),
        ],
        f,
    )
}

/// [`pinned`], and without NOTICEs reaching the client (our `DROP ... IF EXISTS` and the
/// like are implementation details).
pub fn quietly<R>(f: impl FnOnce() -> MtResult<R>) -> MtResult<R> {
    with_settings(
        &[
            (c"search_path", c"pg_catalog, pg_temp"),
            (c"client_min_messages", c"warning"),
            (c"standard_conforming_strings", c"on"),
        ],
        f,
    )
}

/// Run `f` with `settings` in force and put them back afterwards, also when `f` fails: what
/// a function's `SET` clause does.
pub fn with_settings<R>(
    settings: &[(&CStr, &CStr)],
    f: impl FnOnce() -> MtResult<R>,
) -> MtResult<R> {
    let _restore = Restore {
        user: None,
        guc_nest_level: Some(push_settings(settings)),
        caller: None,
    };
    f()
}

/// Make `role` the current user in a security-restricted operation; returns the previous
/// user and security context, for `Restore`.
fn switch_user(role: pg_sys::Oid) -> (pg_sys::Oid, i32) {
    let mut prev_user = pg_sys::InvalidOid;
    let mut prev_ctx = 0i32;
    // SAFETY: the out-pointers are valid locals; every caller puts the returned pair in a
    // `Restore`, which puts it back on return and on unwinding (and the abort otherwise)
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut prev_user, &mut prev_ctx);
        pg_sys::SetUserIdAndSecContext(
            role,
            prev_ctx
                | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        );
    }
    (prev_user, prev_ctx)
}

/// Run `f` as the extension owner with `search_path = pg_catalog, pg_temp`, the way a
/// SECURITY DEFINER function with a pinned search_path would, but without a function
/// boundary (which would roll back a `SET LOCAL` made by the caller's function). Our kept
/// plans are parameterized lookups and writes, so generic plans are forced: re-planning per
/// call would cost more than the query. On error the (sub)transaction abort restores user
/// and settings too.
pub fn as_owner<R>(f: impl FnOnce() -> MtResult<R>) -> MtResult<R> {
    let owner = ext_owner()?;
    let guc_nest_level = push_settings(&[
        (c"search_path", c"pg_catalog, pg_temp"),
        (c"plan_cache_mode", c"force_generic_plan"),
        (c"client_min_messages", c"warning"),
        // how SQL text is read must not depend on the caller's session
        (c"standard_conforming_strings", c"on"),
        (c"backslash_quote", c"safe_encoding"),
    ]);
    let (prev_user, prev_ctx) = switch_user(owner);
    let _restore = Restore {
        user: Some((prev_user, prev_ctx)),
        guc_nest_level: Some(guc_nest_level),
        caller: Some(enter_caller(prev_user)),
    };
    f()
}

/// [`as_owner`] for the hottest kept statements (`consume`): only the user switch, no
/// settings. Their SQL is written to mean the same under any search_path (every relation,
/// function and operator schema-qualified, no string literal a parsing setting could
/// change), so a re-analysis under the caller's path (after DDL on the tables) resolves the
/// same objects; the plan stays cached for the session's path.
pub fn as_owner_fast<R>(f: impl FnOnce() -> MtResult<R>) -> MtResult<R> {
    let owner = ext_owner()?;
    let (prev_user, prev_ctx) = switch_user(owner);
    let _restore = Restore {
        user: Some((prev_user, prev_ctx)),
        guc_nest_level: None,
        caller: Some(enter_caller(prev_user)),
    };
    f()
}

/// Run `f` as `role` (a table's owner) in a security-restricted operation with the settings
/// that decide how SQL text is read pinned: what PostgreSQL does for maintenance commands
/// that run code of a table (triggers, defaults, constraints, index expressions), so that
/// such code never runs with more rights than its owner has.
pub fn as_role_restricted<R>(role: pg_sys::Oid, f: impl FnOnce() -> MtResult<R>) -> MtResult<R> {
    let guc_nest_level = push_settings(&[
        (c"search_path", c"pg_catalog, pg_temp"),
        (c"standard_conforming_strings", c"on"),
    ]);
    let (prev_user, prev_ctx) = switch_user(role);
    let _restore = Restore {
        user: Some((prev_user, prev_ctx)),
        guc_nest_level: Some(guc_nest_level),
        caller: None,
    };
    f()
}
