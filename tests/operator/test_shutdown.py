"""The in-cluster hand-over (tests/node/test_operator_ha.py found both defects these cover):

* the default peering priority falls with the process start time, tie-free, so the oldest replica
  wins and a new pod (a rollout, a restarted container) never preempts the one that runs;
* SIGTERM/SIGINT drains before Kopf stops: no key is handed out after the signal, the reconcile in
  flight completes, and only then is kopf.run's stop flag set (so Kopf removes the keep-alive after
  the last reconcile). The last tests run a real ``kopf.run`` and send the process a real SIGTERM: the
  operator's handlers must replace the ones Kopf installs.

Real Controllers with real worker tasks; reconciles are real blocking calls in worker threads.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import kopf
import pytest
from prometheus_client import REGISTRY

from gong_operator import cli, peering
from gong_operator.controller import Controller
from gong_operator.peering import PRIORITY_TIE_BREAK, PeeringGate, peer_is_active, start_priority
from gong_operator.reconcile import Outcome
from gong_operator.registration import register
from gong_operator.settings import OperatorSettings
from gong_operator.shutdown import GracefulStop

INT64_MAX = 2**63 - 1
NOW_MS = int(dt.datetime(2026, 12, 2, tzinfo=dt.UTC).timestamp() * 1000)

# ------------------------------------------------------------------------------ priority: oldest wins


def test_the_default_priority_falls_with_the_start_time_whatever_the_random_digits():
    for earlier, later in [(NOW_MS, NOW_MS + 1), (NOW_MS, NOW_MS + 60_000), (0, 1)]:
        for r_early in (0, 1, PRIORITY_TIE_BREAK - 1):
            for r_late in (0, 1, PRIORITY_TIE_BREAK - 1):
                assert start_priority(earlier, r_early) > start_priority(later, r_late), (earlier, r_early, r_late)


def test_the_default_priority_never_ties_and_is_a_valid_int64():
    # Distinct for every distinct (start ms, tie-break): replicas tie only when they start in the same
    # millisecond and draw the same digits (1 in 1000 then).
    seen = {start_priority(ms, r) for ms in range(NOW_MS, NOW_MS + 50) for r in range(PRIORITY_TIE_BREAK)}
    assert len(seen) == 50 * PRIORITY_TIE_BREAK
    year_2255 = int(dt.datetime(2255, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
    for ms in (NOW_MS, year_2255):
        for r in (0, PRIORITY_TIE_BREAK - 1):
            p = start_priority(ms, r)
            assert -INT64_MAX - 1 <= p < 0, p
            assert abs(p) < 2**53, "exact in every JSON reader"
    with pytest.raises(ValueError):
        start_priority(NOW_MS, PRIORITY_TIE_BREAK)
    with pytest.raises(ValueError):
        start_priority(NOW_MS, -1)


def test_the_cli_default_is_the_start_time_priority_and_an_explicit_one_wins(monkeypatch: pytest.MonkeyPatch):
    clock = iter([NOW_MS * 1_000_000, (NOW_MS + 5) * 1_000_000])
    monkeypatch.setattr(peering.time, "time_ns", lambda: next(clock))
    draws = iter([999, 0])  # the worst case for the older one: its highest digits against the lowest
    monkeypatch.setattr(peering.secrets, "randbelow", lambda n: next(draws))
    old, new = cli.parse_args(["-A"]).priority, cli.parse_args(["-A"]).priority
    assert old == start_priority(NOW_MS, 999) and new == start_priority(NOW_MS + 5, 0)
    assert old > new
    assert cli.parse_args(["-A", "--priority", "7"]).priority == 7
    assert cli.parse_args(["-A", "--priority", "0"]).priority == 0 > old, "an explicit priority outranks the default"


def test_real_clock_two_processes_started_apart_rank_oldest_first():
    first = peering.default_priority()
    time.sleep(0.002)
    second = peering.default_priority()
    assert first > second


def _peer(priority: int) -> dict[str, object]:
    return {"priority": priority, "lifetime": 60, "lastseen": dt.datetime.now(dt.UTC).isoformat()}


def test_by_kopf_rule_the_running_replica_stays_active_when_a_new_one_starts():
    running, standby = start_priority(NOW_MS, 500), start_priority(NOW_MS + 3_000, 10)
    new = start_priority(NOW_MS + 600_000, 999)  # a rollout's new pod, or the killed container restarted
    status = {"old@1": _peer(running), "standby@1": _peer(standby), "new@1": _peer(new)}
    now = dt.datetime.now(dt.UTC)
    assert peer_is_active(status, identity="old@1", priority=running, now=now)
    assert not peer_is_active(status, identity="standby@1", priority=standby, now=now)
    assert not peer_is_active(status, identity="new@1", priority=new, now=now), "no preemption"
    # The running one leaves (its keep-alive removed): the older of the others takes over.
    del status["old@1"]
    assert peer_is_active(status, identity="standby@1", priority=standby, now=now)
    assert not peer_is_active(status, identity="new@1", priority=new, now=now)


# ------------------------------------------------------------------------------ drain order


class Recorder:
    """Reconciles that record themselves (in their worker thread); those in ``blocking`` wait for
    ``release`` (bounded, so a failing test leaves no thread behind for long)."""

    def __init__(self, events: list[str], blocking: set[str]) -> None:
        self.events = events
        self.blocking = blocking
        self.release = threading.Event()
        self.started = threading.Event()
        self.lock = threading.Lock()

    def _log(self, what: str) -> None:
        with self.lock:
            self.events.append(what)

    def reconcile(self, namespace: str, name: str) -> Outcome:
        self._log(f"start {name}")
        if name in self.blocking:
            self.started.set()
            self.release.wait(timeout=30)
        self._log(f"end {name}")
        return Outcome(ready=True)


def _gw(name: str, generation: int = 1) -> dict[str, object]:
    return {"metadata": {"namespace": "team", "name": name, "generation": generation}, "spec": {}}


async def _until(predicate: Callable[[], bool], seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def _settings(**overrides: Any) -> OperatorSettings:
    base: dict[str, Any] = {"standalone": True, "workers": 2, "resync_seconds": 3600}
    return OperatorSettings(**{**base, **overrides})


def _active_gauge() -> float | None:
    return REGISTRY.get_sample_value("gong_operator_active")


async def test_after_the_signal_no_key_is_handed_out_and_kopf_stops_only_after_the_reconcile_in_flight():
    events: list[str] = []
    rec = Recorder(events, blocking={"a"})
    settings = _settings(resync_seconds=0.05)  # the resync would queue every object many times over
    gate = PeeringGate(None, settings, "me@1")  # type: ignore[arg-type]  # standalone: never reads
    c = Controller(rec, settings, gate.active)  # type: ignore[arg-type]
    stop_flag: asyncio.Future[signal.Signals] = asyncio.get_running_loop().create_future()
    stop_flag.add_done_callback(lambda f: rec._log("kopf stop flag"))
    graceful = GracefulStop(c, stop_flag, 5.0, release=gate.release)
    c.start()
    try:
        c.on_gongwebhook(None, _gw("a"))
        await _until(rec.started.is_set)
        assert _active_gauge() == 1.0
        graceful.signalled(signal.SIGTERM)
        rec._log("signal")
        assert gate.active("team") is False and _active_gauge() == 0.0, "the gate says 'not active' at once"
        # Work that arrives now: new objects, a change, the resync; the second worker is idle.
        c.on_gongwebhook(None, _gw("b"))
        c.on_gongwebhook("MODIFIED", _gw("a", 2))
        c.on_gongwebhook(None, _gw("c"))
        await asyncio.sleep(0.3)  # six resync periods
        assert not stop_flag.done(), "Kopf must not stop (and hand the peering over) while a reconcile runs"
        assert events == ["start a", "signal"]
        assert c.draining and len(c.in_flight) == 1

        rec.release.set()
        assert await asyncio.wait_for(stop_flag, 5) == signal.SIGTERM
        assert events == ["start a", "signal", "end a", "kopf stop flag"], events
        assert graceful.drained is True
        await asyncio.sleep(0.2)
        assert events[-1] == "kopf stop flag", f"a key was handed out after the drain: {events}"
        assert 0 < graceful.exit_wait(5.0) <= 5.0, "the exit waits what is left of the grace"
    finally:
        rec.release.set()
        await c.stop()


async def test_a_key_whose_peering_check_is_under_way_when_the_signal_comes_is_not_reconciled():
    events: list[str] = []
    rec = Recorder(events, blocking=set())
    in_check, answer = threading.Event(), threading.Event()

    def slow_gate(namespace: str) -> bool:
        in_check.set()
        answer.wait(timeout=30)
        return True  # the answer read before the signal: still "active"

    c = Controller(rec, _settings(), slow_gate)  # type: ignore[arg-type]
    stop_flag: asyncio.Future[signal.Signals] = asyncio.get_running_loop().create_future()
    graceful = GracefulStop(c, stop_flag, 5.0)
    c.start()
    try:
        c.on_gongwebhook(None, _gw("a"))
        await _until(in_check.is_set)
        graceful.signalled(signal.SIGTERM)
        answer.set()
        await asyncio.wait_for(stop_flag, 5)
        assert events == [] and graceful.drained is True
    finally:
        answer.set()
        await c.stop()


async def test_the_drain_is_bounded_by_the_grace():
    events: list[str] = []
    rec = Recorder(events, blocking={"stuck"})
    c = Controller(rec, _settings(), lambda ns: True)  # type: ignore[arg-type]
    stop_flag: asyncio.Future[signal.Signals] = asyncio.get_running_loop().create_future()
    graceful = GracefulStop(c, stop_flag, 0.3)
    c.start()
    try:
        c.on_gongwebhook(None, _gw("stuck"))
        await _until(rec.started.is_set)
        started = time.monotonic()
        graceful.signalled(signal.SIGTERM)
        await asyncio.wait_for(stop_flag, 5)
        assert 0.25 <= time.monotonic() - started < 1.5
        assert graceful.drained is False and events == ["start stuck"]
        assert graceful.exit_wait(5.0) == 0.0, "the grace is used up: the exit waits no longer"
    finally:
        rec.release.set()
        await c.stop()


async def test_a_second_signal_stops_at_once():
    events: list[str] = []
    rec = Recorder(events, blocking={"slow"})
    c = Controller(rec, _settings(), lambda ns: True)  # type: ignore[arg-type]
    stop_flag: asyncio.Future[signal.Signals] = asyncio.get_running_loop().create_future()
    graceful = GracefulStop(c, stop_flag, 30.0)
    c.start()
    try:
        c.on_gongwebhook(None, _gw("slow"))
        await _until(rec.started.is_set)
        graceful.signalled(signal.SIGTERM)
        await asyncio.sleep(0.1)
        assert not stop_flag.done()
        graceful.signalled(signal.SIGINT)
        await asyncio.sleep(0)
        assert stop_flag.done() and stop_flag.result() == signal.SIGTERM
        assert graceful.hurried and graceful.exit_wait(30.0) == 0.0
        graceful.signalled(signal.SIGTERM)  # a third changes nothing
    finally:
        rec.release.set()
        await c.stop()


async def test_no_signal_means_the_whole_grace_at_exit():
    flag: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    graceful = GracefulStop(Controller(None, _settings(), lambda ns: True), flag, 5.0)  # type: ignore[arg-type]
    assert graceful.exit_wait(5.0) == 5.0 and not flag.done()


def test_a_released_gate_answers_not_active_without_reading():
    reads: list[str] = []

    class Kube:
        def get(self, kind: object, ns: str | None, name: str) -> dict[str, Any]:
            reads.append(name)
            return {"status": {}}

    gate = PeeringGate(Kube(), OperatorSettings(peering_name="p", priority=5), "me@1")  # type: ignore[arg-type]
    assert gate.active("") is True and reads == ["p"]
    gate.release()
    assert gate.released and gate.active("") is False and reads == ["p"], "no read, no cached 'active' reused"
    assert _active_gauge() == 0.0


# ------------------------------------------------------------------------------ with the real Kopf


class _EmptyApi(BaseHTTPRequestHandler):
    """Enough of an API server for Kopf's start: discovery answers with no resources."""

    def do_GET(self) -> None:
        body = json.dumps({"kind": "APIVersions", "versions": []} if self.path == "/api"
                          else {"kind": "APIGroupList", "groups": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def empty_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The operator's login handler (kopf.login_via_client) logs in to this server instead (no kubeconfig
    read, no global client configuration changed)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmptyApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setattr(kopf, "login_via_client", lambda **_: kopf.ConnectionInfo(server=url))
    yield
    server.shutdown()
    server.server_close()


def _run_kopf_and_sigterm(controller: Controller, graceful: GracefulStop, stop_flag: asyncio.Future[Any],
                          loop: asyncio.AbstractEventLoop, settings: OperatorSettings,
                          during: Callable[[], None], signals: int) -> None:
    """kopf.run with the operator's own registration (its startup handler takes the signals over); once
    started, ``during`` runs, then the process gets ``signals`` real SIGTERMs. No watches: the
    operator's resources are not in the (empty) API, so Kopf serves nothing and only runs."""
    assert threading.current_thread() is threading.main_thread(), "Kopf handles signals in the main thread only"
    registry = kopf.OperatorRegistry()
    register(registry, controller, settings, graceful)

    @kopf.on.startup(registry=registry)
    async def _then(**_: Any) -> None:  # runs after the operator's own startup handler (registration order)
        await asyncio.sleep(0.2)
        during()
        for i in range(signals):
            asyncio.get_running_loop().call_later(0.2 + 0.2 * i, os.kill, os.getpid(), signal.SIGTERM)

    ks = kopf.OperatorSettings()
    ks.scanning.disabled = True
    ks.posting.enabled = False
    kopf.run(loop=loop, registry=registry, settings=ks, standalone=True, clusterwide=True, stop_flag=stop_flag,
             liveness_endpoint=None)


def test_a_real_sigterm_drains_before_kopf_stops(empty_api: None, caplog: pytest.LogCaptureFixture):
    events: list[str] = []
    rec = Recorder(events, blocking={"a"})
    settings = _settings()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        gate = PeeringGate(None, settings, "me@1")  # type: ignore[arg-type]
        c = Controller(rec, settings, gate.active)  # type: ignore[arg-type]
        stop_flag: asyncio.Future[signal.Signals] = loop.create_future()
        graceful = GracefulStop(c, stop_flag, 5.0, release=gate.release)

        def reconcile_in_flight() -> None:
            c.on_gongwebhook(None, _gw("a"))
            loop.call_later(0.8, rec.release.set)  # finishes 0.6 s after the signal
            loop.call_later(0.6, c.on_gongwebhook, None, _gw("b"))  # arrives during the drain

        with caplog.at_level(logging.INFO):
            started = time.monotonic()
            _run_kopf_and_sigterm(c, graceful, stop_flag, loop, settings, reconcile_in_flight, signals=1)
            took = time.monotonic() - started
    finally:
        rec.release.set()
        asyncio.set_event_loop(None)
        loop.close()
    messages = [r.getMessage() for r in caplog.records]
    order = [m for m in messages if m.startswith(("SIGTERM received: draining", "drained in", "Signal SIGTERM"))]
    assert [m.split(":")[0].split(" in ")[0] for m in order] == [
        "SIGTERM received", "drained", "Signal SIGTERM is received. Operator is stopping."], order
    assert events == ["start a", "end a"], "b arrived after the signal and was not handed out"
    assert graceful.drained is True and stop_flag.result() == signal.SIGTERM
    assert took < 10, took


def test_a_second_real_sigterm_stops_kopf_at_once(empty_api: None, caplog: pytest.LogCaptureFixture):
    events: list[str] = []
    rec = Recorder(events, blocking={"a"})
    settings = _settings()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        c = Controller(rec, settings, lambda ns: True)  # type: ignore[arg-type]
        stop_flag: asyncio.Future[signal.Signals] = loop.create_future()
        graceful = GracefulStop(c, stop_flag, 60.0)
        with caplog.at_level(logging.INFO):
            started = time.monotonic()
            _run_kopf_and_sigterm(c, graceful, stop_flag, loop, settings,
                                  lambda: c.on_gongwebhook(None, _gw("a")), signals=2)
            took = time.monotonic() - started
    finally:
        rec.release.set()
        asyncio.set_event_loop(None)
        loop.close()
    assert graceful.hurried and graceful.drained is None and graceful.exit_wait(60.0) == 0.0
    assert any(r.getMessage().startswith("second signal (SIGTERM): stopping at once") for r in caplog.records)
    assert took < 10, f"not stopped at once: {took:.1f}s (the grace is 60 s)"
