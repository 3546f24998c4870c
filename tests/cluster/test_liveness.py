"""The operator's liveness endpoint turns non-200 while a reconcile is stuck (real process, real cluster).

The real console script `gong-webhook-operator` runs as its ServiceAccount with a tiny
`--stuck-reconcile-seconds`. A GongWebhook's Pulumi ESC `apiUrl` points at a local server that
accepts the connection and sends its response one byte every half second, forever: the ESC client's
10-second timeout is per read, so the reconcile's worker thread never returns — the kind of hang
liveness exists for. Nothing in the operator is patched.

If the session's shared operator (tests/conftest.py `operator`, all namespaces) is running, it
reconciles this GongWebhook too and waits on the same server; both are released when it closes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import secret_scan
from tests.cluster.conftest import apply_yaml, gongwebhook, wait_for

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]
OPERATOR = Path(sys.executable).parent / "gong-webhook-operator"
SA_NAMESPACE, SA_NAME = "gong-system", "gong-webhook-operator"
STUCK_SECONDS = 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DrippingServer:
    """Accepts HTTP connections, reads the request line, then sends a response that never completes."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.requests: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            t = threading.Thread(target=self._drip, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            self.requests.append(conn.recv(65536).split(b"\r\n", 1)[0].decode(errors="replace"))
            for byte in b"HTTP/1.1 200 OK\r\nX-Never-Ends: " + b"z" * 100_000:
                if self._stop.wait(0.5):
                    return  # closing the connection fails the client's read: the reconcile returns
                conn.sendall(bytes([byte]))

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)
        self._sock.close()


def _healthz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:  # not listening yet
        return 0, repr(e)


def _wait_healthz(port: int, want_ok: bool, timeout: float, what: str) -> tuple[int, str]:
    def check() -> tuple[int, str] | None:
        status, body = _healthz(port)
        return (status, body) if status and (status == 200) == want_ok else None

    result: tuple[int, str] = wait_for(check, timeout, 0.2 if want_ok else 0.5, what)
    return result


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        lines = r.read().decode().splitlines()
    return {k: float(v) for k, _, v in (line.rpartition(" ") for line in lines if line and line[0] != "#")}


@pytest.fixture
def sa_kubeconfig(cluster: Any, tmp_path: Path) -> Path:
    """A kubeconfig with only a token of the operator's ServiceAccount (RBAC from config/rbac)."""
    cluster.kubectl("create", "namespace", SA_NAMESPACE, check=False)
    cluster.kubectl("apply", "-k", str(ROOT / "config" / "rbac"))
    token = cluster.kubectl("create", "token", SA_NAME, "-n", SA_NAMESPACE, "--duration=1h").stdout.strip()
    path: Path = cluster.token_kubeconfig(token, tmp_path / "kubeconfig")
    return path


@pytest.fixture
def dripping() -> Iterator[DrippingServer]:
    server = DrippingServer()
    yield server
    server.close()


def test_liveness_fails_while_a_reconcile_is_stuck_and_recovers_after(
        cluster: Any, gw_crd: None, namespace: str, sa_kubeconfig: Path, tmp_path: Path,
        dripping: DrippingServer) -> None:
    health_port, metrics_port = _free_port(), _free_port()
    log = secret_scan.register_log(tmp_path / "operator.log", "operator")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    env["KUBECONFIG"] = str(sa_kubeconfig)
    cmd = [str(OPERATOR), "--namespace", namespace, "--standalone", "--metrics-port", str(metrics_port),
           "--liveness", f"http://127.0.0.1:{health_port}/healthz",
           "--stuck-reconcile-seconds", str(STUCK_SECONDS), "--log-format", "json"]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        status, body = _wait_healthz(health_port, True, 30, "the liveness endpoint")
        assert json.loads(body)["workers"] == {"workersAlive": 2, "workers": 2, "resyncAlive": True,
                                               "inFlight": 0, "oldestReconcileSeconds": 0.0}

        secret_scan.register_secret("pul-liveness-token")
        token = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pulumi-token"},
                 "stringData": {"accessToken": "pul-liveness-token"}}
        esc = {"pulumiEsc": {"organization": "acme", "project": "gong", "environment": "prod",
                             "accessTokenSecretRef": {"name": "pulumi-token"}, "apiUrl": dripping.url}}
        started = time.monotonic()
        apply_yaml(cluster, namespace, [token, gongwebhook("stuck", secrets=esc)])

        # Kopf serves a cached success for up to 10 s; the reconcile is stuck after STUCK_SECONDS.
        status, body = _wait_healthz(health_port, False, 25, "liveness to fail")
        took = time.monotonic() - started
        assert status == 500, (status, body)
        assert any(r.startswith("POST /api/esc/environments/acme/gong/prod/open") for r in dripping.requests)
        samples = _metrics(metrics_port)
        assert samples["gong_operator_healthy"] == 0.0
        assert samples["gong_operator_workers_alive"] == 2.0, "the workers run; one waits on its thread"
        assert samples["gong_operator_oldest_reconcile_seconds"] > STUCK_SECONDS
        wait_for(lambda: f"reconcile of {namespace}/stuck running for" in log.read_text(errors="replace"), 10,
                 what="the probe failure in the operator log")

        # The hung call fails once the server closes the connection; liveness is 200 again (a failure
        # is never cached by Kopf), so this is a live check, not a latch.
        dripping.close()
        status, body = _wait_healthz(health_port, True, 15, "liveness to recover")
        assert json.loads(body)["workers"]["workersAlive"] == 2
        print(f"liveness failed {took:.1f}s after the GongWebhook was applied (stuck threshold {STUCK_SECONDS}s)")
    finally:
        dripping.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert "Forbidden" not in log.read_text(errors="replace"), "the ServiceAccount lacks a permission"
