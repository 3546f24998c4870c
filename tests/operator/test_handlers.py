from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest
from pydantic import ValidationError
from urllib3.exceptions import MaxRetryError

from gong_operator import cli
from gong_operator.controller import Controller
from gong_operator.peering import peer_is_active
from gong_operator.reconcile import Outcome
from gong_operator.registration import kopf_settings
from gong_operator.settings import OperatorSettings

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def _peer(priority: int, seconds_ago: int, lifetime: int = 60) -> dict[str, object]:
    return {"priority": priority, "lifetime": lifetime,
            "lastseen": (NOW - dt.timedelta(seconds=seconds_ago)).isoformat()}


def test_peering_highest_live_priority_wins():
    assert peer_is_active({}, identity="me", priority=5, now=NOW)
    assert peer_is_active({"me": _peer(5, 0), "b": _peer(3, 0)}, identity="me", priority=5, now=NOW)
    assert not peer_is_active({"me": _peer(5, 0), "b": _peer(7, 0)}, identity="me", priority=5, now=NOW)
    assert not peer_is_active({"b": _peer(5, 0)}, identity="me", priority=5, now=NOW), "a tie pauses both"
    assert peer_is_active({"b": _peer(7, 120)}, identity="me", priority=5, now=NOW), "dead peers do not count"


def test_a_short_lifetime_peer_is_dead_sooner():
    # The dead replica's own lifetime decides (it is in its entry), not the reader's setting.
    assert peer_is_active({"b": _peer(7, 12, lifetime=10)}, identity="me", priority=5, now=NOW)
    assert not peer_is_active({"b": _peer(7, 8, lifetime=10)}, identity="me", priority=5, now=NOW)
    assert not peer_is_active({"b": _peer(7, 12, lifetime=60)}, identity="me", priority=5, now=NOW)


def test_peering_lifetime_flag_reaches_kopf():
    assert kopf_settings(cli.parse_args(["-A"])).peering.lifetime == 60
    settings = cli.parse_args(["-A", "--peering-lifetime", "15"])
    assert settings.peering_lifetime == 15 and kopf_settings(settings).peering.lifetime == 15
    with pytest.raises(ValidationError):
        cli.parse_args(["-A", "--peering-lifetime", "5"])


class NoReconciler:
    def reconcile(self, namespace: str, name: str):  # pragma: no cover - never called here
        raise AssertionError


def _controller() -> Controller:
    return Controller(NoReconciler(), OperatorSettings(standalone=True), lambda ns: True)  # type: ignore[arg-type]


def _gw(name: str, generation: int, source: str = "src", ns: str | None = None) -> dict[str, object]:
    ref: dict[str, str] = {"name": source}
    if ns:
        ref["namespace"] = ns
    return {"metadata": {"namespace": "team", "name": name, "generation": generation},
            "spec": {"secrets": {"sourceRef": ref}}}


async def test_only_spec_changes_of_the_custom_resource_are_queued():
    c = _controller()
    c.on_gongwebhook(None, _gw("a", 1))
    assert await c.queue.get() == (("team", "a"), "resume")
    c.queue.done(("team", "a"))
    c.on_gongwebhook("MODIFIED", _gw("a", 1))  # e.g. our own status patch
    assert len(c.queue) == 0
    c.on_gongwebhook("MODIFIED", _gw("a", 2))
    assert await c.queue.get() == (("team", "a"), "spec")


async def test_secret_and_child_events_map_to_their_owner():
    c = _controller()
    c.on_gongwebhook(None, _gw("a", 1, source="shared"))
    c.on_gongwebhook(None, _gw("b", 1, source="shared", ns="vault"))
    await c.queue.get(), await c.queue.get()
    c.queue.done(("team", "a")), c.queue.done(("team", "b"))
    c.on_secret({"metadata": {"namespace": "team", "name": "shared"}})
    assert await c.queue.get() == (("team", "a"), "secret")
    c.queue.done(("team", "a"))
    assert len(c.queue) == 0
    c.on_secret({"metadata": {"namespace": "vault", "name": "shared"}})
    assert await c.queue.get() == (("team", "b"), "secret")
    c.queue.done(("team", "b"))
    c.on_child({"metadata": {"namespace": "team", "name": "a-config", "ownerReferences": [
        {"apiVersion": "gong.sophia-ai.com/v1alpha1", "kind": "GongWebhook", "name": "a", "controller": True}]}})
    assert await c.queue.get() == (("team", "a"), "child")
    c.queue.done(("team", "a"))
    c.on_child({"metadata": {"namespace": "team", "name": "x", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "controller": True}]}})
    assert len(c.queue) == 0


def test_deleted_resources_are_forgotten():
    c = _controller()
    c.on_gongwebhook(None, _gw("a", 1))
    c.on_gongwebhook("DELETED", _gw("a", 1))
    assert c.known == {} and c.sources == {}


