from __future__ import annotations

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
