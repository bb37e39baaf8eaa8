//! Where a request lands (SQL): custom domains, resolution of a request to a tenant,
//! branding, onboarding and the outbox of events for workers outside the database.
//! The rules are in core::site (pure).

use crate::api::rbac::{caller, permitted, Caller};
use crate::core::error::{Code, MtError, MtResult};
use crate::core::site;
use crate::gucs::base_domain;
use crate::pg::convert::{from_pg_uuid, pg_uuid};
use crate::pg::owner::as_owner;
use crate::pg::raise::{boundary, required as need};
use crate::pg::roles::require_any_role;
use crate::pg::spi::{read_one, write_count, write_first};
use crate::state::audit::event;
use crate::state::site::{alive, emit, require_gate, tenant_by_host};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use serde_json::{json, Map, Value};

fn worker() -> MtResult<()> {
    require_any_role(&[c"tenant_service", c"tenant_admin"], "manage domains")
}

// ------------------------------------------------------------------------------------
// Domains

fn slug_of(tenant: uuid::Uuid) -> MtResult<String> {
    as_owner(|| {
        read_one::<String>(
            "SELECT slug FROM tenant.tenants WHERE id = $1",
            &[pg_uuid(tenant).into()],
        )
    })?
    .ok_or_else(|| MtError::tenant_not_found(&tenant.to_string()))
}

fn records(host: &str, token: &str, slug: &str) -> Value {
    let base = base_domain();
    let mut recs =
        vec![json!({"type": "TXT", "name": site::txt_record_name(host), "value": token})];
    if !base.is_empty() {
        recs.push(json!({"type": "CNAME", "name": host, "value": format!("{slug}.{base}")}));
    }
    Value::Array(recs)
}

fn add_domain_impl(hostname: &str) -> MtResult<Value> {
    let c = permitted("domains", "manage", "manage domains")?;
    let host = site::custom_hostname(hostname)?;
    let base = base_domain();
    if site::under_base(&host, &base) {
        return Err(MtError::invalid(format!(
            "invalid hostname \"{host}\": it is under the base domain {base}"
        ))
        .hint("Subdomains of the base domain resolve by slug; a custom domain is a domain of the tenant's own."));
    }
    require_gate(c.tenant, &["custom_domains", "custom_domain"], None)?;
    let slug = slug_of(c.tenant)?;
    as_owner(|| {
        // a hostname another tenant verified is taken (without saying whose); unverified
        // claims of several tenants may wait side by side: the one whose token the DNS
        // worker finds wins (mark_domain_verified), so a claim cannot squat a hostname
        let taken = read_one::<bool>(
            "SELECT true FROM tenant.domains WHERE hostname = $1 AND verified_at IS NOT NULL AND tenant_id <> $2",
            &[host.as_str().into(), pg_uuid(c.tenant).into()],
        )?;
        if taken == Some(true) {
            return Err(
                MtError::invalid(format!("hostname \"{host}\" is already registered"))
                    .hint("A hostname belongs to one tenant; remove it there first."),
            );
        }
        let fresh = format!("mt-verify-{}", uuid::Uuid::new_v4().simple());
        let (token, new) = write_first(
            "WITH ins AS (INSERT INTO tenant.domains (hostname, tenant_id, verification_token) \
                          VALUES ($1, $2, $3) ON CONFLICT (hostname, tenant_id) DO NOTHING \
                          RETURNING verification_token, true AS new) \
             SELECT verification_token, new FROM ins \
             UNION ALL SELECT verification_token, false FROM tenant.domains \
               WHERE hostname = $1 AND tenant_id = $2 AND NOT EXISTS (SELECT 1 FROM ins)",
            &[
                host.as_str().into(),
                pg_uuid(c.tenant).into(),
                fresh.as_str().into(),
            ],
            |r| match r {
                Some(r) => Ok((r.get::<String>(1)?, r.get::<bool>(2)?.unwrap_or(false))),
                None => Ok((None, false)),
            },
        )?;
        // (no row: the same tenant's concurrent call made it meanwhile)
        let token = token.ok_or_else(|| {
            MtError::invalid(format!(
                "hostname \"{host}\" is being registered, try again"
            ))
        })?;
        if new {
            event(Some(c.tenant), "domain.added", json!({"hostname": host}))?;
            emit(
                "domain.added",
                Some(c.tenant),
                json!({"hostname": host, "slug": slug}),
            )?;
        }
        Ok(json!({"hostname": host, "verified": false, "records": records(&host, &token, &slug)}))
    })
}

