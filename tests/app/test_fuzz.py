"""Must-show 8: property-based fuzz of headers and bodies against the real HTTP server and Redis:
never a 5xx, and nothing is enqueued without valid auth (and only a 202 enqueues)."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.gong import GongSigner, new_private_key

STRANGER = new_private_key()
AUTH_KINDS = [
    "absent", "random", "bearer_random", "unknown_key", "alg_none", "hs256", "other_body", "expired",
    "wrong_url", "valid", "valid_bearer",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
call_ids = st.one_of(st.text(max_size=40), st.integers(), st.none(), st.booleans(), st.floats(allow_nan=False))
gong_like = st.builds(
    lambda cid, extra, is_test: {"callData": {"metaData": {"id": cid, **extra}}, "isTest": is_test},
    call_ids, st.dictionaries(st.text(max_size=8), json_values, max_size=3), json_values,
)
bodies = st.one_of(
    st.binary(max_size=600),
    json_values.map(lambda v: json.dumps(v).encode()),
    gong_like.map(lambda v: json.dumps(v).encode()),
    st.text(max_size=200).map(str.encode),
)
header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)


def authorization(kind: str, body: bytes, signer: GongSigner, raw: str) -> str | None:
    now = int(time.time())
    if kind == "absent":
        return None
    if kind == "random":
        return raw
    if kind == "bearer_random":
        return "Bearer " + raw
    if kind == "unknown_key":
        return GongSigner(STRANGER, signer.webhook_url).token(body)
    if kind == "alg_none":
        return jwt.encode(signer.claims(body), key=None, algorithm="none")
    if kind == "hs256":
        return jwt.encode(signer.claims(body), key=b"k" * 32, algorithm="HS256")
    if kind == "other_body":
        return signer.token(body + b" ")
    if kind == "expired":
        return signer.token(body, iat=now - 1000, exp=now - 500)
    if kind == "wrong_url":
        return signer.token(body, webhook_url="https://hooks.example.com/other")
    if kind == "valid":
        return signer.token(body)
    if kind == "valid_bearer":
        return "Bearer " + signer.token(body)
    raise AssertionError(kind)


@pytest.fixture
def fuzz_app(make_settings, start_app):
    return start_app(make_settings(MAX_BODY_BYTES="512"), run_loader=False)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(
    kind=st.sampled_from(AUTH_KINDS), body=bodies, raw=header_text, request_id=header_text,
    content_type=st.sampled_from(["application/json", "text/plain", "", "application/json; charset=latin-1"]),
)
def test_fuzzed_requests_never_5xx_and_never_enqueue_without_auth(
    fuzz_app, signer, redis_server, kind, body, raw, request_id, content_type
):
    r = redis_server.client()
    stream = fuzz_app.settings.redis_stream
    before = r.xlen(stream)
    headers = {"X-Request-ID": request_id, "Content-Type": content_type}
    auth = authorization(kind, body, signer, raw)
    if auth is not None:
        headers["Authorization"] = auth
    # HTTP drops surrounding whitespace of header values anyway; h11 refuses to send it.
    response = fuzz_app.post(body, {k: v.strip() for k, v in headers.items()})
    assert response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "error" in response.json() or response.status_code in (200, 202)
    after = r.xlen(stream)
    if kind.startswith("valid"):
        assert response.status_code in (200, 202, 400, 413, 422)
    else:
        assert response.status_code in (401, 413)
    assert after == before + (1 if response.status_code == 202 else 0)
    if response.status_code == 202:
        _entry_id, fields = r.xrevrange(stream, count=1)[0]
        assert fields[b"body"] == body  # stored byte for byte
