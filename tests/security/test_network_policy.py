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


def test_default_policy_admits_only_the_ingress_controller_and_monitoring_on_the_app_port():
    p = _policy()
    assert p["policyTypes"] == ["Ingress", "Egress"]  # both directions default-deny outside the rules
    assert p["podSelector"] == {"matchLabels": ch.selector_labels(OWNER)}
    (rule,) = p["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": contract.CONTAINER_PORT}]
    # Namespaces are matched by kubernetes.io/metadata.name, which the API server sets and nobody can forge
    # by labelling their own namespace.
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": n}}}
                            for n in ("ingress-nginx", "monitoring")]


def test_egress_is_dns_redis_and_https_only():
    ports = sorted((p["protocol"], p["port"]) for rule in _policy()["egress"] for p in rule["ports"])
    assert ports == [("TCP", 53), ("TCP", 443), ("TCP", 6379), ("UDP", 53)]
    assert all(set(rule) == {"ports"} for rule in _policy()["egress"])


def test_switching_everything_off_denies_all():
    p = _policy(ingressNamespaces=[], monitoringNamespaces=[], allowDns=False, allowHttps=False)
    assert "ingress" not in p  # no rule: no ingress at all
    assert p["egress"] == [{"ports": [{"protocol": "TCP", "port": 6379}]}]
