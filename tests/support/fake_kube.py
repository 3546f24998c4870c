"""An in-memory Kubernetes API for the operator's reconcile tests (tests/operator/test_reconcile.py,
test_read_costs.py): objects in a dict, every write recorded as the real client counts them."""

from __future__ import annotations

import base64
import copy
from typing import Any

from gong_operator import kube as k
from gong_operator.reconcile import Reconciler
from tests.support.specs import EXAMPLE_PUBLIC_KEY

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
        self.lists: list[tuple[str, str, str]] = []
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

    def merge_patch(self, kind: k.Kind, ns: str, name: str, patch: dict[str, Any],
                    subresource: str | None = None) -> dict[str, Any]:
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

    def list_selected(self, kind: k.Kind, ns: str, labels: dict[str, str]) -> list[dict[str, Any]]:
        self.lists.append((kind.kind, ns, ",".join(f"{a}={b}" for a, b in labels.items())))
        return [copy.deepcopy(o) for (kind_, ns_, _), o in sorted(self.objects.items())
                if kind_ == kind.kind and ns_ == ns
                and labels.items() <= ((o.get("metadata") or {}).get("labels") or {}).items()]


def fake_reconciler(spec: dict[str, Any] | None = None) -> tuple[FakeKube, Reconciler]:
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


ONE_POD = {**SPEC, "autoscaling": {"enabled": False}, "replicas": 1, "disruptionBudget": {"enabled": False}}
SELECTOR = "app.kubernetes.io/name=gong-webhook,app.kubernetes.io/instance=gw"


def deployment_rollout(kube: FakeKube, *, ready: int) -> None:
    """What the Deployment controller reports for the one-replica Deployment."""
    dep = kube.objects[("Deployment", "team", "gw")]
    dep["metadata"]["generation"] = 1
    dep["status"] = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": ready,
                     "conditions": [{"type": "Available", "status": "True" if ready else "False"},
                                    {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]}
