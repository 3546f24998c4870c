"""operator: the GongWebhook operator on the local control plane (scripts/devcluster; kwok runs the pods).

Phases, one operator process per phase group, running as its ServiceAccount (bench/opcluster.py):

1. apply latency: N GongWebhooks applied one at a time (``kubectl apply --server-side``); latency =
   time from starting kubectl to the watch event of the last of its five children. Baseline (the
   floor) in the same run, interleaved sample by sample: ``kubectl apply --server-side`` of the very
   Deployment the operator renders for such a CR (without ownerReferences), timed the same way to its
   watch event. The difference is what the operator adds: watch delivery, reconcile, five applies.
2. convergence: ``converge_crs`` GongWebhooks in ``converge_namespaces`` namespaces applied in one
   kubectl call; time until every one reports ``Ready=True`` (from a watch). The operator runs with
   its default ``--resync-seconds`` here, as deployed.
3. operator RSS with every CR known (``/proc/<pid>/status`` VmRSS, and VmHWM as the peak).
4. idle resync: the operator is restarted with a short ``--resync-seconds``; after the restart's
   resume pass has settled, a window covering ``idle_passes`` full resync passes over every CR.
   Writes are counted per identity with API Priority and Fairness FlowSchemas matching only the
   operator's ServiceAccount (``apiserver_flowcontrol_dispatched_requests_total``), cross-checked
   with ``apiserver_request_total`` on the resources the operator writes (any identity) and with the
   operator's own ``gong_operator_api_writes_total``.
5. (full run) convergence floor: as many of the same Deployments applied by kubectl in one call,
   with the operator stopped; time until every Deployment has its replica ready (controllers, scheduler
   and kwok alone).
"""

from __future__ import annotations

import os
import re
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.common import PUBLIC_URL, ROOT, percentile
from bench.opcluster import IdentityRequests, LocalCluster, RawWatch
from tests.support.operator_process import (
    OPERATOR_SUBRESOURCES,
    SA_NAMESPACE,
    OperatorProcess,
    apiserver_writes,
    metric_total,
    sa_kubeconfig,
)
from tests.support.waiting import wait_for

NAME = "operator"
KEYS = ["apply_p50_ms", "apply_p95_ms", "apply_floor_p50_ms", "apply_overhead_ratio", "converge_300_s",
        "converge_crs", "idle_resync_writes", "rss_mib"]

GROUP_PATH = "/apis/gong.sophia-ai.com/v1alpha1/gongwebhooks"
MANAGED = "app.kubernetes.io/managed-by=gong-webhook-operator"
CHILD_PATHS = {
    "ConfigMap": "/api/v1/configmaps",
    "Secret": "/api/v1/secrets",
    "Service": "/api/v1/services",
    "Deployment": "/apis/apps/v1/deployments",
    "NetworkPolicy": "/apis/networking.k8s.io/v1/networkpolicies",
}
# Resources the operator may write (apiserver_request_total cross-check; any identity).
# The operator also scales Deployments (suspend) through the scale subresource.
BENCH_SUBRESOURCES = OPERATOR_SUBRESOURCES | {("deployments", "scale")}
OPERATOR_RESOURCES = {"configmaps", "secrets", "services", "deployments", "ingresses", "networkpolicies",
                      "horizontalpodautoscalers", "poddisruptionbudgets", "servicemonitors", "gongwebhooks",
                      "events"}
BENCH_NODE = "gong-bench-node-0"
# One replica, no HPA, no PDB (a PDB needs minAvailable < replicas): children are ConfigMap, credentials
# Secret, Deployment, Service, NetworkPolicy. ServiceMonitor stays off (its CRD is not installed). The
# pods go to the bench's own kwok node, so the cluster's two nodes and whatever runs on them are untouched.
# kwok's simulated container start (delay 1 s + random jitter up to 5 s, twice: created, then ready) is
# set to zero with kwok's per-pod annotations: the numbers then show the operator and the control plane,
# not a random number generator. kwok still drives every pod through Pending -> Running -> Ready.
KWOK_NO_DELAY = {f"{stage}.stage.kwok.x-k8s.io/{what}": "0s"
                 for stage in ("pod-create", "pod-ready") for what in ("delay", "jitter-delay")}
