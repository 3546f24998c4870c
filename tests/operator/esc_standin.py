"""A small local HTTP server that follows Pulumi ESC's REST API for opening an environment:

    POST /api/esc/environments/{org}/{project}/{env}/open[?duration=…]  -> {"id": "<session>"}
    GET  /api/esc/environments/{org}/{project}/{env}/open/{session}     -> {"properties": {...}}

with ``Authorization: token <token>`` and ``Accept: application/vnd.pulumi+8``. It is the only ESC the
operator is tested against (unit tests and the cluster test).

:class:`TricklingServer` is the broken variant: it answers every request one byte at a time, forever,
faster than any per-read timeout, so only a total deadline ends the call (ESC deadline tests, liveness
and shutdown tests).
"""

from __future__ import annotations

import json
import socket
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


class TricklingServer:
    """Accepts HTTP connections, reads the request, then sends a response that never completes: one
    byte every ``interval`` seconds. ``stage="head"`` trickles the status line and an endless header;
    ``stage="body"`` sends complete headers (a large Content-Length) and trickles the body. Closing the
    server closes every connection, which fails the client's read."""

    def __init__(self, *, stage: str = "head", interval: float = 0.5) -> None:
        assert stage in ("head", "body")
        self.stage = stage
        self.interval = interval
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.requests: list[str] = []  # request lines, e.g. "POST /api/esc/… HTTP/1.1"
        self.client_closed = 0  # connections the client closed while the answer was still trickling
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def __enter__(self) -> TricklingServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            t = threading.Thread(target=self._trickle, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            self.requests.append(conn.recv(65536).split(b"\r\n", 1)[0].decode(errors="replace"))
            if self.stage == "head":
                data = b"HTTP/1.1 200 OK\r\nX-Never-Ends: " + b"z" * 100_000
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 100000\r\n\r\n")
                data = b" " * 100_000
            for byte in data:
                if self._stop.wait(self.interval):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:  # the client gave up and closed the connection
                    self.client_closed += 1
                    return

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)
        self._sock.close()
