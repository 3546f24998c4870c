"""Real parts of the operator benchmark: the local control plane, raw watches, per-identity request
counts, and the operator process running as its own ServiceAccount.

* :class:`LocalCluster` drives ``scripts/devcluster`` (kube-apiserver, etcd, controllers, kwok) with
  the caller's ``DEVCLUSTER_*`` variables and leaves it as it found it (like tests/conftest.py).
* :class:`RawWatch` timestamps watch events as they arrive. It parses the stream with orjson and skips
  the generated client's model deserialisation, which costs milliseconds per Deployment and would
  compete with the operator for the two cores.
* :class:`IdentityRequests`: ``apiserver_request_total`` has no user label, so writes by the operator
  cannot be told apart from the controllers' and kwok's there. API Priority and Fairness can: the
  bench installs FlowSchemas that match only the operator's ServiceAccount (same priority level,
  ``workload-low``, as the built-in ``service-accounts`` schema it would otherwise fall into), and
  ``apiserver_flowcontrol_dispatched_requests_total{flow_schema=...}`` then counts that identity's
  requests, split into writes (create/update/patch/delete), Kopf peering and everything else.
* :class:`OperatorProcess` runs the ``gong-webhook-operator`` console script with a kubeconfig holding
  only a TokenRequest token of its ServiceAccount, as tests/cluster/conftest.py does.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import yaml

from bench.common import ROOT, VENV_BIN, free_port, wait_for

DEVCLUSTER = ROOT / "scripts" / "devcluster"
SA_NAMESPACE = "gong-system"
SA_NAME = "gong-webhook-operator"
WRITE_VERBS = ["create", "update", "patch", "delete", "deletecollection"]
FLOW_PREFIX = "gong-bench-operator-"

Event = Callable[[str, dict[str, Any], float], None]


class LocalCluster:
    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.started_here = False
        self.kubeconfig = Path()
        self.bin_dir = Path()
        self.env: dict[str, str] = {}

    @staticmethod
    def unavailable() -> str | None:
        """A reason when no cluster can be started quickly (the binaries are built once per machine)."""
        try:
            out = subprocess.run([str(DEVCLUSTER), "status"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"scripts/devcluster status failed: {type(e).__name__}"
        if "not built" in out:
            return "control-plane binaries not built yet (scripts/devcluster build, once per machine)"
        return None

    def up(self) -> None:
        was_up = subprocess.run([str(DEVCLUSTER), "status"], capture_output=True, timeout=30).returncode == 0
        with self.log_path.open("ab") as log:
            subprocess.run([str(DEVCLUSTER), "up"], check=True, stdout=log, stderr=log, timeout=900)
        self.started_here = not was_up
        out = subprocess.run([str(DEVCLUSTER), "env"], capture_output=True, text=True, check=True).stdout
        self.kubeconfig = Path(re.search(r"export KUBECONFIG=(\S+)", out).group(1))  # type: ignore[union-attr]
        self.bin_dir = Path(re.search(r'export PATH="([^:"]+):', out).group(1))  # type: ignore[union-attr]
        self.env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), PATH=f"{self.bin_dir}:{os.environ['PATH']}")

    def down(self) -> None:
        """Stop the cluster only if this run started it and the caller did not ask to keep it."""
        if self.started_here and os.environ.get("KEEP_DEVCLUSTER") != "1":
            with self.log_path.open("ab") as log:
                subprocess.run([str(DEVCLUSTER), "down"], check=False, stdout=log, stderr=log, timeout=120)

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(self.bin_dir / "kubectl"), *args], env=self.env, input=input,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args[:3])} failed ({proc.returncode}): {proc.stderr[-800:]}")
        return proc

    def apply_docs(self, docs: list[dict[str, Any]], *extra: str, timeout: float = 300) -> None:
        self.kubectl("apply", "--server-side", "--field-manager=gong-bench", *extra, "-f", "-",
                     input=yaml.safe_dump_all(docs), timeout=timeout)

    def api_client(self) -> Any:
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=cfg)  # type: ignore[no-untyped-call]
        return client.ApiClient(cfg)

    def metrics_text(self) -> str:
        return self.kubectl("get", "--raw", "/metrics").stdout


# ---------------------------------------------------------------------------------------------- watches


class RawWatch(threading.Thread):
    """One cluster-wide watch; ``on_event(type, object, monotonic receive time)`` per event."""

    def __init__(self, api: Any, path: str, on_event: Event, label_selector: str | None = None) -> None:
        super().__init__(daemon=True, name=f"watch {path}")
        self.api = api
        self.path = path
        self.on_event = on_event
        self.label_selector = label_selector
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._resp: Any = None
        self._stopping = False

    def start_and_wait(self, timeout: float = 30) -> RawWatch:
        self.start()
        if not self.ready.wait(timeout):
            raise TimeoutError(f"watch on {self.path} did not start")
        if self.error is not None:
            raise RuntimeError(f"watch on {self.path} failed: {self.error!r}")
        return self

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:
            if not self._stopping:
                self.error = e
        finally:
            self.ready.set()

    def _run(self) -> None:
        query = {"watch": "1", "timeoutSeconds": "3600"}
        if self.label_selector:
            query["labelSelector"] = self.label_selector
        m, url, hdrs, _, _ = self.api.param_serialize(
            method="GET", resource_path=f"{self.path}?{urllib.parse.urlencode(query)}",
            header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
        resp = self.api.call_api(m, url, header_params=hdrs, _request_timeout=(10, 3700))
        if resp.status != 200:
            raise RuntimeError(f"watch {self.path}: HTTP {resp.status}")
        self._resp = resp.response
        # Without a resourceVersion the server first replays every existing object as ADDED and then
        # streams changes; headers arrive when the watch is registered, so later changes are not missed.
        self.ready.set()
        buf = b""
        for chunk in self._resp.stream(65536):
            now = time.monotonic()
            buf += chunk
            while True:
                line, sep, rest = buf.partition(b"\n")
                if not sep:
                    break
                buf = rest
                if line.strip():
                    ev = orjson.loads(line)
                    self.on_event(str(ev.get("type")), ev.get("object") or {}, now)

    def stop(self) -> None:
        self._stopping = True
        if self._resp is not None:
            try:
                self._resp.shutdown()
            except Exception:  # best effort: the thread is a daemon either way
                pass
        self.join(5)


# ------------------------------------------------------------------------------- per-identity counting


def _flow_schema(name: str, precedence: int, rule: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "FlowSchema",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "gong-bench"}},
        "spec": {
            "matchingPrecedence": precedence,
            "priorityLevelConfiguration": {"name": "workload-low"},
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [{"subjects": [{"kind": "ServiceAccount",
                                     "serviceAccount": {"name": SA_NAME, "namespace": SA_NAMESPACE}}], **rule}],
        },
    }


class IdentityRequests:
    """Requests the API server dispatched for the operator's ServiceAccount, per class."""

    CLASSES = ("peering", "writes", "reads")

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster

    def install(self) -> None:
        everywhere = {"apiGroups": ["*"], "resources": ["*"], "clusterScope": True, "namespaces": ["*"]}
        docs = [
            # Kopf's peering keep-alive is its own class: it is not a reconcile write.
            _flow_schema(f"{FLOW_PREFIX}peering", 1000, {"resourceRules": [
                {"verbs": ["*"], "apiGroups": ["kopf.dev"], "resources": ["*"], "clusterScope": True,
                 "namespaces": ["*"]}]}),
            _flow_schema(f"{FLOW_PREFIX}writes", 1001, {"resourceRules": [{"verbs": WRITE_VERBS, **everywhere}]}),
            _flow_schema(f"{FLOW_PREFIX}reads", 1002, {"resourceRules": [{"verbs": ["*"], **everywhere}],
                                                       "nonResourceRules": [{"verbs": ["*"],
                                                                             "nonResourceURLs": ["*"]}]}),
        ]
        self.cluster.apply_docs(docs)

    def wait_effective(self, kubeconfig: Path) -> None:
        """The API server loads new FlowSchemas asynchronously: send requests as the operator until
        one is counted under ours."""
        def counted() -> bool:
            self.cluster.kubectl(f"--kubeconfig={kubeconfig}", "get", "--raw", "/version", check=False)
            return (self.snapshot_from(self.cluster.metrics_text()) or {}).get("reads", 0) > 0
        wait_for(counted, 30, 0.5, what="FlowSchemas in effect")

    @staticmethod
    def snapshot_from(metrics: str) -> dict[str, float] | None:
        out: dict[str, float] = {}
        for line in metrics.splitlines():
            if not line.startswith("apiserver_flowcontrol_dispatched_requests_total{"):
                continue
            schema = re.search(r'flow_schema="([^"]*)"', line)
            if schema and schema.group(1).startswith(FLOW_PREFIX):
                cls = schema.group(1).removeprefix(FLOW_PREFIX)
                out[cls] = out.get(cls, 0.0) + float(line.rsplit(" ", 1)[1])
        return out or None

    def snapshot(self) -> dict[str, float]:
        snap = self.snapshot_from(self.cluster.metrics_text()) or {}
        return {c: snap.get(c, 0.0) for c in self.CLASSES}

    def remove(self) -> None:
        self.cluster.kubectl("delete", "flowschema", "-l", "app.kubernetes.io/part-of=gong-bench",
                             "--ignore-not-found", check=False)


