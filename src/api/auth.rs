//! Verified identity (SQL): `tenant.authenticate(jwt)`, JWT key management and the claims of
//! the current context.

use crate::core::error::{Code, MtError, MtResult};
use crate::core::{jwt, names};
use crate::gucs::{Membership, Names, JWT_CACHE_SIZE, JWT_LEEWAY, JWT_MEMBERSHIP};
use crate::pg::convert::{now_unix, pg_uuid};
use crate::pg::owner::as_owner;
use crate::pg::raise::{boundary, required};
use crate::pg::roles::require_any_role;
use crate::state::audit::event;
use crate::state::context::{self, verified};
use crate::state::{members, tenants};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;

pub(crate) fn authenticate_impl(
    token: &str,
    expected_tenant: Option<&str>,
) -> MtResult<uuid::Uuid> {
    require_any_role(&[c"tenant_user", c"tenant_service"], "authenticate")?;
    let names = Names::current();
    let now = now_unix();
    let leeway = JWT_LEEWAY.get().max(0) as u64;
    let names_key = names.cache_key();
    let ident = match crate::state::jwt::cached(token, &names_key, now, leeway) {
        Some(id) => id,
        None => {
            let verified_at = crate::state::jwt::generation();
            let id = crate::state::jwt::with_keys(|keys| {
                jwt::verify(token, keys, now, leeway, &names.as_claim_names())
            })??;
            crate::state::jwt::remember(
                token,
                &names_key,
                &id,
                JWT_CACHE_SIZE.get().max(0) as usize,
                verified_at,
            );
            id
        }
    };
    let row = tenants::lookup(&ident.tenant)?;
    // the request's own tenant (host, header) must be the token's
    if let Some(expected) = expected_tenant {
        let same = match tenants::lookup(expected) {
            Ok(e) => e.id == row.id,
            Err(e) if e.code == Code::TenantNotFound => false,
            Err(e) => return Err(e),
        };
        if !same {
            return Err(crate::api::site::mismatch(
                "the token is for another tenant than the request",
            )
            .detail(format!(
                "token tenant {}, request tenant {}",
                row.id,
                expected.escape_default()
            )));
        }
    }
    let mut claims = context::mint_claims(&row, ident.user.clone(), Some(ident.exp))?;
    let rule = JWT_MEMBERSHIP.get();
    if rule != Membership::Off
        && !members::allows(row.id, ident.user.as_deref(), rule == Membership::Required)?
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
    // the end user's address, when the identity provider signs it into the token
    claims.ip = match ident.claims.get("client_ip") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(ip)) => Some(
            names::client_ip(ip)
                .map_err(|_| jwt::invalid_token("the client_ip claim is not an IP address"))?,
        ),
        Some(_) => return Err(jwt::invalid_token("the client_ip claim must be a string")),
    };
    claims.r = ident.roles;
    claims.c = Some(ident.claims);
    context::enter(&row, claims, true)
}

/// Enter the tenant named by a JWT that the database verifies itself (keys in
/// tenant.jwt_keys). Transaction-local. With `expected_tenant` (the request's tenant, from
/// `tenant.resolve`, uuid or slug), a token for any other tenant is refused with MT006.
/// For `tenant_user` (and `tenant_service`).
#[pg_extern(volatile, parallel_unsafe, name = "authenticate")]
fn authenticate_v2(
    token: Option<&str>,
    expected_tenant: default!(Option<&str>, "NULL"),
) -> pgrx::Uuid {
    boundary(|| authenticate_impl(required("token", token)?, expected_tenant).map(pg_uuid))
}

/// The verified claims of the current context (the JWT payload for `authenticate`), or NULL.
#[pg_extern(stable, parallel_restricted)]
fn current_claims() -> Option<pgrx::JsonB> {
    verified(|c| c.c.clone()).ok().flatten().map(pgrx::JsonB)
}

