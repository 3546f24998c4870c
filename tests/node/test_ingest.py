"""Real pods end to end: signed webhooks through the Service's ClusterIP land in Snowflake exactly
once, and a credentials rotation rolls the pods under load without a dropped or failed request."""

from __future__ import annotations

import base64
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.support import node as n
from tests.support.cluster import wait_for
from tests.support.gong import GongSigner, call_payload, new_private_key, public_key_pem
from tests.support.load import WebhookLoad, assert_exactly_once
from tests.support.servers import FakesnowServer

# The sample's Ingress host with TLS: the URL Gong signs, rendered into the app's config by the operator.
PUBLIC_URL = "https://gong-webhooks.example.com/webhooks/gong"


class FreshConnectionLoad(WebhookLoad):
    """Each webhook on a new TCP connection, as a sender that keeps none open: what reaches a pod is
    then decided per request by the Service's current endpoints."""

    def post(self, client: httpx.Client, call_id: str) -> tuple[str, int | None]:
        with httpx.Client(base_url=self.base_url, timeout=10) as fresh:
            return super().post(fresh, call_id)


@pytest.fixture
def ingest(cluster: Any, node_operator: None, node_namespace: str, node_fakesnow: FakesnowServer) -> dict[str, Any]:
    ns = node_namespace
    schema = f"GW_{uuid.uuid4().hex[:8].upper()}"
    settings = n.migrate_schema(node_fakesnow, schema)
    key = new_private_key()
    n.apply(cluster, ns, [n.source_secret(public_key_pem(key), "pw-one-8Ks"), n.sample_cr(schema)])
    proc = cluster.kubectl("wait", "--for=condition=Ready", "--timeout=240s", "-n", ns, "gongwebhook/gong",
                           check=False, timeout=260)
    assert proc.returncode == 0, n.describe(cluster, ns)
    svc = n.get_json(cluster, "service", "gong", "-n", ns)
    port = next(p["port"] for p in svc["spec"]["ports"] if p["name"] == "http")
    return {"ns": ns, "settings": settings, "key": key, "base_url": f"http://{svc['spec']['clusterIP']}:{port}",
            "query": n.sf_query(node_fakesnow)}


def test_signed_webhooks_to_the_cluster_ip_land_once(ingest: dict[str, Any]) -> None:
    signer = GongSigner(ingest["key"], PUBLIC_URL)
    forger = GongSigner(new_private_key(), PUBLIC_URL)
    ids = {f"node-{i:05d}" for i in range(30)}
    with httpx.Client(base_url=ingest["base_url"], timeout=10) as client:
        answers = Counter(client.post("/webhooks/gong", content=b, headers=h).status_code
                          for b, h in (signer.signed(call_payload(i)) for i in sorted(ids)))
        forged_body, forged_headers = forger.signed(call_payload("node-forged"))
        forged = client.post("/webhooks/gong", content=forged_body, headers=forged_headers)
        body, headers = signer.signed(call_payload("node-00000"))
        again = client.post("/webhooks/gong", content=body, headers=headers)
    assert answers == Counter({202: 30}), answers
    assert forged.status_code == 401 and forged.json()["reason"] == "bad_signature", forged.text
    assert again.status_code == 200, again.text
    query = ingest["query"]
    table = f"SOPHIA_AI.{ingest['settings'].snowflake_schema}.GONG_WEBHOOK_EVENTS"
    wait_for(lambda: query(f"SELECT COUNT(*) FROM {table}")[0][0] >= 30, 90, what="30 rows in Snowflake")
    assert_exactly_once(query, ingest["settings"], ids)


def test_credentials_rotation_rolls_pods_under_load(cluster: Any, ingest: dict[str, Any]) -> None:
    """The platform team rotates a credential in the source Secret while Gong keeps sending: the
    operator re-syncs and rolls the pods one at a time (maxUnavailable 0, PDB); every webhook gets a
    2xx or a 503 with Retry-After (which Gong retries), none a connection error, and every accepted
    one lands once."""
    ns, signer = ingest["ns"], GongSigner(ingest["key"], PUBLIC_URL)
    before = {p["metadata"]["name"] for p in n.pods(cluster, ns, "app.kubernetes.io/instance=gong")}
    dep = n.get_json(cluster, "deployment", "gong", "-n", ns)
    old_hash = dep["spec"]["template"]["metadata"]["annotations"]["gong.sophia-ai.com/config-hash"]
    with FreshConnectionLoad(ingest["base_url"], signer, "rot-", threads=4, rate=40) as load:
        load.wait_accepted(40, 30)
        n.apply(cluster, ns, [n.source_secret(public_key_pem(ingest["key"]), "pw-two-Q7m")])

        def rolled() -> bool:
            d = n.get_json(cluster, "deployment", "gong", "-n", ns)
            current = d["spec"]["template"]["metadata"]["annotations"]["gong.sophia-ai.com/config-hash"]
            names = {p["metadata"]["name"] for p in n.pods(cluster, ns, "app.kubernetes.io/instance=gong")}
            st = d.get("status") or {}
            return (current != old_hash and not names & before and st.get("updatedReplicas") == 3
                    and st.get("readyReplicas") == 3 and st.get("replicas") == 3)

        wait_for(rolled, 300, what="the rollout to replace every pod")
        time.sleep(3)
    statuses = dict(load.statuses)
    accepted = set(load.accepted)
    print(f"rotation: sent {len(load.sent)}, accepted {len(accepted)}, statuses {statuses}")
    bad = {k: v for k, v in statuses.items() if k not in ("202", "200", "503")}
    assert not bad, f"requests without an HTTP answer or with another status during the rollout: {statuses}"
    assert statuses.get("503", 0) == load.retry_after_seen, "a 503 without Retry-After"
    query = ingest["query"]
    table = f"SOPHIA_AI.{ingest['settings'].snowflake_schema}.GONG_WEBHOOK_EVENTS"
    wait_for(lambda: query(f"SELECT COUNT(*) FROM {table}")[0][0] >= len(accepted), 120,
             what="accepted rows")
    assert_exactly_once(query, ingest["settings"], accepted)
    # The new pods run the rotated credentials (their Secret's hash moved); nothing was restarted.
    for pod in n.pods(cluster, ns, "app.kubernetes.io/instance=gong"):
        assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    secret = n.get_json(cluster, "secret", "gong-credentials", "-n", ns)
    assert base64.b64decode(secret["data"]["SNOWFLAKE_PASSWORD"]) == b"pw-two-Q7m"
