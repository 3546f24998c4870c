"""Kopf wiring: watch events feed a coalescing work queue; workers run one reconcile per key.

Kopf owns the watches (GongWebhooks, the owned child kinds, Secrets), peering, liveness and login.
The handlers only translate events into queue keys; every write happens in
:meth:`gong_operator.reconcile.Reconciler.reconcile`, one object at a time, in worker threads.
No change-detecting handlers, timers or daemons are used, so Kopf never adds a finalizer or
annotations to a GongWebhook: deleting one is left to the garbage collector.

Liveness: Kopf's endpoint only proves the event loop answers. The probe handler registered here
(:meth:`Controller.health`) also fails when a worker or the resync loop has ended or one reconcile
has run past ``--stuck-reconcile-seconds`` (a thread blocked on a call without a deadline), since in
those states the operator stops converging objects and only a restart recovers it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from gong_operator import children as ch
from gong_operator import kube as k
from gong_operator import metrics
from gong_operator import spec as s
from gong_operator.reconcile import Outcome, Reconciler
from gong_operator.settings import OperatorSettings
from gong_operator.workqueue import WorkQueue

log = logging.getLogger("gong_operator.handlers")

Key = tuple[str, str]
MANAGED_SELECTOR = {"app.kubernetes.io/managed-by": ch.MANAGER}
OWNED_RESOURCES: tuple[tuple[str, str, str], ...] = (
    ("", "v1", "configmaps"),
    ("", "v1", "services"),
    ("apps", "v1", "deployments"),
    ("networking.k8s.io", "v1", "ingresses"),
    ("networking.k8s.io", "v1", "networkpolicies"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
    ("policy", "v1", "poddisruptionbudgets"),
)
CLUSTER_PEERING = k.Kind("kopf.dev/v1", "ClusterKopfPeering", "clusterkopfpeerings")
NS_PEERING = k.Kind("kopf.dev/v1", "KopfPeering", "kopfpeerings")


def peer_is_active(status: Mapping[str, Any], *, identity: str, priority: int, now: dt.datetime) -> bool:
    """Kopf's rule: a replica runs only if no other live peer has an equal or higher priority."""
    for other, info in status.items():
        if other == identity or not isinstance(info, Mapping):
            continue
        try:
            seen = dt.datetime.fromisoformat(str(info.get("lastseen")))
        except ValueError:
            continue
        if seen.tzinfo is None:
            seen = seen.replace(tzinfo=dt.UTC)
        alive = seen + dt.timedelta(seconds=int(info.get("lifetime", 60))) > now
        if alive and int(info.get("priority", 0)) >= priority:
            return False
    return True


class PeeringGate:
    """Whether this replica is the active one. Watch events already stop when Kopf pauses; this gate
    also stops the resync loop and queued retries of a paused replica."""

    def __init__(self, kube: k.Kube, settings: OperatorSettings, identity: str, *, ttl: float = 5.0) -> None:
        self.kube = kube
        self.settings = settings
        self.identity = identity
        self.ttl = ttl
        self._cache: dict[str, tuple[float, bool]] = {}

    def active(self, namespace: str) -> bool:
        if self.settings.standalone:
            return True
        scope = "" if self.settings.clusterwide else namespace
        hit = self._cache.get(scope)
        if hit and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        try:
            if self.settings.clusterwide:
                obj = self.kube.request("GET", f"/apis/kopf.dev/v1/clusterkopfpeerings/{self.settings.peering_name}")
            else:
                obj = self.kube.get(NS_PEERING, namespace, self.settings.peering_name)
        except k.KubeError:
            obj = None
        result = obj is not None and peer_is_active(
            (obj or {}).get("status") or {}, identity=self.identity, priority=self.settings.priority,
            now=dt.datetime.now(dt.UTC))
        self._cache[scope] = (time.monotonic(), result)
        metrics.ACTIVE.set(1 if result else 0)
        return result


PEERING_REMEDY = "apply config/peering (kubectl apply -k config/peering) or run with --standalone (one replica only)"


