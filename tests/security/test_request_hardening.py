"""Hostile request shapes against the real app under uvicorn (real sockets, real redis-server).

Bodies: deeply nested JSON (100k levels, arrays and objects) and oversized ones, signed so that they get
past authentication and reach the parser -> a 4xx JSON answer, never a 5xx, nothing enqueued, and the
server still serves the next request. Headers: CR, LF, NUL, obs-fold, non-ASCII and huge values in
X-Request-ID (the one header the app echoes) and in other headers -> never reflected raw into response
headers or logs. Raw sockets are used where an HTTP client would refuse to send the bytes.
"""

from __future__ import annotations

import base64
import logging
import re
import socket
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from tests.support.app import AppProcess
from tests.support.gong import GongSigner, call_payload, new_private_key
from tests.support.net import free_port
from tests.support.waiting import wait_for
from webhook_app.ingest import http_limits

pytestmark = pytest.mark.redis
DEPTH = 100_000


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        from webhook_app.logging_setup import JsonFormatter

        self.lines.append(JsonFormatter().format(record))


@pytest.fixture
def app_logs() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("webhook_app")
    old = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


def _raw(app: Any, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", app.server.port), timeout=20) as conn:
        conn.sendall(request)
        out = b""
        while chunk := conn.recv(65536):
            out += chunk
    return out


def _head(response: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
    head = response.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    status = int(head[0].split(b" ")[1])
    headers = [tuple(line.split(b":", 1)) for line in head[1:]]
    return status, [(k.strip().lower(), v.strip()) for k, v in headers]  # type: ignore[misc]


def _assert_still_serving(app: Any) -> None:
    assert app.client.get("/health").status_code == 200


def _nested(depth: int) -> dict[str, bytes]:
    return {
        "arrays": b"[" * depth + b"]" * depth,
        "objects": b'{"a":' * depth + b"1" + b"}" * depth,
        "arrays_inside_a_call": b'{"callData":{"metaData":{"id":"1"}},"x":' + b"[" * depth + b"]" * depth + b"}",
        "unterminated": b"[" * depth,
    }


NESTED = _nested(DEPTH)
# In the token the JSON must fit under the request-head cap (base64 adds a third); 5,000 levels are still
# five times Python's recursion limit.
NESTED_IN_TOKEN = _nested(5_000)


@pytest.mark.parametrize("shape", sorted(NESTED))
def test_deeply_nested_signed_json_is_a_4xx(shape: str, app: Any, signer: GongSigner, redis_server, app_logs):
    body = NESTED[shape]
    response = app.post(body, signer.headers(body))
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] in {"invalid_json", "missing_call_id"}
    assert redis_server.client().xlen(app.settings.redis_stream) == 0
    assert not any('"level":"ERROR"' in line for line in app_logs.lines)
    _assert_still_serving(app)


@pytest.mark.parametrize("shape", sorted(NESTED_IN_TOKEN))
def test_deeply_nested_json_in_the_token_is_refused(shape: str, app: Any, signer: GongSigner, redis_server):
    body = orjson.dumps(call_payload("1"))
    segment = base64.urlsafe_b64encode(NESTED_IN_TOKEN[shape]).rstrip(b"=").decode()
    genuine = signer.token(body).split(".")
    for token in (f"{segment}.{genuine[1]}.{genuine[2]}", f"{genuine[0]}.{segment}.{genuine[2]}"):
        response = app.post(body, {"Authorization": token})
        assert response.status_code == 401, response.text
    assert redis_server.client().xlen(app.settings.redis_stream) == 0
    _assert_still_serving(app)


def test_oversized_signed_body_is_413_and_nothing_enqueued(make_settings, start_app, redis_server, signer):
    app = start_app(make_settings(MAX_BODY_BYTES="65536"), run_loader=False)
    body = b'{"callData":{"metaData":{"id":"1"}},"pad":"' + b"x" * 70_000 + b'"}'
    response = app.post(body, signer.headers(body))
    assert response.status_code == 413 and response.json() == {"error": "body_too_large"}
    assert redis_server.client().xlen(app.settings.redis_stream) == 0
    _assert_still_serving(app)


HOSTILE_IDS = {
    "crlf_set_cookie": b"abc\r\nSet-Cookie: pwned=1",
    "obs_fold": b"abc\r\n Set-Cookie: pwned=1",
    "bare_cr": b"abc\rSet-Cookie: pwned=1",
    "nul": b"abc\x00def",
    "latin1_letter": b"abc\xffdef",
    "utf8_letters": "abcé日本".encode(),
    "html": b"<script>alert(1)</script>",
    "json_breakout": b'x","level":"CRITICAL',
    "huge": b"A" * 100_000,
    "just_over_128": b"a" * 129,
}


@pytest.mark.parametrize("case", sorted(HOSTILE_IDS))
def test_hostile_request_id_is_never_reflected_raw(case: str, app: Any, app_logs: Records):
    value = HOSTILE_IDS[case]
    for path in (b"/health", b"/webhooks/gong"):
        method = b"GET" if path == b"/health" else b"POST"
        request = (method + b" " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n"
                   b"X-Request-ID: " + value + b"\r\n\r\n{}")
        response = _raw(app, request)
        status, headers = _head(response)
        assert status < 500, response[:300]
        assert not any(k == b"set-cookie" for k, _ in headers), response[:300]
        echoed = [v for k, v in headers if k == b"x-request-id"]
        if echoed:  # the app answered: with a clean id (its own, or the part before a CRLF that ended the line)
            assert len(echoed) == 1 and re.fullmatch(rb"[A-Za-z0-9._:-]{1,128}", echoed[0]), echoed
            assert b"pwned" not in echoed[0]
        else:  # the HTTP server refused the request line itself, or a head over the cap (431)
            assert status == (431 if len(value) > http_limits.MAX_REQUEST_HEAD_BYTES else 400), response[:300]
        for fragment in (value, value.decode("latin-1").encode(), value.decode("latin-1")[:40].encode()):
            assert fragment not in response.split(b"\r\n\r\n", 1)[0]
    logged = "\n".join(app_logs.lines)
    text = value.decode("latin-1")
    assert text[:40] not in logged and "pwned" not in logged and "CRITICAL" not in logged
    _assert_still_serving(app)


def test_plain_request_id_is_echoed(app: Any):
    assert app.client.get("/health", headers={"X-Request-ID": "req-1.a_b:c"}).headers["x-request-id"] == "req-1.a_b:c"


MARKER = "reflect-me-5c1d"


def test_no_other_request_header_is_reflected(app: Any, signer: GongSigner):
    body = orjson.dumps(call_payload("2"))
    headers = {**signer.headers(body), "User-Agent": MARKER, "Referer": f"https://{MARKER}.example/",
               "Origin": f"https://{MARKER}.example", "X-Forwarded-For": f"1.2.3.4, {MARKER}",
               "X-Forwarded-Host": MARKER, "Accept-Language": MARKER, "Cookie": f"a={MARKER}"}
    for method, path in (("POST", "/webhooks/gong"), ("GET", "/health"), ("GET", "/nope"), ("GET", "/webhooks/gong")):
        response = app.client.request(method, path, content=body if method == "POST" else None, headers=headers)
        raw_headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        assert MARKER not in raw_headers and MARKER not in response.text, (method, path)


def test_large_authorization_header_under_the_head_cap_is_a_401_json(app: Any, redis_server):
    request = (b"POST /webhooks/gong HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n"
               b"Authorization: " + b"a" * 30_000 + b"\r\n\r\n{}")
    response = _raw(app, request)
    status, headers = _head(response)
    assert status == 401 and (b"content-type", b"application/json") in headers
    assert b"a" * 100 not in response
    assert redis_server.client().xlen(app.settings.redis_stream) == 0
    _assert_still_serving(app)


@pytest.mark.parametrize("size", [100_000, 1_000_000, 3_000_000])
def test_request_head_over_the_cap_is_a_431_json(size: int, app: Any, redis_server):
    request = (b"POST /webhooks/gong HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n"
               b"Authorization: " + b"a" * size + b"\r\n\r\n{}")
    response = _raw(app, request)
    status, headers = _head(response)
    assert status == 431 and (b"content-type", b"application/json") in headers
    assert orjson.loads(response.split(b"\r\n\r\n", 1)[1]) == {
        "error": "request_head_too_large", "limit_bytes": http_limits.MAX_REQUEST_HEAD_BYTES}
    assert b"a" * 100 not in response
    assert redis_server.client().xlen(app.settings.redis_stream) == 0
    _assert_still_serving(app)


def test_a_head_that_never_ends_is_cut_off_at_the_cap_not_buffered(app: Any):
    """Many small headers, sent slowly and never finished: the server answers 431 and closes once the cap
    is passed, while the client is still sending (it does not wait for the end of the head)."""
    with socket.create_connection(("127.0.0.1", app.server.port), timeout=20) as conn:
        conn.sendall(b"POST /webhooks/gong HTTP/1.1\r\nHost: x\r\n")
        sent = 0
        answer = b""
        try:
            for i in range(10_000):
                line = f"X-Filler-{i}: {'b' * 90}\r\n".encode()
                conn.sendall(line)
                sent += len(line)
                if i % 50 == 0:
                    conn.settimeout(0.05)
                    try:
                        answer += conn.recv(65536)
                    except TimeoutError:
                        pass
                    conn.settimeout(20)
                    if answer:
                        break
        except (BrokenPipeError, ConnectionResetError):
            pass
        conn.settimeout(5)
        try:
            while chunk := conn.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert sent < http_limits.MAX_REQUEST_HEAD_BYTES + 256 * 1024, "the server kept reading far past the cap"
    _assert_still_serving(app)


@pytest.mark.parametrize("workers", [1, 2])
def test_the_console_script_caps_the_request_head(workers: int, app_env, tmp_path):
    """`gong-webhook-app` itself (one process, and uvicorn's spawned workers) runs the capped protocol."""
    port = free_port()
    env = {**app_env, "PORT": str(port), "HOST": "127.0.0.1", "RUN_LOADER_IN_PROCESS": "false",
           "WORKERS": str(workers)}
    proc = AppProcess("gong-webhook-app", env, log=tmp_path / "app.log")
    try:
        wait_for(lambda: _status(port, "/health") == 200, 30, 0.1, "app up")
        head = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: " + b"p" * 200_000 + b"\r\n\r\n"
        with socket.create_connection(("127.0.0.1", port), timeout=20) as conn:
            conn.sendall(head)
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        assert _status(port, "/health") == 200
    finally:
        assert proc.stop() in (0, -15), proc.output()[-2000:]


def _status(port: int, path: str) -> int:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            first = conn.recv(64)
        return int(first.split(b" ")[1]) if first.startswith(b"HTTP/1.1 ") else 0
    except OSError:
        return 0


def _head_then_wait(port: int, head: bytes, first_body_bytes: bytes, timeout: float) -> bytes:
    """Send a request head and the first bytes of a much longer body, then wait for an answer without
    sending the rest: only a server that answers before reading the body answers at all."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head + first_body_bytes)
        try:
            return sock.recv(65536)
        except TimeoutError:
            return b""


@pytest.mark.parametrize("mode", ["jwt", "url-key"])
def test_unauthenticated_large_body_is_refused_before_the_body_is_read(mode, make_settings, start_app):
    """A forged token (or wrong url key) with a 10 MiB body costs the server nothing but its headers:
    the 401 comes while the client has sent 4 KiB of the body and is still "sending" the rest."""
    declared = 10 * 1024 * 1024 - 1  # just under MAX_BODY_BYTES, so only authentication can refuse it
    if mode == "jwt":
        app = start_app(make_settings(migrate_schema=False), run_loader=False)
        forger = GongSigner(new_private_key(), "https://hooks.example.com/webhooks/gong")
        _, headers = forger.signed(call_payload("4242"))
        path, auth = "/webhooks/gong", f"Authorization: {headers['Authorization']}\r\n"
    else:
        app = start_app(make_settings(migrate_schema=False, GONG_WEBHOOK_AUTH_MODE="url-key",
                                      GONG_WEBHOOK_SECRETS="the-right-url-key-7Fq2"), run_loader=False)
        path, auth = "/webhooks/gong/not-the-key", ""
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{auth}"
            f"Content-Length: {declared}\r\n\r\n").encode()
    answer = _head_then_wait(app.server.port, head, b"{" + b" " * 4095, timeout=5)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    reason = b"bad_signature" if mode == "jwt" else b"wrong_url_key"
    assert reason in answer
    # The server still serves (the half-sent request's connection is the only casualty).
    assert app.client.get("/health").status_code == 200
