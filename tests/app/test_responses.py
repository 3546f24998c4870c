"""Status codes for bad input, 503 when Redis is gone, request ids, health and readiness."""

from __future__ import annotations

import orjson
import pytest

from tests.support.gong import call_payload
from tests.support.net import free_port


@pytest.fixture
def app(make_settings, start_app):
    return start_app(make_settings(MAX_BODY_BYTES="4096"), run_loader=False)


def test_body_not_json_is_400(app, signer, redis_server):
    body = b"{not json"
    response = app.post(body, signer.headers(body))
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_json"}
    assert redis_server.client().xlen(app.settings.redis_stream) == 0


@pytest.mark.parametrize(
    "doc",
    [[], {"callData": {}}, {"callData": {"metaData": {"id": ""}}}, {"callData": {"metaData": {"id": True}}},
     {"callData": {"metaData": {"id": None}}}, {"callData": {"metaData": {"id": "x" * 200}}}, "string", 42],
)
def test_json_without_call_id_is_422(doc, app, signer, redis_server):
    body = orjson.dumps(doc)
    response = app.post(body, signer.headers(body))
    assert response.status_code == 422
    assert response.json() == {"error": "missing_call_id"}
    assert redis_server.client().xlen(app.settings.redis_stream) == 0


def test_numeric_call_id_is_accepted(app, signer):
    body = orjson.dumps({"callData": {"metaData": {"id": 123456789}}, "isTest": False})
    response = app.post(body, signer.headers(body))
    assert response.status_code == 202
    assert response.json()["callId"] == "123456789"


def test_oversized_body_is_413_by_declared_length(app, signer, redis_server):
    body = orjson.dumps({**call_payload("1"), "pad": "x" * 5000})
    response = app.post(body, signer.headers(body))
    assert response.status_code == 413
    assert response.json() == {"error": "body_too_large"}
    assert redis_server.client().xlen(app.settings.redis_stream) == 0


def test_oversized_chunked_body_is_413_while_reading(app, signer, redis_server):
    sent = []

    def chunks():
        # No Content-Length: the app can only notice while reading. It must answer without
        # waiting for (or buffering) the rest of a body that never ends within the test.
        for _ in range(64):
            sent.append(1)
            yield b"x" * 1024

    response = app.client.post("/webhooks/gong", content=chunks(), headers=signer.headers(b"irrelevant"))
    assert response.status_code == 413
    assert redis_server.client().xlen(app.settings.redis_stream) == 0


def test_redis_down_gives_503_with_retry_after(make_settings, start_app, signer):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    app = start_app(make_settings(REDIS_URL=dead), run_loader=False)
    body, headers = signer.signed(call_payload("55"))
    response = app.post(body, headers)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json() == {"error": "queue_unavailable"}
    ready = app.client.get("/ready")
    assert ready.status_code == 503 and ready.json()["redis"] is False


def test_health_ready_and_request_id(app):
    assert app.client.get("/health").json() == {"status": "ok"}
    ready = app.client.get("/ready")
    assert ready.status_code == 200 and ready.json()["keys_loaded"] is True
    echoed = app.client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    made = app.client.get("/health")
    assert len(made.headers["x-request-id"]) == 32
    # A hostile request id is replaced rather than echoed into logs and headers.
    odd = app.client.get("/health", headers={"X-Request-ID": "a b\"c"})
    assert odd.headers["x-request-id"] != 'a b"c'


def test_unknown_route_and_method_are_json(app):
    assert app.client.get("/nope").json() == {"error": "not_found"}
    wrong = app.client.get("/webhooks/gong")
    assert wrong.status_code == 405 and wrong.json() == {"error": "method_not_allowed"}
