"""The pods we ship pass the restricted Pod Security Standard, checked by the API server's own
PodSecurity admission: a server dry-run create of a Pod built from each pod template, in a namespace
labelled pod-security.kubernetes.io/enforce=restricted. A deliberately weakened copy is refused in the
same namespace, so a pass means the policy was enforced, not absent.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from gong_operator import children as ch
from gong_operator import spec as s

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "config" / "samples" / "gongwebhook.yaml"
MANAGER = ROOT / "config" / "manager" / "manager.yaml"


def _pod(template: dict[str, Any], name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": template["metadata"].get("labels", {}),
                         "annotations": template["metadata"].get("annotations", {})},
            "spec": copy.deepcopy(template["spec"])}


def _app_template(spec_doc: dict[str, Any], namespace: str) -> dict[str, Any]:
    spec = s.GongWebhookSpec.model_validate(spec_doc)
    owner = ch.Owner(name="gong", namespace=namespace, uid="00000000-0000-0000-0000-000000000001")
    dep = ch.deployment(spec, owner, content_hash="sha256:test")
    template: dict[str, Any] = dep["spec"]["template"]
    return template


def _operator_template() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(MANAGER.read_text()) if d]
    dep = next(d for d in docs if d["kind"] == "Deployment")
    template: dict[str, Any] = dep["spec"]["template"]
    return template


@pytest.fixture
def restricted(cluster, namespace) -> str:
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted",
                    "pod-security.kubernetes.io/enforce-version=latest", "pod-security.kubernetes.io/warn=restricted")
    # The operator's pod names its ServiceAccount; the ServiceAccount admission plugin wants it to exist.
    cluster.kubectl("create", "serviceaccount", "gong-webhook-operator", "-n", namespace)
    return namespace


def _dry_run(cluster: Any, namespace: str, pod: dict[str, Any]) -> Any:
    return cluster.kubectl("create", "--dry-run=server", "-n", namespace, "-f", "-", "-o", "name",
                           input=yaml.safe_dump(pod), check=False)


def _weakened(pod: dict[str, Any]) -> dict[str, Any]:
    bad = copy.deepcopy(pod)
    bad["metadata"]["name"] += "-weakened"
    bad["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    return bad


CASES = {
    "sample": lambda ns: _app_template(yaml.safe_load(SAMPLE.read_text())["spec"], ns),
    # Every pod-level extra a user can set, at once: none of them may open a way around the standard.
    "sample-with-pod-extras": lambda ns: _app_template({
        **yaml.safe_load(SAMPLE.read_text())["spec"],
        "pod": {"serviceAccountName": "gong-webhook-operator", "nodeSelector": {"kubernetes.io/os": "linux"},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gong", "effect": "NoSchedule"}],
                "annotations": {"example.com/a": "b"}, "labels": {"team": "sales"},
                "envFromConfigMaps": ["extra-config"]},
    }, ns),
    "operator": lambda ns: _operator_template(),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_pod_template_is_admitted_under_restricted(cluster, restricted, case):
    pod = _pod(CASES[case](restricted), f"pss-{case}")
    proc = _dry_run(cluster, restricted, pod)
    assert proc.returncode == 0, f"{case}: {proc.stderr}"
    assert proc.stdout.strip() == f"pod/pss-{case}"
    assert "would violate" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    # Control: the same pod with one check broken is refused by the same namespace.
    refused = _dry_run(cluster, restricted, _weakened(pod))
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr, refused.stderr


def test_app_pod_hardening_beyond_the_standard(restricted):
    """What restricted does not require but the design promises (issue 3): no API token, read-only root."""
    spec = _app_template(yaml.safe_load(SAMPLE.read_text())["spec"], restricted)["spec"]
    assert spec["automountServiceAccountToken"] is False
    (container,) = spec["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["runAsUser"] == 1000 and sc["runAsNonRoot"] is True
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}} in spec["volumes"]  # bounded node disk
    assert container["resources"]["limits"]["ephemeral-storage"] == "1Gi"
    assert spec["enableServiceLinks"] is False
    op = _operator_template()["spec"]
    assert op["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
