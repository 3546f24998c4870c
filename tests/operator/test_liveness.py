"""The liveness check of the operator (controller.Controller.health and the Kopf probe handler).

Real Controllers with real asyncio worker and resync tasks; reconciles are real blocking calls in
worker threads. The last test serves the check through Kopf's own liveness endpoint code.
(tests/cluster/test_liveness.py does the same with the real console script against a cluster.)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import kopf
import pytest
from kopf._core.engines import indexing, probing  # private: the exact code behind --liveness
from prometheus_client import REGISTRY

from gong_operator import cli
from gong_operator.controller import Controller
from gong_operator.health import RESYNC_TASK
from gong_operator.reconcile import Outcome
from gong_operator.registration import register
from gong_operator.settings import OperatorSettings
from tests.support.net import free_port

KEY = ("team", "a")


class BlockingReconciler:
    """Each reconcile blocks its worker thread until released, like an HTTP call without a deadline."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def reconcile(self, namespace: str, name: str) -> Outcome:
        self.calls += 1
        self.release.wait(timeout=30)  # bounded so a failing test cannot leave a thread behind forever
        return Outcome(ready=True)


def _settings(**overrides: float) -> OperatorSettings:
    base: dict[str, float] = {"workers": 2, "resync_seconds": 3600, "stuck_reconcile_seconds": 300}
    base.update(overrides)
    return OperatorSettings(standalone=True, **base)  # type: ignore[arg-type]


def _gw(name: str = "a") -> dict[str, object]:
    return {"metadata": {"namespace": "team", "name": name, "generation": 1},
            "spec": {"secrets": {"sourceRef": {"name": "src"}}}}


def _metric(name: str) -> float | None:
    return REGISTRY.get_sample_value(name)


async def _until(predicate: Callable[[], bool]) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached within 5 s")


@pytest.fixture
async def blocking() -> AsyncIterator[BlockingReconciler]:
    reconciler = BlockingReconciler()
    yield reconciler
    reconciler.release.set()


async def test_running_loops_and_finished_reconciles_are_healthy(blocking: BlockingReconciler) -> None:
    c = Controller(blocking, _settings(), lambda ns: True)  # type: ignore[arg-type]
    assert not c.health().ok, "before start() there are no workers"
    c.start()
    try:
        health = c.health()
        assert health.ok, health.problems
        assert (health.workers_alive, health.resync_alive, health.in_flight) == (2, True, 0)
        blocking.release.set()  # reconciles return at once
        c.on_gongwebhook(None, _gw())
        await _until(lambda: blocking.calls == 1 and not c._in_flight)
        assert c.health().ok
        assert (_metric("gong_operator_healthy"), _metric("gong_operator_workers_alive")) == (1.0, 2.0)
        assert _metric("gong_operator_oldest_reconcile_seconds") == 0.0
    finally:
        await c.stop()


@pytest.mark.parametrize("which", ["gong-worker-1", RESYNC_TASK])
async def test_a_worker_or_the_resync_loop_that_ends_makes_it_unhealthy(
        blocking: BlockingReconciler, which: str) -> None:
    c = Controller(blocking, _settings(), lambda ns: True)  # type: ignore[arg-type]
    c.start()
    try:
        task = next(t for t in c._tasks if t.get_name() == which)
        task.cancel()  # what a stray cancel or a BaseException escaping the loop leaves behind
        await asyncio.gather(task, return_exceptions=True)
        health = c.health()
        assert not health.ok
        assert health.problems == (f"{which} was cancelled",)
        assert health.workers_alive == (1 if which != RESYNC_TASK else 2)
        assert health.resync_alive == (which != RESYNC_TASK)
        assert _metric("gong_operator_healthy") == 0.0
        assert _metric("gong_operator_workers_alive") == health.workers_alive
    finally:
        await c.stop()


async def test_a_reconcile_blocked_past_the_threshold_is_unhealthy_until_it_returns(
        blocking: BlockingReconciler) -> None:
    c = Controller(blocking, _settings(stuck_reconcile_seconds=0.3), lambda ns: True)  # type: ignore[arg-type]
    c.start()
    try:
        c.on_gongwebhook(None, _gw())
        await _until(lambda: blocking.calls == 1)
        assert c.health().ok, "a reconcile younger than the threshold is fine"
        await asyncio.sleep(0.4)
        health = c.health()
        assert not health.ok
        assert len(health.problems) == 1 and health.problems[0].startswith("reconcile of team/a running for ")
        assert health.in_flight == 1 and health.oldest_reconcile_seconds > 0.3
        assert health.workers_alive == 2, "the worker task is alive; only its thread is stuck"
        assert _metric("gong_operator_healthy") == 0.0
        assert (_metric("gong_operator_oldest_reconcile_seconds") or 0.0) > 0.3
        blocking.release.set()
        await _until(lambda: not c._in_flight)
        assert c.health().ok
        assert _metric("gong_operator_healthy") == 1.0
    finally:
        await c.stop()


async def test_kopf_liveness_endpoint_answers_500_while_stuck_and_200_after(blocking: BlockingReconciler) -> None:
    # Through Kopf's own endpoint: the probe must fail with HTTP 500 at once (a plain exception would
    # make Kopf retry the probe handler after 60 s inside the request), and a failure is not cached.
    settings = _settings(stuck_reconcile_seconds=0.2)
    c = Controller(blocking, settings, lambda ns: True)  # type: ignore[arg-type]
    registry = kopf.OperatorRegistry()
    register(registry, c, settings)
    url = f"http://127.0.0.1:{free_port()}/healthz"
    ready = asyncio.Event()
    reporter = asyncio.create_task(probing.health_reporter(
        url, memo=kopf.Memo(), indices=indexing.OperatorIndexers().indices, registry=registry,
        settings=kopf.OperatorSettings(), ready_flag=ready))
    c.start()
    try:
        await asyncio.wait_for(ready.wait(), 5)
        c.on_gongwebhook(None, _gw())
        await _until(lambda: blocking.calls == 1)
        await asyncio.sleep(0.3)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            started = time.monotonic()
            async with http.get(url) as r:
                assert r.status == 500
            assert time.monotonic() - started < 2
            blocking.release.set()
            await _until(lambda: not c._in_flight)
            async with http.get(url) as r:
                assert r.status == 200
                body = await r.json()
        assert body["workers"]["workersAlive"] == 2 and body["workers"]["resyncAlive"] is True
    finally:
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)
        await c.stop()


def test_stuck_threshold_flag() -> None:
    assert cli.parse_args(["-A"]).stuck_reconcile_seconds == 300.0
    assert cli.parse_args(["-A", "--stuck-reconcile-seconds", "2.5"]).stuck_reconcile_seconds == 2.5