def peering_problem(kube: k.Kube, settings: OperatorSettings) -> str | None:
    """Why Kopf's peering cannot start, or None (also when the API cannot be asked right now).

    With peering on, Kopf pauses every watch until it has seen the peering object, and it looks for
    the peering CRD only once, at start (resource scanning is off). A missing CRD or object therefore
    means the operator runs, answers probes and reconciles nothing, without a word in its log."""
    if settings.standalone:
        return None
    kind = CLUSTER_PEERING if settings.clusterwide else NS_PEERING
    try:
        if not kube.served(kind):
            return (f"peering is on but the CustomResourceDefinition {kind.plural}.{kind.group} is not installed, "
                    f"so this operator reconciles nothing: {PEERING_REMEDY}; Kopf looks for the CRD only at "
                    "start, so restart the operator after installing it (the liveness probe fails meanwhile)")
        name = settings.peering_name
        if settings.clusterwide:
            try:
                kube.request("GET", f"{kind.base()}/{kind.plural}/{name}")
            except k.KubeError as e:
                if e.status != 404:
                    raise
                return (f"peering is on but the {kind.kind} {name} does not exist, so this operator reconciles "
                        f"nothing: {PEERING_REMEDY} (or pass --peering with the name of an existing one)")
            return None
        missing = [ns for ns in settings.namespaces if kube.get(kind, ns, name) is None]
    except Exception:  # an unreachable or refusing API is no evidence of a missing object
        log.debug("peering check failed", exc_info=True)
        return None
    if missing:
        return (f"peering is on but the {kind.kind} {name} does not exist in namespace(s) {', '.join(missing)}, so "
                f"this operator reconciles nothing there: create it (apiVersion kopf.dev/v1, kind {kind.kind}, the "
                f"CRD is in config/peering) or run with --standalone (one replica only)")
    return None


@dataclass(frozen=True)
class Health:
    """What the liveness probe reports; alive when ``problems`` is empty."""

    problems: tuple[str, ...]
    workers_alive: int
    workers: int
    resync_alive: bool
    in_flight: int
    oldest_reconcile_seconds: float

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"workersAlive": self.workers_alive, "workers": self.workers, "resyncAlive": self.resync_alive,
                "inFlight": self.in_flight, "oldestReconcileSeconds": round(self.oldest_reconcile_seconds, 3)}


RESYNC_TASK = "gong-resync"
PEERING_TASK = "gong-peering-check"


