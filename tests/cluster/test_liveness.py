"""The operator's liveness endpoint, its ESC deadline and its exit on SIGTERM with a call stuck in a
worker thread (real process, real cluster).

The real console script `gong-webhook-operator` runs as its ServiceAccount. A GongWebhook's Pulumi ESC
`apiUrl` points at a local server that accepts the connection and sends its response one byte every
half second, forever (tests/support/esc_standin.py `TricklingServer`). httpx's 10-second timeout is
per read, so only the ESC client's total deadline (`--esc-deadline-seconds`) ends such a call:

* with a deadline far beyond the test (600 s) the reconcile's worker thread is stuck — the kind of
  hang liveness exists for, and the one that used to keep the process alive after SIGTERM;
* with a short deadline (2 s) the call fails, the GongWebhook says SecretsSynced=False
  PulumiEscTimeout, and liveness stays green. Nothing in the operator is patched.

If the session's shared operator (tests/conftest.py `operator`, all namespaces) is running, it
reconciles these GongWebhooks too and waits on the same server until its own 30 s deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import secret_scan
from tests.support.cluster import apply_yaml, condition, gongwebhook, kube_json, wait_for
from tests.support.esc_standin import TricklingServer
from tests.support.esc_standin import ca_file as esc_ca_file
from tests.support.net import free_port

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]
OPERATOR = Path(sys.executable).parent / "gong-webhook-operator"
SA_NAMESPACE, SA_NAME = "gong-system", "gong-webhook-operator"
STUCK_SECONDS = 1
# Longer than any of these tests: a call to the trickling server is, for the test, stuck forever.
NO_DEADLINE = "600"


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
def trickling() -> Iterator[TricklingServer]:
    with TricklingServer() as server:
        yield server


class Operator:
    """`gong-webhook-operator --namespace NS --standalone` as the ServiceAccount, with its own ports."""

    def __init__(self, namespace: str, kubeconfig: Path, log: Path, *args: str) -> None:
        self.health_port, self.metrics_port = free_port(), free_port()
        self.log = secret_scan.register_log(log, "operator")
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env["KUBECONFIG"] = str(kubeconfig)
        env["SSL_CERT_FILE"] = str(esc_ca_file())  # the trickling ESC stand-in speaks https
        cmd = [str(OPERATOR), "--namespace", namespace, "--standalone", "--metrics-port", str(self.metrics_port),
               "--liveness", f"http://127.0.0.1:{self.health_port}/healthz", "--log-format", "json",
               "--esc-allowed-host", "127.0.0.1", *args]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _apply_esc_gongwebhook(cluster: Any, namespace: str, name: str, api_url: str) -> None:
    secret_scan.register_secret("pul-liveness-token")
    token = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pulumi-token"},
             "stringData": {"accessToken": "pul-liveness-token"}}
    esc = {"pulumiEsc": {"organization": "acme", "project": "gong", "environment": "prod",
                         "accessTokenSecretRef": {"name": "pulumi-token"}, "apiUrl": api_url}}
    apply_yaml(cluster, namespace, [token, gongwebhook(name, secrets=esc)])


def test_liveness_fails_while_a_reconcile_is_stuck_and_recovers_after(
        cluster: Any, gw_crd: None, namespace: str, sa_kubeconfig: Path, tmp_path: Path,
        trickling: TricklingServer) -> None:
    op = Operator(namespace, sa_kubeconfig, tmp_path / "operator.log",
                  "--stuck-reconcile-seconds", str(STUCK_SECONDS), "--esc-deadline-seconds", NO_DEADLINE)
    health_port, metrics_port, log = op.health_port, op.metrics_port, op.log
    try:
        status, body = _wait_healthz(health_port, True, 30, "the liveness endpoint")
        assert json.loads(body)["workers"] == {"workersAlive": 2, "workers": 2, "resyncAlive": True,
                                               "inFlight": 0, "oldestReconcileSeconds": 0.0}

        started = time.monotonic()
        _apply_esc_gongwebhook(cluster, namespace, "stuck", trickling.url)

        # Kopf serves a cached success for up to 10 s; the reconcile is stuck after STUCK_SECONDS.
        status, body = _wait_healthz(health_port, False, 25, "liveness to fail")
        took = time.monotonic() - started
        assert status == 500, (status, body)
        assert any(r.startswith("POST /api/esc/environments/acme/gong/prod/open") for r in trickling.requests)
        samples = _metrics(metrics_port)
        assert samples["gong_operator_healthy"] == 0.0
        assert samples["gong_operator_workers_alive"] == 2.0, "the workers run; one waits on its thread"
        assert samples["gong_operator_oldest_reconcile_seconds"] > STUCK_SECONDS
        wait_for(lambda: f"reconcile of {namespace}/stuck running for" in log.read_text(errors="replace"), 10,
                 what="the probe failure in the operator log")

        # The hung call fails once the server closes the connection; liveness is 200 again (a failure
        # is never cached by Kopf), so this is a live check, not a latch.
        trickling.close()
        status, body = _wait_healthz(health_port, True, 15, "liveness to recover")
        assert json.loads(body)["workers"]["workersAlive"] == 2
        print(f"liveness failed {took:.1f}s after the GongWebhook was applied (stuck threshold {STUCK_SECONDS}s)")
    finally:
        trickling.close()
        op.stop()
    assert "Forbidden" not in log.read_text(errors="replace"), "the ServiceAccount lacks a permission"


def test_esc_deadline_turns_a_trickling_server_into_a_condition_and_liveness_stays_ok(
        cluster: Any, gw_crd: None, namespace: str, sa_kubeconfig: Path, tmp_path: Path,
        trickling: TricklingServer) -> None:
    op = Operator(namespace, sa_kubeconfig, tmp_path / "operator.log",
                  "--esc-deadline-seconds", "2", "--stuck-reconcile-seconds", "8")
    try:
        _wait_healthz(op.health_port, True, 30, "the liveness endpoint")
        started = time.monotonic()
        _apply_esc_gongwebhook(cluster, namespace, "slow-esc", trickling.url)

        def timed_out() -> dict[str, Any] | None:
            cond = condition(kube_json(cluster, "-n", namespace, "gongwebhook", "slow-esc"), "SecretsSynced")
            return cond if cond and cond["reason"] == "PulumiEscTimeout" else None

        # Probing all the way: a reconcile never runs past the 8 s stuck threshold, since each ESC call
        # ends after 2 s (and is retried with backoff, never concurrently for one object).
        deadline = time.monotonic() + 20
        cond = None
        while cond is None:
            assert time.monotonic() < deadline, "no SecretsSynced=False PulumiEscTimeout within 20 s"
            status, body = _healthz(op.health_port)
            assert status == 200, (status, body)
            cond = timed_out()
            time.sleep(0.5)
        took = time.monotonic() - started
        assert cond["status"] == "False"
        assert cond["message"] == ("Pulumi ESC environment acme/gong/prod: "
                                   "Pulumi ESC API did not answer within the 2s deadline")
        assert took < 15, took
        gw = kube_json(cluster, "-n", namespace, "gongwebhook", "slow-esc")
        assert gw["status"]["secrets"] == "PulumiEscTimeout"
        samples = _metrics(op.metrics_port)
        assert samples['gong_operator_secret_syncs_total{result="PulumiEscTimeout",source="pulumiEsc"}'] >= 1
        # Keep probing through a retry or two: still healthy, the trickling calls keep ending.
        for _ in range(8):
            status, body = _healthz(op.health_port)
            assert status == 200, (status, body)
            time.sleep(1)
        assert len(trickling.requests) >= 2, trickling.requests
        print(f"SecretsSynced=False PulumiEscTimeout {took:.1f}s after the GongWebhook was applied")
    finally:
        trickling.close()
        op.stop()
    text = op.text()
    assert "Forbidden" not in text and "Traceback" not in text
    # Nothing was stuck at SIGTERM: the ordinary exit, no abandoned thread.
    assert op.proc.returncode == 0 and "still busy" not in text


def test_sigterm_exits_promptly_although_a_reconcile_thread_is_stuck(
        cluster: Any, gw_crd: None, namespace: str, sa_kubeconfig: Path, tmp_path: Path,
        trickling: TricklingServer) -> None:
    # A thread cannot be cancelled, and Python waits for executor threads at exit: without the bounded
    # wait in cli.py the process outlives SIGTERM until the kubelet's SIGKILL (here: proc.wait fails).
    op = Operator(namespace, sa_kubeconfig, tmp_path / "operator.log", "--esc-deadline-seconds", NO_DEADLINE,
                  "--exit-grace-seconds", "2")
    try:
        _wait_healthz(op.health_port, True, 30, "the liveness endpoint")
        _apply_esc_gongwebhook(cluster, namespace, "stuck-at-exit", trickling.url)
        wait_for(lambda: _metrics(op.metrics_port)["gong_operator_oldest_reconcile_seconds"] > 2, 30, 0.5,
                 "a reconcile stuck in the ESC call for 2 s")
        assert trickling.requests and trickling.client_closed == 0
        started = time.monotonic()
        op.proc.send_signal(signal.SIGTERM)
        try:
            code = op.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("the operator is still running 20 s after SIGTERM")
        took = time.monotonic() - started
        text = op.text()
        assert code == 0, text[-3000:]
        assert took < 8, took
        assert "Signal SIGTERM is received. Operator is stopping." in text
        assert ("1 worker thread(s) still busy 2s after the operator stopped (a call without a deadline); "
                "exiting without them") in text
        print(f"exited {took:.1f}s after SIGTERM with exit code {code}")
    finally:
        trickling.close()
        op.stop()
