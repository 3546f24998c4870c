"""A small local HTTP server that follows Pulumi ESC's REST API for opening an environment:

    POST /api/esc/environments/{org}/{project}/{env}/open[?duration=…]  -> {"id": "<session>"}
    GET  /api/esc/environments/{org}/{project}/{env}/open/{session}     -> {"properties": {...}}

with ``Authorization: token <token>`` and ``Accept: application/vnd.pulumi+8``. It is the only ESC the
operator is tested against (unit tests and the cluster test).

It speaks HTTPS, since the operator calls only https ESC URLs, with a certificate for 127.0.0.1 made
once per test process (:func:`ca_file`); in-process clients come from :func:`standin_source`, operator
processes get ``SSL_CERT_FILE=ca_file()`` and ``--esc-allowed-host 127.0.0.1``
(tests/support/operator_process.py does both).

:class:`TricklingServer` is the broken variant: it answers every request one byte at a time, forever,
faster than any per-read timeout, so only a total deadline ends the call (ESC deadline tests, liveness
and shutdown tests).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from gong_operator.pulumi_esc import EscSource

HOST = "127.0.0.1"


@cache
def _tls_files() -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost (its own CA) and its key, made once per process."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "esc-standin")])
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST)),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(key, hashes.SHA256()))
    folder = Path(tempfile.mkdtemp(prefix="esc-standin-"))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def ca_file() -> Path:
    """The stand-in's certificate, to trust (``SSL_CERT_FILE``) in processes that call it."""
    return _tls_files()[0]


def _server_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*_tls_files())
    return ctx


def client_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file()))


def standin_source(**kwargs: Any) -> EscSource:
    """An EscSource that trusts the stand-in and may call it (the operator's default allows api.pulumi.com)."""
    kwargs.setdefault("allowed_hosts", (HOST,))
    return EscSource(verify=client_context(), **kwargs)


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
def serve(state: EscState, host: str = HOST) -> Iterator[str]:
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

    class TlsServer(ThreadingHTTPServer):
        def get_request(self) -> tuple[socket.socket, Any]:
            conn, addr = super().get_request()
            return _server_context().wrap_socket(conn, server_side=True, do_handshake_on_connect=False), addr

    server = TlsServer((host, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://{host}:{server.server_address[1]}"
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
        self.url = f"https://127.0.0.1:{self._sock.getsockname()[1]}"
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

    def _trickle(self, raw: socket.socket) -> None:
        try:
            raw.settimeout(10)
            conn = _server_context().wrap_socket(raw, server_side=True)
        except OSError:  # the client gave up during the handshake
            raw.close()
            return
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
