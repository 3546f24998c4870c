"""The NetworkPolicy the operator renders, enforced by a real implementation (kube-router's network
policy controller on the real node): who may reach the app, and where the app may connect.

Probes are real connections from pods (tests/support/network.py). The Snowflake stand-in and a
Gong API stand-in run outside the cluster (the devcluster's stand-in network), on 443 as the SaaS
endpoints do, so the app's egress to them is filtered like its egress to the real services.
The proof that the refusals come from the policy and not from the network: the same probes
succeed once the CR disables its NetworkPolicy.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import network as net
from tests.support import node as n
from tests.support.cluster import wait_for
from tests.support.gong import GongSigner, call_payload, new_private_key, public_key_pem
from tests.support.load import assert_exactly_once
from tests.support.servers import FakesnowServer

PUBLIC_URL = "https://gong-webhooks.example.com/webhooks/gong"  # the sample's Ingress host (what Gong signs)
APP_PORT, METRICS_PORT = 8080, 9090  # webhook_app.contract: container ports of the app
NOT_ALLOWED_PORT = 8443  # a port the rendered egress rules do not list
APP_CONTAINER = "webhook"


@pytest.fixture(scope="module")
def np_env(cluster: Any, real_node: dict[str, Any], node_operator: None, node_fakesnow: FakesnowServer,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    suffix = uuid.uuid4().hex[:6]
    app_ns, ingress_ns, monitoring_ns, other_ns = (f"np-{role}-{suffix}" for role in ("app", "ing", "mon", "other"))
    for ns in (app_ns, ingress_ns, monitoring_ns, other_ns):
        n.node_namespace(cluster, ns)
    for ns in (ingress_ns, monitoring_ns, other_ns):
        n.apply(cluster, ns, [net.probe_pod(ns)])
    cluster.grant_operator_secret_writes(app_ns)
    n.deploy_redis(cluster, app_ns)
    n.snowflake_service(cluster, app_ns)
    workdir = tmp_path_factory.mktemp("wan")
    gong_api = net.WanListener(workdir, n.GONG_API_ADDRESS, n.HTTPS_PORT)
    elsewhere = net.WanListener(workdir, n.GONG_API_ADDRESS, NOT_ALLOWED_PORT)
    schema = f"GW_{uuid.uuid4().hex[:8].upper()}"
    settings = n.migrate_schema(node_fakesnow, schema)
    key = new_private_key()
    cr = n.sample_cr(schema)
    cr["spec"]["networkPolicy"] = {"ingressNamespaces": [ingress_ns], "monitoringNamespaces": [monitoring_ns]}
    n.apply(cluster, app_ns, [n.source_secret(public_key_pem(key), "pw-np-4Rt"), cr])
    try:
        proc = cluster.kubectl("wait", "--for=condition=Ready", "--timeout=240s", "-n", app_ns, "gongwebhook/gong",
                               check=False, timeout=260)
        assert proc.returncode == 0, n.describe(cluster, app_ns)
        for ns in (ingress_ns, monitoring_ns, other_ns):
            cluster.kubectl("wait", "--for=condition=Ready", "--timeout=120s", "-n", ns, "pod/probe", timeout=140)
        app_pods = n.pods(cluster, app_ns, "app.kubernetes.io/instance=gong")
        svc = n.get_json(cluster, "service", "gong", "-n", app_ns)
        yield {"app_ns": app_ns, "ingress_ns": ingress_ns, "monitoring_ns": monitoring_ns, "other_ns": other_ns,
               "app_pod": app_pods[0]["metadata"]["name"], "app_ip": app_pods[0]["status"]["podIP"],
               "service_ip": svc["spec"]["clusterIP"], "key": key, "settings": settings,
               "query": n.sf_query(node_fakesnow),
               "probe_ip": {ns: n.get_json(cluster, "pod", "probe", "-n", ns)["status"]["podIP"]
                            for ns in (ingress_ns, monitoring_ns, other_ns)}}
    finally:
        gong_api.stop()
        elsewhere.stop()
        for ns in (app_ns, ingress_ns, monitoring_ns, other_ns):
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def refused_probes(cluster: Any, env: dict[str, Any]) -> dict[str, str]:
    """Every path the rendered policy must refuse, with what the connection met."""
    app_ns, app_pod, app_ip = env["app_ns"], env["app_pod"], env["app_ip"]
    return {
        "other namespace -> app port": net.connect(cluster, env["other_ns"], "probe", app_ip, APP_PORT),
        "other namespace -> metrics port": net.connect(cluster, env["other_ns"], "probe", app_ip, METRICS_PORT),
        "other namespace -> Service": net.connect(cluster, env["other_ns"], "probe", env["service_ip"], 80),
        "monitoring namespace -> app port": net.connect(cluster, env["monitoring_ns"], "probe", app_ip, APP_PORT),
        "ingress namespace -> metrics port": net.connect(cluster, env["ingress_ns"], "probe", app_ip, METRICS_PORT),
        "app -> outside, unlisted port": net.connect(cluster, app_ns, app_pod, n.GONG_API_ADDRESS, NOT_ALLOWED_PORT,
                                                     container=APP_CONTAINER),
        "app -> pod in another namespace": net.connect(cluster, app_ns, app_pod, env["probe_ip"][env["other_ns"]],
                                                       net.PROBE_PORT, container=APP_CONTAINER),
    }


def test_the_paths_the_policy_allows_work(cluster: Any, np_env: dict[str, Any]) -> None:
    env, app_ip = np_env, np_env["app_ip"]
    health = net.http(cluster, env["ingress_ns"], "probe", "GET", app_ip, APP_PORT, "/health")
    assert health["status"] == 200, health
    metrics = net.http(cluster, env["monitoring_ns"], "probe", "GET", app_ip, METRICS_PORT, "/metrics")
    assert metrics["status"] == 200 and "gong_webhook" in metrics["body"], metrics
    # The app's own egress: DNS, Redis, the Snowflake and Gong API stand-ins outside the cluster on 443.
    app = {"namespace": env["app_ns"], "pod": env["app_pod"]}
    assert not net.resolve(cluster, app["namespace"], app["pod"], "redis", container=APP_CONTAINER).startswith("error")
    assert net.connect(cluster, app["namespace"], app["pod"], "redis", 6379, container=APP_CONTAINER) == "open"
    assert net.connect(cluster, app["namespace"], app["pod"], n.SNOWFLAKE_ADDRESS, n.HTTPS_PORT,
                       container=APP_CONTAINER) == "open"
    gong = net.http(cluster, app["namespace"], app["pod"], "GET", n.GONG_API_ADDRESS, n.HTTPS_PORT, "/",
                    container=APP_CONTAINER)
    assert gong["status"] == 200, gong
    # And the product path end to end through the policy: signed webhooks from the ingress namespace
    # (where the ingress controller runs) through the Service, enqueued in Redis, loaded into Snowflake.
    signer = GongSigner(env["key"], PUBLIC_URL)
    ids = {f"np-{i:03d}" for i in range(5)}
    for call_id in sorted(ids):
        body, headers = signer.signed(call_payload(call_id))
        answer = net.http(cluster, env["ingress_ns"], "probe", "POST", env["service_ip"], 80, "/webhooks/gong",
                          body=body, headers=headers)
        assert answer["status"] == 202, answer
    table = f"SOPHIA_AI.{env['settings'].snowflake_schema}.GONG_WEBHOOK_EVENTS"
    wait_for(lambda: env["query"](f"SELECT COUNT(*) FROM {table}")[0][0] >= len(ids), 90, what="rows in Snowflake")
    assert_exactly_once(env["query"], env["settings"], ids)


def test_the_paths_it_refuses_are_refused_and_open_without_the_policy(cluster: Any, np_env: dict[str, Any]) -> None:
    env = np_env
    # A scraper's namespace must not be able to post webhooks: the POST itself, not only the SYN.
    body, headers = GongSigner(env["key"], PUBLIC_URL).signed(call_payload("np-from-monitoring"))
    posted = net.http(cluster, env["monitoring_ns"], "probe", "POST", env["app_ip"], APP_PORT, "/webhooks/gong",
                      body=body, headers=headers)
    assert posted["status"] is None, posted
    with_policy = refused_probes(cluster, env)
    assert all(result != "open" for result in with_policy.values()), with_policy
    print("with the NetworkPolicy:", with_policy)

    cluster.kubectl("patch", "gongwebhook", "gong", "-n", env["app_ns"], "--type=merge",
                    "-p", '{"spec": {"networkPolicy": {"enabled": false}}}')
    wait_for(lambda: n.get_json(cluster, "networkpolicy", "gong", "-n", env["app_ns"]) is None, 60,
             what="the operator to delete the NetworkPolicy")
    # kube-router resyncs on the deletion; the same probes then connect.
    without: dict[str, str] = {}

    def all_open() -> bool:
        without.update(refused_probes(cluster, env))
        return all(result == "open" for result in without.values())

    wait_for(all_open, 60, what=f"every probe to connect without the NetworkPolicy (last: {without})")
    print("without it:", without)
