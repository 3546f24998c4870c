"""status.compose: what one reconcile saw and did in, status and Events out. Pure inputs only (no
client, no fake API): an Observed and an ApplyReport built by hand, one row per situation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from gong_operator import secret_sync, status
from gong_operator.secret_sync import SyncResult
from gong_operator.status import ApplyReport, Observed
from tests.support.specs import make_spec

NOW = "2026-01-01T12:00:00Z"
EARLIER = "2025-12-31T08:00:00Z"
PUBLIC_URL = "https://hooks.example.com/webhooks/gong"
SYNCED = SyncResult(True, secret_sync.SYNCED, "credentials synced from Secret team/src", "secret", data={"K": b"v"})
MISSING = SyncResult(False, secret_sync.SOURCE_MISSING, "Secret team/src not found", "secret")
FORBIDDEN = secret_sync.write_forbidden("team", "gw-credentials", "secret")
CHILDREN = (("v1", "ConfigMap", "gw-config"), ("v1", "Secret", "gw-credentials"), ("apps/v1", "Deployment", "gw"),
            ("v1", "Service", "gw"), ("policy/v1", "PodDisruptionBudget", "gw"))


def _dep(desired: int = 3, ready: int = 3, updated: int = 3, available: bool = True,
         deadline: bool = False) -> dict[str, Any]:
    conds = [{"type": "Available", "status": "True" if available else "False"}]
    if deadline:
        conds.append({"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"})
    return {"metadata": {"name": "gw", "generation": 2}, "spec": {"replicas": desired},
            "status": {"observedGeneration": 2, "readyReplicas": ready, "updatedReplicas": updated,
                       "conditions": conds}}


def _cond(type_: str, status_: str, reason: str, message: str = "", at: str = EARLIER) -> dict[str, Any]:
    return {"type": type_, "status": status_, "reason": reason, "message": message, "lastTransitionTime": at,
            "observedGeneration": 1}


HEALTHY_BEFORE = {
    "observedGeneration": 1, "secretHash": "old-hash",
    "conditions": [_cond("Ready", "True", "Available", "3/3 ready, 3 updated"),
                   _cond("Progressing", "False", "Complete", "3/3 ready, 3 updated"),
                   _cond("Degraded", "False", "AsExpected"),
                   _cond("SecretsSynced", "True", secret_sync.SYNCED, SYNCED.message),
                   _cond("MonitoringConfigured", "False", "CRDNotInstalled", "")],
}


@dataclass(frozen=True)
class Row:
    """One situation: spec overrides, what was read, what the apply did, and what must come out."""

    name: str
    want: dict[str, tuple[str, str]]  # condition type -> (status, reason)
    events: list[tuple[str, str]] = field(default_factory=list)  # (type, reason), in posting order
    spec: dict[str, Any] = field(default_factory=dict)
    old: dict[str, Any] = field(default_factory=dict)
    secrets: SyncResult | None = SYNCED
    deployment: dict[str, Any] | None = field(default_factory=_dep)
    report: ApplyReport = field(default_factory=ApplyReport)
    invalid_config: str | None = None
    pod_failure: str | None = None
    sm_api: bool = False


ROWS = [
    Row("healthy, nothing changed", old=HEALTHY_BEFORE,
        want={"Ready": ("True", "Available"), "Progressing": ("False", "Complete"),
              "Degraded": ("False", "AsExpected"), "SecretsSynced": ("True", "Synced"),
              "MonitoringConfigured": ("False", "CRDNotInstalled")}),
    Row("first reconcile, Deployment not seen yet", deployment=None,
        want={"Ready": ("Unknown", "Pending"), "Progressing": ("Unknown", "Pending"),
              "Degraded": ("False", "AsExpected"), "SecretsSynced": ("True", "Synced")}),
    Row("rolling out", deployment=_dep(ready=1, updated=2, available=False),
        want={"Ready": ("False", "RollingOut"), "Progressing": ("True", "RollingOut")}),
    Row("below minReplicas", deployment=_dep(desired=1, ready=1, updated=1),
        want={"Ready": ("False", "ScalingUp")}),
    Row("rollout stuck", deployment=_dep(ready=1, available=False, deadline=True),
        want={"Degraded": ("True", "ProgressDeadlineExceeded")}),
    Row("credentials gone: Warning once", old=HEALTHY_BEFORE, secrets=MISSING,
        want={"Ready": ("False", "SecretsNotSynced"), "Degraded": ("True", "SecretsNotSynced"),
              "SecretsSynced": ("False", secret_sync.SOURCE_MISSING)},
        events=[("Warning", secret_sync.SOURCE_MISSING)]),
    Row("credentials still gone: no second Warning", secrets=MISSING, deployment=None,
        old={"conditions": [_cond("SecretsSynced", "False", secret_sync.SOURCE_MISSING, MISSING.message)]},
        want={"Ready": ("False", "SecretsNotSynced"), "Progressing": ("False", "SecretsNotSynced")}),
    Row("credentials back: SecretsRecovered",
        old={"conditions": [_cond("SecretsSynced", "False", secret_sync.SOURCE_MISSING, MISSING.message)]},
        want={"Ready": ("True", "Available"), "SecretsSynced": ("True", "Synced")},
        events=[("Normal", "SecretsRecovered")]),
    Row("Secret write refused", old=HEALTHY_BEFORE, report=ApplyReport(secrets=FORBIDDEN),
        want={"Ready": ("False", "SecretsNotSynced"), "SecretsSynced": ("False", secret_sync.FORBIDDEN)},
        events=[("Warning", secret_sync.FORBIDDEN)]),
    Row("child name taken", old=HEALTHY_BEFORE,
        report=ApplyReport(error="Service gw exists and is not controlled by this GongWebhook", conflict=True),
        want={"Ready": ("False", "ReconcileError"), "Degraded": ("True", "ReconcileError")},
        events=[("Warning", "ChildConflict")]),
    Row("child name still taken: no second event",
        old={"conditions": [_cond("Degraded", "True", "ReconcileError",
                                  "Service gw exists and is not controlled by this GongWebhook")]},
        report=ApplyReport(error="Service gw exists and is not controlled by this GongWebhook", conflict=True),
        want={"Degraded": ("True", "ReconcileError")}),
    Row("API error: no event", report=ApplyReport(error="API request failed: 500 InternalError"),
        want={"Ready": ("False", "ReconcileError"), "Degraded": ("True", "ReconcileError")}),
    Row("the app would refuse its config", invalid_config="GONG_API_RATE_LIMIT: must be > 0",
        want={"Ready": ("False", status.INVALID_CONFIG), "Progressing": ("False", status.INVALID_CONFIG),
              "Degraded": ("True", status.INVALID_CONFIG)},
        events=[("Warning", status.INVALID_CONFIG)]),
    Row("pods failing: Warning on the transition", deployment=_dep(ready=0, available=False),
        pod_failure="pod gw-1 container webhook: CrashLoopBackOff, last exit 2",
        want={"Ready": ("False", status.PODS_FAILING), "Degraded": ("True", status.PODS_FAILING)},
        events=[("Warning", status.PODS_FAILING)]),
    Row("pods still failing: no second Warning", deployment=_dep(ready=0, available=False),
        pod_failure="pod gw-2 container webhook: CrashLoopBackOff, last exit 2",
        old={"conditions": [_cond("Degraded", "True", status.PODS_FAILING, "pod gw-1 container webhook: ...")]},
        want={"Degraded": ("True", status.PODS_FAILING)}),
    Row("ServiceMonitor wanted and served", sm_api=True,
        want={"MonitoringConfigured": ("True", "ServiceMonitorApplied")}),
    Row("ServiceMonitor switched off", sm_api=True, spec={"monitoring": {"serviceMonitor": {"enabled": False}}},
        want={"MonitoringConfigured": ("False", "Disabled")}),
    Row("suspended: last SecretsSynced kept", spec={"suspend": True}, old=HEALTHY_BEFORE, secrets=None,
        deployment=_dep(desired=0, ready=0, updated=0),
        want={"Ready": ("False", "Suspended"), "Progressing": ("False", "Suspended"),
              "Degraded": ("False", "Suspended"), "SecretsSynced": ("True", "Synced"),
              "MonitoringConfigured": ("False", "CRDNotInstalled")}),
    Row("suspended before anything was evaluated", spec={"suspend": True}, secrets=None, deployment=None,
        want={"Ready": ("False", "Suspended"), "SecretsSynced": ("Unknown", "Suspended"),
              "MonitoringConfigured": ("Unknown", "Suspended")}),
]


def _row(name: str) -> Row:
    return next(r for r in ROWS if r.name == name)


def _observed(row: Row) -> Observed:
    spec = make_spec(gong={"publicUrl": PUBLIC_URL}, **row.spec)
    body = {"metadata": {"name": "gw", "namespace": "team", "uid": "gw-uid", "generation": 2},
            "status": row.old}
    return Observed(body, NOW, spec, secrets=row.secrets, service_monitor_api=row.sm_api,
                    invalid_config=row.invalid_config, digest="new-hash", children=CHILDREN,
                    deployment=row.deployment, rollout=status.Rollout.from_deployment(row.deployment),
                    pod_failure=row.pod_failure)


def _conditions(written: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in written["conditions"]}


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_conditions_and_events(row: Row) -> None:
    new_status, events = status.compose(_observed(row), row.report)
    conditions = _conditions(status.to_json(new_status))
    assert {t: conditions[t] for t in row.want} == row.want
    assert list(conditions) == list(status.CONDITION_TYPES)
    assert [(e.type, e.reason) for e in events] == row.events


def test_a_running_status_has_every_field_in_the_written_shape() -> None:
    new_status, _ = status.compose(_observed(_row("healthy, nothing changed")), ApplyReport())
    written = status.to_json(new_status)
    assert list(written) == ["observedGeneration", "conditions", "replicas", "readyReplicas", "updatedReplicas",
                             "replicasSummary", "selector", "endpoint", "secrets", "secretHash", "suspended",
                             "children"]
    assert written["observedGeneration"] == 2 and written["replicasSummary"] == "3/3"
    assert written["selector"] == "app.kubernetes.io/name=gong-webhook,app.kubernetes.io/instance=gw"
    assert written["endpoint"] == PUBLIC_URL and written["secrets"] == "Synced" and written["secretHash"] == "new-hash"
    assert written["children"][0] == {"apiVersion": "v1", "kind": "ConfigMap", "name": "gw-config"}
    assert list(written["conditions"][0]) == ["type", "status", "reason", "message", "lastTransitionTime",
                                              "observedGeneration"]


def test_last_transition_time_moves_only_with_the_status() -> None:
    row = _row("credentials gone: Warning once")  # Ready flips, Progressing stays False
    conditions = {c["type"]: c for c in status.to_json(status.compose(_observed(row), row.report)[0])["conditions"]}
    assert conditions["Ready"]["lastTransitionTime"] == NOW
    assert conditions["Progressing"]["lastTransitionTime"] == EARLIER
    assert all(c["observedGeneration"] == 2 for c in conditions.values())


def test_without_credentials_or_deployment_the_workload_trio_is_not_listed() -> None:
    row = Row("no credentials, no Deployment", want={}, secrets=MISSING, deployment=None)
    written = status.to_json(status.compose(_observed(row), ApplyReport())[0])
    assert [c["kind"] for c in written["children"]] == ["Service", "PodDisruptionBudget"]
    # Once the Deployment exists it is listed again, credentials or not.
    row = Row("no credentials, Deployment kept", want={}, secrets=MISSING)
    written = status.to_json(status.compose(_observed(row), ApplyReport())[0])
    assert [c["kind"] for c in written["children"]][:3] == ["ConfigMap", "Secret", "Deployment"]


def test_a_refused_secret_write_keeps_the_pods_hash() -> None:
    row = _row("Secret write refused")
    written = status.to_json(status.compose(_observed(row), row.report)[0])
    assert written["secretHash"] == "old-hash" and written["secrets"] == secret_sync.FORBIDDEN


def test_an_invalid_spec_writes_only_generation_and_conditions_and_keeps_the_others() -> None:
    body = {"metadata": {"name": "gw", "namespace": "team", "uid": "gw-uid", "generation": 3},
            "status": HEALTHY_BEFORE}
    new_status, events = status.compose(Observed(body, NOW, spec_error="spec is invalid at: replicas"),
                                        ApplyReport(error="spec is invalid at: replicas"))
    written = status.to_json(new_status)
    assert events == []
    assert written["observedGeneration"] == 3 and written["secretHash"] == "old-hash"
    assert _conditions(written) == {"Ready": ("False", "InvalidSpec"), "Degraded": ("True", "InvalidSpec"),
                                    "Progressing": ("False", "Complete"), "SecretsSynced": ("True", "Synced"),
                                    "MonitoringConfigured": ("False", "CRDNotInstalled")}
    fresh = status.to_json(status.compose(Observed({**body, "status": {}}, NOW, spec_error="x"), ApplyReport())[0])
    assert sorted(fresh) == ["conditions", "observedGeneration"]


def test_a_suspended_status_keeps_the_old_fields_and_says_suspended() -> None:
    row = _row("suspended: last SecretsSynced kept")
    written = status.to_json(status.compose(_observed(row), ApplyReport())[0])
    assert written["suspended"] is True and written["replicas"] == 0 and written["replicasSummary"] == "0/0"
    assert written["secretHash"] == "old-hash"  # carried over, not recomputed while suspended
    fresh = status.to_json(status.compose(_observed(_row("suspended before anything was evaluated")), ApplyReport())[0])
    assert sorted(fresh) == ["conditions", "observedGeneration", "readyReplicas", "replicas", "replicasSummary",
                             "suspended", "updatedReplicas"]
