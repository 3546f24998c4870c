"""JWT attacks against the real app (JWT mode) and a real redis-server, beyond tests/app/test_forgery.py.

test_forgery.py already covers: a token signed by an unknown RSA key, alg "none", HS256 keyed with the
base64 DER text of the public key, tampered body, another webhook URL, expired, iat in the future,
missing exp, garbage and a stripped signature. Here: the other spellings of algorithm confusion, key
material smuggled in through the header (jwk, jku, x5u, x5c, kid), the algorithm pinned even for the
genuine key, and replays (same token and body again, through another app instance).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import jwt
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from tests.support.gong import GongSigner, call_payload, new_private_key

pytestmark = pytest.mark.redis
ATTACKER = new_private_key()
BODY = orjson.dumps(call_payload("9100000000000000001"))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hmac_token(header: dict[str, Any], claims: dict[str, Any], secret: bytes, digest: Any = hashlib.sha256) -> str:
    signing_input = f"{_b64url(orjson.dumps(header))}.{_b64url(orjson.dumps(claims))}"
    return f"{signing_input}.{_b64url(hmac.new(secret, signing_input.encode(), digest).digest())}"


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: str = "") -> str:
    return f"{_b64url(orjson.dumps(header))}.{_b64url(orjson.dumps(claims))}.{signature}"


def _jwk(key: Any, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


def _self_signed_cert(key: Any) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gong.io")])
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))


class KeyServer:
    """Serves the attacker's JWKS and certificate; records every request (there must be none)."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        jwks = json.dumps({"keys": [_jwk(ATTACKER, "attacker")]}).encode()
        pem = _self_signed_cert(ATTACKER).public_bytes(serialization.Encoding.PEM)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                body = jwks if self.path.endswith(".json") else pem
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def key_server() -> Iterator[KeyServer]:
    server = KeyServer()
    yield server
    server.stop()


def forged(case: str, signer: GongSigner, keys: KeyServer) -> str:
    claims = signer.claims(BODY)
    genuine_pub = signer.private_key.public_key()
    pem = genuine_pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    der = genuine_pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pkcs1 = genuine_pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    if case == "hs256_pem_public_key":  # the classic: HMAC keyed with the PEM text of the RSA public key
        return _hmac_token({"alg": "HS256", "typ": "JWT"}, claims, pem)
    if case == "hs256_pem_public_key_no_newline":
        return _hmac_token({"alg": "HS256", "typ": "JWT"}, claims, pem.rstrip(b"\n"))
    if case == "hs256_pkcs1_public_key":
        return _hmac_token({"alg": "HS256", "typ": "JWT"}, claims, pkcs1)
    if case == "hs256_der_public_key":
        return _hmac_token({"alg": "HS256", "typ": "JWT"}, claims, der)
    if case == "hs512_pem_public_key":
        return _hmac_token({"alg": "HS512", "typ": "JWT"}, claims, pem, hashlib.sha512)
    if case in ("alg_None", "alg_NONE", "alg_nOnE"):
        return _unsigned({"alg": case.split("_")[1], "typ": "JWT"}, claims)
    if case == "alg_none_keeping_the_rs256_signature":
        genuine_sig = signer.token(BODY).rsplit(".", 1)[1]
        return _unsigned({"alg": "none", "typ": "JWT"}, claims, genuine_sig)
    if case == "alg_empty":
        return _unsigned({"alg": "", "typ": "JWT"}, claims)
    if case == "no_alg_header":
        return _unsigned({"typ": "JWT"}, claims, signer.token(BODY).rsplit(".", 1)[1])
    if case == "embedded_jwk":  # the token carries its own verification key
        return jwt.encode(claims, ATTACKER, algorithm="RS256", headers={"jwk": _jwk(ATTACKER, "attacker")})
    if case == "jku_to_attacker_jwks":
        return jwt.encode(claims, ATTACKER, algorithm="RS256",
                          headers={"jku": f"{keys.url}/jwks.json", "kid": "attacker"})
    if case == "x5u_to_attacker_certificate":
        return jwt.encode(claims, ATTACKER, algorithm="RS256", headers={"x5u": f"{keys.url}/cert.pem"})
    if case == "x5c_attacker_certificate":
        cert = _self_signed_cert(ATTACKER).public_bytes(serialization.Encoding.DER)
        return jwt.encode(claims, ATTACKER, algorithm="RS256", headers={"x5c": [base64.b64encode(cert).decode()]})
    if case == "kid_path_traversal_hs256_empty_key":  # kid read as a file path; /dev/null = empty HMAC key
        return _hmac_token({"alg": "HS256", "kid": "../../../../../../dev/null"}, claims, b"")
    if case == "kid_sql_injection_hs256":
        return _hmac_token({"alg": "HS256", "kid": "x' UNION SELECT 'k' -- "}, claims, b"k")
    if case == "ps256_with_the_genuine_key":  # a valid signature, but not the algorithm Gong uses
        return jwt.encode(claims, signer.private_key, algorithm="PS256")
    if case == "rs512_with_the_genuine_key":
        return jwt.encode(claims, signer.private_key, algorithm="RS512")
    raise AssertionError(case)


