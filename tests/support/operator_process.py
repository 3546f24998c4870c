"""The operator as a real process running as its own ServiceAccount, and the numbers read from it.

Used by the cluster, fault and security tests (tests/conftest.py's ``operator`` fixture) and by the
operator benchmark (bench/opcluster.py), so both measure and test the same thing the same way:

* :func:`sa_kubeconfig` writes a kubeconfig holding only a TokenRequest token of the operator's
  ServiceAccount and the cluster's CA/server: no admin client certificate, so a missing RBAC rule
  fails instead of being masked.
* :class:`OperatorProcess` runs the ``gong-webhook-operator`` console script with that kubeconfig,
  peering on, its own metrics and liveness ports, and a new log file per start.
* :func:`parse_metrics` / :func:`metric_total` read a Prometheus text page;
  :func:`apiserver_writes` counts the API server's write requests per verb and resource.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Protocol

import yaml

from tests.support.esc_standin import ca_file as esc_ca_file
from tests.support.net import free_port
from tests.support.waiting import wait_for

SA_NAMESPACE = "gong-system"
SA_NAME = "gong-webhook-operator"
SA_USER = f"system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}"
VENV_BIN = Path(sys.executable).parent
WRITE_VERBS = frozenset({"APPLY", "PATCH", "POST", "PUT", "CREATE", "UPDATE", "DELETE"})
# Subresource writes that are the operator's own; the controllers' status writes (Deployment, HPA,
# PDB status) land on the same resources and are not.
OPERATOR_SUBRESOURCES = frozenset({("gongwebhooks", "status")})


class KubectlHost(Protocol):
    """A cluster handle: tests/conftest.py's ``Cluster`` and bench/opcluster.py's ``LocalCluster``."""

    kubeconfig: Path

    def kubectl(self, *args: str, check: bool = ..., input: str | None = ...,
                timeout: float = ...) -> subprocess.CompletedProcess[str]: ...


def sa_kubeconfig(cluster: KubectlHost, path: Path, duration: str = "2h") -> Path:
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    ctx = next(c["context"] for c in admin["contexts"] if c["name"] == admin["current-context"])
    clus = dict(next(c["cluster"] for c in admin["clusters"] if c["name"] == ctx["cluster"]))
    if "certificate-authority-data" not in clus and "certificate-authority" in clus:
        ca = Path(clus.pop("certificate-authority")).read_bytes()
        clus["certificate-authority-data"] = base64.b64encode(ca).decode()
    token = cluster.kubectl("create", "token", SA_NAME, "-n", SA_NAMESPACE, f"--duration={duration}").stdout.strip()
    cfg = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "devcluster", "cluster": clus}],
        "users": [{"name": SA_NAME, "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "devcluster", "user": SA_NAME}}],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    return path


def parse_metrics(text: str) -> dict[str, float]:
    """Samples of a Prometheus text page, keyed by 'name{labels}'."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, _, value = line.rpartition(" ")
        out[key] = float(value)
    return out


def metric_total(samples: dict[str, float], name: str, **labels: str) -> float:
    """Sum of the samples of metric `name` whose labels include all of `labels`."""
    return sum(v for k, v in samples.items()
               if k.split("{")[0] == name and all(f'{a}="{b}"' in k for a, b in labels.items()))


def apiserver_writes(metrics: str, resources: Collection[str],
                     subresources: Collection[tuple[str, str]] = OPERATOR_SUBRESOURCES) -> dict[str, float]:
    """Write requests the API server has served (any identity; ``apiserver_request_total`` has no user
    label), per 'VERB resource[/subresource]', for the given resources and subresources."""
    out: dict[str, float] = {}
    for line in metrics.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        verb, resource, sub = labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", "")
        if verb not in WRITE_VERBS or resource not in resources:
            continue
        if sub and (resource, sub) not in subresources:
            continue
        key = f"{verb} {resource}/{sub}" if sub else f"{verb} {resource}"
        out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


class OperatorProcess:
    """``gong-webhook-operator --all-namespaces`` with peering, as its ServiceAccount; can be stopped
    with any signal and started again (each start logs to a new file and takes a higher priority)."""

    def __init__(self, kubeconfig: Path, workdir: Path, resync_seconds: float, *, name: str = "operator",
                 on_new_log: Callable[[Path], Path] | None = None, extra_args: Sequence[str] = (),
                 scope: Sequence[str] = ("--all-namespaces",)) -> None:
        self.kubeconfig = kubeconfig
        self.extra_args = tuple(extra_args)  # appended to the command line, e.g. ("--peering-lifetime", "10")
        self.scope = tuple(scope)  # or ("--namespace", "a", "--namespace", "b")
        self.workdir = workdir
        self.resync_seconds = resync_seconds
        self.name = name
        self.on_new_log = on_new_log  # e.g. tests/secret_scan.register_log: scan it at the end
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = free_port()
        self.health_port = free_port()
        # Peers with equal priority both pause, and a SIGKILLed predecessor stays in the peering object
        # until its lifetime ends: unique per process, +1 per start.
        self.priority = int(time.time() * 10) % 1_000_000_000
        self.generation = 0
        self.started_at = 0.0  # time.monotonic() of the last start
        self.logs: list[Path] = []

    @property
    def log(self) -> Path:
        return self.logs[-1]

    def all_logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def start(self, *, wait_healthy: bool = True) -> OperatorProcess:
        """Start the process; by default wait until /healthz answers 200 (``wait_healthy=False`` for
        tests of an operator that must report itself unhealthy)."""
        self.generation += 1
        self.priority += 1
        log = self.workdir / f"{self.name}-{self.generation}.log"
        self.logs.append(self.on_new_log(log) if self.on_new_log else log)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["POD_NAME"] = f"{self.name}-{self.generation}"
        # The tests' Pulumi ESC stand-in (tests/support/esc_standin.py) is https on 127.0.0.1 with its own
        # certificate; the operator calls ESC only over https and only on allowed hosts.
        env["SSL_CERT_FILE"] = str(esc_ca_file())
        cmd = [
            str(VENV_BIN / "gong-webhook-operator"), *self.scope,
            "--peering", "gong-webhook-operator", "--priority", str(self.priority),
            "--metrics-port", str(self.metrics_port),
            "--liveness", f"http://127.0.0.1:{self.health_port}/healthz",
            "--resync-seconds", str(self.resync_seconds), "--log-format", "json",
            "--esc-allowed-host", "api.pulumi.com", "--esc-allowed-host", "127.0.0.1", *self.extra_args,
        ]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.started_at = time.monotonic()
        if wait_healthy:
            wait_for(self._healthy, 60, 0.2, "operator liveness endpoint")
        return self

    def healthz(self) -> tuple[int, str]:
        """(HTTP status, body) of the liveness endpoint; (0, error) while it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=5) as r:
                return int(r.status), r.read().decode()
        except urllib.error.HTTPError as e:
            return int(e.code), e.read().decode()
        except OSError as e:
            return 0, repr(e)

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"operator exited with {self.proc.returncode}:\n"
                               f"{self.log.read_text(errors='replace')[-4000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def metrics(self) -> dict[str, float]:
        """Samples of the operator's own Prometheus endpoint."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            return parse_metrics(r.read().decode())

    def metric_sum(self, name: str, **labels: str) -> float:
        return metric_total(self.metrics(), name, **labels)

    def memory_mib(self) -> dict[str, float]:
        """VmRSS (now) and VmHWM (peak) of the process, from /proc."""
        assert self.proc is not None
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = round(int(value.split()[0]) / 1024, 1)
        return fields

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        parts = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
