"""RBAC matrix of the operator's ServiceAccount, with config/rbac (and config/peering) applied.

Asked with the ServiceAccount's own token (TokenRequest) through SelfSubjectAccessReview, so the answer
covers every binding that reaches the real identity, groups included. Three places are asked: all
namespaces at once (namespace ""), a namespace a platform team bound the secrets writer in, and one it
did not. The ClusterRoles themselves must hold exactly the NEEDED rules: a permission added to the YAML
without a use in the operator fails here as much as a missing one fails the cluster tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from tests.support.cluster import apply_yaml, condition, gongwebhook, kube_json, source_secret, wait_for, wait_ready
from tests.support.operator_process import SA_NAME, SA_NAMESPACE, SA_USER, sa_kubeconfig

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]
RBAC = ROOT / "config" / "rbac"
WRITER = "gong-webhook-operator-secrets-writer"

# (apiGroup, resource[/subresource], verb) the operator uses, everywhere. Each is used by code in
# operator/gong_operator (kube.py verbs, registration.py watches, Kopf's peering) - docs/security.md lists why.
_CHILDREN_APPLIED = ("get", "list", "watch", "create", "patch")
NEEDED_EVERYWHERE: frozenset[tuple[str, str, str]] = frozenset({
    *(("gong.sophia-ai.com", "gongwebhooks", v) for v in ("get", "list", "watch")),
    ("gong.sophia-ai.com", "gongwebhooks/status", "patch"),
    ("gong.sophia-ai.com", "gongwebhooks/finalizers", "update"),
    *(("", r, v) for r in ("configmaps", "services") for v in _CHILDREN_APPLIED),
    *(("apps", "deployments", v) for v in _CHILDREN_APPLIED),
    ("apps", "deployments/scale", "patch"),
    *(("", "secrets", v) for v in ("get", "list", "watch")),
    *(("networking.k8s.io", r, v) for r in ("ingresses", "networkpolicies") for v in (*_CHILDREN_APPLIED, "delete")),
    *(("autoscaling", "horizontalpodautoscalers", v) for v in (*_CHILDREN_APPLIED, "delete")),
    *(("policy", "poddisruptionbudgets", v) for v in (*_CHILDREN_APPLIED, "delete")),
    *(("monitoring.coreos.com", "servicemonitors", v) for v in ("get", "create", "patch", "delete")),
    ("", "events", "create"),
    # Issue 11: a rollout short of ready lists its pods to report why (crash loop, image pull, config).
    ("", "pods", "list"),
    *(("kopf.dev", r, v) for r in ("clusterkopfpeerings", "kopfpeerings") for v in ("get", "list", "watch", "patch")),
})
# Only in namespaces that bind gong-webhook-operator-secrets-writer: server-side apply of <name>-credentials.
NEEDED_WHERE_BOUND: frozenset[tuple[str, str, str]] = frozenset({("", "secrets", "create"), ("", "secrets", "patch")})

_WRITE = ("create", "update", "patch", "delete", "deletecollection")
MUST_NOT: list[tuple[str, str, str]] = [
    # Secrets: never written cluster-wide, and where bound, never updated (PUT) or deleted.
    *(("", "secrets", v) for v in ("update", "delete", "deletecollection")),
    # Workload escape hatches. Listing pods is allowed (read, for the status); nothing else on them.
    *(("", "pods", v) for v in ("get", "watch", "create", "update", "patch", "delete", "deletecollection")),
    ("", "pods/log", "get"),
    *(("", f"pods/{sub}", v) for sub in ("exec", "attach", "portforward") for v in ("create", "get")),
    ("", "pods/ephemeralcontainers", "patch"),
    *(("", "nodes", v) for v in ("get", "list", "patch", "update", "delete")),
    ("", "nodes/proxy", "get"),
    *(("apps", r, "create") for r in ("daemonsets", "statefulsets", "replicasets")),
    ("batch", "jobs", "create"),
    ("", "serviceaccounts", "create"),
    ("", "serviceaccounts/token", "create"),
    *(("", r, "impersonate") for r in ("users", "groups", "serviceaccounts")),
    ("", "namespaces", "create"), ("", "namespaces", "delete"),
    ("", "persistentvolumes", "create"),
    # RBAC objects: no writes, no escalate/bind.
    *(("rbac.authorization.k8s.io", r, v) for r in ("roles", "rolebindings", "clusterroles", "clusterrolebindings")
      for v in _WRITE),
    *(("rbac.authorization.k8s.io", r, v) for r in ("roles", "clusterroles") for v in ("escalate", "bind")),
    # CRDs and admission: never changed at runtime (the CRD is installed by a person, not the operator).
    *(("apiextensions.k8s.io", "customresourcedefinitions", v) for v in (*_WRITE, "list", "get")),
    *(("admissionregistration.k8s.io", r, "create")
      for r in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations",
                "validatingadmissionpolicies", "validatingadmissionpolicybindings")),
    ("certificates.k8s.io", "certificatesigningrequests/approval", "update"),
    # Its own resource: only status is written.
    *(("gong.sophia-ai.com", "gongwebhooks", v) for v in ("create", "update", "patch", "delete")),
    ("gong.sophia-ai.com", "gongwebhooks/status", "update"),
    # Children it never deletes by hand (garbage collection does) or replaces with PUT.
    *(("", r, v) for r in ("configmaps", "services") for v in ("update", "delete")),
    *(("apps", "deployments", v) for v in ("update", "delete")),
    ("", "events", "delete"),
    ("*", "*", "*"),
]
SECRET_WRITES = [("", "secrets", v) for v in ("create", "patch")]


def _expand(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    out: set[tuple[str, str, str]] = set()
    for rule in rules:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    out.add((group, resource, verb))
    return out


def _role(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


class Checker:
    """SelfSubjectAccessReview with the ServiceAccount's real token."""

    def __init__(self, kubeconfig: Path) -> None:
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)  # type: ignore[no-untyped-call]
        self.api = client.AuthorizationV1Api(client.ApiClient(cfg))

    def allowed(self, group: str, resource: str, verb: str, namespace: str) -> bool:
        res, _, sub = resource.partition("/")
        attrs = client.V1ResourceAttributes(group=group, resource=res, subresource=sub or None, verb=verb,
                                            namespace=namespace or None)
        review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attrs))
        return bool(self.api.create_self_subject_access_review(review).status.allowed)


