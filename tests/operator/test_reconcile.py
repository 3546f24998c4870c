"""The reconcile flow against an in-memory API (no cluster): what gets written, and when not."""

from __future__ import annotations

import base64
import copy
from typing import Any

from gong_operator import kube as k
from gong_operator import reconcile
from gong_operator.reconcile import GW, Reconciler
from tests.support.fake_kube import CREDS, ONE_POD, SELECTOR, FakeKube, deployment_rollout, fake_reconciler
from tests.support.specs import EXAMPLE_PUBLIC_KEY


def _conds(kube: FakeKube) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in kube.objects[("GongWebhook", "team", "gw")]["status"]["conditions"]}


def test_first_reconcile_creates_children_then_a_second_writes_nothing():
    kube, rec = fake_reconciler()
    out = rec.reconcile("team", "gw")
    applied = {kind for verb, kind, _ in kube.writes if verb == "APPLY"}
    assert applied == {"ConfigMap", "Secret", "Deployment", "Service", "HorizontalPodAutoscaler",
                       "NetworkPolicy", "PodDisruptionBudget"}
    assert out.status_written and not out.error
    conds = _conds(kube)
    assert set(conds) == {"Ready", "Progressing", "Degraded", "SecretsSynced", "MonitoringConfigured"}
    assert conds["Ready"]["status"] == "Unknown"
    assert conds["MonitoringConfigured"]["reason"] == "CRDNotInstalled"
    kube.writes.clear()
    out2 = rec.reconcile("team", "gw")
    assert kube.writes == [] and not out2.status_written


def test_hand_edit_is_reapplied_and_evented():
    kube, rec = fake_reconciler()
    rec.reconcile("team", "gw")
    kube.objects[("Service", "team", "gw")]["spec"]["sessionAffinity"] = "ClientIP"
    del kube.objects[("ConfigMap", "team", "gw-config")]
    kube.writes.clear()
    rec.reconcile("team", "gw")
    assert ("APPLY", "Service", "gw") in kube.writes and ("APPLY", "ConfigMap", "gw-config") in kube.writes
    assert ("POST", "Event", "Updated") in kube.writes and ("POST", "Event", "Created") in kube.writes
    assert len([w for w in kube.writes if w[0] == "APPLY"]) == 2


def test_switched_off_children_are_deleted():
    kube, rec = fake_reconciler()
    rec.reconcile("team", "gw")
    kube.objects[("GongWebhook", "team", "gw")]["spec"].update(
        {"autoscaling": {"enabled": False}, "replicas": 3, "networkPolicy": {"enabled": False}})
    kube.writes.clear()
    out = rec.reconcile("team", "gw")
    assert sorted(out.deleted) == ["HorizontalPodAutoscaler/gw", "NetworkPolicy/gw"]
    assert kube.objects[("Deployment", "team", "gw")]["spec"]["replicas"] == 3


def test_missing_key_keeps_the_workload_and_reports():
    kube, rec = fake_reconciler()
    rec.reconcile("team", "gw")
    dep_before = copy.deepcopy(kube.objects[("Deployment", "team", "gw")])
    creds_before = copy.deepcopy(kube.objects[("Secret", "team", "gw-credentials")])
    del kube.objects[("Secret", "team", "src")]["data"]["SNOWFLAKE_USER"]
    kube.writes.clear()
    rec.reconcile("team", "gw")
    assert not any(w[0] == "APPLY" and w[1] in ("Deployment", "Secret", "ConfigMap") for w in kube.writes)
    assert kube.objects[("Deployment", "team", "gw")] == dep_before
    assert kube.objects[("Secret", "team", "gw-credentials")] == creds_before
    cond = _conds(kube)["SecretsSynced"]
    assert (cond["status"], cond["reason"]) == ("False", "KeysMissing") and "SNOWFLAKE_USER" in cond["message"]
    assert ("POST", "Event", "KeysMissing") in kube.writes
    kube.writes.clear()
    rec.reconcile("team", "gw")
    assert kube.writes == [], "a persisting failure must not repeat events or status writes"


