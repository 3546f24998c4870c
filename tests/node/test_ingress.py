"""The Ingress the operator renders, served by a real controller (Traefik, IngressClass `traefik`, on
the real node) with TLS from a Secret: what Gong would call is reachable at the public URL the app
verifies, and nothing else of the app is published.

The client connects to the node's address on 443 and names the host by SNI and Host header, as a
DNS record pointing the host at the node would make it do.
"""

from __future__ import annotations

import ssl
import uuid
from typing import Any

import httpx
import pytest

from tests.support import network as net
from tests.support import node as n
from tests.support.cluster import wait_for
from tests.support.gong import GongSigner, call_payload, new_private_key, public_key_pem
from tests.support.load import assert_exactly_once
from tests.support.servers import FakesnowServer

HOST = "gong-ingress.example.test"
PUBLIC_URL = f"https://{HOST}/webhooks/gong"
TRAEFIK_NAMESPACE = "traefik"  # scripts/devcluster's Traefik (hack/traefik/install.yaml)


def via_ingress(ca_pem: bytes) -> httpx.Client:
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    return httpx.Client(base_url=f"https://{n.GATEWAY}", verify=ctx, timeout=10, headers={"Host": HOST})


def get(client: httpx.Client, path: str, **kw: Any) -> httpx.Response:
    # The TLS handshake names the host (SNI) although the connection goes to the node's address.
    return client.get(path, extensions={"sni_hostname": HOST}, **kw)


@pytest.fixture
def ingress_env(cluster: Any, node_operator: None, node_namespace: str,
                node_fakesnow: FakesnowServer) -> dict[str, Any]:
    ns = node_namespace
    schema = f"GW_{uuid.uuid4().hex[:8].upper()}"
    settings = n.migrate_schema(node_fakesnow, schema)
    key = new_private_key()
    secret, ca_pem = net.tls_secret("gong-ingress-tls", HOST)
    cr = n.sample_cr(schema)
    cr["spec"]["ingress"] = {
        "enabled": True, "host": HOST, "className": "traefik", "tlsSecretName": "gong-ingress-tls",
        # Controller-specific options go through annotations: Traefik routes an Ingress on every
        # entry point unless told; Gong's calls carry a signed https URL, so publish only websecure.
        "annotations": {"traefik.ingress.kubernetes.io/router.entrypoints": "websecure"}}
    # The ingress controller's namespace is the one allowed to reach the app (kube-router enforces it).
    cr["spec"]["networkPolicy"] = {"ingressNamespaces": [TRAEFIK_NAMESPACE], "monitoringNamespaces": ["monitoring"]}
    n.apply(cluster, ns, [secret, n.source_secret(public_key_pem(key), "pw-ing-7Yh"), cr])
    proc = cluster.kubectl("wait", "--for=condition=Ready", "--timeout=240s", "-n", ns, "gongwebhook/gong",
                           check=False, timeout=260)
    assert proc.returncode == 0, n.describe(cluster, ns)
    return {"ns": ns, "key": key, "ca": ca_pem, "settings": settings, "query": n.sf_query(node_fakesnow)}


def test_signed_webhooks_through_the_ingress_with_tls_land_once(cluster: Any, ingress_env: dict[str, Any]) -> None:
    env = ingress_env
    gw = n.get_json(cluster, "gongwebhook", "gong", "-n", env["ns"])
    assert gw["status"]["endpoint"] == PUBLIC_URL, gw["status"]
    column = cluster.kubectl("get", "gongwebhook", "gong", "-n", env["ns"], "--no-headers",
                             "-o", "custom-columns=E:.status.endpoint").stdout.strip()
    printed = cluster.kubectl("get", "gongwebhooks", "-n", env["ns"]).stdout
    assert column == PUBLIC_URL and PUBLIC_URL in printed, printed
    signer = GongSigner(env["key"], PUBLIC_URL)
    ids = [f"ing-{i:03d}" for i in range(10)]
    with via_ingress(env["ca"]) as client:
        # Traefik picks the Ingress up within its provider's refresh; until then the host is unknown (404).
        def routed() -> bool:
            return get(client, "/webhooks/gong").status_code != 404

        wait_for(routed, 60, what="Traefik to route the Ingress")
        answers = []
        for call_id in ids:
            body, headers = signer.signed(call_payload(call_id))
            answers.append(client.post("/webhooks/gong", content=body, headers=headers,
                                       extensions={"sni_hostname": HOST}).status_code)
        body, headers = signer.signed(call_payload(ids[0]))
        again = client.post("/webhooks/gong", content=body, headers=headers, extensions={"sni_hostname": HOST})
        # Only the webhook path is published: the app's metrics and probes stay inside the cluster.
        unpublished = {path: get(client, path).status_code for path in ("/metrics", "/health", "/ready", "/")}
        peer_cert = client.get("/webhooks/gong", extensions={"sni_hostname": HOST})
    assert answers == [202] * len(ids), answers
    assert again.status_code == 200, again.text
    assert unpublished == {"/metrics": 404, "/health": 404, "/ready": 404, "/": 404}, unpublished
    assert peer_cert.status_code == 405, peer_cert.text  # the app answered: GET is not Gong's method
    # Plain http is not routed (the annotation above): a signed https URL is never served unencrypted.
    plain = httpx.get(f"http://{n.GATEWAY}/webhooks/gong", headers={"Host": HOST}, timeout=10)
    assert plain.status_code == 404, plain.text
    table = f"SOPHIA_AI.{env['settings'].snowflake_schema}.GONG_WEBHOOK_EVENTS"
    wait_for(lambda: env["query"](f"SELECT COUNT(*) FROM {table}")[0][0] >= len(ids), 90, what="rows in Snowflake")
    assert_exactly_once(env["query"], env["settings"], set(ids))
