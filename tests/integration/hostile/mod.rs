//! Hostile client suite: a real cluster reached through the `postgres` crate by the roles of
//! the common fixtures (mt_it_evil is the attacker: only PUBLIC's CONNECT and TEMP), each
//! test in a fresh database. Every attack vector is numbered `// Vn:` so that the docs can
//! cite it, and each asserts its exact outcome (rows, values, SQLSTATE). Vector classes, by
//! file:
//!
//! - `surface`: execute surface: exactly the documented functions are executable by PUBLIC;
//!   internal helpers, counters and management functions are not (V1-V6);
//!   registration: isolate/unisolate/protect need ownership, limit_rows/audit need
//!   tenant_admin and ownership, extension and catalog tables are refused (V7-V12);
//!   temporary tables and foreign chains: refused everywhere, nothing lands in any tenant's
//!   counters or audit chain (V13-V18);
//!   borrowed trigger functions: the extension's trigger functions attached by an attacker
//!   to an unregistered table refuse to run (V19-V23);
//! - `escalation`: privilege escalation: hostile column and resource names under both
//!   `standard_conforming_strings` values, user-defined casts to json/jsonb/text reached from
//!   the row triggers, shadowing functions, operators and tables in `public` and `pg_temp`
//!   (V24-V35);
//! - `tables`: partitions and inheritance (V36-V43); parallel plans (V55-V56);
//!   DROP EXTENSION CASCADE fails closed (V57);
//! - `cross_tenant`: audit log reads: an entry is only as readable as its table (V44-V47);
//!   cross-tenant reads through the extension's own functions and tables (V102-V106);
//!   RLS side channels and write tricks: permissive policies, definer views, leaky functions,
//!   error probes, statistics, COPY, ON CONFLICT, writable CTEs, TRUNCATE, direct writes to
//!   the extension's tables and DDL by the attacker (V107-V117);
//! - `context`: stale tokens of suspended and deleted tenants, read-only contexts (V48-V54);
//!   context forgery: garbage, tampering, splicing, foreign, guessed keys, expiry (V62-V72);
//!   session tricks: placeholders before the library loads, RESET/DISCARD, SET ROLE,
//!   savepoints, superuser-only settings (V73-V82);
//! - `quotas`: quota arithmetic: overflow, zero and negative amounts (V58-V61);
//!   concurrency (V101);
//! - `identifiers`: hostile identifiers, NUL bytes and overlong arguments (V83-V87);
//! - `auth`: JWT attacks (V88-V95); invitations (V96-V100).

mod auth;
mod context;
mod cross_tenant;
mod escalation;
mod identifiers;
mod quotas;
mod surface;
mod tables;

use crate::common::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use postgres::Client;
use serde_json::json;

/// The RLS flags (enabled, forced) of a relation.
#[track_caller]
fn rls_flags(db: &Db, rel: &str) -> (bool, bool) {
    let mut su = db.as_role("postgres");
    let row = su
        .query_one(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = $1::text::regclass",
            &[&rel],
        )
        .unwrap_or_else(|e| panic!("flags of {rel}: {e:?}"));
    (row.get(0), row.get(1))
}

/// The id of the database's context secret, which every token carries (`k`).
fn key_id(c: &mut Client) -> String {
    let v: String = c
        .query_one("SELECT key_id::text FROM tenant.secret", &[])
        .unwrap()
        .get(0);
    v
}

/// A context token minted by the test itself (same format as src/token.rs) with any key.
fn mint_with(secret: &[u8], payload: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut out = String::from("mt1.");
    out.push_str(&B64.encode(payload));
    let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret).unwrap();
    m.update(out.as_bytes());
    let tag = m.finalize().into_bytes();
    out.push('.');
    out.push_str(&B64.encode(tag));
    out
}

fn mint_claims(secret: &[u8], tenant: &str, key_id: &str) -> String {
    let now = unix_now();
    let claims = json!({"t": tenant, "iat": now, "exp": now + 600, "k": key_id});
    mint_with(secret, &serde_json::to_vec(&claims).unwrap())
}
