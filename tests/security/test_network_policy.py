"""The NetworkPolicy the operator renders: default-deny in both directions, then only what the app needs.

kwok nodes run no CNI, so the policy cannot be exercised with packets on the local control plane; this
checks the rendered object (the same builder the operator applies) against the intended rules.
"""

from __future__ import annotations

from typing import Any

from gong_operator import children as ch
from gong_operator import spec as s
from webhook_app import contract

OWNER = ch.Owner(name="gw", namespace="team", uid="00000000-0000-0000-0000-000000000002")


def _policy(**network_policy: Any) -> dict[str, Any]:
    spec = s.GongWebhookSpec.model_validate({"secrets": {"sourceRef": {"name": "src"}},
                                             "networkPolicy": network_policy})
    out: dict[str, Any] = ch.network_policy(spec, OWNER)["spec"]
    return out


def test_ingress_namespaces_reach_the_webhook_port_and_monitoring_only_the_metrics_port():
    # Issue 10 #6: both peer lists used to share one rule on the one app port, so the ingress controller
    # could scrape metrics and monitoring could post webhooks; the split restricted nothing.
    p = _policy()
    assert p["policyTypes"] == ["Ingress", "Egress"]  # both directions default-deny outside the rules
    assert p["podSelector"] == {"matchLabels": ch.selector_labels(OWNER)}
    webhook, scrape = p["ingress"]
    # Namespaces are matched by kubernetes.io/metadata.name, which the API server sets and nobody can forge
    # by labelling their own namespace.
    def peer(name: str) -> dict[str, Any]:
        return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}

    assert webhook == {"from": [peer("ingress-nginx")], "ports": [{"protocol": "TCP", "port": contract.CONTAINER_PORT}]}
    assert scrape == {"from": [peer("monitoring")],
                      "ports": [{"protocol": "TCP", "port": contract.METRICS_CONTAINER_PORT}]}
    assert contract.METRICS_CONTAINER_PORT != contract.CONTAINER_PORT


def test_the_metrics_port_is_where_the_app_and_the_servicemonitor_look():
    spec = s.GongWebhookSpec.model_validate({"secrets": {"sourceRef": {"name": "src"}}})
    assert ch.config_data(spec)[contract.METRICS_PORT] == str(contract.METRICS_CONTAINER_PORT)
    container = ch.deployment(spec, OWNER, content_hash="h")["spec"]["template"]["spec"]["containers"][0]
    assert {"name": ch.METRICS_PORT_NAME, "containerPort": contract.METRICS_CONTAINER_PORT,
            "protocol": "TCP"} in container["ports"]
    svc_ports = {p["name"]: p for p in ch.service(spec, OWNER)["spec"]["ports"]}
    assert svc_ports[ch.METRICS_PORT_NAME]["targetPort"] == ch.METRICS_PORT_NAME
    (endpoint,) = ch.service_monitor(spec, OWNER)["spec"]["endpoints"]
    assert endpoint["port"] == ch.METRICS_PORT_NAME


def test_only_one_list_set_opens_only_that_port():
    (rule,) = _policy(monitoringNamespaces=[])["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": contract.CONTAINER_PORT}]
    (rule,) = _policy(ingressNamespaces=[])["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": contract.METRICS_CONTAINER_PORT}]


def test_egress_is_dns_redis_and_https_only():
    ports = sorted((p["protocol"], p["port"]) for rule in _policy()["egress"] for p in rule["ports"])
    assert ports == [("TCP", 53), ("TCP", 443), ("TCP", 6379), ("UDP", 53)]
    assert all(set(rule) == {"ports"} for rule in _policy()["egress"])


def test_switching_everything_off_denies_all():
    p = _policy(ingressNamespaces=[], monitoringNamespaces=[], allowDns=False, allowHttps=False)
    assert "ingress" not in p  # no rule: no ingress at all
    assert p["egress"] == [{"ports": [{"protocol": "TCP", "port": 6379}]}]


def test_the_app_serves_metrics_alone_on_the_metrics_port(make_settings: Any, start_app: Any) -> None:
    """The app side of the split: METRICS_PORT is a second listener with /metrics and nothing else, so
    the port the monitoring namespaces may reach cannot take webhooks or reveal health details."""
    import httpx

    from tests.support.net import free_port

    port = free_port()
    app = start_app(make_settings(METRICS_PORT=str(port), HOST="127.0.0.1"), run_loader=False)
    assert app.client.get(contract.READY_PATH).status_code in (200, 503)  # the app has started
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as scraper:
        page = scraper.get(contract.METRICS_PATH)
        assert page.status_code == 200 and "gong_webhook_http_requests_total" in page.text
        assert page.headers["content-type"].startswith("text/plain")
        for path in (contract.WEBHOOK_PATH, contract.HEALTH_PATH, contract.READY_PATH, "/"):
            assert scraper.get(path).status_code == 404, path
        assert scraper.post(contract.WEBHOOK_PATH, content=b"{}").status_code == 404
    # /metrics stays on the main port as well (METRICS_PORT=0 is the app's default).
    assert app.client.get(contract.METRICS_PATH).status_code == 200
