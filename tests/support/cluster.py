"""The local control plane for the tests: the admin ``Cluster`` handle and the helpers of the cluster,
fault and security tests (the `cluster`, `gw_crd` and `operator` fixtures are in tests/conftest.py).

One operator process is shared by the whole session. It runs the real console script
(`gong-webhook-operator`) **as its own ServiceAccount**: the fixture applies config/rbac/, requests a
token for the ServiceAccount (TokenRequest API) and writes a kubeconfig with only that token and the
cluster's CA/server. A missing permission therefore fails the tests; the operator log is checked for
Forbidden errors at the end of the session. Secret writes are granted per namespace: the `namespace`
fixture binds the secrets-writer ClusterRole in namespaces of tests that use the operator.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests import secret_scan
from tests.support import waiting
from tests.support.specs import EXAMPLE_PUBLIC_KEY

ROOT = Path(__file__).resolve().parents[2]
DEVCLUSTER = ROOT / "scripts" / "devcluster"
RESYNC_SECONDS = 10
FIXTURES = ROOT / "tests" / "cluster" / "fixtures"
KUBE_POLL_SECONDS = 0.5


@dataclass
class Cluster:
    """Handle on the running local control plane (admin identity)."""

    kubeconfig: Path
    bin_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.bin_dir / "kubectl"), *args],
            env=self.env, input=input, capture_output=True, text=True, timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    def api_client(self) -> Any:
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=cfg)  # type: ignore[no-untyped-call]
        return client.ApiClient(cfg)

    def token_kubeconfig(self, token: str, path: Path) -> Path:
        """A kubeconfig that authenticates only with `token` (no admin client certificate)."""
        import yaml

        admin = yaml.safe_load(self.kubeconfig.read_text())
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": admin["clusters"],
            "users": [{"name": "token-user", "user": {"token": token}}],
            "contexts": [{"name": "token", "context": {"cluster": admin["clusters"][0]["name"], "user": "token-user"}}],
            "current-context": "token",
        }
        path.write_text(yaml.safe_dump(cfg))
        path.chmod(0o600)
        return path

    def as_kubeconfig(self, kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """kubectl with another identity's kubeconfig."""
        return self.kubectl(f"--kubeconfig={kubeconfig}", *args, check=check)

    def grant_operator_secret_writes(self, namespace: str) -> None:
        """What a platform team does for each namespace hosting GongWebhooks: bind the operator's
        secrets-writer ClusterRole there (config/rbac/namespaced/secrets_writer_role_binding.yaml)."""
        import yaml

        binding = yaml.safe_load((ROOT / "config" / "rbac" / "namespaced" / "secrets_writer_role_binding.yaml")
                                 .read_text())
        binding["metadata"]["namespace"] = namespace
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump(binding))

    def devcluster(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(DEVCLUSTER), *args], capture_output=True, text=True, check=True)


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = KUBE_POLL_SECONDS,
             what: str = "condition") -> Any:
    """:func:`tests.support.waiting.wait_for`, every 0.5 s by default: a probe here usually runs kubectl."""
    return waiting.wait_for(predicate, timeout, interval, what)


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