def test_rotation_changes_the_pod_template_hash():
    kube, rec = fake_reconciler()
    rec.reconcile("team", "gw")
    h1 = kube.objects[("Deployment", "team", "gw")]["spec"]["template"]["metadata"]["annotations"]
    h1 = dict(h1)
    kube.objects[("Secret", "team", "src")]["data"]["GONG_API_SECRET"] = base64.b64encode(b"new").decode()
    rec.reconcile("team", "gw")
    h2 = kube.objects[("Deployment", "team", "gw")]["spec"]["template"]["metadata"]["annotations"]
    assert h1["gong.sophia-ai.com/config-hash"] != h2["gong.sophia-ai.com/config-hash"]
    assert kube.objects[("GongWebhook", "team", "gw")]["status"]["secretHash"] == h2["gong.sophia-ai.com/config-hash"]


def test_foreign_object_with_a_childs_name_is_not_taken_over():
    kube, rec = fake_reconciler()
    kube.objects[("ConfigMap", "team", "gw-config")] = {"metadata": {"name": "gw-config", "namespace": "team"},
                                                        "data": {"mine": "yes"}}
    out = rec.reconcile("team", "gw")
    assert out.error and "ConfigMap gw-config" in out.error
    assert kube.objects[("ConfigMap", "team", "gw-config")]["data"] == {"mine": "yes"}
    assert _conds(kube)["Degraded"]["status"] == "True"


def test_servicemonitor_appears_with_its_crd_and_suspend_scales_to_zero():
    kube, rec = fake_reconciler()
    rec.reconcile("team", "gw")
    assert ("ServiceMonitor", "team", "gw") not in kube.objects
    kube.sm_served = True
    rec.reconcile("team", "gw")
    assert ("ServiceMonitor", "team", "gw") in kube.objects
    assert _conds(kube)["MonitoringConfigured"]["status"] == "True"
    kube.objects[("Deployment", "team", "gw")]["spec"]["replicas"] = 3
    kube.objects[("GongWebhook", "team", "gw")]["spec"]["suspend"] = True
    kube.objects[("GongWebhook", "team", "gw")]["spec"]["image"] = "example/new:2"
    kube.writes.clear()
    rec.reconcile("team", "gw")
    assert kube.objects[("Deployment", "team", "gw")]["spec"]["replicas"] == 0
    assert not any(w[0] == "APPLY" for w in kube.writes)
    assert _conds(kube)["Ready"]["reason"] == "Suspended"


def test_gone_resource():
    kube, rec = fake_reconciler()
    del kube.objects[("GongWebhook", "team", "gw")]
    assert rec.reconcile("team", "gw").gone
    assert GW.plural == "gongwebhooks"


def test_a_config_the_app_would_refuse_is_reported_and_the_pods_are_left_alone():
    kube, rec = fake_reconciler()
    rec.reconcile("team", "gw")
    dep_before = copy.deepcopy(kube.objects[("Deployment", "team", "gw")])
    cm_before = copy.deepcopy(kube.objects[("ConfigMap", "team", "gw-config")])
    kube.objects[("Secret", "team", "src")]["data"]["GONG_WEBHOOK_PUBLIC_KEYS"] = \
        base64.b64encode(b"example-public-key").decode()
    kube.writes.clear()
    out = rec.reconcile("team", "gw")
    assert not any(w[0] == "APPLY" and w[1] in ("Deployment", "Secret", "ConfigMap") for w in kube.writes)
    assert kube.objects[("Deployment", "team", "gw")] == dep_before
    assert kube.objects[("ConfigMap", "team", "gw-config")] == cm_before
    conds = _conds(kube)
    for type_, status in (("Ready", "False"), ("Degraded", "True")):
        assert (conds[type_]["status"], conds[type_]["reason"]) == (status, "InvalidConfig")
        assert "GONG_WEBHOOK_PUBLIC_KEYS" in conds[type_]["message"]
        assert "example-public-key" not in conds[type_]["message"]
    assert ("POST", "Event", "InvalidConfig") in kube.writes
    assert not out.ready
    kube.writes.clear()
    rec.reconcile("team", "gw")
    assert kube.writes == [], "a persisting refusal must not repeat events or status writes"
    # Fixed: the pods roll and the GongWebhook recovers.
    kube.objects[("Secret", "team", "src")]["data"]["GONG_WEBHOOK_PUBLIC_KEYS"] = \
        base64.b64encode(EXAMPLE_PUBLIC_KEY.encode()).decode()
    rec.reconcile("team", "gw")
    assert _conds(kube)["Degraded"]["reason"] != "InvalidConfig"