def apiserver_writes(metrics: str, resources: set[str]) -> dict[str, float]:
    """apiserver_request_total write counts for the given resources (any identity), per verb/resource."""
    out: dict[str, float] = {}
    for line in metrics.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        verb, resource, sub = labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", "")
        if verb not in {"APPLY", "PATCH", "POST", "PUT", "CREATE", "UPDATE", "DELETE"} or resource not in resources:
            continue
        if sub and (resource, sub) not in {("gongwebhooks", "status"), ("deployments", "scale")}:
            continue  # the controllers' own status writes (Deployment, HPA, PDB status) are not the operator's
        key = f"{verb} {resource}/{sub}" if sub else f"{verb} {resource}"
        out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


# ------------------------------------------------------------------------------------- operator process


def sa_kubeconfig(cluster: LocalCluster, path: Path) -> Path:
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    ctx = next(c["context"] for c in admin["contexts"] if c["name"] == admin["current-context"])
    clus = dict(next(c["cluster"] for c in admin["clusters"] if c["name"] == ctx["cluster"]))
    if "certificate-authority-data" not in clus and "certificate-authority" in clus:
        ca = Path(clus.pop("certificate-authority")).read_bytes()
        clus["certificate-authority-data"] = base64.b64encode(ca).decode()
    token = cluster.kubectl("create", "token", SA_NAME, "-n", SA_NAMESPACE, "--duration=2h").stdout.strip()
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