CASES = [
    "hs256_pem_public_key", "hs256_pem_public_key_no_newline", "hs256_pkcs1_public_key", "hs256_der_public_key",
    "hs512_pem_public_key", "alg_None", "alg_NONE", "alg_nOnE", "alg_none_keeping_the_rs256_signature", "alg_empty",
    "no_alg_header", "embedded_jwk", "jku_to_attacker_jwks", "x5u_to_attacker_certificate",
    "x5c_attacker_certificate", "kid_path_traversal_hs256_empty_key", "kid_sql_injection_hs256",
    "ps256_with_the_genuine_key", "rs512_with_the_genuine_key",
]


@pytest.mark.parametrize("case", CASES)
def test_forged_token_is_refused(case: str, app: Any, signer: GongSigner, key_server: KeyServer, redis_server: Any):
    before = len(key_server.requests)
    response = app.post(BODY, {"Authorization": forged(case, signer, key_server),
                               "Content-Type": "application/json"})
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == "unauthorized" and body["reason"] in {"bad_algorithm", "bad_signature", "malformed_token"}
    assert redis_server.client().xlen(app.settings.redis_stream) == 0
    assert len(key_server.requests) == before, "the app fetched a key named by the token"


def test_key_locating_headers_are_ignored_on_a_genuine_token(app: Any, signer: GongSigner, key_server: KeyServer,
                                                             redis_server: Any):
    """kid/jku/x5u do not select or fetch keys: the configured keys decide, whatever the header says."""
    headers = {"kid": "../../etc/passwd", "jku": f"{key_server.url}/jwks.json", "x5u": f"{key_server.url}/c.pem"}
    token = jwt.encode(signer.claims(BODY), signer.private_key, algorithm="RS256", headers=headers)
    response = app.post(BODY, {"Authorization": token, "Content-Type": "application/json"})
    assert response.status_code == 202, response.text
    assert key_server.requests == []
    assert redis_server.client().xlen(app.settings.redis_stream) == 1


def test_replay_of_the_same_token_and_body_is_a_duplicate(app: Any, signer: GongSigner, redis_server: Any,
                                                          make_settings: Any, start_app: Any):
    token = signer.token(BODY)
    first = app.post(BODY, {"Authorization": token})
    assert first.status_code == 202
    for auth in (token, f"Bearer {token}", f"bearer  {token}"):
        again = app.post(BODY, {"Authorization": auth})
        assert again.status_code == 200 and again.json()["status"] == "duplicate", again.text
    # Another replica (same Redis) sees the same dedup record.
    other = start_app(app.settings, run_loader=False)
    assert other.post(BODY, {"Authorization": token}).json()["status"] == "duplicate"
    assert redis_server.client().xlen(app.settings.redis_stream) == 1
    # The captured token cannot carry another body, even one that differs only in whitespace.
    assert app.post(BODY + b" ", {"Authorization": token}).json()["reason"] == "body_mismatch"
