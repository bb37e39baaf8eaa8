//! JWT keys (tests/keys), signing, and `tenant.authenticate` as the untrusted API role.

use super::{count, first_column, one_bool, sqlstate, Db};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use postgres::Client;
use serde_json::Value;

/// The secret of the HS256 key `hs1`.
pub const HS_SECRET: &str = "integration-hmac-secret-0123456789abcdef";
/// The secret of the issuer-bound HS256 key `hs_iss` (issuer https://id.example, audience api).
pub const ISS_SECRET: &str = "issuer-bound-secret-0123456789abcdefghij";

/// The asymmetric keys: kid, algorithm, public key file.
pub const PEM_KEYS: [(&str, &str, &str); 5] = [
    ("rs1", "RS256", "rsa_public.pem"),
    ("ps1", "PS256", "rsa_public.pem"),
    ("es1", "ES256", "ec256_public.pem"),
    ("es2", "ES384", "ec384_public.pem"),
    ("ed1", "EdDSA", "ed_public.pem"),
];

pub fn key_file(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Register the HS256 key `hs1` and the asymmetric keys `pem` (of PEM_KEYS) as
/// tenant_admin (a superuser here).
pub fn add_keys(db: &Db, pem: &[(&str, &str, &str)]) {
    let mut su = db.as_role("postgres");
    su.execute(
        "SELECT tenant.add_jwt_key('hs1', 'HS256', $1)",
        &[&HS_SECRET],
    )
    .unwrap();
    for (kid, alg, file) in pem {
        su.execute(
            "SELECT tenant.add_jwt_key($1, $2, $3)",
            &[kid, alg, &key_file(file)],
        )
        .unwrap();
    }
}

/// Register the issuer-bound key `hs_iss`.
pub fn add_issuer_key(db: &Db) {
    db.as_role("postgres")
        .execute(
            "SELECT tenant.add_jwt_key('hs_iss', 'HS256', $1, issuer => 'https://id.example', audience => 'api')",
            &[&ISS_SECRET],
        )
        .unwrap();
}

pub fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    encode(&h, claims, key).unwrap()
}

/// Signed with HS_SECRET, as key `kid`.
pub fn hs(kid: &str, claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        Some(kid),
        &EncodingKey::from_secret(HS_SECRET.as_bytes()),
        claims,
    )
}

/// What an accepted token gave: the tenant's id and slug, and the bodies of public.notes
/// visible in the same transaction.
#[derive(Debug, PartialEq)]
pub struct Entered {
    pub tenant: String,
    pub slug: String,
    pub bodies: Vec<String>,
}

/// `tenant.authenticate(token)` in a transaction, then what it gives; on failure its
/// SQLSTATE, after checking that nothing is left behind (no context, no rows).
pub fn authenticate(c: &mut Client, token: &str) -> Result<Entered, String> {
    let mut tx = c.transaction().unwrap();
    let id: String = match tx.query_one("SELECT tenant.authenticate($1)::text", &[&token]) {
        Ok(row) => row.get(0),
        Err(e) => {
            let code = sqlstate(&e);
            eprintln!("[it] authenticate refused: {e:?}");
            drop(tx);
            assert!(
                one_bool(c, "SELECT tenant.current_tenant() IS NULL"),
                "a failed authenticate left a context"
            );
            assert_eq!(count(c), 0, "a failed authenticate left rows visible");
            return Err(code);
        }
    };
    let cur: Option<String> = tx
        .query_one("SELECT tenant.current_tenant()::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(cur.as_deref(), Some(id.as_str()), "authenticate's tenant");
    let bodies = first_column(
        &tx.query("SELECT body FROM public.notes ORDER BY body", &[])
            .unwrap(),
    );
    let slug: String = tx
        .query_one(
            "SELECT slug FROM tenant.tenants WHERE id = tenant.current_tenant()",
            &[],
        )
        .unwrap()
        .get(0);
    tx.commit().unwrap();
    Ok(Entered {
        tenant: id,
        slug,
        bodies,
    })
}
