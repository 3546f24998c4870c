from __future__ import annotations

import pytest

from gong_operator import status as st


def _dep(replicas=3, ready=3, updated=3, available=True, gen=2, observed=2, reason="NewReplicaSetAvailable"):
    return {"metadata": {"generation": gen}, "spec": {"replicas": replicas},
            "status": {"readyReplicas": ready, "updatedReplicas": updated, "observedGeneration": observed,
                       "conditions": [{"type": "Available", "status": "True" if available else "False"},
                                      {"type": "Progressing", "status": "True", "reason": reason}]}}


def _types(conds):
    return {c.type: c for c in conds}


def test_ready_only_when_available_updated_ready_and_at_minimum():
    ok = _types(st.workload_conditions(st.Rollout.from_deployment(_dep()), secrets_ok=True, suspended=False,
                                       error=None, minimum=3))
    assert ok["Ready"].status == "True" and ok["Progressing"].status == "False" and ok["Degraded"].status == "False"
    for dep in (_dep(ready=2), _dep(updated=2), _dep(available=False), _dep(observed=1)):
        c = _types(st.workload_conditions(st.Rollout.from_deployment(dep), secrets_ok=True, suspended=False,
                                          error=None, minimum=3))
        assert c["Ready"].status == "False" and c["Progressing"].status == "True"
    low = _types(st.workload_conditions(st.Rollout.from_deployment(_dep(replicas=1, ready=1, updated=1)),
                                        secrets_ok=True, suspended=False, error=None, minimum=3))
    assert low["Ready"].status == "False" and low["Ready"].reason == "ScalingUp"


def test_unknown_first_then_secrets_errors_and_suspend():
    first = _types(st.workload_conditions(st.Rollout.from_deployment(None), secrets_ok=True, suspended=False,
                                          error=None))
    assert first["Ready"].status == "Unknown"
    nosec = _types(st.workload_conditions(st.Rollout.from_deployment(_dep()), secrets_ok=False, suspended=False,
                                          error=None))
    assert nosec["Ready"].status == "False" and nosec["Degraded"].reason == "SecretsNotSynced"
    err = _types(st.workload_conditions(st.Rollout.from_deployment(_dep()), secrets_ok=True, suspended=False,
                                        error="API request failed: 500"))
    assert err["Ready"].reason == "ReconcileError" and err["Degraded"].status == "True"
    stuck = _types(st.workload_conditions(st.Rollout.from_deployment(_dep(reason="ProgressDeadlineExceeded",
                                                                          ready=1)),
                                          secrets_ok=True, suspended=False, error=None))
    assert stuck["Degraded"].reason == "ProgressDeadlineExceeded"
    sus = _types(st.workload_conditions(st.Rollout.from_deployment(_dep()), secrets_ok=True, suspended=True,
                                        error=None))
    assert sus["Ready"].reason == "Suspended" and sus["Ready"].status == "False"


def test_last_transition_time_moves_only_on_status_change():
    first = st.merge_conditions([], [st.Cond("Ready", "False", "RollingOut", "1/3")], generation=1, now="T1")
    assert first == [{"type": "Ready", "status": "False", "reason": "RollingOut", "message": "1/3",
                      "lastTransitionTime": "T1", "observedGeneration": 1}]
    same = st.merge_conditions(first, [st.Cond("Ready", "False", "RollingOut", "2/3")], generation=1, now="T2")
    assert same[0]["lastTransitionTime"] == "T1" and same[0]["message"] == "2/3"
    flipped = st.merge_conditions(same, [st.Cond("Ready", "True", "Available", "")], generation=2, now="T3")
    assert flipped[0]["lastTransitionTime"] == "T3" and flipped[0]["observedGeneration"] == 2


# ------------------------------------------------------------------ pods that fail (issue 11)

CONFIG_ERROR = "configuration error: GONG_WEBHOOK_AUTH_MODE: Input should be 'jwt' or 'url-key'"


def _pod(name="gong-abc", *, state=None, last=None, ready=False, container="webhook", phase="Running",
         deleting=False, init=None):
    cs = {"name": container, "ready": ready, "restartCount": 3 if last else 0, "state": state or {"running": {}}}
    if last:
        cs["lastState"] = last
    pod = {"metadata": {"name": name}, "status": {"phase": phase, "containerStatuses": [cs]}}
    if init is not None:
        pod["status"]["initContainerStatuses"] = [init]
    if deleting:
        pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return pod