/// Register a custom domain for the current tenant (plan feature `custom_domains`); returns
/// the DNS records to create: a TXT record holding the verification token and a CNAME to
/// `<slug>.<multitenant.base_domain>`. It resolves once a worker marks it verified.
#[pg_extern(volatile, parallel_unsafe)]
fn add_domain(hostname: &str) -> pgrx::JsonB {
    boundary(|| add_domain_impl(hostname).map(pgrx::JsonB))
}

/// The current tenant's domain `hostname`, or MT030 (another tenant's is not named).
fn own_domain(c: &Caller, hostname: &str) -> MtResult<String> {
    let host = site::custom_hostname(hostname)?;
    let found = as_owner(|| {
        read_one::<bool>(
            "SELECT true FROM tenant.domains WHERE hostname = $1 AND tenant_id = $2",
            &[host.as_str().into(), pg_uuid(c.tenant).into()],
        )
    })?;
    match found {
        Some(true) => Ok(host),
        _ => Err(MtError::invalid(format!(
            "\"{host}\" is not a domain of this tenant"
        ))),
    }
}

/// Remove a custom domain of the current tenant.
#[pg_extern(volatile, parallel_unsafe)]
fn remove_domain(hostname: &str) -> bool {
    boundary(|| {
        let c = permitted("domains", "manage", "manage domains")?;
        let host = own_domain(&c, hostname)?;
        as_owner(|| {
            Spi::run_with_args(
                "DELETE FROM tenant.domains WHERE hostname = $1 AND tenant_id = $2",
                &[host.as_str().into(), pg_uuid(c.tenant).into()],
            )?;
            event(Some(c.tenant), "domain.removed", json!({"hostname": host}))?;
            emit("domain.removed", Some(c.tenant), json!({"hostname": host}))?;
            Ok(true)
        })
    })
}

/// For the worker that checks DNS: the TXT record of `hostname` holds `token`. The claim
/// with that token now owns the hostname and resolves; other tenants' claims of it are
/// dropped. MT030 when no claim of the hostname has that token (or another tenant owns it).
/// For tenant_service and tenant_admin.
#[pg_extern(volatile, parallel_unsafe)]
fn mark_domain_verified(hostname: &str, token: &str) -> bool {
    boundary(|| {
        worker()?;
        let host = site::custom_hostname(hostname)?;
        // a hostname another claim owns already stays with it
        let owned_elsewhere = as_owner(|| {
            read_one::<bool>(
                "SELECT true FROM tenant.domains WHERE hostname = $1 AND verified_at IS NOT NULL \
                 AND verification_token <> $2",
                &[host.as_str().into(), token.into()],
            )
        })?;
        if owned_elsewhere == Some(true) {
            return Err(MtError::invalid(format!(
                "\"{host}\" is verified for another claim already"
            ))
            .hint("The tenant that owns it removes it first (tenant.remove_domain)."));
        }
        let t = as_owner(|| {
            write_first(
                "UPDATE tenant.domains SET verified_at = coalesce(verified_at, now()) \
                 WHERE hostname = $1 AND verification_token = $2 RETURNING tenant_id",
                &[host.as_str().into(), token.into()],
                |r| Ok(r.map(|r| r.get::<pgrx::Uuid>(1)).transpose()?.flatten()),
            )
        });
        let t = match t {
            Ok(Some(t)) => from_pg_uuid(t),
            Ok(None) => {
                return Err(MtError::invalid(format!(
                    "no claim of \"{host}\" has that verification token"
                )))
            }
            Err(e) => return Err(e),
        };
        as_owner(|| {
            Spi::run_with_args(
                "DELETE FROM tenant.domains WHERE hostname = $1 AND tenant_id <> $2 AND verified_at IS NULL",
                &[host.as_str().into(), pg_uuid(t).into()],
            )?;
            Ok(())
        })?;
        event(Some(t), "domain.verified", json!({"hostname": host}))?;
        emit("domain.verified", Some(t), json!({"hostname": host}))?;
        Ok(true)
    })
}

