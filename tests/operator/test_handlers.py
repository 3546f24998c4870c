from __future__ import annotations

import datetime as dt

from gong_operator.handlers import Controller, peer_is_active
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
