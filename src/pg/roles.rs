//! Who the caller is: role membership checks.

use crate::core::error::{MtError, MtResult};
use pgrx::pg_sys;
use std::ffi::CStr;

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

/// Does the current user bypass row level security anyway (superuser, BYPASSRLS)?
pub fn bypasses_rls() -> bool {
    // SAFETY: plain catalog lookups for the current user, no pointers involved
    unsafe { pg_sys::superuser() || pg_sys::has_bypassrls_privilege(pg_sys::GetUserId()) }
}