/// For the worker that issues certificates: pending, active, failed or expired, with the
/// certificate's expiry. For tenant_service and tenant_admin.
#[pg_extern(volatile, parallel_unsafe)]
fn set_tls_status(
    hostname: Option<&str>,
    status: Option<&str>,
    expires_at: default!(Option<TimestampWithTimeZone>, "NULL"),
) {
    boundary(|| {
        worker()?;
        let host = site::custom_hostname(need("hostname", hostname)?)?;
        let status = need("status", status)?;
        if !matches!(status, "pending" | "active" | "failed" | "expired") {
            return Err(MtError::invalid(format!(
                "invalid TLS status \"{}\"",
                status.escape_default()
            ))
            .hint("One of pending, active, failed, expired."));
        }
        let found = as_owner(|| {
            write_first(
                "UPDATE tenant.domains SET tls_status = $2, tls_expires_at = $3 \
                 WHERE hostname = $1 AND verified_at IS NOT NULL RETURNING 1",
                &[host.as_str().into(), status.into(), expires_at.into()],
                |r| Ok(r.is_some()),
            )
        })?;
        if !found {
            return Err(MtError::invalid(format!(
                "domain \"{host}\" is not registered"
            )));
        }
        Ok(())
    })
}

type PendingRow = (
    name!(hostname, String),
    name!(tenant_id, pgrx::Uuid),
    name!(txt_name, String),
    name!(txt_value, String),
    name!(cname_target, Option<String>),
    name!(verified_at, Option<TimestampWithTimeZone>),
    name!(tls_status, String),
    name!(tls_expires_at, Option<TimestampWithTimeZone>),
);

/// What the DNS/TLS worker has to do: domains not yet verified, without an active
/// certificate, or whose certificate expires within `renew_within`.
#[allow(clippy::type_complexity)] // the row type has to be spelled out for pgrx's SQL
#[pg_extern(stable, parallel_restricted)]
fn pending_domains(
    renew_within: default!(pgrx::datum::Interval, "'30 days'"),
) -> TableIterator<
    'static,
    (
        name!(hostname, String),
        name!(tenant_id, pgrx::Uuid),
        name!(txt_name, String),
        name!(txt_value, String),
        name!(cname_target, Option<String>),
        name!(verified_at, Option<TimestampWithTimeZone>),
        name!(tls_status, String),
        name!(tls_expires_at, Option<TimestampWithTimeZone>),
    ),
> {
    let rows: Vec<PendingRow> = boundary(|| {
        worker()?;
        let base = base_domain();
        as_owner(|| {
            Spi::connect(|c| {
                let mut out = Vec::new();
                for r in c.select(
                    "SELECT d.hostname, d.tenant_id, d.verification_token, t.slug, d.verified_at, d.tls_status, d.tls_expires_at \
                     FROM tenant.domains d JOIN tenant.tenants t ON t.id = d.tenant_id \
                     WHERE t.status <> 'purged' AND (d.verified_at IS NULL OR d.tls_status <> 'active' \
                        OR d.tls_expires_at < now() + $1) ORDER BY d.created_at",
                    None,
                    &[renew_within.into()],
                )? {
                    let host = r.get::<String>(1)?.unwrap_or_default();
                    let slug = r.get::<String>(4)?.unwrap_or_default();
                    out.push((
                        host.clone(),
                        r.get::<pgrx::Uuid>(2)?.ok_or_else(|| MtError::invalid("no tenant"))?,
                        site::txt_record_name(&host),
                        r.get::<String>(3)?.unwrap_or_default(),
                        (!base.is_empty()).then(|| format!("{slug}.{base}")),
                        r.get::<TimestampWithTimeZone>(5)?,
                        r.get::<String>(6)?.unwrap_or_default(),
                        r.get::<TimestampWithTimeZone>(7)?,
                    ));
                }
                Ok(out)
            })
        })
    });
    TableIterator::new(rows)
}

// ------------------------------------------------------------------------------------
// Resolution

/// The tenant of a request: a verified custom domain, else `<slug>.<base_domain>`, else the
/// header. When host and header both name a tenant and they differ: MT006.
pub(crate) fn resolve_impl(
    host: Option<&str>,
    header: Option<&str>,
) -> MtResult<Option<uuid::Uuid>> {
    let by_host = match host {
        Some(h) => tenant_by_host(h, &base_domain())?,
        None => None,
    };
    let by_header = match header.filter(|h| !h.trim().is_empty()) {
        Some(h) => alive(h.trim())?,
        None => None,
    };
    match (
        by_host,
        by_header,
        header.is_some_and(|h| !h.trim().is_empty()),
    ) {
        (Some(a), Some(b), _) if a != b => Err(mismatch(
            "the host and the tenant header name different tenants",
        )),
        (Some(a), None, true) => Err(mismatch(
            "the tenant header names no tenant the host could belong to",
        )
        .detail(format!("host tenant {a}"))),
        (Some(a), _, _) => Ok(Some(a)),
        (None, b, _) => Ok(b),
    }
}

