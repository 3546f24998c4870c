"""The reconcile flow against an in-memory API (no cluster): what gets written, and when not."""

from __future__ import annotations

import base64
import copy
from typing import Any

from gong_operator import kube as k
from gong_operator.reconcile import GW, Reconciler
from tests.operator.conftest import EXAMPLE_PUBLIC_KEY

# Values the app starts with (the operator checks that before it rolls pods).
CREDS = {"GONG_API_KEY": "k", "GONG_API_SECRET": "sss", "SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_USER": "u",
         "SNOWFLAKE_PASSWORD": "pw-value", "GONG_WEBHOOK_PUBLIC_KEYS": EXAMPLE_PUBLIC_KEY}
SPEC = {"secrets": {"sourceRef": {"name": "src"}}, "gong": {"publicUrl": "https://hooks.example.com/webhooks/gong"}}


class FakeKube:
    """Stores objects; records every write like the real client counts them."""

    field_manager = "gong-webhook-operator"

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.writes: list[tuple[str, str, str]] = []
        self.sm_served = False

    def get(self, kind: k.Kind, ns: str, name: str) -> dict[str, Any] | None:
        obj = self.objects.get((kind.kind, ns, name))
        return copy.deepcopy(obj) if obj else None

    def apply(self, manifest: dict[str, Any], *, field_manager: str | None = None) -> dict[str, Any]:
        meta = manifest["metadata"]
        self.writes.append(("APPLY", manifest["kind"], meta["name"]))
        key = (manifest["kind"], meta["namespace"], meta["name"])
        obj = copy.deepcopy(manifest)
        obj["metadata"]["uid"] = f"uid-{meta['name']}"
        self.objects[key] = obj
        return copy.deepcopy(obj)

    def delete(self, kind: k.Kind, ns: str, name: str) -> bool:
        self.writes.append(("DELETE", kind.kind, name))
        return self.objects.pop((kind.kind, ns, name), None) is not None

    def merge_patch(self, kind: k.Kind, ns: str, name: str, patch: dict[str, Any], subresource: str | None = None):
        self.writes.append(("PATCH", f"{kind.kind}/{subresource}", name))
        obj = self.objects[(kind.kind, ns, name)]
        if subresource == "status":
            obj["status"] = patch["status"]
        else:
            obj.setdefault("spec", {}).update(patch["spec"])
        return obj

    def create(self, kind: k.Kind, ns: str, body: dict[str, Any]) -> Any:
        self.writes.append(("POST", kind.kind, body.get("reason", "")))
        return body

    def served(self, kind: k.Kind) -> bool:
        return self.sm_served


def _setup(spec: dict[str, Any] | None = None) -> tuple[FakeKube, Reconciler]:
    kube = FakeKube()
    kube.objects[("GongWebhook", "team", "gw")] = {
        "apiVersion": "gong.sophia-ai.com/v1alpha1", "kind": "GongWebhook",
        "metadata": {"name": "gw", "namespace": "team", "uid": "gw-uid", "generation": 1},
        "spec": copy.deepcopy(spec or SPEC),
    }
    kube.objects[("Secret", "team", "src")] = {
        "metadata": {"name": "src", "namespace": "team"},
        "data": {k_: base64.b64encode(v.encode()).decode() for k_, v in CREDS.items()},
    }
    return kube, Reconciler(kube)  # type: ignore[arg-type]


def _conds(kube: FakeKube) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in kube.objects[("GongWebhook", "team", "gw")]["status"]["conditions"]}


def test_first_reconcile_creates_children_then_a_second_writes_nothing():
    kube, rec = _setup()
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
    kube, rec = _setup()
    rec.reconcile("team", "gw")
    kube.objects[("Service", "team", "gw")]["spec"]["sessionAffinity"] = "ClientIP"
    del kube.objects[("ConfigMap", "team", "gw-config")]
    kube.writes.clear()
    rec.reconcile("team", "gw")
    assert ("APPLY", "Service", "gw") in kube.writes and ("APPLY", "ConfigMap", "gw-config") in kube.writes
    assert ("POST", "Event", "Updated") in kube.writes and ("POST", "Event", "Created") in kube.writes
    assert len([w for w in kube.writes if w[0] == "APPLY"]) == 2


def test_switched_off_children_are_deleted():
    kube, rec = _setup()
    rec.reconcile("team", "gw")
    kube.objects[("GongWebhook", "team", "gw")]["spec"].update(
        {"autoscaling": {"enabled": False}, "replicas": 3, "networkPolicy": {"enabled": False}})
    kube.writes.clear()
    out = rec.reconcile("team", "gw")
    assert sorted(out.deleted) == ["HorizontalPodAutoscaler/gw", "NetworkPolicy/gw"]
    assert kube.objects[("Deployment", "team", "gw")]["spec"]["replicas"] == 3


def test_missing_key_keeps_the_workload_and_reports():
    kube, rec = _setup()
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
    kube, rec = _setup()
    rec.reconcile("team", "gw")
    h1 = kube.objects[("Deployment", "team", "gw")]["spec"]["template"]["metadata"]["annotations"]
    h1 = dict(h1)
    kube.objects[("Secret", "team", "src")]["data"]["GONG_API_SECRET"] = base64.b64encode(b"new").decode()
    rec.reconcile("team", "gw")
    h2 = kube.objects[("Deployment", "team", "gw")]["spec"]["template"]["metadata"]["annotations"]
    assert h1["gong.sophia-ai.com/config-hash"] != h2["gong.sophia-ai.com/config-hash"]
    assert kube.objects[("GongWebhook", "team", "gw")]["status"]["secretHash"] == h2["gong.sophia-ai.com/config-hash"]


def test_foreign_object_with_a_childs_name_is_not_taken_over():
    kube, rec = _setup()
    kube.objects[("ConfigMap", "team", "gw-config")] = {"metadata": {"name": "gw-config", "namespace": "team"},
                                                        "data": {"mine": "yes"}}
    out = rec.reconcile("team", "gw")
    assert out.error and "ConfigMap gw-config" in out.error
    assert kube.objects[("ConfigMap", "team", "gw-config")]["data"] == {"mine": "yes"}
    assert _conds(kube)["Degraded"]["status"] == "True"


def test_servicemonitor_appears_with_its_crd_and_suspend_scales_to_zero():
    kube, rec = _setup()
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
    kube, rec = _setup()
    del kube.objects[("GongWebhook", "team", "gw")]
    assert rec.reconcile("team", "gw").gone
    assert GW.plural == "gongwebhooks"


def test_a_config_the_app_would_refuse_is_reported_and_the_pods_are_left_alone():
    kube, rec = _setup()
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
    kube, rec = _setup({"secrets": {"sourceRef": {"name": "src"}}})
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
        plain, _ = _setup()
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