@pytest.fixture(scope="module")
def rbac(cluster: Any, gw_crd: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """config/rbac applied; a namespace with the secrets-writer binding and one without; a checker."""
    cluster.kubectl("create", "namespace", SA_NAMESPACE, check=False)
    cluster.kubectl("apply", "-k", str(RBAC))
    bound, unbound = "rbac-bound-ns", "rbac-unbound-ns"
    for ns in (bound, unbound):
        cluster.kubectl("create", "namespace", ns, check=False)
    cluster.grant_operator_secret_writes(bound)
    kubeconfig = sa_kubeconfig(cluster, tmp_path_factory.mktemp("rbac") / "kubeconfig")
    who = json.loads(cluster.kubectl("auth", "whoami", "--kubeconfig", str(kubeconfig), "-o", "json").stdout)
    assert who["status"]["userInfo"]["username"] == SA_USER
    return {"checker": Checker(kubeconfig), "bound": bound, "unbound": unbound}


def test_cluster_roles_hold_exactly_what_the_operator_uses():
    main = _role(RBAC / "cluster_role.yaml")
    writer = _role(RBAC / "secrets_writer_cluster_role.yaml")
    assert _expand(main["rules"]) == NEEDED_EVERYWHERE
    assert _expand(writer["rules"]) == NEEDED_WHERE_BOUND
    assert writer["metadata"]["name"] == WRITER
    for rule in main["rules"] + writer["rules"]:
        assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"], rule
    # The writer is never bound cluster-wide by what we ship.
    kustomized = (RBAC / "kustomization.yaml").read_text()
    bindings = [yaml.safe_load((RBAC / line.strip()[2:]).read_text()) for line in kustomized.splitlines()
                if line.strip().startswith("- ")]
    crbs = [b for b in bindings if b["kind"] == "ClusterRoleBinding"]
    assert crbs and all(b["roleRef"]["name"] != WRITER for b in crbs)
    example = _role(RBAC / "namespaced" / "secrets_writer_role_binding.yaml")
    assert example["kind"] == "RoleBinding" and example["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": WRITER}
    assert example["subjects"] == [{"kind": "ServiceAccount", "name": SA_NAME, "namespace": SA_NAMESPACE}]


def test_everything_the_operator_needs_is_allowed(rbac):
    check: Checker = rbac["checker"]
    denied = [n for n in sorted(NEEDED_EVERYWHERE) if not check.allowed(*n, namespace="")]
    assert denied == [], f"needed but denied in all namespaces: {denied}"
    denied = [n for n in sorted(NEEDED_WHERE_BOUND) if not check.allowed(*n, namespace=rbac["bound"])]
    assert denied == [], f"needed but denied where the secrets writer is bound: {denied}"


def test_secret_writes_only_where_a_platform_team_bound_them(rbac):
    check: Checker = rbac["checker"]
    for ns in ("", rbac["unbound"], "kube-system", SA_NAMESPACE):
        allowed = [n for n in SECRET_WRITES if check.allowed(*n, namespace=ns)]
        assert allowed == [], f"secret writes allowed in {ns or 'all namespaces'}: {allowed}"
    # Reading stays cluster-wide: Kopf's --all-namespaces watch is one cluster-wide list/watch.
    assert check.allowed("", "secrets", "watch", namespace="")


@pytest.mark.parametrize("where", ["all-namespaces", "bound", "unbound"])
def test_what_the_operator_must_not_do_is_denied(rbac, where):
    check: Checker = rbac["checker"]
    ns = {"all-namespaces": "", "bound": rbac["bound"], "unbound": rbac["unbound"]}[where]
    allowed = [n for n in MUST_NOT if check.allowed(*n, namespace=ns)]
    assert allowed == [], f"allowed in {where}: {allowed}"


def test_kubectl_auth_can_i_agrees(cluster, rbac):
    """The same answers through `kubectl auth can-i --as` (impersonation), as an operator of the cluster asks."""
    def can_i(verb: str, resource: str, ns: str) -> str:
        scope = ["-n", ns] if ns else ["-A"]
        res, _, sub = resource.partition("/")
        extra = [f"--subresource={sub}"] if sub else []
        return cluster.kubectl("auth", "can-i", verb, res, *extra, *scope, f"--as={SA_USER}",
                               check=False).stdout.strip()

    assert can_i("patch", "secrets", rbac["bound"]) == "yes"
    assert can_i("patch", "secrets", rbac["unbound"]) == "no"
    assert can_i("create", "secrets", "") == "no"
    assert can_i("create", "pods/exec", "") == "no"
    assert can_i("list", "pods", "") == "yes" and can_i("get", "pods", "") == "no"
    assert can_i("get", "nodes", "") == "no"
    assert can_i("create", "clusterrolebindings.rbac.authorization.k8s.io", "") == "no"
    assert can_i("patch", "customresourcedefinitions.apiextensions.k8s.io", "") == "no"
    assert can_i("patch", "deployments.apps", "") == "yes"
    assert can_i("patch", "gongwebhooks.gong.sophia-ai.com/status", "") == "yes"


# ---------------------------------------------------------------------------------------- the operator


def test_operator_reports_a_missing_secrets_writer_binding_and_recovers(cluster, operator, bare_namespace):
    ns = bare_namespace("nobind")
    apply_yaml(cluster, ns, [source_secret(), gongwebhook("gw", autoscaling={"enabled": False}, replicas=2,
                                                          disruptionBudget={"minAvailable": 1})])

    def forbidden() -> dict[str, Any] | None:
        c = condition(kube_json(cluster, "-n", ns, "gongwebhook", "gw"), "SecretsSynced")
        return c if c and c["reason"] == "Forbidden" else None

    cond = wait_for(forbidden, 40, what="SecretsSynced=False/Forbidden")
    assert cond["status"] == "False"
    assert f"RoleBinding {WRITER}" in cond["message"] and f"ClusterRole {WRITER}" in cond["message"]
    assert f"{ns}/gw-credentials" in cond["message"]
    gw = kube_json(cluster, "-n", ns, "gongwebhook", "gw")
    assert gw["status"]["secrets"] == "Forbidden"
    assert condition(gw, "Ready")["status"] == "False"
    # No half-configured workload: no credentials copy and no Deployment pointing at one.
    assert kube_json(cluster, "-n", ns, "secret", "gw-credentials") is None
    assert kube_json(cluster, "-n", ns, "deployment", "gw") is None
    events = json.loads(cluster.kubectl("get", "events", "-n", ns, "-o", "json").stdout)["items"]
    assert any(e["reason"] == "Forbidden" and e["type"] == "Warning" for e in events)
    assert operator.proc is not None and operator.proc.poll() is None, "the operator died"

    # The platform team adds the binding: the next resync syncs and deploys.
    cluster.grant_operator_secret_writes(ns)
    wait_ready(cluster, ns, "gw", timeout=90)
    assert condition(kube_json(cluster, "-n", ns, "gongwebhook", "gw"), "SecretsSynced")["status"] == "True"
    assert kube_json(cluster, "-n", ns, "secret", "gw-credentials") is not None