pub(crate) fn mismatch(msg: &str) -> MtError {
    MtError::new(
        Code::RequestMismatch,
        format!("request tenant mismatch: {msg}"),
    )
    .hint("A request names one tenant: by its host, its X-Tenant-ID header and its token alike.")
}

/// The tenant a request is for (NULL when nothing names one): a verified custom domain,
/// else a subdomain `<slug>.<multitenant.base_domain>`, else `header_tenant` (uuid or slug,
/// as an `X-Tenant-ID` header carries it). Case, port and a trailing dot of `host` are
/// ignored. MT006 when the host and the header name different tenants.
#[pg_extern(stable, parallel_restricted)]
fn resolve(
    host: Option<&str>,
    header_tenant: default!(Option<&str>, "NULL"),
) -> Option<pgrx::Uuid> {
    boundary(|| Ok(resolve_impl(host, header_tenant)?.map(pg_uuid)))
}

/// `set_context` for the tenant `resolve(host, header_tenant)` finds; MT002 when none.
/// For tenant_service.
#[pg_extern(volatile, parallel_unsafe)]
fn set_context_for_host(
    host: Option<&str>,
    user_id: default!(Option<&str>, "NULL"),
    header_tenant: default!(Option<&str>, "NULL"),
    is_local: default!(Option<bool>, true),
    client_ip: default!(Option<&str>, "NULL"),
) -> pgrx::Uuid {
    boundary(|| {
        require_any_role(&[c"tenant_service"], "set the tenant context")?;
        let host = need("host", host)?;
        let id = resolve_impl(Some(host), header_tenant)?.ok_or_else(|| {
            MtError::new(
                Code::TenantNotFound,
                format!("no tenant for host \"{}\"", host.escape_default()),
            )
            .hint(
                "A verified custom domain (tenant.add_domain) or <slug>.<multitenant.base_domain>.",
            )
        })?;
        crate::api::context::set_context_impl(
            &id.to_string(),
            user_id,
            need("is_local", is_local)?,
            client_ip,
        )
        .map(pg_uuid)
    })
}

// ------------------------------------------------------------------------------------
// Branding

fn branding_of(tenant: uuid::Uuid) -> MtResult<Map<String, Value>> {
    let b = as_owner(|| {
        read_one::<pgrx::JsonB>(
            "SELECT branding FROM tenant.branding WHERE tenant_id = $1",
            &[pg_uuid(tenant).into()],
        )
    })?;
    Ok(match b {
        Some(pgrx::JsonB(Value::Object(m))) => m,
        _ => Map::new(),
    })
}

fn set_branding_impl(patch: &Value) -> MtResult<Value> {
    let c = permitted("branding", "manage", "change the branding")?;
    // concurrent changes of one tenant's branding take turns (none is lost)
    as_owner(|| {
        Spi::run_with_args(
            "INSERT INTO tenant.branding (tenant_id) VALUES ($1) ON CONFLICT (tenant_id) DO NOTHING",
            &[pg_uuid(c.tenant).into()],
        )?;
        write_first(
            "SELECT 1 FROM tenant.branding WHERE tenant_id = $1 FOR UPDATE",
            &[pg_uuid(c.tenant).into()],
            |_| Ok(()),
        )
    })?;
    let merged = site::merge_branding(&branding_of(c.tenant)?, patch)?;
    require_gate(c.tenant, &["custom_branding"], Some("no_custom_branding"))?;
    let merged = Value::Object(merged);
    as_owner(|| {
        Spi::run_with_args(
            "INSERT INTO tenant.branding (tenant_id, branding) VALUES ($1, $2) \
             ON CONFLICT (tenant_id) DO UPDATE SET branding = EXCLUDED.branding, updated_at = now()",
            &[pg_uuid(c.tenant).into(), pgrx::JsonB(merged.clone()).into()],
        )?;
        let keys: Vec<&String> = patch
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        event(Some(c.tenant), "branding.changed", json!({"keys": keys}))?;
        // caches (CDN, login pages) listen on multitenant_events
        emit(
            "branding.changed",
            Some(c.tenant),
            json!({"slug": slug_of(c.tenant)?}),
        )?;
        Ok(merged)
    })
}

