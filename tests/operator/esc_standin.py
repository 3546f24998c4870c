"""A small local HTTP server that follows Pulumi ESC's REST API for opening an environment:

    POST /api/esc/environments/{org}/{project}/{env}/open[?duration=…]  -> {"id": "<session>"}
    GET  /api/esc/environments/{org}/{project}/{env}/open/{session}     -> {"properties": {...}}

with ``Authorization: token <token>`` and ``Accept: application/vnd.pulumi+8``. It is the only ESC the
operator is tested against (unit tests and the cluster test).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class EscState:
    token: str
    org: str
    project: str
    env: str
    properties: dict[str, Any]
    sessions: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    fail_open: int | None = None

    @property
    def base(self) -> str:
        return f"/api/esc/environments/{self.org}/{self.project}/{self.env}"


def env_vars(values: dict[str, str]) -> dict[str, Any]:
    """ESC's wrapped-value shape for an environment defining ``environmentVariables``."""
    return {"environmentVariables": {"value": {k: {"value": v, "secret": True} for k, v in values.items()}}}


@contextmanager
def serve(state: EscState, host: str = "127.0.0.1") -> Iterator[str]:
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
            ok = (self.headers.get("Authorization") == f"token {state.token}"
                  and self.headers.get("Accept") == "application/vnd.pulumi+8")
            if not ok:
                self._send(401, {"code": 401, "message": "Unauthorized"})
            return ok

        def do_POST(self) -> None:
            state.requests.append(("POST", self.path))
            if not self._auth():
                return
            if self.path.split("?")[0] != f"{state.base}/open":
                self._send(404, {"code": 404, "message": "environment not found"})
                return
            if state.fail_open:
                self._send(state.fail_open, {"message": "failure"})
                return
            sid = f"session-{len(state.sessions) + 1}"
            state.sessions[sid] = self.path
            self._send(200, {"id": sid, "diagnostics": []})

        def do_GET(self) -> None:
            state.requests.append(("GET", self.path))
            if not self._auth():
                return
            prefix = f"{state.base}/open/"
            if self.path.startswith(prefix) and self.path[len(prefix):] in state.sessions:
                self._send(200, {"properties": state.properties})
            else:
                self._send(404, {"message": "session not found"})

    server = ThreadingHTTPServer((host, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
