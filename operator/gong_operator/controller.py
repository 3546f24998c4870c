"""The controller: watch events become keys of a coalescing work queue; workers run one reconcile per key.

The intake (``on_gongwebhook``, ``on_child``, ``on_secret``) only translates events into queue keys;
every write happens in :meth:`gong_operator.reconcile.Reconciler.reconcile`, one object at a time,
in worker threads. Also here: the periodic resync, retries with backoff, the loop that keeps
checking peering (:mod:`gong_operator.peering`), and :meth:`Controller.drain`, which stops handing out
keys and waits for the reconciles in flight (on SIGTERM, before Kopf hands over the peering; see
:mod:`gong_operator.shutdown`). No Kopf here (:mod:`gong_operator.registration` attaches these methods
to Kopf) and no API call of its own.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from gong_operator import children, health, metrics, spec
from gong_operator.health import PEERING_TASK, RESYNC_TASK, Health
from gong_operator.reconcile import Outcome, Reconciler
from gong_operator.secret_sync import secret_sources
from gong_operator.settings import OperatorSettings
from gong_operator.workqueue import WorkQueue

log = logging.getLogger("gong_operator.controller")

Key = tuple[str, str]


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
        self._idle = asyncio.Event()  # set whenever the last reconcile in flight ends
        self._stopping = False
        self._draining = False

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

    async def drain(self, within: float) -> bool:
        """Stop handing out work, for good: no worker takes another key (keys stay queued), the resync
        queues nothing, and a key whose peering check is under way is not reconciled. Then wait up to
        ``within`` seconds for the reconciles in flight; True once none is left, False if some still
        runs (a thread cannot be cancelled: it runs on, and the exit waits for it with a bound)."""
        self._draining = True
        if not self._in_flight:
            return True
        self._idle.clear()
        try:
            await asyncio.wait_for(self._idle.wait(), within)
        except TimeoutError:
            return False
        return True

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def in_flight(self) -> list[tuple[Key, float]]:
        """(key, monotonic start) of each reconcile (peering check included) running now."""
        return list(self._in_flight.values())

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
        return health.assess(list(self._tasks), list(self._in_flight.values()), now=time.monotonic(),
                             workers=self.settings.workers,
                             stuck_reconcile_seconds=self.settings.stuck_reconcile_seconds,
                             peering_problem=self.peering_problem)

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
        self._set_sources(key, set(secret_sources(body.get("spec") or {}, key[0])))
        if previous is None:
            self.queue.add(key, "resume" if event_type is None else "created")
        elif previous != generation or meta.get("deletionTimestamp"):
            self.queue.add(key, "spec")

    def on_child(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata", {})
        for ref in meta.get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == spec.KIND and ref.get("apiVersion") == spec.API_VERSION:
                self.queue.add((str(meta.get("namespace")), str(ref.get("name"))), "child")

    def on_secret(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata", {})
        if (meta.get("labels") or {}).get("app.kubernetes.io/managed-by") == children.MANAGER:
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
            if self._draining:
                continue
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
            if not problem:
                await asyncio.to_thread(self._check_gate)
            await asyncio.sleep(self.peering_check_seconds)

    def _check_gate(self) -> None:
        """Asks the gate with no work at hand, so that gong_operator_active (which the gate sets) follows
        the peering: a replica that Kopf paused gets no keys, and its gauge would say 1 until its next
        resync; one that Kopf resumed would say 0 until its first reconcile."""
        try:
            self.gate(self.settings.namespaces[0] if self.settings.namespaces else "")
        except Exception:  # API server unreachable: the next check (or reconcile) asks again
            log.debug("peering gate check failed", exc_info=True)

    async def _worker(self, slot: int) -> None:
        while True:
            key, trigger = await self.queue.get()
            if self._draining:  # no more work: the key goes back, untouched; wait for stop() here
                self.queue.done(key)
                self.queue.add(key, trigger)
                await self._parked()
                continue
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
                if not self._in_flight:
                    self._idle.set()

    @staticmethod
    async def _parked() -> None:
        """A draining worker waits here until :meth:`stop` cancels it (the process is leaving)."""
        await asyncio.get_running_loop().create_future()

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
        if self._draining:  # the drain began during the peering check
            log.debug("stopping; not reconciling %s/%s", *key)
            return
        try:
            outcome: Outcome = await asyncio.to_thread(self._reconcile, key, trigger)
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

    def _reconcile(self, key: Key, trigger: str) -> Outcome:
        """In the worker thread, so that the reconcile's log line is written when it ends even if the
        operator began stopping meanwhile (the awaiting task is cancelled then; the thread runs on)."""
        started = time.monotonic()
        outcome = self.reconciler.reconcile(*key)
        if not outcome.gone:
            _log_reconcile(key, trigger, outcome, time.monotonic() - started)
        return outcome

    def _retry(self, key: Key) -> None:
        n = self.failures.get(key, 0) + 1
        self.failures[key] = n
        delay = min(self.settings.retry_max_seconds, self.settings.retry_base_seconds * 2 ** (n - 1))
        self.queue.add_after(key, delay * (0.8 + 0.4 * random.random()), "retry")  # noqa: S311 - jitter


def _log_reconcile(key: Key, trigger: str, outcome: Outcome, seconds: float) -> None:
    """One line per reconcile that wrote something (children, status) or failed, at INFO; a reconcile
    that found everything as it should be only at DEBUG (the resync runs one per object every minute).
    Names the generation it acted on and, in its fields, what it wrote: which replica did what, for
    which generation, is in the log (tests/node/test_operator_ha.py reads it)."""
    wrote = bool(outcome.applied or outcome.deleted or outcome.status_written)
    result = "error" if outcome.error or outcome.retry else "success"
    level = logging.INFO if wrote or result == "error" else logging.DEBUG
    if not log.isEnabledFor(level):
        return
    did = [f"applied {', '.join(outcome.applied)}" if outcome.applied else "",
           f"deleted {', '.join(outcome.deleted)}" if outcome.deleted else "",
           "status written" if outcome.status_written else "",
           f"error: {outcome.error}" if outcome.error else ""]
    log.log(level, "reconciled %s/%s generation %d (trigger %s, %.3fs): %s", key[0], key[1], outcome.generation,
            trigger, seconds, "; ".join(d for d in did if d) or "nothing to change",
            extra={"gongwebhook": f"{key[0]}/{key[1]}", "generation": outcome.generation, "trigger": trigger,
                   "result": result, "duration_seconds": round(seconds, 3), "applied": list(outcome.applied),
                   "deleted": list(outcome.deleted), "status_written": outcome.status_written})