# jwt mode (the default) needs the public URL (a CEL rule refuses the CR without it or an Ingress host),
# and the operator runs the app's start-up checks over the rendered env before rolling pods (InvalidConfig
# otherwise): the source Secret carries a real RSA public key (config/samples/source-secret.yaml's example,
# private key discarded) and the Snowflake credentials the in-process loader requires.
CR_SPEC: dict[str, Any] = {
    "replicas": 1,
    "gong": {"publicUrl": PUBLIC_URL},
    "autoscaling": {"enabled": False},
    "disruptionBudget": {"enabled": False},
    "pod": {"nodeSelector": {"kubernetes.io/hostname": BENCH_NODE}, "annotations": KWOK_NO_DELAY},
    "secrets": {"sourceRef": {"name": "gong-credentials"}},
}
SAMPLE_SOURCE_SECRET = ROOT / "config" / "samples" / "source-secret.yaml"
EXAMPLE_PUBLIC_KEY = str(yaml.safe_load(SAMPLE_SOURCE_SECRET.read_text())["stringData"]["GONG_WEBHOOK_PUBLIC_KEYS"])
SOURCE = {"GONG_API_KEY": "bench-key", "GONG_API_SECRET": "bench-secret-value",
          "GONG_WEBHOOK_PUBLIC_KEYS": EXAMPLE_PUBLIC_KEY,
          "SNOWFLAKE_ACCOUNT": "bench", "SNOWFLAKE_USER": "bench", "SNOWFLAKE_PASSWORD": "bench-password"}
DEFAULT_RESYNC_S = 60.0
SECRETS_WRITER_BINDING = ROOT / "config" / "rbac" / "namespaced" / "secrets_writer_role_binding.yaml"


def available(ctx: Any) -> str | None:
    return LocalCluster.unavailable()


@dataclass
class Tracker:
    """First-seen times from the watches: children, Ready GongWebhooks, Deployments with ready replicas."""

    prefix: str
    seen: dict[tuple[str, str, str], float] = field(default_factory=dict)
    ready: dict[tuple[str, str], float] = field(default_factory=dict)
    dep_ready: dict[tuple[str, str], float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def child(self, kind: str) -> Any:
        def on_event(type_: str, obj: dict[str, Any], t: float) -> None:
            meta = obj.get("metadata") or {}
            ns = str(meta.get("namespace", ""))
            if type_ not in ("ADDED", "MODIFIED") or not ns.startswith(self.prefix):
                return
            key = (kind, ns, str(meta.get("name")))
            with self.lock:
                self.seen.setdefault(key, t)
                if kind == "Deployment" and key[1:] not in self.dep_ready:
                    spec, status = obj.get("spec") or {}, obj.get("status") or {}
                    if (status.get("observedGeneration", 0) >= meta.get("generation", 1)
                            and status.get("readyReplicas", 0) >= spec.get("replicas", 1)
                            and status.get("updatedReplicas", 0) >= spec.get("replicas", 1)):
                        self.dep_ready[key[1:]] = t
        return on_event

    def gongwebhook(self, type_: str, obj: dict[str, Any], t: float) -> None:
        meta = obj.get("metadata") or {}
        ns = str(meta.get("namespace", ""))
        if type_ not in ("ADDED", "MODIFIED") or not ns.startswith(self.prefix):
            return
        status = obj.get("status") or {}
        ok = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        if ok and status.get("observedGeneration") == meta.get("generation"):
            with self.lock:
                self.ready.setdefault((ns, str(meta.get("name"))), t)


def children_of(name: str, namespace: str) -> list[dict[str, Any]]:
    """The manifests the operator renders for one bench CR (ownerReferences dropped for the baseline)."""
    import gong_operator.children as ch
    import gong_operator.spec as s

    spec = s.GongWebhookSpec.model_validate(CR_SPEC)
    owner = ch.Owner(name=name, namespace=namespace, uid="00000000-0000-0000-0000-00000000bench")
    data = {k: v.encode() for k, v in SOURCE.items()}
    docs: list[dict[str, Any]] = ch.desired_children(spec, owner, secret_data=data, content_hash="bench",
                                                     service_monitor_served=False)
    for d in docs:
        d["metadata"].pop("ownerReferences", None)
    return docs


def deployment_of(name: str, namespace: str) -> dict[str, Any]:
    """The baseline: the very Deployment the operator renders for a CR of that name."""
    return next(d for d in children_of(name, namespace) if d["kind"] == "Deployment")


def cr(name: str, namespace: str) -> dict[str, Any]:
    return {"apiVersion": "gong.sophia-ai.com/v1alpha1", "kind": "GongWebhook",
            "metadata": {"name": name, "namespace": namespace}, "spec": CR_SPEC}


def source_secret(namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gong-credentials", "namespace": namespace},
            "type": "Opaque", "stringData": SOURCE}


def namespace_rbac(namespace: str) -> list[dict[str, Any]]:
    """What the config asks for in every namespace hosting GongWebhooks in cluster-wide mode: the
    secrets-writer RoleBinding (config/rbac/namespaced/secrets_writer_role_binding.yaml), as
    tests/conftest.py binds it. The ClusterRoles and the ClusterRoleBinding come from config/rbac."""
    doc: dict[str, Any] = yaml.safe_load(SECRETS_WRITER_BINDING.read_text())
    doc["metadata"]["namespace"] = namespace
    return [doc]


def bench_node() -> dict[str, Any]:
    """A kwok node with room for every bench pod: the devcluster's two nodes hold 110 pods each, and the
    CR's default requests (250m CPU) would fill a 64-CPU node at 256 pods. The app's pods request
    ephemeral-storage (128Mi each): a node without it in allocatable fits none (they stay Pending)."""
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": BENCH_NODE,
                         "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                         "labels": {"kubernetes.io/hostname": BENCH_NODE, "kubernetes.io/os": "linux",
                                    "kubernetes.io/arch": "amd64", "type": "kwok"}},
            "status": {"allocatable": {"cpu": "2000", "memory": "16Ti", "pods": "2000", "ephemeral-storage": "16Ti"},
                       "capacity": {"cpu": "2000", "memory": "16Ti", "pods": "2000", "ephemeral-storage": "16Ti"}}}


