"""The operator against the real local control plane (must-show items 1-7 of issue 3; item 8, SIGKILL
mid-reconcile, and the two-replica failover are fault scenarios in tests/faults/test_operator_faults.py).

Every test here runs with the shared operator process from conftest.py, which authenticates as the
`gong-webhook-operator` ServiceAccount with the RBAC from config/rbac/ (must-show 7).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cluster import (
    FIXTURES,
    RESYNC_SECONDS,
    apply_yaml,
    condition,
    gongwebhook,
    kube_json,
    no_terminating_namespaces,
    owner_uid,
    source_secret,
    wait_for,
    wait_ready,
)
from tests.support.esc_standin import EscState, env_vars, serve
from tests.support.operator_process import SA_USER, apiserver_writes
from tests.support.specs import EXAMPLE_PUBLIC_KEY

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]
CHILD_RESOURCES = {
    "configmaps", "secrets", "services", "deployments", "ingresses", "networkpolicies",
    "horizontalpodautoscalers", "poddisruptionbudgets", "servicemonitors", "gongwebhooks",
}
FIXED = {"autoscaling": {"enabled": False}, "replicas": 2, "disruptionBudget": {"minAvailable": 1}}


def _get(cluster: Any, ns: str, kind: str, name: str) -> dict[str, Any] | None:
    obj: dict[str, Any] | None = kube_json(cluster, "-n", ns, kind, name)
    return obj


def _gw(cluster: Any, ns: str, name: str) -> dict[str, Any]:
    obj = _get(cluster, ns, "gongwebhook", name)
    assert obj is not None
    return obj


# ---------------------------------------------------------------------------------------- 7


def test_operator_runs_as_its_service_account(cluster, operator):
    """Every cluster test's operator authenticates as the ServiceAccount config/rbac binds, so a rule
    missing there fails these tests. What that identity may and may not do is tests/security/test_rbac.py."""
    who = cluster.kubectl("auth", "whoami", "--kubeconfig", str(operator.kubeconfig), "-o", "json")
    assert json.loads(who.stdout)["status"]["userInfo"]["username"] == SA_USER
    assert "client-certificate" not in operator.kubeconfig.read_text()


# ---------------------------------------------------------------------------------------- 1


def test_sample_converges_with_owned_children_and_columns(cluster, operator, namespace):
    # Pod Security admission refuses any pod that breaks the restricted standard.
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    cluster.kubectl("apply", "-n", namespace, "-f", str(ROOT / "config" / "samples"))
    wait_ready(cluster, namespace, "gong", timeout=60)
    gw = _gw(cluster, namespace, "gong")
    uid = gw["metadata"]["uid"]
    expected = [("configmap", "gong-config"), ("secret", "gong-credentials"), ("deployment", "gong"),
                ("service", "gong"), ("ingress", "gong"), ("hpa", "gong"), ("networkpolicy", "gong"),
                ("pdb", "gong")]
    for kind, name in expected:
        obj = _get(cluster, namespace, kind, name)
        assert obj is not None, f"{kind}/{name} missing"
        assert owner_uid(obj) == uid, f"{kind}/{name} not owned by the GongWebhook"
        managers = {m["manager"] for m in obj["metadata"].get("managedFields", []) if m["operation"] == "Apply"}
        assert "gong-webhook-operator" in managers, f"{kind}/{name} not server-side applied"

    dep = _get(cluster, namespace, "deployment", "gong")
    assert dep is not None
    assert dep["status"]["readyReplicas"] == 3 and dep["status"]["updatedReplicas"] == 3
    st = gw["status"]
    assert st["observedGeneration"] == gw["metadata"]["generation"]
    assert {c["type"] for c in st["conditions"]} == {
        "Ready", "Progressing", "Degraded", "SecretsSynced", "MonitoringConfigured"}
    assert all(c["observedGeneration"] == gw["metadata"]["generation"] for c in st["conditions"])
    assert st["endpoint"] == "https://gong-webhooks.example.com/webhooks/gong"
    # The app accepts what was rendered: its own start-up check over the ConfigMap and Secret in the
    # cluster (kwok pods run no code, so this is the proof that real pods would start).
    env = dict(_get(cluster, namespace, "configmap", "gong-config")["data"])
    env.update({k: base64.b64decode(v).decode()
                for k, v in _get(cluster, namespace, "secret", "gong-credentials")["data"].items()})
    assert env["GONG_WEBHOOK_PUBLIC_URL"] == st["endpoint"]
    app = subprocess.run([str(Path(sys.executable).parent / "gong-webhook-app"), "--check-config"],
                         env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True, timeout=60)
    assert app.returncode == 0, f"gong-webhook-app would not start with the sample: {app.stderr}"
    assert {"kind": "Deployment", "name": "gong", "apiVersion": "apps/v1"} in st["children"]

    table = cluster.kubectl("get", "gongwebhooks", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "REPLICAS", "ENDPOINT", "SECRETS", "AGE"]
    row = table[1].split()
    assert row[:5] == ["gong", "True", "3/3", "https://gong-webhooks.example.com/webhooks/gong", "Synced"]
    wide = cluster.kubectl("get", "gw", "-n", namespace, "-o", "wide").stdout.splitlines()[0].split()
    assert wide[6:] == ["REASON", "IMAGE", "AUTOSCALING", "SUSPENDED", "HASH"]
    assert "gong" in cluster.kubectl("get", "gong", "-n", namespace).stdout  # the category
    explain = cluster.kubectl("explain", "gongwebhook.spec.autoscaling.minReplicas").stdout
    assert "Lowest replica count" in explain

    events = cluster.kubectl("get", "events", "-n", namespace, "--field-selector",
                             "involvedObject.kind=GongWebhook", "-o", "json").stdout
    reasons = {e["reason"] for e in json.loads(events)["items"]}
    assert "Created" in reasons


# ---------------------------------------------------------------------------------------- 2

INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("image pattern", {"image": "Not An Image!"}, "spec.image"),
    ("pull policy enum", {"imagePullPolicy": "Sometimes"}, "spec.imagePullPolicy"),
    ("replicas minimum", {"autoscaling": {"enabled": False}, "replicas": -1}, "spec.replicas"),
    ("replicas with autoscaling", {"replicas": 4}, "spec.replicas"),
    ("cpu quantity pattern", {"resources": {"requests": {"cpu": "lots"}}}, "spec.resources.requests.cpu"),
    ("requests above limits", {"resources": {"requests": {"memory": "4Gi"}, "limits": {"memory": "2Gi"}}},
     "spec.resources.requests.memory"),
    ("min above max replicas", {"autoscaling": {"minReplicas": 5, "maxReplicas": 4}},
     "spec.autoscaling.minReplicas"),
    ("cpu target maximum", {"autoscaling": {"targetCpuUtilizationPercentage": 150}},
     "spec.autoscaling.targetCpuUtilizationPercentage"),
    ("session affinity enum", {"service": {"sessionAffinity": "Sticky"}}, "spec.service.sessionAffinity"),
    ("service port maximum", {"service": {"port": 70000}}, "spec.service.port"),
    ("ingress host required", {"ingress": {"enabled": True}}, "spec.ingress.host"),
    ("ingress path pattern", {"ingress": {"path": "webhooks"}}, "spec.ingress.path"),
    ("tls needs host", {"ingress": {"tlsSecretName": "tls"}}, "spec.ingress.tlsSecretName"),
    ("pdb not below replicas", {"autoscaling": {"enabled": False}, "replicas": 2,
                                "disruptionBudget": {"minAvailable": 2}}, "spec.disruptionBudget.minAvailable"),
    ("scrape timeout above interval", {"monitoring": {"serviceMonitor": {"interval": "10s", "scrapeTimeout": "30s"}}},
     "spec.monitoring.serviceMonitor.scrapeTimeout"),
    ("interval pattern", {"monitoring": {"serviceMonitor": {"interval": "soon"}}},
     "spec.monitoring.serviceMonitor.interval"),
    ("gong api https", {"gong": {"apiBaseUrl": "http://api.gong.io"}}, "spec.gong.apiBaseUrl"),
    ("gong auth mode enum", {"gong": {"authMode": "basic"}}, "spec.gong.authMode"),
    ("gong rate limit minimum", {"gong": {"rateLimit": 0}}, "spec.gong.rateLimit"),
    ("redis url pattern", {"redis": {"url": "http://redis:6379"}}, "spec.redis.url"),
    ("snowflake identifier", {"snowflake": {"schema": "GONG-WEBHOOKS"}}, "spec.snowflake.schema"),
    ("secrets: exactly one source", {"secrets": {"requiredKeys": ["GONG_API_KEY"]}}, "spec.secrets.sourceRef"),
    ("required key enum", {"secrets": {"sourceRef": {"name": "x"}, "requiredKeys": ["NOT_A_KEY"]}},
     "spec.secrets.requiredKeys"),
    ("extraConfig keys", {"extraConfig": {"REDIS_URL": "redis://elsewhere"}}, "spec.extraConfig"),
    ("network policy namespace", {"networkPolicy": {"ingressNamespaces": ["Bad_NS"]}},
     "spec.networkPolicy.ingressNamespaces"),
    ("log level enum", {"logLevel": "LOUD"}, "spec.logLevel"),
    ("esc api https", {"secrets": {"pulumiEsc": {"organization": "acme", "environment": "prod",
                                                 "accessTokenSecretRef": {"name": "t"},
                                                 "apiUrl": "http://api.pulumi.com"}}},
     "spec.secrets.pulumiEsc.apiUrl"),
    ("jwt without a public url", {"gong": {"authMode": "jwt"}}, "spec.gong.publicUrl"),
    ("ephemeral storage above its limit", {"resources": {"requests": {"ephemeralStorage": "2Gi"}}},
     "spec.resources.requests.ephemeralStorage"),
    ("tmp size above the storage limit", {"resources": {"tmpSizeLimit": "4Gi"}}, "spec.resources.tmpSizeLimit"),
]


def test_invalid_gongwebhooks_are_refused_naming_the_field(cluster, gw_crd, namespace):
    assert len(INVALID) >= 15
    for i, (what, spec, field) in enumerate(INVALID):
        body = gongwebhook(f"bad-{i}", **spec)
        if "secrets" in spec:
            body["spec"]["secrets"] = spec["secrets"]
        proc = cluster.kubectl("create", "-n", namespace, "-f", "-", input=yaml.safe_dump(body), check=False)
        assert proc.returncode != 0, f"{what}: accepted"
        assert field in proc.stderr, f"{what}: message does not name {field}: {proc.stderr}"
    # A transition rule: the Redis stream is immutable.
    apply_yaml(cluster, namespace, gongwebhook("immutable"))
    proc = cluster.kubectl("patch", "-n", namespace, "gw/immutable", "--type=merge",
                           "-p", '{"spec":{"redis":{"stream":"other"}}}', check=False)
    assert proc.returncode != 0 and "spec.redis.stream is immutable" in proc.stderr
    # kubectl scale through the scale subresource is refused while the HPA owns the count ...
    proc = cluster.kubectl("scale", "-n", namespace, "gw/immutable", "--replicas=5", check=False)
    assert proc.returncode != 0 and "spec.replicas" in proc.stderr
    # ... and works with autoscaling off.
    cluster.kubectl("patch", "-n", namespace, "gw/immutable", "--type=merge",
                    "-p", '{"spec":{"autoscaling":{"enabled":false},"replicas":3}}')
    cluster.kubectl("scale", "-n", namespace, "gw/immutable", "--replicas=5")
    assert _gw(cluster, namespace, "immutable")["spec"]["replicas"] == 5


def test_jwt_without_a_public_url_is_refused_saying_what_to_set(cluster, gw_crd, namespace):
    """Issue 10 #1: in JWT mode the app cannot start without the URL Gong signs; the API server refuses
    such a GongWebhook (instead of the operator rendering a crash loop) and says what to set."""
    def create(**spec: Any) -> subprocess.CompletedProcess[str]:
        body = gongwebhook("no-url", **spec)
        return cluster.kubectl("create", "--dry-run=server", "-n", namespace, "-f", "-",
                               input=yaml.safe_dump(body), check=False)

    for spec in ({"gong": {}}, {"gong": {"authMode": "jwt", "publicUrl": ""}},
                 {"gong": {}, "ingress": {"enabled": False, "host": "hooks.example.com"}}):
        proc = create(**spec)
        assert proc.returncode != 0, f"accepted: {spec}"
        assert "spec.gong.publicUrl is required when spec.gong.authMode is jwt" in proc.stderr, proc.stderr
        assert "or enable spec.ingress with a host" in proc.stderr
    for spec in ({"gong": {"authMode": "urlKey"}},
                 {"gong": {}, "ingress": {"enabled": True, "host": "hooks.example.com"}},
                 {"gong": {"publicUrl": "https://hooks.example.com/webhooks/gong"}}):
        proc = create(**spec)
        assert proc.returncode == 0, f"refused: {spec}: {proc.stderr}"


# ---------------------------------------------------------------------------------------- 3


def test_noop_resync_writes_nothing_and_drift_is_undone(cluster, operator, namespace):
    apply_yaml(cluster, namespace, [source_secret(), gongwebhook("drift", **FIXED)])
    wait_ready(cluster, namespace, "drift")
    wait_for(lambda: no_terminating_namespaces(cluster), 90, 1, "earlier test namespaces to be gone")

    # Settle: no child applied and no status written for a full resync period.
    def settled() -> bool:
        before = operator.metric_sum("gong_operator_api_writes_total")
        time.sleep(RESYNC_SECONDS + 2)
        return operator.metric_sum("gong_operator_api_writes_total") == before
    wait_for(settled, 90, 0, "the operator to stop writing")

    resyncs_before = operator.metric_sum("gong_operator_reconciles_total", trigger="resync")
    ops_before = operator.metric_sum("gong_operator_api_writes_total")
    api_before = apiserver_writes(cluster.kubectl("get", "--raw", "/metrics").stdout, CHILD_RESOURCES)
    time.sleep(2 * RESYNC_SECONDS + 3)  # two full resync windows
    resyncs = operator.metric_sum("gong_operator_reconciles_total", trigger="resync") - resyncs_before
    ops = operator.metric_sum("gong_operator_api_writes_total") - ops_before
    api_after = apiserver_writes(cluster.kubectl("get", "--raw", "/metrics").stdout, CHILD_RESOURCES)
    api_delta = {k: v - api_before.get(k, 0.0) for k, v in api_after.items() if v != api_before.get(k, 0.0)}
    assert resyncs >= 2, "no resync happened in the window"
    assert ops == 0, "the operator sent write requests during a resync with nothing changed"
    assert api_delta == {}, f"the API server saw writes to operator-managed resources: {api_delta}"

    # Deleting a child: put back within 30 s.
    uid = _gw(cluster, namespace, "drift")["metadata"]["uid"]
    cluster.kubectl("delete", "-n", namespace, "configmap", "drift-config")
    cm = wait_for(lambda: _get(cluster, namespace, "configmap", "drift-config"), 30, what="ConfigMap back")
    assert owner_uid(cm) == uid
    cluster.kubectl("delete", "-n", namespace, "networkpolicy", "drift")
    wait_for(lambda: _get(cluster, namespace, "networkpolicy", "drift"), 30, what="NetworkPolicy back")

    # Editing a child's spec by hand: undone within 30 s.
    cluster.kubectl("patch", "-n", namespace, "deployment", "drift", "--type=json", "-p", json.dumps([
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "evil.example/other:1"}]))
    wait_for(lambda: _get(cluster, namespace, "deployment", "drift")["spec"]["template"]["spec"]["containers"][0]
             ["image"] == "ghcr.io/sophia-ai/gong-webhook:0.1.0", 30, what="image restored")
    cluster.kubectl("patch", "-n", namespace, "service", "drift", "--type=merge",
                    "-p", '{"spec":{"sessionAffinity":"ClientIP"}}')
    wait_for(lambda: _get(cluster, namespace, "service", "drift")["spec"]["sessionAffinity"] == "None", 30,
             what="service restored")
    cluster.kubectl("patch", "-n", namespace, "configmap", "drift-config", "--type=merge",
                    "-p", '{"data":{"REDIS_STREAM":"hijacked"}}')
    wait_for(lambda: _get(cluster, namespace, "configmap", "drift-config")["data"]["REDIS_STREAM"] == "gong:webhooks",
             30, what="config restored")
    wait_ready(cluster, namespace, "drift")


def _watch_replicas(cluster: Any, namespace: str, name: str) -> subprocess.Popen[str]:
    """Every version of the Deployment the API server stores, as `generation replicas` lines."""
    return subprocess.Popen(
        [str(cluster.bin_dir / "kubectl"), "get", "deployment", name, "-n", namespace, "--watch",
         "-o", "jsonpath={.metadata.generation} {.spec.replicas}{\"\\n\"}"],
        env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def test_switching_to_autoscaling_never_drops_below_the_old_replica_count(cluster, operator, namespace):
    """Issue 10 #6: the operator stopped sending spec.replicas in the apply that switched on autoscaling;
    server-side apply then removed the field, the API server defaulted it to 1, and the ReplicaSet
    could scale 5 pods down to 1 before the operator raised it to minReplicas."""
    spec = {"autoscaling": {"enabled": False}, "replicas": 5, "disruptionBudget": {"minAvailable": 1}}
    apply_yaml(cluster, namespace, [source_secret(), gongwebhook("switch", **spec)])
    wait_ready(cluster, namespace, "switch")
    watch = _watch_replicas(cluster, namespace, "switch")
    try:
        time.sleep(1)  # the watch's first line is the current object
        cluster.kubectl("patch", "-n", namespace, "gw/switch", "--type=merge", "-p", json.dumps({"spec": {
            "replicas": None, "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 10}}}))
        wait_for(lambda: _get(cluster, namespace, "hpa", "switch"), 30, what="HPA created")
        time.sleep(RESYNC_SECONDS + 2)  # one more resync: the field stays where it is
    finally:
        watch.terminate()
        out, _ = watch.communicate(timeout=10)
    seen = [int(line.split()[1]) for line in out.splitlines() if len(line.split()) == 2]
    assert seen and seen[0] == 5, out
    assert min(seen) >= 5, f"Deployment spec.replicas went below the old count of 5: {seen}"
    dep = _get(cluster, namespace, "deployment", "switch")
    assert dep["spec"]["replicas"] == 5
    applied = [m for m in dep["metadata"]["managedFields"]
               if m["manager"] == "gong-webhook-operator" and m["operation"] == "Apply"]
    assert all("f:replicas" not in json.dumps(m["fieldsV1"]) for m in applied), "the HPA owns replicas now"
    wait_ready(cluster, namespace, "switch")


# ---------------------------------------------------------------------------------------- 4


def test_switching_features_off_deletes_children_and_cr_deletion_removes_all(cluster, operator, namespace):
    spec = {"ingress": {"enabled": True, "host": "gw.example.com"}}
    apply_yaml(cluster, namespace, [source_secret(), gongwebhook("toggle", **spec)])
    wait_ready(cluster, namespace, "toggle")
    for kind in ("ingress", "hpa", "networkpolicy", "pdb"):
        assert _get(cluster, namespace, kind, "toggle") is not None
    cluster.kubectl("patch", "-n", namespace, "gw/toggle", "--type=merge", "-p", json.dumps({"spec": {
        "ingress": {"enabled": False}, "autoscaling": {"enabled": False}, "replicas": 2,
        "networkPolicy": {"enabled": False}, "disruptionBudget": {"enabled": False}}}))
    for kind in ("ingress", "hpa", "networkpolicy", "pdb"):
        wait_for(lambda k=kind: _get(cluster, namespace, k, "toggle") is None, 30, what=f"{kind} deleted")
    wait_for(lambda: _get(cluster, namespace, "deployment", "toggle")["spec"]["replicas"] == 2, 30,
             what="fixed replicas")
    wait_ready(cluster, namespace, "toggle")
    gw = _gw(cluster, namespace, "toggle")
    assert {c["kind"] for c in gw["status"]["children"]} == {"ConfigMap", "Secret", "Deployment", "Service"}
    events = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
    assert any(e["reason"] == "Deleted" and "Ingress" in e["message"] for e in events)

    # Switching back on brings them back.
    cluster.kubectl("patch", "-n", namespace, "gw/toggle", "--type=merge",
                    "-p", '{"spec":{"networkPolicy":{"enabled":true}}}')
    wait_for(lambda: _get(cluster, namespace, "networkpolicy", "toggle"), 30, what="NetworkPolicy re-created")

    cluster.kubectl("delete", "-n", namespace, "gw/toggle", "--wait=true", "--timeout=30s")
    for kind, name in (("deployment", "toggle"), ("service", "toggle"), ("configmap", "toggle-config"),
                       ("secret", "toggle-credentials"), ("networkpolicy", "toggle")):
        wait_for(lambda k=kind, n=name: _get(cluster, namespace, k, n) is None, 60, what=f"{kind}/{name} collected")
    assert _get(cluster, namespace, "secret", "gong-credentials") is not None  # the source is not ours


# ---------------------------------------------------------------------------------------- 5


def _template_hash(cluster: Any, ns: str, name: str) -> str:
    dep = _get(cluster, ns, "deployment", name)
    assert dep is not None
    return str(dep["spec"]["template"]["metadata"]["annotations"]["gong.sophia-ai.com/config-hash"])


def _pods(cluster: Any, ns: str, instance: str) -> list[str]:
    items = json.loads(cluster.kubectl("get", "pods", "-n", ns, "-l", f"app.kubernetes.io/instance={instance}",
                                       "-o", "json").stdout)["items"]
    return sorted(p["metadata"]["name"] for p in items)


def test_rotation_rolls_pods_and_missing_keys_leave_them_alone(cluster, operator, namespace):
    apply_yaml(cluster, namespace, [source_secret(), gongwebhook("rot", **FIXED)])
    wait_ready(cluster, namespace, "rot")
    hash1 = _template_hash(cluster, namespace, "rot")
    assert _gw(cluster, namespace, "rot")["status"]["secretHash"] == hash1

    # Rotation: new value -> new hash in the pod template -> a new ReplicaSet rolls out.
    apply_yaml(cluster, namespace, source_secret(GONG_API_SECRET="s3cr3t-value-2"))
    wait_for(lambda: _template_hash(cluster, namespace, "rot") != hash1, 30, what="template hash change")
    wait_for(lambda: condition(_gw(cluster, namespace, "rot"), "Ready")["status"] == "True"
             and _gw(cluster, namespace, "rot")["status"]["secretHash"] != hash1, 60, what="rolled and Ready")
    creds = _get(cluster, namespace, "secret", "rot-credentials")
    assert base64.b64decode(creds["data"]["GONG_API_SECRET"]).decode() == "s3cr3t-value-2"
    rs = json.loads(cluster.kubectl("get", "rs", "-n", namespace, "-l", "app.kubernetes.io/instance=rot",
                                    "-o", "json").stdout)["items"]
    assert len(rs) == 2, "rotation did not create a new ReplicaSet"

    # A required key disappears: SecretsSynced=False/KeysMissing, pods and template untouched.
    dep_before = _get(cluster, namespace, "deployment", "rot")
    pods_before = wait_for(lambda: len(p := _pods(cluster, namespace, "rot")) == 2 and p, 60,
                           what="the old ReplicaSet's pods to be gone")
    cluster.kubectl("patch", "-n", namespace, "secret", "gong-credentials", "--type=json",
                    "-p", '[{"op":"remove","path":"/data/SNOWFLAKE_USER"}]')
    cond = wait_for(lambda: (c := condition(_gw(cluster, namespace, "rot"), "SecretsSynced"))
                    and c["status"] == "False" and c, 30, what="SecretsSynced=False")
    assert cond["reason"] == "KeysMissing"
    assert "SNOWFLAKE_USER" in cond["message"]
    gw = _gw(cluster, namespace, "rot")
    assert gw["status"]["secrets"] == "KeysMissing: SNOWFLAKE_USER"
    dump = json.dumps(gw) + cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    assert "s3cr3t-value" not in dump and "pw-value" not in dump
    time.sleep(RESYNC_SECONDS + 2)  # a resync later, still untouched
    dep_after = _get(cluster, namespace, "deployment", "rot")
    assert dep_after["metadata"]["generation"] == dep_before["metadata"]["generation"]
    assert dep_after["spec"]["template"] == dep_before["spec"]["template"]
    assert _pods(cluster, namespace, "rot") == pods_before
    creds = _get(cluster, namespace, "secret", "rot-credentials")
    assert "SNOWFLAKE_USER" in creds["data"], "the synced Secret lost a key"
    events = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
    assert any(e["reason"] == "KeysMissing" and e["type"] == "Warning" for e in events)

    # Source deleted: SourceMissing. Restored: recovered.
    cluster.kubectl("delete", "-n", namespace, "secret", "gong-credentials")
    wait_for(lambda: condition(_gw(cluster, namespace, "rot"), "SecretsSynced")["reason"] == "SourceMissing", 30,
             what="SourceMissing")
    apply_yaml(cluster, namespace, source_secret(GONG_API_SECRET="s3cr3t-value-2"))
    wait_for(lambda: condition(_gw(cluster, namespace, "rot"), "SecretsSynced")["status"] == "True", 30,
             what="recovered")
    wait_ready(cluster, namespace, "rot")
    events = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
    assert any(e["reason"] == "SecretsRecovered" for e in events)


# ---------------------------------------------------------------------------------------- ESC


def test_pulumi_esc_source_against_the_local_standin(cluster, operator, namespace):
    values = {"GONG_API_KEY": "esc-key", "GONG_API_SECRET": "esc-secret-1", "SNOWFLAKE_ACCOUNT": "acct",
              "SNOWFLAKE_USER": "user", "SNOWFLAKE_PASSWORD": "esc-password-1",
              "GONG_WEBHOOK_PUBLIC_KEYS": EXAMPLE_PUBLIC_KEY}
    state = EscState(token="pul-cluster-token", org="acme", project="gong", env="prod", properties=env_vars(values))
    with serve(state) as url:
        token = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pulumi-token"},
                 "stringData": {"accessToken": "pul-cluster-token"}}
        esc = {"pulumiEsc": {"organization": "acme", "project": "gong", "environment": "prod",
                             "accessTokenSecretRef": {"name": "pulumi-token"}, "apiUrl": url},
               "refreshInterval": "10s"}
        apply_yaml(cluster, namespace, [token, gongwebhook("esc", **FIXED, secrets=esc)])
        wait_ready(cluster, namespace, "esc")
        creds = _get(cluster, namespace, "secret", "esc-credentials")
        assert base64.b64decode(creds["data"]["GONG_API_SECRET"]).decode() == "esc-secret-1"
        cond = condition(_gw(cluster, namespace, "esc"), "SecretsSynced")
        assert cond["status"] == "True" and "acme/gong/prod" in cond["message"]
        hash1 = _template_hash(cluster, namespace, "esc")
        # Rotation in ESC reaches the pods after refreshInterval.
        state.properties = env_vars({**values, "GONG_API_SECRET": "esc-secret-2"})
        wait_for(lambda: _template_hash(cluster, namespace, "esc") != hash1, 40, what="ESC rotation rolled")
        creds = _get(cluster, namespace, "secret", "esc-credentials")
        assert base64.b64decode(creds["data"]["GONG_API_SECRET"]).decode() == "esc-secret-2"
        # A key disappears from ESC: KeysMissing, workload untouched.
        state.properties = env_vars({k: v for k, v in values.items() if k != "SNOWFLAKE_USER"})
        wait_for(lambda: condition(_gw(cluster, namespace, "esc"), "SecretsSynced")["reason"] == "KeysMissing", 40,
                 what="KeysMissing from ESC")
        assert [m for m, _ in state.requests].count("POST") >= 3


# ---------------------------------------------------------------------------------------- 6


def test_servicemonitor_waits_for_its_crd(cluster, operator, namespace):
    crd = "servicemonitors.monitoring.coreos.com"
    cluster.kubectl("delete", "crd", crd, "--ignore-not-found", "--wait=true")
    apply_yaml(cluster, namespace, [source_secret(), gongwebhook("mon", **FIXED)])
    wait_ready(cluster, namespace, "mon")
    cond = condition(_gw(cluster, namespace, "mon"), "MonitoringConfigured")
    assert cond["status"] == "False" and cond["reason"] == "CRDNotInstalled"
    try:
        cluster.kubectl("apply", "-f", str(FIXTURES / "servicemonitor-crd.yaml"))
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=30s")
        sm = wait_for(lambda: _get(cluster, namespace, "servicemonitor", "mon"), 3 * RESYNC_SECONDS + 10,
                      what="ServiceMonitor created after the CRD appeared")
        assert owner_uid(sm) == _gw(cluster, namespace, "mon")["metadata"]["uid"]
        assert sm["spec"]["endpoints"][0]["port"] == "metrics"  # the metrics-only port (NetworkPolicy split)
        wait_for(lambda: condition(_gw(cluster, namespace, "mon"), "MonitoringConfigured")["status"] == "True",
                 30, what="MonitoringConfigured=True")
        assert operator.proc is not None and operator.proc.poll() is None
    finally:
        cluster.kubectl("delete", "crd", crd, "--ignore-not-found", "--wait=false")


# ---------------------------------------------------------------------------------------- suspend


def test_suspend_scales_to_zero_and_freezes(cluster, operator, namespace):
    apply_yaml(cluster, namespace, [source_secret(), gongwebhook("sus")])
    wait_ready(cluster, namespace, "sus")
    cluster.kubectl("patch", "-n", namespace, "gw/sus", "--type=merge", "-p", '{"spec":{"suspend":true}}')
    wait_for(lambda: _get(cluster, namespace, "deployment", "sus")["spec"]["replicas"] == 0, 30, what="scaled to 0")
    wait_for(lambda: condition(_gw(cluster, namespace, "sus"), "Ready")["reason"] == "Suspended", 30,
             what="Ready=False/Suspended")
    image_before = _get(cluster, namespace, "deployment", "sus")["spec"]["template"]["spec"]["containers"][0]["image"]
    cluster.kubectl("patch", "-n", namespace, "gw/sus", "--type=merge", "-p", '{"spec":{"image":"example/new:2"}}')
    time.sleep(RESYNC_SECONDS + 2)
    dep = _get(cluster, namespace, "deployment", "sus")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == image_before
    cluster.kubectl("patch", "-n", namespace, "gw/sus", "--type=merge", "-p", '{"spec":{"suspend":false}}')
    wait_for(lambda: _get(cluster, namespace, "deployment", "sus")["spec"]["template"]["spec"]["containers"][0]
             ["image"] == "example/new:2", 30, what="change applied after unsuspend")
    wait_ready(cluster, namespace, "sus")
    assert _get(cluster, namespace, "deployment", "sus")["spec"]["replicas"] == 3


# ---------------------------------------------------------------------------------------- hygiene


def test_zz_operator_logs_have_no_forbidden_errors_or_secret_values(cluster, operator):
    text = operator.all_logs()
    assert text, "no operator log captured"
    # RBAC denials name the user; "forbidden ... being terminated" (namespace deletion) is not RBAC.
    assert f'User \\"{SA_USER}\\" cannot' not in text and f'User "{SA_USER}" cannot' not in text
    for bad in ("s3cr3t-value", "pw-value", "example-secret", "example-password", "Traceback"):
        assert bad not in text, f"operator log contains {bad!r}"
