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
