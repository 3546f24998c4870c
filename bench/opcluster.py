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
* The operator process itself (``OperatorProcess``, ``sa_kubeconfig``) and the API server's write
  counts (``apiserver_writes``) come from tests/support/operator_process.py, shared with the tests.
"""

from __future__ import annotations

import os
import re
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

from bench.common import ROOT
from tests.support.operator_process import SA_NAME, SA_NAMESPACE
from tests.support.waiting import wait_for

DEVCLUSTER = ROOT / "scripts" / "devcluster"
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