/// The roles the current user holds directly: the JWT's roles claim and its membership
/// roles in the current tenant (sorted, not expanded: see `effective_roles`), empty without.
#[pg_extern(stable, parallel_restricted)]
fn current_roles() -> Vec<String> {
    boundary(|| {
        let Ok((tenant, user, mut roles)) = verified(|c| (c.t, c.u.clone(), c.r.clone())) else {
            return Ok(Vec::new());
        };
        if let Some(u) = user {
            roles.extend(members::member_roles(tenant, &u)?.iter().cloned());
        }
        roles.sort();
        roles.dedup();
        Ok(roles)
    })
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
    require_any_role(&[c"tenant_admin"], "manage JWT keys")?;
    names::kid(kid)?;
    let parsed = jwt::parse_alg(alg)?;
    jwt::parse_key(parsed, key)?;
    as_owner(|| {
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
        event(
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
    kid: Option<&str>,
    alg: Option<&str>,
    key: Option<&str>,
    issuer: default!(Option<&str>, "NULL"),
    audience: default!(Option<&str>, "NULL"),
    valid_from: default!(Option<TimestampWithTimeZone>, "NULL"),
    valid_until: default!(Option<TimestampWithTimeZone>, "NULL"),
) {
    boundary(|| {
        add_key_impl(
            required("kid", kid)?,
            required("alg", alg)?,
            required("key", key)?,
            issuer,
            audience,
            valid_from,
            valid_until,
        )
    })
}

fn deactivate_key_impl(kid: &str) -> MtResult<bool> {
    require_any_role(&[c"tenant_admin"], "manage JWT keys")?;
    as_owner(|| {
        let n = Spi::get_one_with_args::<i64>(
            "WITH u AS (UPDATE tenant.jwt_keys SET active = false WHERE kid = $1 AND active RETURNING 1) \
             SELECT count(*) FROM u",
            &[kid.into()],
        )?;
        let done = n.unwrap_or(0) > 0;
        if done {
            event(None, "jwt_key.deactivated", serde_json::json!({"kid": kid}))?;
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
    let (issuer, audience) = as_owner(|| {
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
    as_owner(|| {
        Spi::run_with_args(
            "UPDATE tenant.jwt_keys SET valid_until = now() + make_interval(secs => $2) \
             WHERE kid = $1 AND (valid_until IS NULL OR valid_until > now() + make_interval(secs => $2))",
            &[old_kid.into(), (overlap_seconds as f64).into()],
        )?;
        event(
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

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::api::test_support::{one, run};
    use pgrx::prelude::*;

    #[pg_test]
    fn authenticate_hs256_round_trip() {
        use jsonwebtoken::{encode, EncodingKey, Header};
        let id = one::<pgrx::Uuid>("SELECT tenant.create('acme', 'Acme')").unwrap();
        let secret = "pg-test-hmac-secret-0123456789abcdef!!";
        run(&format!(
            "SELECT tenant.add_jwt_key('k1', 'HS256', '{secret}')"
        ));
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 300;
        let mut h = Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = Some("k1".into());
        let claims = serde_json::json!({"tenant_id": "acme", "sub": "alice", "exp": exp});
        let token = encode(&h, &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap();
        let got = one::<pgrx::Uuid>(&format!("SELECT tenant.authenticate('{token}')")).unwrap();
        assert_eq!(got, id);
        assert_eq!(
            one::<pgrx::Uuid>("SELECT tenant.current_tenant()"),
            Some(id)
        );
        assert_eq!(
            one::<String>("SELECT tenant.current_user_id()"),
            Some("alice".into())
        );
        assert_eq!(
            one::<String>("SELECT tenant.current_claims()->>'sub'"),
            Some("alice".into())
        );
    }

    #[pg_test(error = "invalid token")]
    fn authenticate_rejects_garbage() {
        run("SELECT tenant.authenticate('not.a.jwt')");
    }
}