class Controller:
    def __init__(self, reconciler: Reconciler, settings: OperatorSettings,
                 gate: Callable[[str], bool], *, peering_check: Callable[[], str | None] | None = None,
                 peering_check_seconds: float = 5.0, peering_report_seconds: float = 60.0) -> None:
        self.reconciler = reconciler
        self.settings = settings
        self.gate = gate
        # Missing peering CRD/object: checked every few seconds, logged at ERROR at once and then at a
        # low rate (a log line every check would flood), reported on /healthz and as a metric.
        self.peering_check = peering_check
        self.peering_check_seconds = peering_check_seconds
        self.peering_report_seconds = peering_report_seconds
        self.peering_problem: str | None = None
        self.queue: WorkQueue[Key] = WorkQueue()
        self.known: dict[Key, int] = {}
        self.sources: dict[Key, set[Key]] = {}
        self.failures: dict[Key, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        # Worker slot -> (key, monotonic start) of the reconcile it runs now: what the stuck check reads.
        self._in_flight: dict[int, tuple[Key, float]] = {}
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._stopping = False
        for i in range(self.settings.workers):
            self._tasks.append(asyncio.create_task(self._worker(i), name=f"gong-worker-{i}"))
        self._tasks.append(asyncio.create_task(self._resync(), name=RESYNC_TASK))
        if self.peering_check is not None:
            self._tasks.append(asyncio.create_task(self._watch_peering(), name=PEERING_TASK))
        else:
            metrics.PEERING_READY.set(1)
        for t in self._tasks:
            t.add_done_callback(self._task_ended)
        # Computed when Prometheus scrapes (in prometheus_client's server thread), so the numbers are
        # current even when nothing polls the liveness endpoint. health() only reads: a list copy of a
        # dict and Task.done() run under the GIL.
        metrics.WORKERS_ALIVE.set_function(lambda: float(self.health().workers_alive))
        metrics.OLDEST_RECONCILE.set_function(lambda: self.health().oldest_reconcile_seconds)
        metrics.HEALTHY.set_function(lambda: 1.0 if self.health().ok else 0.0)

    async def stop(self) -> None:
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        # Workers catch every Exception, so reaching this outside stop() is a bug or a stray cancel:
        # say which loop ended and how, once, next to the liveness failures that follow.
        if self._stopping:
            return
        if task.cancelled():
            how = "was cancelled"
        elif (error := task.exception()) is not None:
            how = f"raised {type(error).__name__}"
        else:
            how = "returned"
        log.error("%s %s; the liveness probe now fails so that Kubernetes restarts the operator",
                  task.get_name(), how, exc_info=None if task.cancelled() else task.exception())

    # ------------------------------------------------------------------ health

    def health(self) -> Health:
        """Cheap (no I/O): which loops still run, and how long the oldest reconcile has been running."""
        now = time.monotonic()
        tasks = list(self._tasks)
        in_flight = list(self._in_flight.values())
        problems: list[str] = []
        if not tasks:
            problems.append("workers not started")
        problems += [f"{t.get_name()} {'was cancelled' if t.cancelled() else 'ended'}" for t in tasks if t.done()]
        limit = self.settings.stuck_reconcile_seconds
        oldest = 0.0
        for (namespace, name), started in in_flight:
            age = now - started
            oldest = max(oldest, age)
            if age > limit:
                problems.append(f"reconcile of {namespace}/{name} running for {age:.1f}s (limit {limit:g}s)")
        if self.peering_problem:
            problems.append(self.peering_problem)
        workers = [t for t in tasks if t.get_name() not in (RESYNC_TASK, PEERING_TASK)]
        return Health(
            problems=tuple(problems),
            workers_alive=sum(not t.done() for t in workers),
            workers=self.settings.workers,
            resync_alive=any(t.get_name() == RESYNC_TASK and not t.done() for t in tasks),
            in_flight=len(in_flight),
            oldest_reconcile_seconds=oldest,
        )

    # ------------------------------------------------------------------ event intake

    def on_gongwebhook(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata", {})
        key = (str(meta.get("namespace")), str(meta.get("name")))
        if event_type == "DELETED":
            self.forget(key)
            return
        generation = int(meta.get("generation", 0))
        previous = self.known.get(key)
        self.known[key] = generation
        metrics.MANAGED.set(len(self.known))
        self._remember_sources(key, body.get("spec") or {})
        if previous is None:
            self.queue.add(key, "resume" if event_type is None else "created")
        elif previous != generation or meta.get("deletionTimestamp"):
            self.queue.add(key, "spec")

    def on_child(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata", {})
        for ref in meta.get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == s.KIND and ref.get("apiVersion") == s.API_VERSION:
                self.queue.add((str(meta.get("namespace")), str(ref.get("name"))), "child")

    def on_secret(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata", {})
        if (meta.get("labels") or {}).get("app.kubernetes.io/managed-by") == ch.MANAGER:
            self.on_child(body)
        for key in sorted(self.sources.get((str(meta.get("namespace")), str(meta.get("name"))), ())):
            self.queue.add(key, "secret")

    def forget(self, key: Key) -> None:
        self.known.pop(key, None)
        try:
            metrics.READY.remove(*key)
        except KeyError:
            pass
        self.failures.pop(key, None)
        self.queue.forget(key)
        self._set_sources(key, set())
        metrics.MANAGED.set(len(self.known))

    def _remember_sources(self, key: Key, spec: Mapping[str, Any]) -> None:
        secrets = spec.get("secrets") or {}
        found: set[Key] = set()
        ref = secrets.get("sourceRef") or {}
        if ref.get("name"):
            found.add((str(ref.get("namespace") or key[0]), str(ref["name"])))
        esc_ref = (secrets.get("pulumiEsc") or {}).get("accessTokenSecretRef") or {}
        if esc_ref.get("name"):
            found.add((key[0], str(esc_ref["name"])))
        self._set_sources(key, found)

    def _set_sources(self, key: Key, found: set[Key]) -> None:
        for src, watchers in list(self.sources.items()):
            if src not in found:
                watchers.discard(key)
                if not watchers:
                    del self.sources[src]
        for src in found:
            self.sources.setdefault(src, set()).add(key)

    # ------------------------------------------------------------------ loops

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_seconds)
            for key in list(self.known):
                self.queue.add(key, "resync")

    async def _watch_peering(self) -> None:
        assert self.peering_check is not None
        last_logged = -float("inf")
        while True:
            problem = await asyncio.to_thread(self.peering_check)
            now = time.monotonic()
            if problem:
                if problem != self.peering_problem or now - last_logged >= self.peering_report_seconds:
                    log.error("%s", problem)
                    last_logged = now
            elif self.peering_problem:
                log.info("peering is in place now: %s", "the operator can work once Kopf sees it")
            self.peering_problem = problem
            metrics.PEERING_READY.set(0 if problem else 1)
            await asyncio.sleep(self.peering_check_seconds)

    async def _worker(self, slot: int) -> None:
        while True:
            key, trigger = await self.queue.get()
            metrics.QUEUE_DEPTH.set(len(self.queue))
            # Covers the peering check and the reconcile: both run in a thread the loop cannot cancel.
            self._in_flight[slot] = (key, time.monotonic())
            try:
                await self._process(key, trigger)
            except Exception:  # a worker that ends is never replaced: the operator would stop working
                log.exception("processing %s/%s failed", *key)
                self._retry(key)
            finally:
                del self._in_flight[slot]
                self.queue.done(key)

    async def _process(self, key: Key, trigger: str) -> None:
        try:
            active = await asyncio.to_thread(self.gate, key[0])
        except Exception as e:  # API server unreachable (e.g. restarting): ask again later, keep the key
            log.warning("peering check for %s/%s failed: %s; retrying", key[0], key[1], type(e).__name__)
            metrics.RECONCILE_ERRORS.labels(stage="peering").inc()
            self._retry(key)
            return
        if not active:
            log.debug("not the active peer; skipping %s/%s", *key)
            return
        try:
            outcome: Outcome = await asyncio.to_thread(self.reconciler.reconcile, *key)
        except Exception as e:  # an unexpected bug must not kill the worker
            log.error("reconcile of %s/%s crashed: %s", key[0], key[1], type(e).__name__, exc_info=True)
            metrics.RECONCILES.labels(trigger=trigger, result="error").inc()
            metrics.RECONCILE_ERRORS.labels(stage="crash").inc()
            self._retry(key)
            return
        if outcome.gone:
            metrics.RECONCILES.labels(trigger=trigger, result="gone").inc()
            self.forget(key)
            return
        self._set_sources(key, set(outcome.secret_sources))
        metrics.READY.labels(*key).set(1 if outcome.ready else 0)
        if outcome.error or outcome.retry:
            metrics.RECONCILES.labels(trigger=trigger, result="error").inc()
            self._retry(key)
            return
        metrics.RECONCILES.labels(trigger=trigger, result="success").inc()
        self.failures.pop(key, None)
        if outcome.requeue_after:
            self.queue.add_after(key, outcome.requeue_after, "refresh")

    def _retry(self, key: Key) -> None:
        n = self.failures.get(key, 0) + 1
        self.failures[key] = n
        delay = min(self.settings.retry_max_seconds, self.settings.retry_base_seconds * 2 ** (n - 1))
        self.queue.add_after(key, delay * (0.8 + 0.4 * random.random()), "retry")  # noqa: S311 - jitter


def kopf_settings(settings: OperatorSettings) -> kopf.OperatorSettings:
    """Kopf's own settings object, spelled out."""
    ks = kopf.OperatorSettings()
    ks.posting.enabled = False  # the operator posts its own Events; Kopf's would echo log lines
    ks.scanning.disabled = True  # no CRD/namespace watching: no cluster-wide read on CRDs/namespaces needed
    ks.networking.request_timeout = settings.api_timeout_seconds * 2
    ks.watching.server_timeout = 300
    ks.peering.standalone = settings.standalone
    ks.peering.name = settings.peering_name
    ks.peering.priority = settings.priority
    # Written into this replica's keep-alive; peers (and PeeringGate) judge it by this value, not theirs.
    ks.peering.lifetime = settings.peering_lifetime
    ks.peering.mandatory = not settings.standalone
    ks.peering.clusterwide = settings.clusterwide
    return ks


def register(registry: kopf.OperatorRegistry, controller: Controller, settings: OperatorSettings) -> None:
    """Attach the watch handlers to an explicit registry (no module-level global state)."""

    @kopf.on.login(registry=registry)
    def _login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # In-cluster ServiceAccount token or $KUBECONFIG, via the official client (client certs too).
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def _startup(**_: Any) -> None:
        controller.start()

    @kopf.on.cleanup(registry=registry)
    async def _cleanup(**_: Any) -> None:
        await controller.stop()

    # Kopf answers the liveness endpoint with these results (HTTP 200 and JSON), and with HTTP 500 when
    # a probe handler fails. It must fail with PermanentError: any other exception counts as temporary
    # and Kopf retries the handler after its backoff (60 s) inside the same HTTP request. Kopf caches a
    # success for 10 s and never caches a failure, so a failure shows at the latest 10 s after it starts.
    @kopf.on.probe(id="workers", registry=registry)
    async def _workers(**_: Any) -> dict[str, Any]:
        health = controller.health()
        if not health.ok:
            raise kopf.PermanentError("; ".join(health.problems))
        return health.as_dict()

    @kopf.on.event(s.GROUP, s.VERSION, s.PLURAL, registry=registry)
    async def _gongwebhook(event: Mapping[str, Any], body: Mapping[str, Any], **_: Any) -> None:
        controller.on_gongwebhook(event.get("type"), body)

    for group, version, plural in OWNED_RESOURCES:

        @kopf.on.event(group, version, plural, labels=MANAGED_SELECTOR, registry=registry,
                       id=f"child-{plural}")
        async def _child(body: Mapping[str, Any], **_: Any) -> None:
            controller.on_child(body)

    @kopf.on.event("", "v1", "secrets", registry=registry)
    async def _secret(body: Mapping[str, Any], **_: Any) -> None:
        controller.on_secret(body)
