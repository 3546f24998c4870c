"""Operator helpers for the cluster tests (the `gw_crd` and `operator` fixtures are in tests/conftest.py).

One operator process is shared by the whole session. It runs the real console script
(`gong-webhook-operator`) **as its own ServiceAccount**: the fixture applies config/rbac/, requests a
token for the ServiceAccount (TokenRequest API) and writes a kubeconfig with only that token and the
cluster's CA/server. A missing permission therefore fails the tests; the operator log is checked for
Forbidden errors at the end of the session. Secret writes are granted per namespace: the `namespace`
fixture binds the secrets-writer ClusterRole in namespaces of tests that use the operator.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests import secret_scan

ROOT = Path(__file__).resolve().parents[2]
SA_NAMESPACE = "gong-system"
SA_NAME = "gong-webhook-operator"
SA_USER = f"system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}"
RESYNC_SECONDS = 10
FIXTURES = Path(__file__).parent / "fixtures"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.5, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def sa_kubeconfig(cluster: Any, path: Path) -> Path:
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    ctx_name = admin["current-context"]
    ctx = next(c["context"] for c in admin["contexts"] if c["name"] == ctx_name)
    clus = next(c["cluster"] for c in admin["clusters"] if c["name"] == ctx["cluster"])
    if "certificate-authority-data" not in clus and "certificate-authority" in clus:
        clus = {**clus, "certificate-authority-data": base64.b64encode(
            Path(clus.pop("certificate-authority")).read_bytes()).decode()}
    token = cluster.kubectl("create", "token", SA_NAME, "-n", SA_NAMESPACE, "--duration=2h").stdout.strip()
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "devcluster", "cluster": clus}],
        "users": [{"name": SA_NAME, "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "devcluster", "user": SA_NAME}}],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    return path


class OperatorProcess:
    """The console script running as the ServiceAccount; can be killed and restarted."""

    def __init__(self, cluster: Any, kubeconfig: Path, workdir: Path) -> None:
        self.cluster = cluster
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = _free_port()
        self.health_port = _free_port()
        self.priority = int(time.time()) % 100_000_000  # unique per session; peers with equal priority pause
        self.generation = 0
        self.logs: list[Path] = []

    @property
    def log(self) -> Path:
        return self.logs[-1]

    def all_logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def start(self) -> None:
        self.generation += 1
        self.priority += 1  # a SIGKILLed predecessor stays in the peering object until its lifetime ends
        log = secret_scan.register_log(self.workdir / f"operator-{self.generation}.log", "operator")
        self.logs.append(log)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["POD_NAME"] = f"test-operator-{self.generation}"
        cmd = [
            str(ROOT / ".venv" / "bin" / "gong-webhook-operator"), "--all-namespaces",
            "--peering", "gong-webhook-operator", "--priority", str(self.priority),
            "--metrics-port", str(self.metrics_port),
            "--liveness", f"http://127.0.0.1:{self.health_port}/healthz",
            "--resync-seconds", str(RESYNC_SECONDS), "--log-format", "json",
        ]
        self.proc = subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        wait_for(self._healthy, 60, what="operator liveness endpoint")

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"operator exited with {self.proc.returncode}:\n{self.log.read_text()[-4000:]}")
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
                self.proc.wait()
        self.proc = None

    def metrics(self) -> dict[str, float]:
        """Samples of the operator's own Prometheus endpoint, keyed by 'name{labels}'."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
        return out

    def metric_sum(self, name: str, **labels: str) -> float:
        total = 0.0
        for key, value in self.metrics().items():
            if key.split("{")[0] != name:
                continue
            if all(f'{k}="{v}"' in key for k, v in labels.items()):
                total += value
        return total


def kube_json(cluster: Any, *args: str) -> Any:
    proc = cluster.kubectl("get", *args, "-o", "json", "--show-managed-fields", check=False)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout)


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    if not obj:
        return None
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)


def apply_yaml(cluster: Any, namespace: str, docs: list[dict[str, Any]] | dict[str, Any]) -> None:
    items = docs if isinstance(docs, list) else [docs]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(items))


def source_secret(name: str = "gong-credentials", **overrides: str | None) -> dict[str, Any]:
    data: dict[str, str | None] = {
        "GONG_API_KEY": "key-1", "GONG_API_SECRET": "s3cr3t-value-1", "GONG_WEBHOOK_PUBLIC_KEYS": "pk-1",
        "SNOWFLAKE_ACCOUNT": "acct-1", "SNOWFLAKE_USER": "user-1", "SNOWFLAKE_PASSWORD": "pw-value-1",
    }
    data.update(overrides)
    secret_scan.register_secret(data["GONG_API_SECRET"], data["SNOWFLAKE_PASSWORD"])
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque",
            "stringData": {k: v for k, v in data.items() if v is not None}}


def gongwebhook(name: str, **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"secrets": {"sourceRef": {"name": "gong-credentials"}}}
    base.update(spec)
    return {"apiVersion": "gong.sophia-ai.com/v1alpha1", "kind": "GongWebhook", "metadata": {"name": name},
            "spec": base}


def wait_ready(cluster: Any, namespace: str, name: str, timeout: int = 60) -> None:
    proc = cluster.kubectl("wait", "--for=condition=Ready", f"--timeout={timeout}s", "-n", namespace,
                           f"gongwebhook/{name}", timeout=timeout + 15, check=False)
    if proc.returncode != 0:
        state = cluster.kubectl("get", "gw,deploy,rs,hpa,pods", "-n", namespace, "-o", "wide", check=False).stdout
        status = cluster.kubectl("get", "gw", name, "-n", namespace, "-o", "jsonpath={.status}", check=False).stdout
        raise AssertionError(f"gongwebhook/{name} not Ready within {timeout}s:\n{state}\n{status}")


def owner_uid(obj: dict[str, Any]) -> str | None:
    refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")]
    return refs[0]["uid"] if refs and refs[0]["kind"] == "GongWebhook" else None


def no_terminating_namespaces(cluster: Any) -> bool:
    out = cluster.kubectl("get", "ns", "-o", "jsonpath={.items[*].status.phase}").stdout
    return "Terminating" not in out


def apiserver_writes(cluster: Any, resources: set[str]) -> dict[str, float]:
    """Write requests the API server has served, from its own metrics, per verb/resource/subresource."""
    text = cluster.kubectl("get", "--raw", "/metrics").stdout
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        verb, resource, sub = labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", "")
        if verb not in {"APPLY", "PATCH", "POST", "PUT", "CREATE", "UPDATE", "DELETE"}:
            continue
        if resource not in resources:
            continue
        if sub and not (resource == "gongwebhooks" and sub == "status"):
            continue  # controllers' own status/scale writes (Deployment, HPA, PDB status) are not ours
        key = f"{verb} {resource}/{sub}" if sub else f"{verb} {resource}"
        out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out
