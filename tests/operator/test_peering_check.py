"""Issue 10 #2: with peering on and Kopf's peering CRD or object missing, the operator used to log
"starting" and then nothing, forever. Now it says so at ERROR within seconds, names what is missing and
both remedies, repeats at a low rate, and fails /healthz (Kopf never looks for the CRD again after its
start, so a restart is what recovers it) and gong_operator_peering_ready."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from prometheus_client import REGISTRY

from gong_operator import kube as k
from gong_operator.controller import Controller
from gong_operator.peering import peering_problem
from gong_operator.reconcile import Outcome
from gong_operator.settings import OperatorSettings


class DiscoveryKube:
    def __init__(self, served: set[str], objects: set[tuple[str, str]]) -> None:
        self.served_plurals = served
        self.objects = objects  # (namespace, or "" for the cluster-scoped kind, name)

    def served(self, kind: k.Kind) -> bool:
        return kind.plural in self.served_plurals

    def get(self, kind: k.Kind, ns: str | None, name: str) -> dict[str, Any] | None:
        return {"metadata": {"name": name}} if (ns or "", name) in self.objects else None


CLUSTERWIDE = OperatorSettings(peering_name="gong-webhook-operator")
NAMESPACED = OperatorSettings(peering_name="gong-webhook-operator", namespaces=("team-a", "team-b"))
BOTH = {"clusterkopfpeerings", "kopfpeerings"}


def _problem(settings: OperatorSettings, served: set[str], objects: set[tuple[str, str]]) -> str | None:
    return peering_problem(DiscoveryKube(served, objects), settings)  # type: ignore[arg-type]


def test_missing_crd_is_named_with_both_remedies():
    msg = _problem(CLUSTERWIDE, {"kopfpeerings"}, set())
    assert msg is not None and "clusterkopfpeerings.kopf.dev is not installed" in msg
    assert "kubectl apply -k config/peering" in msg and "--standalone" in msg
    msg = _problem(NAMESPACED, {"clusterkopfpeerings"}, set())
    assert msg is not None and "kopfpeerings.kopf.dev is not installed" in msg and "--standalone" in msg


def test_missing_peering_object_is_named():
    msg = _problem(CLUSTERWIDE, BOTH, set())
    assert msg is not None and "ClusterKopfPeering gong-webhook-operator does not exist" in msg
    assert "config/peering" in msg and "--standalone" in msg
    msg = _problem(NAMESPACED, BOTH, {("team-a", "gong-webhook-operator")})
    assert msg is not None and "KopfPeering gong-webhook-operator does not exist in namespace(s) team-b" in msg


def test_in_place_or_standalone_is_fine():
    assert _problem(CLUSTERWIDE, BOTH, {("", "gong-webhook-operator")}) is None
    assert _problem(OperatorSettings(standalone=True), set(), set()) is None


def test_an_unreachable_api_is_not_reported_as_missing():
    class Down(DiscoveryKube):
        def served(self, kind: k.Kind) -> bool:
            raise OSError("connection refused")

    assert peering_problem(Down(set(), set()), CLUSTERWIDE) is None  # type: ignore[arg-type]


class NoReconcile:
    def reconcile(self, namespace: str, name: str) -> Outcome:
        return Outcome()


def _peering_gauge() -> float | None:
    return REGISTRY.get_sample_value("gong_operator_peering_ready")


def test_controller_logs_at_once_then_at_a_low_rate_and_fails_health(caplog: pytest.LogCaptureFixture) -> None:
    answers = ["peering is on but X is missing"] * 6 + [None]

    def check() -> str | None:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    async def scenario() -> list[tuple[bool, float | None]]:
        c = Controller(NoReconcile(), OperatorSettings(workers=1, resync_seconds=3600), lambda ns: True,  # type: ignore[arg-type]
                       peering_check=check, peering_check_seconds=0.05, peering_report_seconds=0.12)
        c.start()
        seen = []
        for _ in range(12):
            await asyncio.sleep(0.05)
            h = c.health()
            seen.append((h.ok, _peering_gauge()))
        await c.stop()
        return seen

    with caplog.at_level(logging.INFO, logger="gong_operator.controller"):
        seen = asyncio.run(scenario())
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and errors[0].getMessage() == "peering is on but X is missing"
    # Six failing checks 0.05 s apart, reported every 0.12 s: the first at once, then 1-2 repeats, not 6.
    assert 2 <= len(errors) <= 3, [r.getMessage() for r in errors]
    assert seen[0] == (False, 0.0), "health and metric show the problem from the first check on"
    assert seen[-1] == (True, 1.0), "and recover once the peering is in place"
    assert any(r.levelno == logging.INFO and "peering is in place" in r.getMessage() for r in caplog.records)


class PeeringKube:
    """The peering object's status as the replicas' keep-alives leave it."""

    def __init__(self) -> None:
        self.status: dict[str, Any] = {}

    def get(self, kind: k.Kind, ns: str | None, name: str) -> dict[str, Any] | None:
        return {"metadata": {"name": name}, "status": dict(self.status)}


def _active_gauge() -> float | None:
    return REGISTRY.get_sample_value("gong_operator_active")


def test_the_active_gauge_follows_the_peering_without_any_work() -> None:
    # Found by tests/node/test_operator_ha.py: the gauge was set only when a reconcile asked the gate, so
    # a replica that Kopf had paused (and so got no keys) kept saying 1, next to the new active one.
    import datetime as dt

    from gong_operator.peering import PeeringGate

    settings = OperatorSettings(peering_name="gong-webhook-operator", priority=5, workers=1, resync_seconds=3600)
    kube = PeeringKube()
    gate = PeeringGate(kube, settings, "me@1", ttl=0)  # type: ignore[arg-type]

    def higher_peer(alive: bool) -> None:
        seen = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=0 if alive else 120)
        kube.status = {"other@1": {"priority": 9, "lifetime": 60, "lastseen": seen.isoformat()}}

    async def scenario() -> list[float | None]:
        c = Controller(NoReconcile(), settings, gate.active, peering_check=lambda: None,  # type: ignore[arg-type]
                       peering_check_seconds=0.02)
        seen = []
        higher_peer(alive=False)
        c.start()
        await asyncio.sleep(0.1)
        seen.append(_active_gauge())
        higher_peer(alive=True)  # a peer with a higher priority appears: Kopf pauses us
        await asyncio.sleep(0.1)
        seen.append(_active_gauge())
        higher_peer(alive=False)
        await asyncio.sleep(0.1)
        seen.append(_active_gauge())
        await c.stop()
        return seen

    assert asyncio.run(scenario()) == [1.0, 0.0, 1.0]


def test_a_failing_gate_check_keeps_the_peering_loop_running() -> None:
    calls: list[str] = []

    def failing_gate(namespace: str) -> bool:
        calls.append(namespace)
        raise OSError("connection refused")

    async def scenario() -> bool:
        c = Controller(NoReconcile(), OperatorSettings(workers=1, resync_seconds=3600),  # type: ignore[arg-type]
                       failing_gate, peering_check=lambda: None, peering_check_seconds=0.01)
        c.start()
        for _ in range(500):
            if len(calls) >= 3:
                break
            await asyncio.sleep(0.01)
        ok = c.health().ok
        await c.stop()
        return ok

    assert asyncio.run(scenario()), "a failing gate check must not end the peering loop"
    assert calls[:3] == ["", "", ""]


def test_standalone_is_active_from_the_start() -> None:
    from gong_operator.peering import PeeringGate

    PeeringGate(PeeringKube(), OperatorSettings(standalone=True), "me@1")  # type: ignore[arg-type]
    assert _active_gauge() == 1.0


def test_not_active_is_never_reused_so_a_resume_drops_no_keys() -> None:
    # Found by tests/node/test_operator_ha.py: a standby that had just been told "not active" (cached for
    # 5 s) was resumed by Kopf, which listed every GongWebhook; the workers dropped all those keys, and
    # two objects created during the rollout were reconciled only by the resync a minute later.
    import datetime as dt

    from gong_operator.peering import PeeringGate

    settings = OperatorSettings(peering_name="gong-webhook-operator", priority=5)
    kube = PeeringKube()
    gate = PeeringGate(kube, settings, "me@1", ttl=60)  # type: ignore[arg-type]
    now = dt.datetime.now(dt.UTC).isoformat()
    kube.status = {"other@1": {"priority": 9, "lifetime": 60, "lastseen": now}}
    assert gate.active("") is False
    kube.status = {}  # the other replica stopped and removed its keep-alive; Kopf resumes us
    assert gate.active("") is True, "a 'not active' from a moment before must not be reused"
    kube.status = {"other@1": {"priority": 9, "lifetime": 60, "lastseen": now}}
    assert gate.active("") is True, "'active' is reused for the ttl (one GET per ttl, not per reconcile)"


def test_a_failed_peering_read_raises_so_that_the_key_is_retried() -> None:
    from gong_operator.peering import PeeringGate

    class Refusing(PeeringKube):
        def get(self, kind: k.Kind, ns: str | None, name: str) -> dict[str, Any] | None:
            raise k.KubeError(503, "Service Unavailable", "")

    gate = PeeringGate(Refusing(), OperatorSettings(peering_name="gong-webhook-operator"), "me@1")  # type: ignore[arg-type]
    with pytest.raises(k.KubeError):
        gate.active("")
