"""Issue 11 on the real node: a GongWebhook whose pods the app refuses to start says why in its status.

The operator checks the config it renders before rolling pods (InvalidConfig), but not keys from
``spec.pod.envFromConfigMaps``: those ConfigMaps come after its own in the container's envFrom, so a
user's key overrides the operator's. A ConfigMap setting ``GONG_WEBHOOK_AUTH_MODE=bogus`` makes the
real app exit 2 at start ("configuration error: ..."), the kubelet crash-loops the container and, with
terminationMessagePolicy FallbackToLogsOnError, keeps the app's last log line as the termination
message. The GongWebhook must report that line, not just 0/1, and recover once the key is removed.
"""

from __future__ import annotations

import json
import time
from typing import Any

from tests.support import node as n
from tests.support.cluster import condition, wait_for
from tests.support.gong import new_private_key, public_key_pem
from tests.support.node import sample_cr, source_secret

OVERRIDES = "gong-overrides"
APP_MESSAGE = "configuration error: GONG_WEBHOOK_AUTH_MODE:"


def _cr() -> dict[str, Any]:
    """The sample (as tests/node/test_ingest.py runs it) at one pod, with the user's ConfigMap in envFrom."""
    cr = sample_cr("GW_REFUSED")
    spec = cr["spec"]
    spec["autoscaling"] = {"enabled": False}
    spec["replicas"] = 1
    spec["disruptionBudget"] = {"enabled": False}
    spec["pod"] = {"envFromConfigMaps": [OVERRIDES]}
    return cr


def _events(cluster: Any, ns: str, reason: str) -> list[dict[str, Any]]:
    got = n.get_json(cluster, "events", "-n", ns, "--field-selector",
                     f"involvedObject.kind=GongWebhook,involvedObject.name=gong,reason={reason}")
    return list((got or {}).get("items") or [])


def test_a_config_the_app_refuses_shows_its_message_in_status_and_a_fix_recovers(
        cluster: Any, node_operator: None, node_namespace: str) -> None:
    ns = node_namespace
    overrides = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": OVERRIDES},
                 "data": {"GONG_WEBHOOK_AUTH_MODE": "bogus"}}
    started = time.monotonic()
    n.apply(cluster, ns, [source_secret(public_key_pem(new_private_key()), "pw-refused-4Tz"), overrides, _cr()])

    def failing() -> dict[str, Any] | None:
        gw = n.get_json(cluster, "gongwebhook", "gong", "-n", ns)
        degraded = condition(gw, "Degraded")
        return gw if degraded and degraded["reason"] == "PodsFailing" else None

    try:
        gw = wait_for(failing, 120, interval=2, what="Degraded=True reason PodsFailing")
    except AssertionError as e:
        gw = n.get_json(cluster, "gongwebhook", "gong", "-n", ns)
        raise AssertionError(f"{e}\nstatus: {json.dumps((gw or {}).get('status'), indent=1)}\n"
                             f"{n.describe(cluster, ns)}") from None
    shown_after = time.monotonic() - started
    degraded, ready = condition(gw, "Degraded"), condition(gw, "Ready")
    print(f"PodsFailing after {shown_after:.0f} s: {degraded['message']}")
    assert degraded["status"] == "True", degraded
    # The container's own words: which pod and container, how it ended, and the app's ConfigError line.
    assert degraded["message"].startswith("pod gong-"), degraded
    assert " container webhook: " in degraded["message"], degraded
    assert "exit 2" in degraded["message"] and APP_MESSAGE in degraded["message"], degraded
    assert len(degraded["message"]) <= 300, degraded
    assert (ready["status"], ready["reason"]) == ("False", "PodsFailing"), ready
    assert ready["message"].startswith("0/1 ready") and APP_MESSAGE in ready["message"], ready
    (pod,) = [p for p in n.pods(cluster, ns, "app.kubernetes.io/instance=gong")
              if not p["metadata"].get("deletionTimestamp")]
    assert pod["metadata"]["name"] in degraded["message"]
    assert pod["spec"]["nodeName"] == n.REAL_NODE

    # The fix: the bad key goes. The kubelet reads the ConfigMap again at the container's next start
    # (after its crash-loop back-off), the pod turns ready and the Deployment's status change brings
    # the operator back.
    cluster.kubectl("patch", "configmap", OVERRIDES, "-n", ns, "--type=json",
                    "-p", '[{"op": "remove", "path": "/data/GONG_WEBHOOK_AUTH_MODE"}]')
    fixed = time.monotonic()
    proc = cluster.kubectl("wait", "--for=condition=Ready", "--timeout=240s", "-n", ns, "gongwebhook/gong",
                           check=False, timeout=260)
    gw = n.get_json(cluster, "gongwebhook", "gong", "-n", ns)
    assert proc.returncode == 0, f"not Ready after the fix: {gw and gw.get('status')}\n{n.describe(cluster, ns)}"
    print(f"Ready again {time.monotonic() - fixed:.0f} s after the fix")
    assert (condition(gw, "Degraded")["status"], condition(gw, "Degraded")["reason"]) == ("False", "AsExpected")
    assert gw["status"]["replicasSummary"] == "1/1"
    # One Warning Event for the transition, however many reconciles saw the crash loop.
    warnings = _events(cluster, ns, "PodsFailing")
    assert len(warnings) == 1 and warnings[0]["type"] == "Warning", warnings
    assert APP_MESSAGE in warnings[0]["message"], warnings
