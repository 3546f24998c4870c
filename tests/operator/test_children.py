from __future__ import annotations

import base64

from gong_operator import children as ch
from gong_operator.diff import needs_apply
from tests.support.specs import make_spec
from webhook_app import contract


def _kids(spec, owner, **kw):
    kw.setdefault("secret_data", {"GONG_API_KEY": b"k"})
    kw.setdefault("content_hash", "h1")
    kw.setdefault("service_monitor_served", True)
    return {m["kind"]: m for m in ch.desired_children(spec, owner, **kw)}


def test_every_child_is_owned_labelled_and_hashed(owner):
    kids = _kids(make_spec(ingress={"enabled": True, "host": "a.example.com"}), owner)
    assert set(kids) == {"ConfigMap", "Secret", "Deployment", "Service", "Ingress", "HorizontalPodAutoscaler",
                         "NetworkPolicy", "PodDisruptionBudget", "ServiceMonitor"}
    for m in kids.values():
        meta = m["metadata"]
        assert meta["namespace"] == "team"
        assert meta["ownerReferences"] == [{"apiVersion": "gong.sophia-ai.com/v1alpha1", "kind": "GongWebhook",
                                            "name": "gw", "uid": "0000-uid", "controller": True,
                                            "blockOwnerDeletion": True}]
        assert meta["labels"]["app.kubernetes.io/managed-by"] == ch.MANAGER
        assert meta["labels"]["app.kubernetes.io/instance"] == "gw"
        assert ch.DESIRED_HASH_ANNOTATION in meta["annotations"]


def test_switched_off_features_and_missing_crd_leave_children_out(owner):
    spec = make_spec(autoscaling={"enabled": False}, replicas=3, networkPolicy={"enabled": False},
                     disruptionBudget={"enabled": False})
    kids = _kids(spec, owner, service_monitor_served=False)
    assert set(kids) == {"ConfigMap", "Secret", "Deployment", "Service"}
    assert kids["Deployment"]["spec"]["replicas"] == 3


def test_without_credentials_the_workload_is_not_rendered(owner):
    kids = _kids(make_spec(), owner, secret_data=None)
    assert "Deployment" not in kids and "Secret" not in kids and "ConfigMap" not in kids
    assert "Service" in kids


def test_deployment_follows_the_restricted_pod_security_standard(owner):
    dep = _kids(make_spec(), owner)["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}} in pod["volumes"]
    assert c["ports"][0]["containerPort"] == contract.CONTAINER_PORT
    assert c["livenessProbe"]["httpGet"]["path"] == contract.HEALTH_PATH
    assert c["readinessProbe"]["httpGet"]["path"] == contract.READY_PATH
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert "podAntiAffinity" in pod["affinity"]
    assert c["envFrom"][:2] == [{"configMapRef": {"name": "gw-config"}}, {"secretRef": {"name": "gw-credentials"}}]
    assert dep["spec"]["template"]["metadata"]["annotations"][ch.HASH_ANNOTATION] == "h1"
    assert "replicas" not in dep["spec"], "the HPA owns replicas while autoscaling is on"


def test_resources_and_pod_extras(owner):
    spec = make_spec(resources={"requests": {"cpu": "100m"}}, pod={
        "nodeSelector": {"pool": "ingest"}, "priorityClassName": "high",
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gong", "effect": "NoSchedule"}],
        "annotations": {"a": "b"}, "serviceAccountName": "gong-app", "envFromConfigMaps": ["extra"]})
    dep = _kids(spec, owner)["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {
        "requests": {"cpu": "100m", "memory": "512Mi", "ephemeral-storage": "128Mi"},
        "limits": {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "1Gi"}}
    assert pod["nodeSelector"] == {"pool": "ingest"} and pod["priorityClassName"] == "high"
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "gong", "effect": "NoSchedule"}]
    assert pod["serviceAccountName"] == "gong-app"
    assert {"configMapRef": {"name": "extra"}} in pod["containers"][0]["envFrom"]
    assert dep["spec"]["template"]["metadata"]["annotations"]["a"] == "b"


def test_config_uses_only_contract_names(owner):
    spec = make_spec(gong={"publicUrl": "https://x.example.com/webhooks/gong"},
                     extraConfig={contract.MAX_BODY_BYTES: "1000"})
    data = ch.configmap(spec, owner)["data"]
    assert set(data) <= contract.CONFIG_KEYS
    assert data[contract.REDIS_STREAM] == "gong:webhooks"
    assert data[contract.SNOWFLAKE_SCHEMA] == "GONG_WEBHOOKS"
    assert data[contract.GONG_API_RATE_LIMIT] == "2.5"
    assert data[contract.GONG_WEBHOOK_PUBLIC_URL] == "https://x.example.com/webhooks/gong"
    assert data[contract.MAX_BODY_BYTES] == "1000"
    assert data[contract.PORT] == str(contract.CONTAINER_PORT)


def test_credentials_secret_is_base64_data(owner):
    sec = ch.credentials_secret(owner, {"GONG_API_KEY": b"v\x00lue"})
    assert sec["type"] == "Opaque" and "stringData" not in sec
    assert base64.b64decode(sec["data"]["GONG_API_KEY"]) == b"v\x00lue"