/// Change the current tenant's branding: the keys given are checked and set (null removes
/// one), the others kept; returns the whole record. Plan feature `custom_branding`, refused
/// by the restriction `no_custom_branding`. Notifies `multitenant_events`.
#[pg_extern(volatile, parallel_unsafe)]
fn set_branding(branding: pgrx::JsonB) -> pgrx::JsonB {
    boundary(|| set_branding_impl(&branding.0).map(pgrx::JsonB))
}

/// The branding of the tenant a login page is served for (by host, before any login):
/// `{slug, name, branding}`, or NULL when no active tenant has that host.
#[pg_extern(stable, parallel_restricted)]
fn get_branding(host: &str) -> Option<pgrx::JsonB> {
    boundary(|| {
        let Some(t) = tenant_by_host(host, &base_domain())? else {
            return Ok(None);
        };
        let row = as_owner(|| {
            read_one::<pgrx::JsonB>(
                "SELECT jsonb_build_object('slug', t.slug, 'name', t.name, \
                        'branding', coalesce(b.branding, '{}'::jsonb)) \
                 FROM tenant.tenants t LEFT JOIN tenant.branding b ON b.tenant_id = t.id \
                 WHERE t.id = $1 AND t.status IN ('trial', 'active', 'suspended')",
                &[pg_uuid(t).into()],
            )
        })?;
        Ok(row)
    })
}

// ------------------------------------------------------------------------------------
// Onboarding

/// Define (or redefine) an onboarding step every tenant goes through. For tenant_admin.
#[pg_extern(volatile, parallel_unsafe)]
fn define_onboarding_step(
    step: Option<&str>,
    title: Option<&str>,
    description: default!(Option<&str>, "NULL"),
    required: default!(Option<bool>, false),
    position: default!(Option<i32>, 0),
) {
    boundary(|| {
        require_any_role(&[c"tenant_admin"], "define onboarding steps")?;
        let step = need("step", step)?;
        crate::core::names::plain("onboarding step", step)?;
        let title = need("title", title)?;
        if title.trim().is_empty() || title.chars().count() > 200 {
            return Err(MtError::invalid("title must be 1-200 characters"));
        }
        if description.is_some_and(|d| d.chars().count() > 2000) {
            return Err(MtError::invalid(
                "description must be at most 2000 characters",
            ));
        }
        as_owner(|| {
            Spi::run_with_args(
                "INSERT INTO tenant.onboarding_steps (step, title, description, required, position) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (step) DO UPDATE SET title = EXCLUDED.title, \
                 description = EXCLUDED.description, required = EXCLUDED.required, position = EXCLUDED.position",
                &[
                    step.into(),
                    title.into(),
                    description.into(),
                    need("required", required)?.into(),
                    need("position", position)?.into(),
                ],
            )?;
            Ok(())
        })
    })
}

/// Drop an onboarding step (and every tenant's progress on it). For tenant_admin.
#[pg_extern(volatile, parallel_unsafe)]
fn drop_onboarding_step(step: &str) -> bool {
    boundary(|| {
        require_any_role(&[c"tenant_admin"], "define onboarding steps")?;
        as_owner(|| {
            Ok(write_count(
                "WITH d AS (DELETE FROM tenant.onboarding_steps WHERE step = $1 RETURNING 1) SELECT pg_catalog.count(*) FROM d",
                &[step.into()],
            )? > 0)
        })
    })
}

/// Mark an onboarding step done for the current tenant (again: updates its data). For the
/// backend and members allowed onboarding/update.
#[pg_extern(volatile, parallel_unsafe)]
fn complete_step(step: &str, data: default!(Option<pgrx::JsonB>, "NULL")) -> bool {
    boundary(|| {
        let c = permitted("onboarding", "update", "complete onboarding steps")?;
        if data
            .as_ref()
            .is_some_and(|d| d.0.to_string().len() > 64 * 1024)
        {
            return Err(MtError::invalid("step data is larger than 64 KiB"));
        }
        as_owner(|| {
            let known = read_one::<bool>(
                "SELECT true FROM tenant.onboarding_steps WHERE step = $1",
                &[step.into()],
            )?;
            if known != Some(true) {
                return Err(MtError::invalid(format!(
                    "onboarding step \"{}\" does not exist",
                    step.escape_default()
                )));
            }
            Spi::run_with_args(
                "INSERT INTO tenant.onboarding_progress (tenant_id, step, completed_by, data) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant_id, step) DO UPDATE SET data = EXCLUDED.data, completed_by = EXCLUDED.completed_by",
                &[pg_uuid(c.tenant).into(), step.into(), c.user.as_deref().into(), data.into()],
            )?;
            event(
                Some(c.tenant),
                "onboarding.step_completed",
                json!({"step": step}),
            )?;
            Ok(true)
        })
    })
}