def _waiting(reason, message=""):
    return {"waiting": {"reason": reason, **({"message": message} if message else {})}}


def _terminated(code, message="", reason="Error"):
    return {"terminated": {"exitCode": code, "reason": reason, **({"message": message} if message else {})}}


# FallbackToLogsOnError: the termination message is the tail of the log; the app's ConfigError is its last line.
LOG_TAIL = "Traceback? no: a warning first\n" + CONFIG_ERROR + "\n"

POD_FAILURE_CASES = [
    # (case, pods, expected summary or None)
    ("crash loop with the app's own message",
     [_pod(state=_waiting("CrashLoopBackOff", "back-off 10s restarting failed container=webhook"),
           last=_terminated(2, LOG_TAIL))],
     f"pod gong-abc container webhook: CrashLoopBackOff, last exit 2: {CONFIG_ERROR}"),
    ("exited just now, not yet restarted",
     [_pod(state=_terminated(2, CONFIG_ERROR))],
     f"pod gong-abc container webhook: Error, exit 2: {CONFIG_ERROR}"),
    ("restarted after a crash, running but not ready",
     [_pod(state={"running": {}}, last=_terminated(2, CONFIG_ERROR))],
     f"pod gong-abc container webhook: Error, last exit 2: {CONFIG_ERROR}"),
    ("killed for memory: the reason is named",
     [_pod(state=_waiting("CrashLoopBackOff"), last=_terminated(137, reason="OOMKilled"))],
     "pod gong-abc container webhook: CrashLoopBackOff, last exit 137 (OOMKilled)"),
    ("a ConfigMap in envFrom is missing",
     [_pod(state=_waiting("CreateContainerConfigError", 'configmap "gong-extra" not found'), phase="Pending")],
     'pod gong-abc container webhook: CreateContainerConfigError: configmap "gong-extra" not found'),
    ("the image cannot be pulled",
     [_pod(state=_waiting("ImagePullBackOff", 'Back-off pulling image "example/none:1"'), phase="Pending")],
     'pod gong-abc container webhook: ImagePullBackOff: Back-off pulling image "example/none:1"'),
    ("the first pull failed",
     [_pod(state=_waiting("ErrImagePull", "not found"), phase="Pending")],
     "pod gong-abc container webhook: ErrImagePull: not found"),
    ("pull policy Never and the image is not on the node",
     [_pod(state=_waiting("ErrImageNeverPull", 'Container image "x:1" is not present'), phase="Pending")],
     'pod gong-abc container webhook: ErrImageNeverPull: Container image "x:1" is not present'),
    ("an init container counts too",
     [_pod(state=_waiting("PodInitializing"), phase="Pending",
           init={"name": "init", "ready": False, "state": _waiting("CrashLoopBackOff"),
                 "lastState": _terminated(1, "boom")})],
     "pod gong-abc container init: CrashLoopBackOff, last exit 1: boom"),
    ("the first failing pod by name, whatever the list order",
     [_pod("gong-b", state=_waiting("CrashLoopBackOff"), last=_terminated(2, CONFIG_ERROR)),
      _pod("gong-a", state=_waiting("ImagePullBackOff"), phase="Pending")],
     "pod gong-a container webhook: ImagePullBackOff"),
    # Not failures:
    ("starting up", [_pod(state=_waiting("ContainerCreating"), phase="Pending")], None),
    ("scheduled, no container status yet", [{"metadata": {"name": "p"}, "status": {"phase": "Pending"}}], None),
    ("running and ready", [_pod(ready=True)], None),
    ("an old crash of a container that is ready now", [_pod(ready=True, last=_terminated(137, reason="OOMKilled"))],
     None),
    ("a clean exit is no failure", [_pod(state={"running": {}}, last=_terminated(0, reason="Completed"))], None),
    ("a terminating pod is not current",
     [_pod(state=_waiting("CrashLoopBackOff"), last=_terminated(2, CONFIG_ERROR), deleting=True)], None),
    ("an evicted pod is not current",
     [_pod(state=_terminated(137, reason="Error"), phase="Failed")], None),
    ("no pods", [], None),
]


