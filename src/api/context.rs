//! Tenant context (SQL): the signed token in the `multitenant.context` GUC, minted by
//! `set_context`, verified (once per distinct value per backend) by every reader.

use crate::core::error::{Code, MtError, MtResult};
use crate::core::names;
use crate::core::token::TokenError;
use crate::gucs::{Membership, CONTEXT_MEMBERSHIP};
use crate::pg::convert::pg_uuid;
use crate::pg::raise::{boundary, required};
use crate::pg::roles::require_any_role;
use crate::state::context::{enter, mint_claims, place_schema, store_token, verified};
use crate::state::members;
use crate::state::tenants;
use pgrx::prelude::*;

fn validate_user(user: Option<&str>) -> MtResult<Option<String>> {
    user.map(|u| names::user_id(u).map(|_| u.to_string()))
        .transpose()
}

pub(crate) fn set_context_impl(
    tenant: &str,
    user_id: Option<&str>,
    local: bool,
    client_ip: Option<&str>,
) -> MtResult<uuid::Uuid> {
    require_any_role(&[c"tenant_service"], "set the tenant context")?;
    let user = validate_user(user_id)?;
    let ip = client_ip.map(names::client_ip).transpose()?;
    let row = tenants::lookup(tenant)?;
    let rule = CONTEXT_MEMBERSHIP.get();
    if rule != Membership::Off
        && user.is_some()
        && !members::allows(row.id, user.as_deref(), rule == Membership::Required)?
    {
        return Err(not_a_member(row.id, user.as_deref()));
    }
    let mut claims = mint_claims(&row, user, None)?;
    claims.ip = ip;
    enter(&row, claims, local)
}

/// Enter `tenant` (uuid or slug) for the rest of the transaction (or the session when
/// `is_local => false`), as `user_id`, for a request from `client_ip` (signed into the
/// context and recorded by the audit trail). Only for members of `tenant_service`.
#[pg_extern(volatile, parallel_unsafe, name = "set_context")]
fn set_context_v2(
    tenant: Option<&str>,
    user_id: default!(Option<&str>, "NULL"),
    is_local: default!(Option<bool>, true),
    client_ip: default!(Option<&str>, "NULL"),
) -> pgrx::Uuid {
    boundary(|| {
        let tenant = required("tenant", tenant)?;
        let is_local = required("is_local", is_local)?;
        set_context_impl(tenant, user_id, is_local, client_ip).map(pg_uuid)
    })
}

/// MT005: the user is not an active member of the tenant (authenticate, and set_context
/// under multitenant.context_membership).
pub(crate) fn not_a_member(tenant: uuid::Uuid, user: Option<&str>) -> MtError {
    MtError::new(
        Code::TenantMismatch,
        "tenant mismatch: the user is not a member of the tenant",
    )
    .detail(format!(
        "tenant {tenant}, user {}",
        user.unwrap_or("(none)")
    ))
}

/// Leave the tenant context (for the session, not just the transaction).
#[pg_extern(volatile, parallel_unsafe)]
fn clear_context() {
    boundary(|| {
        store_token("", false)?;
        place_schema(None, false)
    })
}

/// The verified context's tenant id, or NULL when there is no valid context.
#[pg_extern(stable, parallel_restricted)]
fn current_tenant() -> Option<pgrx::Uuid> {
    verified(|c| pg_uuid(c.t)).ok()
}