def test_ingress_hpa_netpol_pdb_servicemonitor(owner):
    spec = make_spec(ingress={"enabled": True, "host": "h.example.com", "className": "nginx",
                              "tlsSecretName": "tls", "rateLimitRps": 7},
                     monitoring={"serviceMonitor": {"labels": {"release": "prom"}}})
    kids = _kids(spec, owner)
    ing = kids["Ingress"]
    assert ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/limit-rps"] == "7"
    assert ing["spec"]["tls"] == [{"hosts": ["h.example.com"], "secretName": "tls"}]
    assert ing["spec"]["ingressClassName"] == "nginx"
    hpa = kids["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 10)
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert {"type": "Pods", "value": 2, "periodSeconds": 60} in hpa["behavior"]["scaleUp"]["policies"]
    assert {"type": "Percent", "value": 100, "periodSeconds": 60} in hpa["behavior"]["scaleUp"]["policies"]
    assert hpa["behavior"]["scaleDown"]["policies"] == [{"type": "Percent", "value": 10, "periodSeconds": 60}]
    np = kids["NetworkPolicy"]["spec"]
    peers = [peer for rule in np["ingress"] for peer in rule["from"]]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}} in peers
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}} in peers
    ports = [p["port"] for rule in np["egress"] for p in rule["ports"]]
    assert 53 in ports and 6379 in ports and 443 in ports
    assert kids["PodDisruptionBudget"]["spec"]["minAvailable"] == 2
    sm = kids["ServiceMonitor"]
    assert sm["metadata"]["labels"]["release"] == "prom"
    assert sm["spec"]["endpoints"][0]["path"] == contract.METRICS_PATH
    assert ch.endpoint(spec, owner) == f"https://h.example.com{contract.WEBHOOK_PATH}"


def test_endpoint_falls_back_to_the_service(owner):
    assert ch.endpoint(make_spec(), owner) == f"http://gw.team.svc{contract.WEBHOOK_PATH}"


def test_builders_are_deterministic_and_hash_changes_with_spec(owner):
    a = ch.deployment(make_spec(), owner, content_hash="h")
    b = ch.deployment(make_spec(), owner, content_hash="h")
    c = ch.deployment(make_spec(image="example/other:2"), owner, content_hash="h")
    assert a == b
    assert needs_apply(c, a), "a changed image must be applied"
    assert not needs_apply(a, b)


def test_disk_use_is_bounded_and_overridable(owner):
    # Issue 10 #6: an unbounded /tmp emptyDir and no ephemeral-storage limit let one pod fill a node's disk.
    pod = _kids(make_spec(), owner)["Deployment"]["spec"]["template"]["spec"]
    (tmp,) = pod["volumes"]
    assert tmp == {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}
    res = pod["containers"][0]["resources"]
    assert (res["requests"]["ephemeral-storage"], res["limits"]["ephemeral-storage"]) == ("128Mi", "1Gi")
    spec = make_spec(resources={"requests": {"ephemeralStorage": "1Gi"}, "limits": {"ephemeralStorage": "4Gi"},
                                "tmpSizeLimit": "2Gi"})
    pod = _kids(spec, owner)["Deployment"]["spec"]["template"]["spec"]
    assert pod["volumes"][0]["emptyDir"] == {"sizeLimit": "2Gi"}
    res = pod["containers"][0]["resources"]
    assert (res["requests"]["ephemeral-storage"], res["limits"]["ephemeral-storage"]) == ("1Gi", "4Gi")


def test_pdb_lets_unhealthy_pods_be_evicted(owner):
    # /ready fails while Redis is down; with the default policy such pods count against minAvailable
    # and block every node drain until Redis is back.
    pdb = _kids(make_spec(), owner)["PodDisruptionBudget"]["spec"]
    assert pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_no_service_link_variables_reach_the_app(owner):
    # Kubernetes would inject <SERVICE>_PORT=tcp://... for every Service of the namespace: a Service
    # named `snowflake` would set SNOWFLAKE_PORT, which the app reads as a setting and refuses.
    pod = _kids(make_spec(), owner)["Deployment"]["spec"]["template"]["spec"]
    assert pod["enableServiceLinks"] is False


def test_ingress_routes_only_the_webhook_path(owner):
    # Issue 10 #6: `/` with Prefix also published /metrics, /health and /ready.
    def paths(**ingress):
        spec_kw = {"ingress": {"enabled": True, "host": "h.example.com", **ingress.pop("ingress", {})}, **ingress}
        ing = _kids(make_spec(**spec_kw), owner)["Ingress"]
        return [(p["path"], p["pathType"]) for p in ing["spec"]["rules"][0]["http"]["paths"]]

    assert paths() == [(contract.WEBHOOK_PATH, "Exact")]
    # url-key mode: /webhooks/gong/<key> (Prefix matches whole path segments, so not /webhooks/gongX).
    assert paths(gong={"authMode": "urlKey"}) == [(contract.WEBHOOK_PATH, "Prefix")]
    # `/` was the old default and is stored in existing objects: it means the default now.
    assert paths(ingress={"path": "/"}) == [(contract.WEBHOOK_PATH, "Exact")]
    assert paths(ingress={"path": "/gong"}) == [("/gong", "Prefix")]


def test_pods_drain_before_they_stop_and_say_why_they_exit(owner):
    """A terminating pod keeps serving until the Service's endpoints have moved on (the rotation test in
    tests/node got connection errors without the pause), within its grace period; a crash at start shows
    the app's own last lines as the termination message."""
    pod = _kids(make_spec(), owner)["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": ch.PRESTOP_SLEEP_SECONDS}}}
    assert ch.PRESTOP_SLEEP_SECONDS >= 3
    assert pod["terminationGracePeriodSeconds"] >= ch.PRESTOP_SLEEP_SECONDS + 30  # + uvicorn's graceful 30 s
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