@pytest.mark.parametrize(("pods", "expected"), [c[1:] for c in POD_FAILURE_CASES],
                         ids=[c[0] for c in POD_FAILURE_CASES])
def test_pod_failure_summary(pods, expected):
    assert st.pod_failure(pods) == expected


def test_pod_failure_message_is_trimmed_to_its_last_line_and_a_limit():
    long_line = "configuration error: X: " + "y" * 1000
    last = _terminated(2, "first\n" + long_line + "\n\n")
    got = st.pod_failure([_pod(state=_waiting("CrashLoopBackOff"), last=last)])
    assert got is not None and len(got) <= st.POD_MESSAGE_LIMIT
    assert got.startswith("pod gong-abc container webhook: CrashLoopBackOff, last exit 2: configuration error: X: yyy")
    assert got.endswith("…") and "first" not in got


def test_pod_failure_never_repeats_a_credential_value():
    # The app's ConfigError names settings only; an unexpected crash's log line could still carry a
    # value, so the values the operator synced are blanked out before anything is reported.
    line = "ValueError: invalid literal for int() with base 10: 'pw-value-Zq9'"
    got = st.pod_failure([_pod(state=_waiting("CrashLoopBackOff"), last=_terminated(1, line))],
                         redact=["pw-value-Zq9", "", "ab"])
    assert got is not None and "pw-value-Zq9" not in got
    assert got.endswith("base 10: '***'")


def test_failing_pods_make_ready_false_and_degraded_true():
    summary = f"pod gong-abc container webhook: CrashLoopBackOff, last exit 2: {CONFIG_ERROR}"
    rollout = st.Rollout.from_deployment(_dep(replicas=1, ready=0, updated=1, available=False))
    c = _types(st.workload_conditions(rollout, secrets_ok=True, suspended=False, error=None, minimum=1,
                                      pods_failing=summary))
    assert (c["Ready"].status, c["Ready"].reason) == ("False", st.PODS_FAILING)
    assert c["Ready"].message == f"0/1 ready, 1 updated; {summary}"
    assert (c["Degraded"].status, c["Degraded"].reason, c["Degraded"].message) == ("True", st.PODS_FAILING, summary)
    assert c["Progressing"].status == "True"
    # More specific than a stuck rollout, which is what a crash loop turns into after the deadline.
    stuck = st.Rollout.from_deployment(_dep(replicas=1, ready=0, reason="ProgressDeadlineExceeded"))
    c = _types(st.workload_conditions(stuck, secrets_ok=True, suspended=False, error=None, pods_failing=summary))
    assert c["Degraded"].reason == st.PODS_FAILING
    # A reconcile error and missing credentials still come first.
    c = _types(st.workload_conditions(rollout, secrets_ok=True, suspended=False, error="API request failed: 500",
                                      pods_failing=summary))
    assert c["Degraded"].reason == "ReconcileError" and c["Ready"].reason == "ReconcileError"
    c = _types(st.workload_conditions(rollout, secrets_ok=False, suspended=False, error=None, pods_failing=summary))
    assert c["Degraded"].reason == "SecretsNotSynced"
    # A complete rollout is Ready whatever a summary says (the operator does not even list pods then).
    done = st.Rollout.from_deployment(_dep(replicas=1, ready=1, updated=1))
    c = _types(st.workload_conditions(done, secrets_ok=True, suspended=False, error=None, pods_failing=summary))
    assert c["Ready"].status == "True" and c["Degraded"].status == "False"


def test_pods_are_listed_only_while_the_rollout_is_short_of_ready():
    assert not st.Rollout.from_deployment(_dep()).needs_pod_check
    assert st.Rollout.from_deployment(_dep(ready=2)).needs_pod_check
    assert st.Rollout.from_deployment(_dep(updated=2, ready=3)).needs_pod_check
    assert not st.Rollout.from_deployment(None).needs_pod_check
    assert not st.Rollout.from_deployment(_dep(replicas=0, ready=0, updated=0)).needs_pod_check
    unobserved = {"metadata": {"generation": 1}, "spec": {"replicas": 3}, "status": {}}
    assert not st.Rollout.from_deployment(unobserved).needs_pod_check  # the controller made no pods yet