class OperatorProcess:
    """``gong-webhook-operator --all-namespaces`` with peering, as its ServiceAccount."""

    def __init__(self, kubeconfig: Path, log_path: Path, resync_seconds: float) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.resync_seconds = resync_seconds
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["POD_NAME"] = "gong-bench-operator"
        priority = int(time.time() * 10) % 1_000_000_000  # unique per start: equal priorities pause both
        cmd = [str(VENV_BIN / "gong-webhook-operator"), "--all-namespaces", "--peering", "gong-webhook-operator",
               "--priority", str(priority), "--metrics-port", str(self.metrics_port),
               "--liveness", f"http://127.0.0.1:{self.health_port}/healthz",
               "--resync-seconds", str(self.resync_seconds), "--log-format", "json"]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT)
        wait_for(self._healthy, 60, 0.2, what="operator liveness endpoint")
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"operator exited with {self.proc.returncode}, see {self.log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            text = r.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
        return out

    @staticmethod
    def total(samples: dict[str, float], name: str, **labels: str) -> float:
        return sum(v for k, v in samples.items()
                   if k.split("{")[0] == name and all(f'{a}="{b}"' in k for a, b in labels.items()))

    def memory_mib(self) -> dict[str, float]:
        """VmRSS (now) and VmHWM (peak) of the operator process, from /proc."""
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

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
