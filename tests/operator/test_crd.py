"""The committed CRD is exactly what the generator produces from the pydantic model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gong_operator import crd
from gong_operator import spec as s
from webhook_app import contract

ROOT = Path(__file__).resolve().parents[2]


def test_committed_crd_files_equal_the_generated_one():
    generated = crd.render()
    for rel in crd.OUTPUTS:
        assert (ROOT / rel).read_text() == generated, f"{rel} is stale: run `python -m gong_operator.crd --write`"


def _walk(schema: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    out = [(path, schema)]
    for name, sub in schema.get("properties", {}).items():
        out += _walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict) and "properties" in schema["items"]:
        out += _walk(schema["items"], f"{path}[]")
    return out


def _root() -> dict[str, Any]:
    return crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_every_spec_and_status_field_has_a_description_and_a_type():
    root = _root()
    for top in ("spec", "status"):
        for path, node in _walk(root["properties"][top], top):
            assert node.get("description"), f"{path} has no description"
            assert node.get("type"), f"{path} has no type"


def test_schema_is_structural_no_refs_or_unions_left():
    text = yaml.safe_dump(_root())
    for forbidden in ("$ref", "anyOf", "allOf", "oneOf", "title:", "x-optional", "'null'"):
        assert forbidden not in text


def test_defaults_enums_minimums_and_cel_rules_are_present():
    spec = _root()["properties"]["spec"]["properties"]
    assert spec["autoscaling"]["properties"]["minReplicas"]["default"] == 3
    assert spec["autoscaling"]["properties"]["maxReplicas"]["minimum"] == 1
    assert spec["autoscaling"]["default"]["targetCpuUtilizationPercentage"] == 70
    assert spec["resources"]["default"] == {
        "requests": {"cpu": "250m", "memory": "512Mi", "ephemeralStorage": "128Mi"},
        "limits": {"cpu": "1", "memory": "2Gi", "ephemeralStorage": "1Gi"}, "tmpSizeLimit": "256Mi"}
    assert spec["gong"]["properties"]["authMode"]["enum"] == ["jwt", "urlKey"]
    assert spec["gong"]["properties"]["rateLimit"]["exclusiveMinimum"] is True
    assert spec["snowflake"]["properties"]["schema"]["default"] == "GONG_WEBHOOKS"
    assert "default" not in spec["replicas"], "replicas must stay unset so the autoscaling rule can tell"
    assert "secrets" in _root()["properties"]["spec"]["required"]
    rules = [r for _, node in _walk(_root()["properties"]["spec"], "spec")
             for r in node.get("x-kubernetes-validations", [])]
    assert len(rules) >= 9
    for r in rules:
        assert "spec." in r["message"], f"rule message does not name a field: {r['message']}"


def test_contract_names_drive_the_schema():
    spec = _root()["properties"]["spec"]["properties"]
    assert spec["secrets"]["properties"]["requiredKeys"]["items"]["enum"] == sorted(contract.SECRET_KEYS)
    rule = next(r["rule"] for r in _root()["properties"]["spec"]["x-kubernetes-validations"]
                if "extraConfig" in r["rule"])
    for key in s.EXTRA_CONFIG_KEYS:
        assert f"'{key}'" in rule
    assert contract.REDIS_URL not in s.EXTRA_CONFIG_KEYS


def test_names_columns_and_subresources():
    c = crd.build_crd()["spec"]
    assert c["group"] == "gong.sophia-ai.com" and c["scope"] == "Namespaced"
    assert c["names"]["shortNames"] == ["gw", "gongwh"] and c["names"]["categories"] == ["gong"]
    v = c["versions"][0]
    assert v["name"] == "v1alpha1"
    assert v["subresources"]["status"] == {}
    assert v["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"
    default_cols = [col["name"] for col in v["additionalPrinterColumns"] if not col.get("priority")]
    assert default_cols == ["Ready", "Replicas", "Endpoint", "Secrets", "Age"]


def test_status_schema_describes_everything_the_operator_writes():
    """Guards against Kopf's "Patching failed with inconsistencies": unknown status fields are pruned."""
    status_props = set(_root()["properties"]["status"]["properties"])
    written = {"observedGeneration", "conditions", "replicas", "readyReplicas", "updatedReplicas",
               "replicasSummary", "selector", "endpoint", "secrets", "secretHash", "suspended", "children"}
    assert written <= status_props
    cond = _root()["properties"]["status"]["properties"]["conditions"]
    assert cond["x-kubernetes-list-type"] == "map"
    assert set(cond["items"]["properties"]) == {"type", "status", "reason", "message", "lastTransitionTime",
                                                "observedGeneration"}
