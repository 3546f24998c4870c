"""Operator helpers for the cluster tests (the `gw_crd` and `operator` fixtures are in tests/conftest.py).

One operator process is shared by the whole session. It runs the real console script
(`gong-webhook-operator`) **as its own ServiceAccount**: the fixture applies config/rbac/, requests a
token for the ServiceAccount (TokenRequest API) and writes a kubeconfig with only that token and the
cluster's CA/server. A missing permission therefore fails the tests; the operator log is checked for
Forbidden errors at the end of the session. Secret writes are granted per namespace: the `namespace`
fixture binds the secrets-writer ClusterRole in namespaces of tests that use the operator.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests import secret_scan
from tests.operator.conftest import EXAMPLE_PUBLIC_KEY

ROOT = Path(__file__).resolve().parents[2]
RESYNC_SECONDS = 10
FIXTURES = Path(__file__).parent / "fixtures"


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.5, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def kube_json(cluster: Any, *args: str) -> Any:
    proc = cluster.kubectl("get", *args, "-o", "json", "--show-managed-fields", check=False)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout)


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    if not obj:
        return None
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)


def apply_yaml(cluster: Any, namespace: str, docs: list[dict[str, Any]] | dict[str, Any]) -> None:
    items = docs if isinstance(docs, list) else [docs]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(items))


# The app refuses to start with a malformed public key or, in JWT mode, without the public URL; the
# operator checks that before it rolls pods (InvalidConfig), so the test objects carry valid ones.
PUBLIC_URL = "https://gong-hooks.example.com/webhooks/gong"


def source_secret(name: str = "gong-credentials", **overrides: str | None) -> dict[str, Any]:
    data: dict[str, str | None] = {
        "GONG_API_KEY": "key-1", "GONG_API_SECRET": "s3cr3t-value-1", "GONG_WEBHOOK_PUBLIC_KEYS": EXAMPLE_PUBLIC_KEY,
        "SNOWFLAKE_ACCOUNT": "acct-1", "SNOWFLAKE_USER": "user-1", "SNOWFLAKE_PASSWORD": "pw-value-1",
    }
    data.update(overrides)
    secret_scan.register_secret(data["GONG_API_SECRET"], data["SNOWFLAKE_PASSWORD"])
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque",
            "stringData": {k: v for k, v in data.items() if v is not None}}


def gongwebhook(name: str, **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"secrets": {"sourceRef": {"name": "gong-credentials"}}, "gong": {"publicUrl": PUBLIC_URL}}
    base.update(spec)
    return {"apiVersion": "gong.sophia-ai.com/v1alpha1", "kind": "GongWebhook", "metadata": {"name": name},
            "spec": base}


def wait_ready(cluster: Any, namespace: str, name: str, timeout: int = 60) -> None:
    proc = cluster.kubectl("wait", "--for=condition=Ready", f"--timeout={timeout}s", "-n", namespace,
                           f"gongwebhook/{name}", timeout=timeout + 15, check=False)
    if proc.returncode != 0:
        state = cluster.kubectl("get", "gw,deploy,rs,hpa,pods", "-n", namespace, "-o", "wide", check=False).stdout
        status = cluster.kubectl("get", "gw", name, "-n", namespace, "-o", "jsonpath={.status}", check=False).stdout
        raise AssertionError(f"gongwebhook/{name} not Ready within {timeout}s:\n{state}\n{status}")


def owner_uid(obj: dict[str, Any]) -> str | None:
    refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")]
    return refs[0]["uid"] if refs and refs[0]["kind"] == "GongWebhook" else None


def no_terminating_namespaces(cluster: Any) -> bool:
    out = cluster.kubectl("get", "ns", "-o", "jsonpath={.items[*].status.phase}").stdout
    return "Terminating" not in out