def reconciles_by_trigger(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    """Reconciles between two scrapes of the operator's metrics, per trigger (all results)."""
    out: dict[str, int] = {}
    for key, value in after.items():
        if key.startswith("gong_operator_reconciles_total{"):
            trigger = re.search(r'trigger="([^"]*)"', key)
            d = int(value - before.get(key, 0.0))
            if trigger and d:
                out[trigger.group(1)] = out.get(trigger.group(1), 0) + d
    return out


def _ms(values: list[float], p: float) -> float | None:
    v = percentile(values, p)
    return None if v is None else round(v * 1000, 1)


class OperatorBench:
    def __init__(self, ctx: Any, cluster: LocalCluster) -> None:
        self.ctx = ctx
        self.cfg = ctx.cfg
        self.cluster = cluster
        self.run_id = uuid.uuid4().hex[:5]
        self.prefix = f"gbench-{self.run_id}-"
        self.apply_ns = f"{self.prefix}apply"
        self.floor_ns = f"{self.prefix}floor"
        self.conv_ns = [f"{self.prefix}c{j:02d}" for j in range(self.cfg.op_converge_namespaces)]
        self.tracker = Tracker(self.prefix)
        self.watches: list[RawWatch] = []
        self.identity = IdentityRequests(cluster)
        self.operator: OperatorProcess | None = None
        self.kubeconfig = ctx.workdir / "operator.kubeconfig"
        self.out: dict[str, Any] = {}
        self.control_planes = 0

    # ------------------------------------------------------------------ setup / teardown

    def setup(self) -> None:
        c = self.cluster
        leftover = [n for n in c.kubectl("get", "ns", "-o", "name").stdout.split() if n.startswith("namespace/gbench-")]
        if leftover:  # a previous run's objects still being deleted would load the control plane
            started = time.monotonic()
            c.kubectl("delete", *leftover, "--wait=false", check=False)
            c.kubectl("delete", "pods", "-A", f"--field-selector=spec.nodeName={BENCH_NODE}", "--force",
                      "--grace-period=0", "--wait=false", check=False, timeout=300)
            wait_for(lambda: not any(n.startswith("namespace/gbench-")
                                     for n in c.kubectl("get", "ns", "-o", "name").stdout.split()),
                     180, 1.0, what="namespaces of an earlier bench run to be deleted")
            self.out["waited_for_earlier_run_s"] = round(time.monotonic() - started, 1)
        # Node status is only taken on create: a node left by an interrupted run is replaced.
        c.kubectl("delete", "node", BENCH_NODE, "--ignore-not-found", check=False)
        c.kubectl("apply", "-f", str(ROOT / "crds" / "gongwebhooks.yaml"),
                  "-f", str(ROOT / "config" / "peering" / "crds.yaml"))
        c.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/gongwebhooks.gong.sophia-ai.com",
                  "crd/clusterkopfpeerings.kopf.dev")
        c.kubectl("apply", "-f", str(ROOT / "config" / "peering" / "peering.yaml"))
        c.kubectl("create", "namespace", SA_NAMESPACE, check=False)
        c.kubectl("apply", "-k", str(ROOT / "config" / "rbac"))
        namespaces = [self.apply_ns, self.floor_ns, *self.conv_ns]
        docs: list[dict[str, Any]] = [bench_node()]
        docs += [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in namespaces]
        for n in namespaces:
            docs += [source_secret(n), *namespace_rbac(n)]
        c.apply_docs(docs)
        c.kubectl("wait", "--for=condition=Ready", f"node/{BENCH_NODE}", "--timeout=60s")
        self.identity.install()
        sa_kubeconfig(c, self.kubeconfig)
        self.identity.wait_effective(self.kubeconfig)
        api = c.api_client()
        for kind, path in CHILD_PATHS.items():
            self.watches.append(RawWatch(api, path, self.tracker.child(kind), MANAGED).start_and_wait())
        self.watches.append(RawWatch(api, GROUP_PATH, self.tracker.gongwebhook).start_and_wait())

    def start_operator(self, resync_s: float, tag: str) -> OperatorProcess:
        self.operator = OperatorProcess(self.kubeconfig, self.ctx.workdir, resync_s, name=f"operator-{tag}").start()
        return self.operator

    def teardown(self) -> None:
        for w in self.watches:
            w.stop()
        if self.operator is not None:
            self.operator.stop()
        c = self.cluster
        names = [self.apply_ns, self.floor_ns, *self.conv_ns]
        c.kubectl("delete", "namespace", *names, "--wait=false", "--ignore-not-found", check=False)
        # kwok finishes a pod's graceful deletion at a random point of its 30 s grace period; a
        # terminating namespace accepts no new pods, so force-deleting the bench node's pods is safe and
        # lets the namespaces go in seconds (the next run would otherwise wait for them).
        # The namespace controller finishes in the background (a later run waits for it in setup).
        c.kubectl("delete", "pods", "-A", f"--field-selector=spec.nodeName={BENCH_NODE}", "--force",
                  "--grace-period=0", "--wait=false", check=False, timeout=300)
        c.kubectl("delete", "node", BENCH_NODE, "--wait=false", "--ignore-not-found", check=False)
        self.identity.remove()

    def phase(self, name: str) -> None:
        t = time.monotonic()
        getattr(self, name)()
        self.out.setdefault("phase_s", {})[name] = round(time.monotonic() - t, 1)

    def _check_watches(self) -> None:
        for w in self.watches:
            if w.error is not None:
                raise RuntimeError(f"watch {w.path} failed: {w.error!r}")

    def _wait_seen(self, keys: list[tuple[str, str, str]], timeout: float) -> float:
        def done() -> bool:
            self._check_watches()
            return all(k in self.tracker.seen for k in keys)
        wait_for(done, timeout, 0.01, what=f"{keys[0][2]} children")
        return max(self.tracker.seen[k] for k in keys)

    def _queue_idle(self) -> bool:
        assert self.operator is not None
        m = self.operator.metrics()
        return metric_total(m, "gong_operator_workqueue_depth") == 0

    # ------------------------------------------------------------------ phases

    def apply_latency(self) -> None:
        c = self.cluster

        def keys(name: str, ns: str) -> list[tuple[str, str, str]]:
            return [(d["kind"], ns, d["metadata"]["name"]) for d in children_of(name, ns)]

        # Warm-up (not counted): kubectl's discovery cache, the operator's first reconcile, peering.
        c.apply_docs([cr("warmup", self.apply_ns)])
        self._wait_seen(keys("warmup", self.apply_ns), 120)
        c.apply_docs([deployment_of("warmup", self.floor_ns)])
        self._wait_seen([("Deployment", self.floor_ns, "warmup")], 60)
        op: list[float] = []
        floor: list[float] = []
        op_dep: list[float] = []
        for i in range(self.cfg.op_apply_samples):
            time.sleep(0.2)
            wait_for(self._queue_idle, 30, 0.05, what="operator queue to drain")
            name = f"apply-{i:03d}"
            t0 = time.monotonic()
            c.apply_docs([cr(name, self.apply_ns)])
            op.append(self._wait_seen(keys(name, self.apply_ns), 60) - t0)
            op_dep.append(self.tracker.seen[("Deployment", self.apply_ns, name)] - t0)
            time.sleep(0.2)
            name = f"floor-{i:03d}"
            t0 = time.monotonic()
            c.apply_docs([deployment_of(name, self.floor_ns)])
            floor.append(self._wait_seen([("Deployment", self.floor_ns, name)], 60) - t0)
        p50, floor50 = _ms(op, 50), _ms(floor, 50)
        self.out.update({
            "apply_samples": len(op),
            "apply_p50_ms": p50,
            "apply_p95_ms": _ms(op, 95),
            "apply_max_ms": _ms(op, 100),
            "apply_deployment_p50_ms": _ms(op_dep, 50),
            "apply_floor_p50_ms": floor50,
            "apply_floor_p95_ms": _ms(floor, 95),
            "apply_overhead_ratio": round(p50 / floor50, 2) if p50 and floor50 else None,
            "apply_overhead_p50_ms": round(p50 - floor50, 1) if p50 is not None and floor50 is not None else None,
        })

    def converge(self) -> None:
        assert self.operator is not None
        n, c = self.cfg.op_converge_crs, self.cluster
        names = [(self.conv_ns[i % len(self.conv_ns)], f"gw-{i:03d}") for i in range(n)]
        cpu0, m0, ids0 = self.operator.cpu_seconds(), self.operator.metrics(), self.identity.snapshot()
        t0 = time.monotonic()
        c.apply_docs([cr(name, ns) for ns, name in names], timeout=600)
        applied = time.monotonic() - t0

        def all_ready() -> bool:
            self._check_watches()
            return all(k in self.tracker.ready for k in names)
        try:
            wait_for(all_ready, self.cfg.op_converge_timeout_s, 0.1, what="GongWebhooks Ready")
        except TimeoutError:
            got = sum(1 for k in names if k in self.tracker.ready)
            raise RuntimeError(f"only {got}/{n} GongWebhooks Ready after {self.cfg.op_converge_timeout_s:.0f}s") \
                from None
        ready = sorted(self.tracker.ready[k] - t0 for k in names)
        m1, ids1 = self.operator.metrics(), self.identity.snapshot()
        triggers = reconciles_by_trigger(m0, m1)
        child_keys = [(d["kind"], ns, d["metadata"]["name"]) for ns, name in names for d in children_of(name, ns)]
        self._wait_seen(child_keys, 30)
        children_done = max(self.tracker.seen[k] for k in child_keys) - t0
        per_cr = sorted(max(self.tracker.seen[(d["kind"], ns, d["metadata"]["name"])] for d in children_of(name, ns))
                        - t0 for ns, name in names)
        self.out.update({
            "converge_300_s": round(ready[-1], 1),
            "converge_crs": n,
            "converge_namespaces": len(self.conv_ns),
            "converge_apply_call_s": round(applied, 1),
            "converge_children_s": round(children_done, 1),
            "converge_p50_ready_s": round(statistics.median(ready), 1),
            "converge_curve_s": [round(t, 2) for t in ready],
            "converge_children_curve_s": [round(t, 2) for t in per_cr],
            "converge_operator_cpu_s": round(self.operator.cpu_seconds() - cpu0, 1),
            "converge_resync_s": self.operator.resync_seconds,
            # Until the last CR was Ready (reconciles of the apply phase's tail are included).
            "converge_reconciles_by_trigger": triggers,
            "converge_reconciles_per_cr": round(sum(triggers.values()) / n, 2),
            "converge_operator_writes": int(ids1["writes"] - ids0["writes"]),
            "converge_operator_reads": int(ids1["reads"] - ids0["reads"]),
        })

    def memory(self, tag: str) -> dict[str, float]:
        assert self.operator is not None
        wait_for(self._queue_idle, 60, 0.2, what="operator queue to drain")
        return self.operator.memory_mib()

    def idle_resync(self) -> None:
        """Restart with a short resync; count writes of the resume pass and of full resync passes."""
        assert self.operator is not None
        self.operator.stop()
        known = 1 + self.cfg.op_apply_samples + self.cfg.op_converge_crs  # warm-up + apply samples + converge
        before_restart = self.identity.snapshot()
        op = self.start_operator(self.cfg.op_idle_resync_s, "idle")
        # The first pass after a start is triggered by whichever initial listing arrives first (the
        # GongWebhooks' or a child kind's), so it is counted over every trigger.
        def resumed() -> bool:
            m = op.metrics()
            return (metric_total(m, "gong_operator_managed_objects") >= known
                    and metric_total(m, "gong_operator_reconciles_total") >= known
                    and metric_total(m, "gong_operator_workqueue_depth") == 0)
        wait_for(resumed, 60 + known * 0.5, 0.2, what="the restarted operator's first pass")
        after_resume = self.identity.snapshot()
        # Window: starts after the resume pass, ends after enough resync reconciles for `passes` full passes.
        m0, ids0 = op.metrics(), after_resume
        api0 = apiserver_writes(self.cluster.metrics_text(), OPERATOR_RESOURCES, BENCH_SUBRESOURCES)
        cpu0, t0 = op.cpu_seconds(), time.monotonic()
        target = self.cfg.op_idle_passes * known
        base = metric_total(m0, "gong_operator_reconciles_total", trigger="resync")

        def passes_done() -> bool:
            m = op.metrics()
            return (time.monotonic() - t0 >= self.cfg.op_idle_passes * self.cfg.op_idle_resync_s
                    and metric_total(m, "gong_operator_reconciles_total", trigger="resync") - base >= target
                    and metric_total(m, "gong_operator_workqueue_depth") == 0)
        wait_for(passes_done, 60 + 3 * self.cfg.op_idle_passes * self.cfg.op_idle_resync_s + known * 0.5, 0.2,
                 what="resync passes")
        window = time.monotonic() - t0
        cpu = op.cpu_seconds() - cpu0
        m1, ids1 = op.metrics(), self.identity.snapshot()
        api1 = apiserver_writes(self.cluster.metrics_text(), OPERATOR_RESOURCES, BENCH_SUBRESOURCES)

        def delta(name: str, **labels: str) -> float:
            return metric_total(m1, name, **labels) - metric_total(m0, name, **labels)
        triggers = reconciles_by_trigger(m0, m1)
        reconciles = delta("gong_operator_reconcile_duration_seconds_count")
        self.out.update({
            "idle_resync_writes": int(ids1["writes"] - ids0["writes"]),
            "idle_resync_s": self.cfg.op_idle_resync_s,
            "idle_window_s": round(window, 1),
            "idle_crs": known,
            "idle_resync_reconciles": int(delta("gong_operator_reconciles_total", trigger="resync")),
            "idle_reconciles_by_trigger": triggers,
            "idle_reads": int(ids1["reads"] - ids0["reads"]),
            "idle_reads_per_reconcile": round((ids1["reads"] - ids0["reads"]) / reconciles, 1) if reconciles else None,
            "idle_peering_writes": int(ids1["peering"] - ids0["peering"]),
            "idle_operator_counted_writes": int(delta("gong_operator_api_writes_total")),
            "idle_apiserver_writes_any_identity": {k: int(v - api0.get(k, 0.0)) for k, v in api1.items()
                                                   if v != api0.get(k, 0.0)},
            "idle_reconcile_mean_ms": round(1000 * delta("gong_operator_reconcile_duration_seconds_sum") / reconciles,
                                            1) if reconciles else None,
            "idle_operator_cpu_s": round(cpu, 1),
            "restart_writes": int(after_resume["writes"] - before_restart["writes"]),
            "restart_peering_writes": int(after_resume["peering"] - before_restart["peering"]),
        })

    def converge_floor(self) -> None:
        """The same Deployments, as many, applied by kubectl in one call with no operator running."""
        n, c = self.cfg.op_converge_crs, self.cluster
        names = [(self.conv_ns[i % len(self.conv_ns)], f"fl-{i:03d}") for i in range(n)]
        docs = [deployment_of(name, ns) for ns, name in names]
        t0 = time.monotonic()
        c.apply_docs(docs, timeout=900)
        applied = time.monotonic() - t0

        def all_ready() -> bool:
            self._check_watches()
            return all(k in self.tracker.dep_ready for k in names)
        wait_for(all_ready, self.cfg.op_converge_timeout_s, 0.1, what="baseline Deployments ready")
        ready = sorted(self.tracker.dep_ready[k] - t0 for k in names)
        self.out.update({
            "converge_floor_s": round(ready[-1], 1),
            "converge_floor_apply_call_s": round(applied, 1),
            "converge_floor_curve_s": [round(t, 2) for t in ready],
            "converge_ratio": round(self.out["converge_300_s"] / ready[-1], 2) if ready[-1] else None,
        })


