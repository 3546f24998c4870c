"""Must-show 2: every forged request is refused with 401 and nothing is enqueued."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import jwt
import orjson
import pytest

from tests.support.gong import GongSigner, call_payload, new_private_key, public_key_b64

BODY = orjson.dumps(call_payload("9000000000000000001"))
UNKNOWN_KEY = new_private_key()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged_headers(case: str, signer: GongSigner, other_key) -> dict[str, str]:
    body_hash = hashlib.sha256(BODY).hexdigest()
    now = int(time.time())
    claims = {"webhook_url": signer.webhook_url, "body_sha256": body_hash, "iat": now, "exp": now + 300}
    if case == "wrong_key":
        # other_key's public half *is* configured (rotation overlap), so a third, unknown key signs.
        token = GongSigner(UNKNOWN_KEY, signer.webhook_url).token(BODY)
    elif case == "alg_none":
        token = jwt.encode(claims, key=None, algorithm="none")
    elif case == "hs256_public_key_as_secret":
        secret = public_key_b64(signer.private_key).encode()
        header = _b64url(orjson.dumps({"alg": "HS256", "typ": "JWT"}))
        payload = _b64url(orjson.dumps(claims))
        sig = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        token = f"{header}.{payload}.{_b64url(sig)}"
    elif case == "tampered_body":
        token = signer.token(BODY.replace(b"Discovery", b"Tampered"))
    elif case == "wrong_webhook_url":
        token = signer.token(BODY, webhook_url="https://evil.example.com/webhooks/gong")
    elif case == "expired":
        token = signer.token(BODY, iat=now - 4000, exp=now - 3600)
    elif case == "iat_in_future":
        token = signer.token(BODY, iat=now + 3600, exp=now + 7200)
    elif case == "no_exp":
        token = jwt.encode({k: v for k, v in claims.items() if k != "exp"}, signer.private_key, algorithm="RS256")
    elif case == "missing_header":
        return {"Content-Type": "application/json"}
    elif case == "garbage":
        token = "not.a.jwt"
    elif case == "signature_stripped":
        token = signer.token(BODY).rsplit(".", 1)[0] + "."
    else:
        raise AssertionError(case)
    return {"Authorization": token, "Content-Type": "application/json"}


CASES = [
    "wrong_key", "alg_none", "hs256_public_key_as_secret", "tampered_body", "wrong_webhook_url",
    "expired", "iat_in_future", "no_exp", "missing_header", "garbage", "signature_stripped",
]


@pytest.fixture
def jwt_app(make_settings, start_app):
    return start_app(make_settings(), run_loader=False)


@pytest.mark.parametrize("case", CASES)
def test_forged_jwt_is_refused_and_not_enqueued(case, jwt_app, signer, other_key, redis_server):
    response = jwt_app.post(BODY, forged_headers(case, signer, other_key))
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "unauthorized"
    assert isinstance(response.json()["reason"], str)
    r = redis_server.client()
    assert r.xlen(jwt_app.settings.redis_stream) == 0
    assert not r.exists(f"{jwt_app.settings.redis_stream}:seen:sales/gong-prod/9000000000000000001")


def test_genuine_request_passes_the_same_checks(jwt_app, signer, redis_server):
    # Control for the forged cases: the same body, properly signed, is accepted.
    response = jwt_app.post(BODY, signer.headers(BODY))
    assert response.status_code == 202
    assert redis_server.client().xlen(jwt_app.settings.redis_stream) == 1


def test_webhook_url_compared_normalised(make_settings, start_app, signer, redis_server):
    app = start_app(make_settings(), run_loader=False)
    # Same URL with different case of host, explicit default port and trailing slash.
    token_headers = signer.headers(BODY, webhook_url="HTTPS://Hooks.Example.com:443/webhooks/gong/")
    assert app.post(BODY, token_headers).status_code == 202


URL_KEYS = "first-url-key-9f8e7d6c5b4a,second-url-key-0a1b2c3d4e5f"


@pytest.fixture
def url_key_app(make_settings, start_app):
    settings = make_settings(GONG_WEBHOOK_AUTH_MODE="url-key", GONG_WEBHOOK_SECRETS=URL_KEYS)
    return start_app(settings, run_loader=False)


@pytest.mark.parametrize(
    "path", [
        "/webhooks/gong/wrong-key", "/webhooks/gong/first-url-key-9f8e7d6c5b4", "/webhooks/gong",
        "/webhooks/gong/first-url-key-9f8e7d6c5b4aX",
    ],
)
def test_url_key_mode_refuses_wrong_key(path, url_key_app, redis_server):
    response = url_key_app.post(BODY, {"Content-Type": "application/json"}, path=path)
    assert response.status_code == 401
    assert response.json()["reason"] == "wrong_url_key"
    assert redis_server.client().xlen(url_key_app.settings.redis_stream) == 0


def test_url_key_mode_accepts_each_configured_key(url_key_app, redis_server):
    for i, key in enumerate(URL_KEYS.split(",")):
        body = orjson.dumps(call_payload(f"77{i}"))
        response = url_key_app.post(body, {"Content-Type": "application/json"}, path=f"/webhooks/gong/{key}")
        assert response.status_code == 202
    assert redis_server.client().xlen(url_key_app.settings.redis_stream) == 2