/// Like `current_tenant()` but raises MT001 without a valid context, and MT003 when the
/// context is read-only. Used in WITH CHECK and column defaults of isolated tables.
#[pg_extern(stable, parallel_restricted)]
fn require_tenant() -> pgrx::Uuid {
    boundary(|| match verified(|c| (c.t, c.ro)) {
        Ok((t, false)) => Ok(pg_uuid(t)),
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

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::api::test_support::{fixture, one, run};
    use pgrx::prelude::*;

    #[pg_test]
    fn secret_exists_once() {
        assert_eq!(one::<i64>("SELECT count(*) FROM tenant.secret"), Some(1));
        assert_eq!(
            one::<i32>("SELECT length(key) FROM tenant.secret"),
            Some(32)
        );
    }

    #[pg_test(error = "permission denied for table secret")]
    fn secret_not_readable_by_app_roles() {
        run("CREATE ROLE mt_t_reader");
        run("GRANT tenant_service, tenant_user TO mt_t_reader");
        run("SET ROLE mt_t_reader");
        run("SELECT key FROM tenant.secret");
    }

    #[pg_test]
    fn context_round_trip() {
        let id = one::<pgrx::Uuid>("SELECT tenant.create('acme', 'Acme')").unwrap();
        assert_eq!(one::<pgrx::Uuid>("SELECT tenant.current_tenant()"), None);
        let set = one::<pgrx::Uuid>("SELECT tenant.set_context('acme', 'alice')").unwrap();
        assert_eq!(set, id);
        assert_eq!(
            one::<pgrx::Uuid>("SELECT tenant.current_tenant()"),
            Some(id)
        );
        assert_eq!(
            one::<String>("SELECT tenant.current_user_id()"),
            Some("alice".into())
        );
        // by uuid as well
        let by_id = one::<pgrx::Uuid>(&format!("SELECT tenant.set_context('{id}')")).unwrap();
        assert_eq!(by_id, id);
        assert_eq!(one::<String>("SELECT tenant.current_user_id()"), None);
        run("SELECT tenant.clear_context()");
        assert_eq!(one::<pgrx::Uuid>("SELECT tenant.current_tenant()"), None);
    }

    #[pg_test]
    fn forged_context_is_no_context() {
        fixture();
        run("SET ROLE mt_t_app");
        run("SELECT tenant.set_context('acme')");
        let good = one::<String>("SELECT current_setting('multitenant.context')").unwrap();
        run("SELECT tenant.clear_context()");
        for forged in [
            "garbage".to_string(),
            "mt1.eyJ0IjoiMDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAwIn0.AAAA".to_string(),
            good.replacen('.', ".x", 1),
            format!("{good}A"),
        ] {
            run(&format!("SET multitenant.context = '{forged}'"));
            assert_eq!(
                one::<pgrx::Uuid>("SELECT tenant.current_tenant()"),
                None,
                "{forged}"
            );
            assert_eq!(
                one::<i64>("SELECT count(*) FROM public.notes"),
                Some(0),
                "{forged}"
            );
            assert_eq!(
                one::<bool>("SELECT (tenant.context_status()->>'valid')::boolean"),
                Some(false)
            );
        }
        run(&format!("SET multitenant.context = '{good}'"));
        assert_eq!(
            one::<i64>("SELECT count(*) FROM public.notes"),
            Some(1),
            "the genuine token still works"
        );
    }

    #[pg_test(error = "permission denied to set the tenant context")]
    fn set_context_requires_tenant_service() {
        run("SELECT tenant.create('acme', 'Acme')");
        run("CREATE ROLE mt_t_plain");
        // EXECUTE is revoked from PUBLIC; grant it to show the role check inside holds too
        run(
            "GRANT EXECUTE ON FUNCTION tenant.set_context(text, text, boolean, text) TO mt_t_plain",
        );
        run("SET ROLE mt_t_plain");
        run("SELECT tenant.set_context('acme')");
    }

    #[pg_test(error = "tenant \"nope\" not found")]
    fn unknown_tenant_is_refused() {
        run("SELECT tenant.set_context('nope')");
    }

    #[pg_test(error = "tenant is suspended")]
    fn suspended_tenant_is_refused() {
        run("SELECT tenant.create('acme', 'Acme')");
        run("SELECT tenant.set_status('acme', 'suspended')");
        run("SELECT tenant.set_context('acme')");
    }

    #[pg_test]
    fn suspended_read_mode_reads_but_cannot_write() {
        fixture();
        run("SELECT tenant.set_status('acme', 'suspended')");
        run("SET multitenant.suspended_access = 'read'");
        run("SET ROLE mt_t_app");
        run("SELECT tenant.set_context('acme')");
        assert_eq!(one::<i64>("SELECT count(*) FROM public.notes"), Some(1));
    }

    #[pg_test(error = "tenant is read-only (suspended)")]
    fn suspended_read_mode_cannot_delete() {
        fixture();
        run("SELECT tenant.set_status('acme', 'suspended')");
        run("SET multitenant.suspended_access = 'read'");
        run("SET ROLE mt_t_app");
        run("SELECT tenant.set_context('acme')");
        run("DELETE FROM public.notes");
    }
}