/// The onboarding checklist of the current tenant, in order.
#[allow(clippy::type_complexity)] // the row type has to be spelled out for pgrx's SQL
#[pg_extern(stable, parallel_restricted)]
fn onboarding() -> TableIterator<
    'static,
    (
        name!(step, String),
        name!(title, String),
        name!(description, Option<String>),
        name!(required, bool),
        name!(completed, bool),
        name!(completed_at, Option<TimestampWithTimeZone>),
        name!(completed_by, Option<String>),
    ),
> {
    type Row = (
        String,
        String,
        Option<String>,
        bool,
        bool,
        Option<TimestampWithTimeZone>,
        Option<String>,
    );
    let rows: Vec<Row> = boundary(|| {
        let c = caller()?;
        as_owner(|| {
            Spi::connect(|s| {
                let mut out = Vec::new();
                for r in s.select(
                    "SELECT s.step, s.title, s.description, s.required, p.step IS NOT NULL, p.completed_at, p.completed_by \
                     FROM tenant.onboarding_steps s LEFT JOIN tenant.onboarding_progress p \
                       ON p.step = s.step AND p.tenant_id = $1 ORDER BY s.position, s.step",
                    None,
                    &[pg_uuid(c.tenant).into()],
                )? {
                    out.push((
                        r.get::<String>(1)?.unwrap_or_default(),
                        r.get::<String>(2)?.unwrap_or_default(),
                        r.get::<String>(3)?,
                        r.get::<bool>(4)?.unwrap_or(false),
                        r.get::<bool>(5)?.unwrap_or(false),
                        r.get::<TimestampWithTimeZone>(6)?,
                        r.get::<String>(7)?,
                    ));
                }
                Ok(out)
            })
        })
    });
    TableIterator::new(rows)
}

// ------------------------------------------------------------------------------------
// Outbox

/// Take up to `max` queued events (oldest first) for delivery outside the database: they are
/// deleted in the caller's transaction, so a worker that fails rolls back and they come back.
/// Concurrent workers take disjoint events. For tenant_service and tenant_admin.
#[pg_extern(volatile, parallel_unsafe)]
fn take_events(
    max: default!(i32, 100),
) -> TableIterator<
    'static,
    (
        name!(id, i64),
        name!(event, String),
        name!(tenant_id, Option<pgrx::Uuid>),
        name!(payload, pgrx::JsonB),
        name!(created_at, TimestampWithTimeZone),
    ),
> {
    type Row = (
        i64,
        String,
        Option<pgrx::Uuid>,
        pgrx::JsonB,
        TimestampWithTimeZone,
    );
    let rows: Vec<Row> = boundary(|| {
        require_any_role(&[c"tenant_service", c"tenant_admin"], "take events")?;
        if !(1..=10_000).contains(&max) {
            return Err(MtError::invalid("max must be 1-10000"));
        }
        as_owner(|| {
            Spi::connect_mut(|s| {
                let mut out = Vec::new();
                for r in s.update(
                    "WITH taken AS (DELETE FROM tenant.outbox WHERE id IN \
                       (SELECT id FROM tenant.outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) \
                       RETURNING id, event, tenant_id, payload, created_at) \
                     SELECT * FROM taken ORDER BY id",
                    None,
                    &[max.into()],
                )? {
                    out.push((
                        r.get::<i64>(1)?.unwrap_or_default(),
                        r.get::<String>(2)?.unwrap_or_default(),
                        r.get::<pgrx::Uuid>(3)?,
                        r.get::<pgrx::JsonB>(4)?.unwrap_or(pgrx::JsonB(Value::Null)),
                        r.get::<TimestampWithTimeZone>(5)?
                            .ok_or_else(|| MtError::invalid("event without a time"))?,
                    ));
                }
                Ok(out)
            })
        })
    });
    TableIterator::new(rows)
}
