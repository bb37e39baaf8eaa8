//! Mint a JWT for the benches: `cargo run -q --example mint_jwt -- ALG KID KEY TENANT SUB TTL`
//! KEY is an HMAC secret for HS*, else a path to a PEM private key.
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    assert_eq!(a.len(), 6, "usage: ALG KID KEY TENANT SUB TTL_SECONDS");
    let alg: Algorithm = a[0].parse().expect("algorithm");
    let key = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            EncodingKey::from_secret(a[2].as_bytes())
        }
        Algorithm::ES256 | Algorithm::ES384 => {
            EncodingKey::from_ec_pem(&std::fs::read(&a[2]).unwrap()).unwrap()
        }
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&std::fs::read(&a[2]).unwrap()).unwrap(),
        _ => EncodingKey::from_rsa_pem(&std::fs::read(&a[2]).unwrap()).unwrap(),
    };
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + a[5].parse::<u64>().unwrap();
    let mut h = Header::new(alg);
    h.kid = Some(a[1].clone());
    let claims =
        serde_json::json!({"tenant_id": a[3], "sub": a[4], "roles": ["member"], "exp": exp});
    println!("{}", encode(&h, &claims, &key).unwrap());
}
