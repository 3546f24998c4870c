"""Confused deputy: spec.secrets.sourceRef.namespace must not let whoever can create a GongWebhook
read another namespace's Secret through the operator's privileges.

Rule (operator/gong_operator/secret_sync.py, docs/security.md): a source in another namespace is copied
only when that Secret's annotation `gong.sophia-ai.com/allow-sync-to` lists the GongWebhook's namespace;
otherwise SecretsSynced=False with reason SourceNotShared, the same answer whether the Secret exists or
not (no existence oracle). Unit checks first, then the real operator on the real control plane with an
unprivileged user who may create GongWebhooks but not read Secrets.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml

from gong_operator.secret_sync import ALLOW_SYNC_TO_ANNOTATION, SOURCE_NOT_SHARED, SYNCED, sync
from tests.support.cluster import apply_yaml, condition, gongwebhook, kube_json, source_secret, wait_for, wait_ready
from tests.support.specs import FULL, NoEsc, getter, make_spec

VICTIM_VALUE = "victim-db-password-7Hk2"


def _secret(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "src", "annotations": annotations or {}},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in FULL.items()}}


def _cross(ns: str = "vault") -> Any:
    return make_spec(secrets={"sourceRef": {"name": "src", "namespace": ns}})


@pytest.mark.parametrize("annotation", [None, "", "other", "other,team-b", "*", "team*", "Team", " ,"])
def test_cross_namespace_source_without_consent_is_refused(annotation):
    ann = {} if annotation is None else {ALLOW_SYNC_TO_ANNOTATION: annotation}
    r = sync(_cross(), "team", getter({("vault", "src"): _secret(ann)}), NoEsc())
    assert not r.ok and r.reason == SOURCE_NOT_SHARED and r.data is None
    assert ALLOW_SYNC_TO_ANNOTATION in r.message and "vault/src" in r.message
    assert "topsecret" not in repr(r) + r.message


def test_absent_and_unshared_sources_look_the_same():
    absent = sync(_cross(), "team", getter({}), NoEsc())
    unshared = sync(_cross(), "team", getter({("vault", "src"): _secret()}), NoEsc())
    assert (absent.reason, absent.message) == (unshared.reason, unshared.message)


@pytest.mark.parametrize("annotation", ["team", "other,team", " team , other "])
def test_the_source_owner_can_share_with_named_namespaces(annotation):
    r = sync(_cross(), "team", getter({("vault", "src"): _secret({ALLOW_SYNC_TO_ANNOTATION: annotation})}), NoEsc())
    assert r.ok and r.reason == SYNCED and r.data is not None and r.data["GONG_API_SECRET"] == b"topsecret"


def test_same_namespace_needs_no_annotation_and_explicit_own_namespace_is_same_namespace():
    for ref in ({"name": "src"}, {"name": "src", "namespace": "team"}):
        r = sync(make_spec(secrets={"sourceRef": ref}), "team", getter({("team", "src"): _secret()}), NoEsc())
        assert r.ok, ref


# ---------------------------------------------------------------------------------------- cluster

ATTACKER = "gw-author"  # may create GongWebhooks in its namespace, may not read Secrets anywhere


def _grant_gongwebhook_author(cluster: Any, ns: str) -> None:
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "gw-author"},
            "rules": [{"apiGroups": ["gong.sophia-ai.com"], "resources": ["gongwebhooks"],
                       "verbs": ["get", "list", "create", "patch"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "gw-author"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "gw-author"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": ATTACKER}]}
    apply_yaml(cluster, ns, [role, binding])


@pytest.mark.cluster
def test_gongwebhook_cannot_copy_another_namespaces_secret(cluster, operator, namespace, bare_namespace):
    victim = bare_namespace("victim")
    apply_yaml(cluster, victim, source_secret("db-creds", SNOWFLAKE_PASSWORD=VICTIM_VALUE))
    _grant_gongwebhook_author(cluster, namespace)
    as_attacker = [f"--as={ATTACKER}"]

    def can_i(verb: str, resource: str, ns: str) -> str:
        return cluster.kubectl("auth", "can-i", verb, resource, "-n", ns, *as_attacker, check=False).stdout.strip()

    # The premise: the author cannot read the victim's Secrets (or its own namespace's) itself.
    assert can_i("get", "secrets", victim) == "no" and can_i("get", "secrets", namespace) == "no"
    assert can_i("create", "gongwebhooks.gong.sophia-ai.com", namespace) == "yes"
    steal = gongwebhook("steal", secrets={"sourceRef": {"name": "db-creds", "namespace": victim}},
                        autoscaling={"enabled": False}, replicas=2, disruptionBudget={"minAvailable": 1})
    probe = gongwebhook("probe", secrets={"sourceRef": {"name": "no-such-secret", "namespace": victim}},
                        autoscaling={"enabled": False}, replicas=2, disruptionBudget={"minAvailable": 1})
    for cr in (steal, probe):
        cluster.kubectl("apply", "-n", namespace, "-f", "-", *as_attacker, input=yaml.safe_dump(cr))

    def refused(name: str) -> dict[str, Any] | None:
        c = condition(kube_json(cluster, "-n", namespace, "gongwebhook", name), "SecretsSynced")
        return c if c and c["reason"] == SOURCE_NOT_SHARED else None

    cond = wait_for(lambda: refused("steal"), 40, what="SecretsSynced=False/SourceNotShared")
    probe_cond = wait_for(lambda: refused("probe"), 40, what="probe refused")
    assert cond["status"] == "False" and ALLOW_SYNC_TO_ANNOTATION in cond["message"]
    # The same answer for an existing and a missing Secret, apart from its name.
    assert probe_cond["message"] == cond["message"].replace("db-creds", "no-such-secret")
    assert kube_json(cluster, "-n", namespace, "secret", "steal-credentials") is None
    assert kube_json(cluster, "-n", namespace, "deployment", "steal") is None
    everything = (cluster.kubectl("get", "gw,events,configmaps,secrets", "-n", namespace, "-o", "json").stdout)
    assert VICTIM_VALUE not in everything
    assert base64.b64encode(VICTIM_VALUE.encode()).decode() not in everything

    # The victim's owner opts in for this namespace only: now it syncs (the watch on the source sees it).
    cluster.kubectl("annotate", "-n", victim, "secret", "db-creds", f"{ALLOW_SYNC_TO_ANNOTATION}=elsewhere,{namespace}")
    wait_ready(cluster, namespace, "steal", timeout=60)
    copied = kube_json(cluster, "-n", namespace, "secret", "steal-credentials")
    assert base64.b64decode(copied["data"]["SNOWFLAKE_PASSWORD"]).decode() == VICTIM_VALUE
    assert condition(kube_json(cluster, "-n", namespace, "gongwebhook", "probe"), "SecretsSynced")["reason"] \
        == SOURCE_NOT_SHARED

    # Consent withdrawn: refused again, the running workload is left as it was (documented).
    cluster.kubectl("annotate", "-n", victim, "secret", "db-creds", f"{ALLOW_SYNC_TO_ANNOTATION}-")
    wait_for(lambda: refused("steal"), 40, what="refused after the annotation was removed")
    events = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
    assert any(e["reason"] == SOURCE_NOT_SHARED and e["type"] == "Warning" for e in events)