def control_planes_running() -> int:
    """kube-apiserver processes on this machine (other developers' clusters share the two cores)."""
    count = 0
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            count += comm.read_text().strip() == "kube-apiserver"
        except OSError:
            continue
    return count


def run(ctx: Any) -> dict[str, Any]:
    cluster = LocalCluster(ctx.workdir / "devcluster.log")
    load_start = round(os.getloadavg()[0], 2)
    started = time.monotonic()
    cluster.up()
    up_s = time.monotonic() - started
    bench = OperatorBench(ctx, cluster)
    bench.control_planes = control_planes_running()
    try:
        bench.setup()
        bench.out["setup_s"] = round(time.monotonic() - started, 1)
        bench.start_operator(DEFAULT_RESYNC_S, "main")
        bench.phase("apply_latency")
        bench.phase("converge")
        mem = bench.memory("converged")
        bench.phase("idle_resync")
        mem_idle = bench.memory("idle")
        bench.out.update({
            "rss_mib": max(mem["VmRSS"], mem_idle["VmRSS"]),
            "rss_converged_mib": mem["VmRSS"],
            "rss_after_restart_and_resyncs_mib": mem_idle["VmRSS"],
            "rss_peak_mib": max(mem["VmHWM"], mem_idle["VmHWM"]),
            "rss_crs": bench.out["idle_crs"],
        })
        if bench.operator is not None:
            bench.operator.stop()
        if ctx.cfg.op_converge_floor:
            bench.phase("converge_floor")
        else:
            bench.out["null_reasons"] = dict.fromkeys(("converge_floor_s", "converge_ratio"),
                                                      "full run only (time budget)")
    finally:
        t = time.monotonic()
        bench.teardown()
        cluster.down()
        bench.out.setdefault("phase_s", {})["teardown"] = round(time.monotonic() - t, 1)
    bench.out.update({
        "loadavg_1m_at_start": load_start,
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        "kube_apiservers_on_machine": bench.control_planes,
        "cluster_started_by_bench": cluster.started_here,
        "cluster_up_s": round(up_s, 1),
        "cr_spec": "replicas 1, no HPA/PDB: children ConfigMap, Secret, Deployment, Service, NetworkPolicy",
        "pods": "kwok on a bench node; simulated container start delays set to 0 (pod annotations)",
        "write_count_method": "APF FlowSchemas matching only the operator's ServiceAccount "
                              "(apiserver_flowcontrol_dispatched_requests_total), verbs create/update/patch/delete",
    })
    return bench.out


def charts(result: dict[str, Any], outdir: Path, prefix: str) -> list[Path]:
    curve = result.get("converge_curve_s")
    if not curve:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    ax.step([0, *curve], range(len(curve) + 1), where="post", color="tab:blue",
            label=f"GongWebhooks Ready (operator), {len(curve)} CRs")
    kids = result.get("converge_children_curve_s")
    if kids:
        ax.step([0, *kids], range(len(kids) + 1), where="post", color="tab:blue", linestyle=":", alpha=0.7,
                label="GongWebhooks with all 5 children created")
    floor = result.get("converge_floor_curve_s")
    if floor:
        ax.step([0, *floor], range(len(floor) + 1), where="post", color="tab:gray", linestyle="--",
                label="baseline: same Deployments via kubectl, replicas ready")
    if result.get("converge_apply_call_s"):
        ax.axvline(result["converge_apply_call_s"], color="tab:orange", linestyle=":", linewidth=1,
                   label="kubectl apply of all CRs returned")
    ax.set_xlabel("seconds since kubectl apply started")
    ax.set_ylabel("count")
    ax.set_title(f"operator convergence: {len(curve)} GongWebhooks in {result.get('converge_namespaces')} namespaces")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    path = outdir / f"{prefix}operator_convergence.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
