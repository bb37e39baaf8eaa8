#!/usr/bin/env python3
"""Mints the fixed JWTs embedded in tests/regress/sql/jwt.sql (standard library only).

HS256/HS384 signing is deterministic, so running this again prints exactly the lines that are
in jwt.sql; paste them there if a token is added or changed:

    python3 tests/regress/mint_jwt.py

The same token can be made with PyJWT (jwt.encode(payload, SECRET, algorithm="HS256",
headers={"kid": "rg-k1"})) or with openssl:

    h=$(printf '%s' '{"alg":"HS256","kid":"rg-k1","typ":"JWT"}' | basenc --base64url -w0 | tr -d '=')
    p=$(printf '%s' '{"exp":4102444800,...}' | basenc --base64url -w0 | tr -d '=')
    s=$(printf '%s' "$h.$p" | openssl dgst -sha256 -hmac "$SECRET" -binary | basenc --base64url -w0 | tr -d '=')
    echo "$h.$p.$s"

exp 4102444800 is 2100-01-01T00:00:00Z: the tokens stay valid for the life of the suite.
"""
import base64
import hashlib
import hmac
import json

SECRET = b"rg-regress-hs256-secret-0123456789abcdef"     # key rg-k1 (and rg-k0, without kid)
ISS_SECRET = b"rg-regress-issuer-secret-0123456789abcdef"  # key rg-k2 (issuer + audience)
OLD_SECRET = b"rg-regress-old-secret-0123456789abcdefgh"   # key rg-k3, rotated to rg-k4
NEW_SECRET = b"rg-regress-new-secret-0123456789abcdefgh"   # key rg-k4
OTHER_SECRET = b"not-the-registered-secret-0123456789abcd"
EXP = 4102444800    # 2100-01-01
PAST = 946684800    # 2000-01-01

H256 = hashlib.sha256
H384 = hashlib.sha384


def b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def enc(obj) -> str:
    return b64(json.dumps(obj, separators=(",", ":"), sort_keys=True).encode())


def mint(header, payload, secret=SECRET, digest=H256, sign=True):
    signing_input = enc(header) + "." + enc(payload)
    if not sign:
        return signing_input + "."
    sig = hmac.new(secret, signing_input.encode(), digest).digest()
    return signing_input + "." + b64(sig)


K1 = {"alg": "HS256", "kid": "rg-k1", "typ": "JWT"}
USER1 = {"sub": "user-1", "tenant_id": "rg-jwt-acme", "roles": ["editor"],
         "email": "u1@example.com", "exp": EXP}

tokens = {
    # verifies with rg-k1; tenant rg-jwt-acme, user user-1 (a member), roles ["editor"]
    "tok_valid": mint(K1, USER1),
    # the same claims for user-2, who is not a member of rg-jwt-acme
    "tok_nonmember": mint(K1, {**USER1, "sub": "user-2"}),
    "tok_expired": mint(K1, {**USER1, "exp": PAST}),
    "tok_not_yet": mint(K1, {**USER1, "nbf": EXP - 86400}),
    "tok_no_exp": mint(K1, {k: v for k, v in USER1.items() if k != "exp"}),
    "tok_no_tenant": mint(K1, {k: v for k, v in USER1.items() if k != "tenant_id"}),
    "tok_bad_roles": mint(K1, {**USER1, "roles": {"admin": True}}),
    "tok_bad_sig": mint(K1, USER1, secret=OTHER_SECRET),
    "tok_alg_none": mint({"alg": "none", "kid": "rg-k1", "typ": "JWT"}, USER1, sign=False),
    "tok_alg_confusion": mint({"alg": "HS384", "kid": "rg-k1", "typ": "JWT"}, USER1, digest=H384),
    "tok_unknown_kid": mint({**K1, "kid": "rg-k9"}, USER1),
    "tok_unknown_tenant": mint(K1, {**USER1, "tenant_id": "rg-jwt-nope"}),
    "tok_suspended": mint(K1, {**USER1, "tenant_id": "rg-jwt-initech"}),
    # no kid: every active key of the header's algorithm is tried
    "tok_no_kid": mint({"alg": "HS256", "typ": "JWT"}, {**USER1, "tenant_id": "rg-jwt-globex", "sub": "anyone"}),
    # tenant named in a nested claim (multitenant.jwt_tenant_claim = 'app_metadata.tenant_id')
    "tok_nested": mint(K1, {"sub": "user-1", "app_metadata": {"tenant_id": "rg-jwt-acme"}, "exp": EXP}),
    # key rg-k2 requires iss https://issuer.example/ and aud api
    "tok_iss_ok": mint({**K1, "kid": "rg-k2"}, {**USER1, "iss": "https://issuer.example/", "aud": "api"}, secret=ISS_SECRET),
    "tok_iss_wrong": mint({**K1, "kid": "rg-k2"}, {**USER1, "iss": "https://evil.example/", "aud": "api"}, secret=ISS_SECRET),
    "tok_aud_wrong": mint({**K1, "kid": "rg-k2"}, {**USER1, "iss": "https://issuer.example/", "aud": "other"}, secret=ISS_SECRET),
    "tok_aud_missing": mint({**K1, "kid": "rg-k2"}, {**USER1, "iss": "https://issuer.example/"}, secret=ISS_SECRET),
    # rotation rg-k3 -> rg-k4
    "tok_old_key": mint({**K1, "kid": "rg-k3"}, USER1, secret=OLD_SECRET),
    "tok_new_key": mint({**K1, "kid": "rg-k4"}, USER1, secret=NEW_SECRET),
}

if __name__ == "__main__":
    for name, tok in tokens.items():
        print(f"\\set {name} '{tok}'")