def test_a_stored_jwt_spec_without_a_public_url_is_invalid_config_not_a_crash():
    # Stored before the CEL rule existed (the API server ratchets unchanged objects through).
    kube, rec = fake_reconciler({"secrets": {"sourceRef": {"name": "src"}}})
    rec.reconcile("team", "gw")
    assert ("Deployment", "team", "gw") not in kube.objects
    cond = _conds(kube)["Ready"]
    assert cond["reason"] == "InvalidConfig" and "GONG_WEBHOOK_PUBLIC_URL" in cond["message"]


class FailingSecretReads(FakeKube):
    """The API server answers reads of the source Secret with an error (RBAC, an overloaded server)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__()
        self.error = k.KubeError(status, reason, f'secrets "src" is {reason.lower()}')

    def get(self, kind: k.Kind, ns: str, name: str) -> dict[str, Any] | None:
        if kind is k.SECRET and name == "src":
            raise self.error
        return super().get(kind, ns, name)


def test_an_api_error_reading_the_source_is_a_condition_not_a_crash():
    for status, reason, transient in ((403, "Forbidden", False), (500, "InternalError", True),
                                      (503, "ServiceUnavailable", True)):
        plain, _ = fake_reconciler()
        kube = FailingSecretReads(status, reason)
        kube.objects = plain.objects
        rec = Reconciler(kube)  # type: ignore[arg-type]
        out = rec.reconcile("team", "gw")
        cond = _conds(kube)["SecretsSynced"]
        assert (cond["status"], cond["reason"]) == ("False", "SourceUnreadable"), status
        assert f"Secret team/src could not be read: {status} {reason}" in cond["message"]
        assert _conds(kube)["Degraded"]["status"] == "True"
        assert ("Deployment", "team", "gw") not in kube.objects
        assert out.retry is transient, status  # a server error is retried with backoff, RBAC waits for resync


# ------------------------------------------------------------------ pods that fail (issue 11)

CONFIG_ERROR = "configuration error: GONG_WEBHOOK_AUTH_MODE: Input should be 'jwt' or 'url-key'"


def _app_pod(kube: FakeKube, container_status: dict[str, Any], name: str = "gw-7d9f-abcde") -> None:
    kube.objects[("Pod", "team", name)] = {
        "metadata": {"name": name, "namespace": "team",
                     "labels": {"app.kubernetes.io/name": "gong-webhook", "app.kubernetes.io/instance": "gw",
                                "pod-template-hash": "7d9f"}},
        "status": {"phase": "Running", "containerStatuses": [{"name": "webhook", **container_status}]}}


CRASH_LOOP = {"ready": False, "restartCount": 2,
              "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s restarting failed"}},
              "lastState": {"terminated": {"exitCode": 2, "reason": "Error", "message": CONFIG_ERROR + "\n"}}}


def test_crash_looping_pods_show_in_status_with_the_apps_message_and_one_event():
    kube, rec = fake_reconciler(ONE_POD)
    rec.reconcile("team", "gw")
    deployment_rollout(kube, ready=0)
    _app_pod(kube, CRASH_LOOP)
    kube.writes.clear()
    out = rec.reconcile("team", "gw")
    assert kube.lists == [("Pod", "team", SELECTOR)]
    summary = f"pod gw-7d9f-abcde container webhook: CrashLoopBackOff, last exit 2: {CONFIG_ERROR}"
    conds = _conds(kube)
    assert (conds["Degraded"]["status"], conds["Degraded"]["reason"]) == ("True", "PodsFailing")
    assert conds["Degraded"]["message"] == summary
    assert (conds["Ready"]["status"], conds["Ready"]["reason"]) == ("False", "PodsFailing")
    assert conds["Ready"]["message"] == f"0/1 ready, 1 updated; {summary}"
    assert ("POST", "Event", "PodsFailing") in kube.writes and not out.ready and not out.error
    # The next reconciles (the crash loop goes on, restarts counting up) repeat neither event nor write.
    for restarts in (3, 4):
        kube.objects[("Pod", "team", "gw-7d9f-abcde")]["status"]["containerStatuses"][0]["restartCount"] = restarts
        kube.writes.clear()
        rec.reconcile("team", "gw")
        assert kube.writes == []
    # Fixed (the user's ConfigMap no longer overrides the setting): the container starts and is ready.
    _app_pod(kube, {"ready": True, "restartCount": 5, "state": {"running": {}},
                    "lastState": CRASH_LOOP["lastState"]})
    deployment_rollout(kube, ready=1)
    kube.lists.clear()
    out = rec.reconcile("team", "gw")
    assert kube.lists == [], "a complete rollout costs no pod read"
    conds = _conds(kube)
    assert conds["Ready"]["status"] == "True" and out.ready
    assert (conds["Degraded"]["status"], conds["Degraded"]["reason"]) == ("False", "AsExpected")


def test_starting_pods_are_no_failure_and_are_looked_at_again_soon():
    kube, rec = fake_reconciler(ONE_POD)
    rec.reconcile("team", "gw")
    deployment_rollout(kube, ready=0)
    _app_pod(kube, {"ready": False, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}})
    out = rec.reconcile("team", "gw")
    conds = _conds(kube)
    assert conds["Ready"]["reason"] == "RollingOut" and conds["Degraded"]["reason"] == "AsExpected"
    # A crash changes no Deployment field the operator watches, so it looks again instead of waiting
    # for the periodic resync.
    assert out.requeue_after == reconcile.POD_RECHECK_SECONDS
    deployment_rollout(kube, ready=1)
    assert rec.reconcile("team", "gw").requeue_after is None


def test_a_failing_pod_message_never_carries_a_synced_credential():
    kube, rec = fake_reconciler(ONE_POD)
    rec.reconcile("team", "gw")
    deployment_rollout(kube, ready=0)
    leak = {**CRASH_LOOP, "lastState": {"terminated": {
        "exitCode": 1, "reason": "Error", "message": f"ValueError: bad value {CREDS['SNOWFLAKE_PASSWORD']!r}"}}}
    _app_pod(kube, leak)
    rec.reconcile("team", "gw")
    status = str(kube.objects[("GongWebhook", "team", "gw")]["status"])
    assert "ValueError: bad value '***'" in status and CREDS["SNOWFLAKE_PASSWORD"] not in status


class FailingPodList(FakeKube):
    def list_selected(self, kind: k.Kind, ns: str, labels: dict[str, str]) -> list[dict[str, Any]]:
        raise k.KubeError(403, "Forbidden", 'pods is forbidden: User cannot list resource "pods"')


def test_a_pod_list_the_api_refuses_leaves_the_rollout_status():
    plain, _ = fake_reconciler(ONE_POD)
    kube = FailingPodList()
    kube.objects = plain.objects
    rec = Reconciler(kube)  # type: ignore[arg-type]
    rec.reconcile("team", "gw")
    deployment_rollout(kube, ready=0)
    _app_pod(kube, CRASH_LOOP)
    out = rec.reconcile("team", "gw")
    assert not out.error  # the workload is applied; only the detail is missing
    conds = _conds(kube)
    assert conds["Ready"]["reason"] == "RollingOut" and conds["Degraded"]["reason"] == "AsExpected"