class CountingReconciler:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def reconcile(self, namespace: str, name: str) -> Outcome:
        self.calls.append((namespace, name))
        return Outcome(ready=True)


async def test_unreachable_api_server_in_the_peering_check_is_retried_and_keeps_the_workers_alive():
    # Found by tests/faults/test_apiserver_restart.py: the peering check's GET raised urllib3's
    # MaxRetryError (not a KubeError) while the API server restarted, which ended both worker tasks
    # for good; the operator looked healthy and never reconciled again.
    failures = [MaxRetryError(None, "/apis/kopf.dev/v1/clusterkopfpeerings/x")] * 3  # type: ignore[arg-type]

    def gate(namespace: str) -> bool:
        if failures:
            raise failures.pop()
        return True

    reconciler = CountingReconciler()
    settings = OperatorSettings(standalone=True, workers=1, retry_base_seconds=0.01, resync_seconds=3600)
    c = Controller(reconciler, settings, gate)  # type: ignore[arg-type]
    c.start()
    try:
        c.on_gongwebhook(None, _gw("a", 1))
        for _ in range(200):
            if reconciler.calls:
                break
            await asyncio.sleep(0.01)
        assert reconciler.calls == [("team", "a")], "a failed peering check must be retried, not dropped"
        assert failures == []
        assert all(not t.done() for t in c._tasks), "a worker task ended"
        c.queue.add(("team", "a"), "child")  # the worker still takes new work
        for _ in range(200):
            if len(reconciler.calls) == 2:
                break
            await asyncio.sleep(0.01)
        assert len(reconciler.calls) == 2
    finally:
        await c.stop()


class ScriptedReconciler:
    def __init__(self, outcomes: list[Outcome]) -> None:
        self.outcomes = outcomes

    def reconcile(self, namespace: str, name: str) -> Outcome:
        return self.outcomes.pop(0)


async def test_a_reconcile_that_wrote_is_logged_with_its_generation_and_a_no_op_only_at_debug(
        caplog: pytest.LogCaptureFixture) -> None:
    # tests/node/test_operator_ha.py tells from these lines which replica reconciled which generation.
    reconciler = ScriptedReconciler([
        Outcome(applied=["ConfigMap/a", "Deployment/a"], status_written=True, generation=3),
        Outcome(generation=3),
        Outcome(error="API request failed: 500 x", generation=4),
    ])
    c = Controller(reconciler, OperatorSettings(standalone=True, workers=1, resync_seconds=3600),  # type: ignore[arg-type]
                   lambda ns: True)
    with caplog.at_level(logging.DEBUG, logger="gong_operator.controller"):
        for trigger in ("created", "child", "spec"):
            await c._process(("team", "a"), trigger)
    lines = [r for r in caplog.records if r.getMessage().startswith("reconciled ")]
    assert [r.levelno for r in lines] == [logging.INFO, logging.DEBUG, logging.INFO]
    assert lines[0].getMessage().startswith("reconciled team/a generation 3 (trigger created, ")
    assert lines[0].getMessage().endswith("s): applied ConfigMap/a, Deployment/a; status written")
    assert lines[1].getMessage().endswith("s): nothing to change")
    assert lines[2].getMessage().endswith("s): error: API request failed: 500 x")
    first = lines[0].__dict__
    assert (first["gongwebhook"], first["generation"], first["trigger"], first["result"], first["applied"],
            first["status_written"]) == ("team/a", 3, "created", "success", ["ConfigMap/a", "Deployment/a"], True)
    assert first["duration_seconds"] >= 0
    assert lines[2].__dict__["result"] == "error"
    c.failures.clear()
    c.queue.forget(("team", "a"))


async def test_a_reconcile_still_running_when_the_operator_stops_is_logged_when_it_ends(
        caplog: pytest.LogCaptureFixture) -> None:
    # On SIGTERM Kopf cancels the workers while a reconcile may still run in its thread (the exit grace
    # lets it finish): its writes happen, so its line must be written too.
    import threading

    release = threading.Event()
    finished = threading.Event()

    class Slow:
        def reconcile(self, namespace: str, name: str) -> Outcome:
            release.wait(5)
            finished.set()
            return Outcome(applied=["ConfigMap/a"], status_written=True, generation=7)

    c = Controller(Slow(), OperatorSettings(standalone=True, workers=1, resync_seconds=3600),  # type: ignore[arg-type]
                   lambda ns: True)
    with caplog.at_level(logging.INFO, logger="gong_operator.controller"):
        task = asyncio.create_task(c._process(("team", "a"), "spec"))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
        assert await asyncio.to_thread(finished.wait, 5)
        for _ in range(100):
            if any(r.getMessage().startswith("reconciled team/a generation 7") for r in caplog.records):
                break
            await asyncio.sleep(0.01)
    assert any(r.getMessage().startswith("reconciled team/a generation 7 (trigger spec") for r in caplog.records)
