"""Pulumi ESC client against a small local HTTP server that follows ESC's REST API:
POST .../environments/{org}/{project}/{env}/open -> {"id"}, then GET .../open/{id} -> {"properties"}.
This stand-in is the only ESC the operator is tested against."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from gong_operator import spec as s
from gong_operator.pulumi_esc import EscError, EscSource, to_credentials, unwrap

TOKEN = "pul-test-token"
ENV_PROPS = {
    "environmentVariables": {"value": {
        "GONG_API_KEY": {"value": "k-1", "secret": False},
        "GONG_API_SECRET": {"value": "s-1", "secret": True},
        "SNOWFLAKE_ACCOUNT": {"value": "acct"},
        "SNOWFLAKE_USER": {"value": "user"},
        "GONG_WEBHOOK_PUBLIC_KEYS": {"value": "pk"},
    }},
    "other": {"value": {"nested": {"value": 1}}},
}


class FakeEsc:
    def __init__(self) -> None:
        self.sessions: dict[str, str] = {}
        self.requests: list[tuple[str, str]] = []
        self.properties: dict[str, Any] = ENV_PROPS
        self.fail_open: int | None = None


@pytest.fixture
def esc_server() -> Iterator[tuple[str, FakeEsc]]:
    state = FakeEsc()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, code: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _auth(self) -> bool:
            ok = self.headers.get("Authorization") == f"token {TOKEN}" and \
                self.headers.get("Accept") == "application/vnd.pulumi+8"
            if not ok:
                self._send(401, {"code": 401, "message": "Unauthorized"})
            return ok

        def do_POST(self) -> None:
            state.requests.append(("POST", self.path))
            if not self._auth():
                return
            path = self.path.split("?")[0]
            if path == "/api/esc/environments/acme/gong/prod/open":
                if state.fail_open:
                    self._send(state.fail_open, {"message": "nope"})
                    return
                sid = f"session-{len(state.sessions) + 1}"
                state.sessions[sid] = path
                self._send(200, {"id": sid, "diagnostics": []})
            else:
                self._send(404, {"code": 404, "message": "environment not found"})

        def do_GET(self) -> None:
            state.requests.append(("GET", self.path))
            if not self._auth():
                return
            prefix = "/api/esc/environments/acme/gong/prod/open/"
            if self.path.startswith(prefix) and self.path[len(prefix):] in state.sessions:
                self._send(200, {"properties": state.properties})
            else:
                self._send(404, {"message": "session not found"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", state
    server.shutdown()


def _cfg(url: str, env: str = "prod") -> s.PulumiEscSpec:
    return s.PulumiEscSpec.model_validate({"organization": "acme", "project": "gong", "environment": env,
                                           "accessTokenSecretRef": {"name": "t"}, "apiUrl": url})


def test_open_then_read(esc_server):
    url, state = esc_server
    values = EscSource().read(_cfg(url), TOKEN)
    assert values["GONG_API_SECRET"] == b"s-1"
    assert set(values) == {"GONG_API_KEY", "GONG_API_SECRET", "SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER",
                           "GONG_WEBHOOK_PUBLIC_KEYS"}
    assert [m for m, _ in state.requests] == ["POST", "GET"]
    assert state.requests[0][1].startswith("/api/esc/environments/acme/gong/prod/open?duration=")


def test_cache_respects_max_age(esc_server):
    url, state = esc_server
    now = [100.0]
    src = EscSource(clock=lambda: now[0])
    src.read(_cfg(url), TOKEN, max_age=300)
    src.read(_cfg(url), TOKEN, max_age=300)
    assert len(state.requests) == 2  # second read served from cache
    now[0] += 301
    state.properties = {"GONG_API_KEY": {"value": "rotated"}}
    assert src.read(_cfg(url), TOKEN, max_age=300) == {"GONG_API_KEY": b"rotated"}
    assert len(state.requests) == 4


def test_errors_carry_status_but_no_token(esc_server):
    url, state = esc_server
    with pytest.raises(EscError) as e:
        EscSource().read(_cfg(url), "wrong-token")
    assert e.value.status == 401 and "wrong-token" not in str(e.value)
    with pytest.raises(EscError) as e:
        EscSource().read(_cfg(url, env="missing"), TOKEN)
    assert e.value.status == 404
    state.fail_open = 500
    with pytest.raises(EscError) as e:
        EscSource().read(_cfg(url), TOKEN)
    assert e.value.status == 500


def test_unreachable_api():
    with pytest.raises(EscError) as e:
        EscSource(timeout=1).read(_cfg("http://127.0.0.1:9"), TOKEN)
    assert e.value.status == 0 and "cannot reach" in e.value.safe_message


def test_unwrap_and_top_level_values():
    assert unwrap({"value": {"a": {"value": [{"value": 1}]}}}) == {"a": [1]}
    assert to_credentials({"GONG_API_KEY": {"value": "x"}, "n": {"value": 3}, "obj": {"value": {}}}) == {
        "GONG_API_KEY": b"x", "n": b"3"}
