"""Generate the GongWebhook CustomResourceDefinition from the pydantic models.

    python -m gong_operator.crd > crds/gongwebhooks.yaml
    python -m gong_operator.crd --write     # crds/gongwebhooks.yaml and config/crd/bases/gongwebhooks.yaml
    python -m gong_operator.reference_docs --write   # the same two files and the reference docs

Pydantic emits JSON Schema 2020-12; Kubernetes wants a *structural* OpenAPI v3.0 subset. The
conversion inlines ``$ref``s, turns ``Optional[X]`` into an optional ``X``, maps
``exclusiveMinimum: n`` to ``minimum: n`` + ``exclusiveMinimum: true``, drops titles, and gives
nested objects ``default: {}`` so the API server fills their own defaults recursively.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from gong_operator.spec import (
    CATEGORIES,
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    GongWebhookSpec,
    GongWebhookStatus,
    _Model,
)

_DROP = {"title", "$defs"}


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        name = node["$ref"].split("/")[-1]
        merged: dict[str, Any] = copy.deepcopy(defs[name])
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        merged.update(siblings)
        return merged
    return node


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = _resolve(node, defs)
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"unsupported union: {node}")
        outer = {k: v for k, v in node.items() if k not in ("anyOf", "default")}
        if node.get("default") is not None:
            outer["default"] = node["default"]
        inner = _resolve(branches[0], defs)
        node = {**inner, **outer, "x-optional": True}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out["properties"] = {name: _convert(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out["items"] = _convert(value, defs)
        elif key == "additionalProperties" and isinstance(value, dict):
            out["additionalProperties"] = _convert(value, defs)
        elif key == "exclusiveMinimum":
            out["minimum"] = value
            out["exclusiveMinimum"] = True
        elif key == "exclusiveMaximum":
            out["maximum"] = value
            out["exclusiveMaximum"] = True
        elif key == "propertyNames":
            continue  # not supported by apiextensions; key length is enforced by maxProperties + CEL cost
        else:
            out[key] = value
    if out.get("type") == "array" and "items" in out and isinstance(out.get("default"), list) and \
            out["items"].get("type") == "object":
        out["default"] = []
    return out


def _merge_item_extras(schema: dict[str, Any]) -> None:
    """Pydantic puts ``json_schema_extra['items']`` *over* the generated items; merge instead."""
    for sub in schema.get("properties", {}).values():
        _merge_item_extras(sub)
    if "items" in schema and isinstance(schema["items"], dict):
        _merge_item_extras(schema["items"])


def openapi_schema(model: type[_Model]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="serialization")
    defs = raw.get("$defs", {})
    converted = _convert(raw, defs)
    _fix_required(converted)
    return converted


def _full_default(schema: dict[str, Any]) -> dict[str, Any]:
    """The default of an object, spelled out: the API server validates defaults before nested defaulting."""
    out: dict[str, Any] = {}
    for name, sub in schema.get("properties", {}).items():
        if "default" in sub:
            out[name] = copy.deepcopy(sub["default"])
    return out


def _is_source_choice(schema: dict[str, Any]) -> bool:
    # `secrets` must name a source (sourceRef or pulumiEsc); a default would only fail its CEL rule.
    return any("exactly one of" in r.get("message", "") for r in schema.get("x-kubernetes-validations", []))


def _fix_required(schema: dict[str, Any]) -> None:
    """Fields with a default are not required in the CRD (the API server defaults them).

    A non-optional nested object whose own fields all have defaults gets ``default: {}``: the API server
    then creates it and fills its fields' defaults recursively (e.g. ``spec.autoscaling.minReplicas``).
    """
    props = schema.get("properties", {})
    for sub in props.values():
        _fix_required(sub)
        optional = sub.pop("x-optional", False)
        if sub.get("type") == "object" and "properties" in sub and not optional:
            if not sub.get("required") and not _is_source_choice(sub):
                sub["default"] = _full_default(sub)
            else:
                sub.pop("default", None)
    if "required" in schema:
        req = [r for r in schema["required"] if "default" not in props.get(r, {})]
        if req:
            schema["required"] = req
        else:
            del schema["required"]
    if isinstance(schema.get("items"), dict):
        _fix_required(schema["items"])
    if isinstance(schema.get("additionalProperties"), dict):
        _fix_required(schema["additionalProperties"])


def _ensure_item_defaults(spec_schema: dict[str, Any]) -> None:
    # String items inherit no 'type' from json_schema_extra overrides; pydantic keeps it, but be explicit.
    for sub in spec_schema.get("properties", {}).values():
        if sub.get("type") == "array" and "items" in sub and "type" not in sub["items"]:
            sub["items"]["type"] = "string"
        _ensure_item_defaults(sub)


def _status_schema() -> dict[str, Any]:
    status = openapi_schema(GongWebhookStatus)
    status["description"] = "Observed state, written by the operator."
    # Conditions are written in full; every field of metav1.Condition is required there.
    cond = status["properties"]["conditions"]["items"]
    cond["required"] = ["type", "status", "reason", "lastTransitionTime"]
    return status


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
     "description": "Whether the Deployment is available with all replicas updated and ready."},
    {"name": "Replicas", "type": "string", "jsonPath": ".status.replicasSummary",
     "description": "Ready/desired replicas."},
    {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpoint",
     "description": "The URL Gong must send webhooks to."},
    {"name": "Secrets", "type": "string", "jsonPath": ".status.secrets",
     "description": "Synced, or why the credentials are not synced."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Reason", "type": "string", "priority": 1,
     "jsonPath": '.status.conditions[?(@.type=="Ready")].reason', "description": "Reason of the Ready condition."},
    {"name": "Image", "type": "string", "priority": 1, "jsonPath": ".spec.image", "description": "App image."},
    {"name": "Autoscaling", "type": "boolean", "priority": 1, "jsonPath": ".spec.autoscaling.enabled",
     "description": "Whether an HPA manages the replicas."},
    {"name": "Suspended", "type": "boolean", "priority": 1, "jsonPath": ".spec.suspend",
     "description": "Whether reconciliation is suspended."},
    {"name": "Hash", "type": "string", "priority": 1, "jsonPath": ".status.secretHash",
     "description": "Hash of the synced credentials and config."},
]


def build_crd() -> dict[str, Any]:
    spec_schema = openapi_schema(GongWebhookSpec)
    _ensure_item_defaults(spec_schema)
    spec_schema["description"] = "Desired state of a Gong webhook ingest service."
    root = {
        "type": "object",
        "description": "A Gong webhook ingest service: Deployment, Service, Ingress, HPA, NetworkPolicy, PDB, "
        "ServiceMonitor, config and synced credentials.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "API version of the object."},
            "kind": {"type": "string", "description": "Kind of the object."},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": _status_schema(),
        },
        "x-kubernetes-validations": [
            {"rule": "size(self.metadata.name) <= 47",
             "message": "metadata.name must be at most 47 characters (children get suffixes such as -credentials)"},
        ],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": list(CATEGORIES),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": root},
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                }
            ],
        },
    }


def render() -> str:
    header = "# Generated by `python -m gong_operator.crd` from gong_operator/spec.py. Do not edit by hand.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=120)


OUTPUTS = ("crds/gongwebhooks.yaml", "config/crd/bases/gongwebhooks.yaml")


def write() -> None:
    """Write the CRD to both places it is installed from."""
    root = Path(__file__).resolve().parents[2]  # operator/gong_operator/crd.py -> repo root
    for rel in OUTPUTS:
        (root / rel).write_text(render())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--write"]:
        write()
        # The CRD reference is generated from the same schema, by the module that documents it (which
        # imports this one, so this one does not import it back).
        sys.stderr.write("wrote the CRD; `python -m gong_operator.reference_docs --write` refreshes it and "
                         "docs/crd-reference.md together\n")
        return 0
    if args:
        sys.stderr.write("usage: python -m gong_operator.crd [--write]\n")
        return 2
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
