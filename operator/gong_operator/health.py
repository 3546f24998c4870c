"""Liveness: what the probe reports, computed from the controller's loops. Pure: no I/O.

Kopf's endpoint only proves the event loop answers. The probe (registered in
:mod:`gong_operator.registration`) also fails when a worker or the resync loop has ended or one
reconcile has run past ``--stuck-reconcile-seconds`` (a thread blocked on a call without a deadline),
or when peering cannot start, since in those states the operator stops converging objects and only a
restart recovers it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

RESYNC_TASK = "gong-resync"
PEERING_TASK = "gong-peering-check"


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


def assess(tasks: Sequence[asyncio.Task[None]], in_flight: Iterable[tuple[tuple[str, str], float]], *,
           now: float, workers: int, stuck_reconcile_seconds: float, peering_problem: str | None) -> Health:
    """Which loops still run, and how long the oldest reconcile (``(key, monotonic start)``) has run."""
    running = list(in_flight)
    problems: list[str] = []
    if not tasks:
        problems.append("workers not started")
    problems += [f"{t.get_name()} {'was cancelled' if t.cancelled() else 'ended'}" for t in tasks if t.done()]
    oldest = 0.0
    for (namespace, name), started in running:
        age = now - started
        oldest = max(oldest, age)
        if age > stuck_reconcile_seconds:
            problems.append(f"reconcile of {namespace}/{name} running for {age:.1f}s "
                            f"(limit {stuck_reconcile_seconds:g}s)")
    if peering_problem:
        problems.append(peering_problem)
    worker_tasks = [t for t in tasks if t.get_name() not in (RESYNC_TASK, PEERING_TASK)]
    return Health(
        problems=tuple(problems),
        workers_alive=sum(not t.done() for t in worker_tasks),
        workers=workers,
        resync_alive=any(t.get_name() == RESYNC_TASK and not t.done() for t in tasks),
        in_flight=len(running),
        oldest_reconcile_seconds=oldest,
    )
