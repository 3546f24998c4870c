"""Reads per reconcile. The operator benchmark counted 12 GETs per idle resync reconcile; two were
the same ServiceMonitor discovery question, and an autoscaled GongWebhook read its Deployment twice.
Discovery is now asked once per reconcile and Kube keeps the answer for DISCOVERY_TTL_SECONDS (a CRD
installed later is still noticed after the TTL); the unsuspend check uses the Deployment the
reconcile already has."""

from __future__ import annotations

from typing import Any

from gong_operator import kube as k
from tests.support.fake_kube import SPEC, FakeKube, fake_reconciler


class CountingFakeKube(FakeKube):
    def __init__(self) -> None:
        super().__init__()
        self.served_calls = 0
        self.gets: list[str] = []

    def get(self, kind: k.Kind, ns: str, name: str) -> dict[str, Any] | None:
        self.gets.append(f"{kind.kind}/{name}")
        return super().get(kind, ns, name)

    def served(self, kind: k.Kind) -> bool:
        self.served_calls += 1
        return super().served(kind)


def _counting(spec: dict[str, Any] | None = None) -> tuple[CountingFakeKube, Any]:
    plain, rec = fake_reconciler(spec)
    kube = CountingFakeKube()
    kube.objects = plain.objects
    rec.kube = kube
    rec.events.kube = kube
    return kube, rec


def test_one_discovery_question_per_reconcile_whatever_the_servicemonitor_setting():
    for enabled in (True, False):
        kube, rec = _counting({**SPEC, "monitoring": {"serviceMonitor": {"enabled": enabled}}})
        rec.reconcile("team", "gw")
        kube.served_calls, kube.gets = 0, []
        kube.writes.clear()
        rec.reconcile("team", "gw")  # steady state: nothing to write
        assert kube.writes == []
        assert kube.served_calls == 1, f"serviceMonitor.enabled={enabled}"
        # The GongWebhook, the source Secret, each of the seven children once, the switched-off
        # Ingress; no ServiceMonitor read while its API is not served.
        assert sorted(kube.gets) == sorted([
            "GongWebhook/gw", "Secret/src", "ConfigMap/gw-config", "Secret/gw-credentials", "Deployment/gw",
            "Service/gw", "HorizontalPodAutoscaler/gw", "NetworkPolicy/gw", "PodDisruptionBudget/gw",
            "Ingress/gw"]), kube.gets


def test_switched_off_servicemonitor_is_still_deleted_when_its_api_is_served():
    kube, rec = _counting()
    kube.sm_served = True
    rec.reconcile("team", "gw")
    assert ("ServiceMonitor", "team", "gw") in kube.objects
    kube.objects[("GongWebhook", "team", "gw")]["spec"]["monitoring"] = {"serviceMonitor": {"enabled": False}}
    kube.served_calls = 0
    out = rec.reconcile("team", "gw")
    assert out.deleted == ["ServiceMonitor/gw"]
    assert kube.served_calls == 1


class DiscoveryKube(k.Kube):
    """The real Kube.served over a stand-in transport: counts discovery GETs, answers like the API
    server (404 until the group exists, then the resource list)."""

    def __init__(self, clock: list[float]) -> None:
        super().__init__(None, field_manager="test", clock=lambda: clock[0])  # type: ignore[arg-type]
        self.requests: list[str] = []
        self.installed = False

    def request(self, method: str, path: str, **_: Any) -> Any:
        self.requests.append(f"{method} {path}")
        if not self.installed:
            raise k.KubeError(404, "NotFound", "the server could not find the requested resource")
        return {"resources": [{"name": "servicemonitors"}, {"name": "servicemonitors/status"}]}


def test_served_answer_is_reused_for_the_ttl_then_asked_again():
    clock = [1000.0]
    kube = DiscoveryKube(clock)
    assert kube.served(k.SERVICEMONITOR) is False
    clock[0] += k.DISCOVERY_TTL_SECONDS - 0.1
    kube.installed = True  # the CRD appears: not seen before the TTL is over
    assert kube.served(k.SERVICEMONITOR) is False
    assert kube.requests == ["GET /apis/monitoring.coreos.com/v1"]
    clock[0] += 0.2
    assert kube.served(k.SERVICEMONITOR) is True
    assert len(kube.requests) == 2
    assert kube.served(k.SERVICEMONITOR) is True
    assert len(kube.requests) == 2


def test_other_discovery_errors_are_raised_not_cached():
    class Failing(DiscoveryKube):
        def request(self, method: str, path: str, **_: Any) -> Any:
            self.requests.append(path)
            raise k.KubeError(500, "InternalError", "etcd timeout")

    kube = Failing([0.0])
    for _ in range(2):
        try:
            kube.served(k.SERVICEMONITOR)
        except k.KubeError as e:
            assert e.status == 500
        else:
            raise AssertionError("a 500 must not read as 'not served'")
    assert len(kube.requests) == 2


def test_unsuspend_scales_an_autoscaled_deployment_back_without_a_second_read():
    kube, rec = _counting()
    rec.reconcile("team", "gw")
    kube.objects[("Deployment", "team", "gw")]["spec"]["replicas"] = 3  # the API server's default + HPA
    gw = kube.objects[("GongWebhook", "team", "gw")]
    gw["spec"]["suspend"] = True
    rec.reconcile("team", "gw")
    assert kube.objects[("Deployment", "team", "gw")]["spec"]["replicas"] == 0
    gw["spec"]["suspend"] = False
    kube.gets, kube.writes[:] = [], []
    out = rec.reconcile("team", "gw")
    assert ("PATCH", "Deployment/scale", "gw") in kube.writes
    assert kube.objects[("Deployment", "team", "gw")]["spec"]["replicas"] == 3  # autoscaling.minReplicas
    assert out.ready is False and not out.error
    # One read before acting, one after the scale write (the status reports the new replica count).
    assert kube.gets.count("Deployment/gw") == 2
    kube.gets, kube.writes[:] = [], []
    rec.reconcile("team", "gw")
    assert kube.gets.count("Deployment/gw") == 1
    assert not any(w[1] == "Deployment/scale" for w in kube.writes)


def test_unsuspend_leaves_a_deployment_it_does_not_control_alone():
    kube, rec = _counting()
    kube.objects[("Deployment", "team", "gw")] = {
        "metadata": {"name": "gw", "namespace": "team", "uid": "someone-else"}, "spec": {"replicas": 0}}
    out = rec.reconcile("team", "gw")
    assert out.error and "Deployment gw" in out.error
    assert kube.objects[("Deployment", "team", "gw")]["spec"]["replicas"] == 0
    assert not any(w[1] == "Deployment/scale" for w in kube.writes)


def test_a_new_autoscaled_deployment_starts_at_min_replicas_not_the_default_one():
    kube, rec = _counting()
    rec.reconcile("team", "gw")  # the fake, like the API server, has no replicas until someone sets them
    assert ("PATCH", "Deployment/scale", "gw") in kube.writes
    assert kube.objects[("Deployment", "team", "gw")]["spec"]["replicas"] == 3  # autoscaling.minReplicas
    kube.objects[("Deployment", "team", "gw")]["spec"]["replicas"] = 7  # the HPA scaled up
    kube.writes[:] = []
    rec.reconcile("team", "gw")
    assert kube.objects[("Deployment", "team", "gw")]["spec"]["replicas"] == 7
    assert not any(w[1] == "Deployment/scale" for w in kube.writes), "never scales what the HPA chose"


def test_pods_are_read_only_while_the_rollout_is_short_of_ready():
    """Issue 11: the pods are listed (one LIST by the selector labels) to say why a rollout does not
    finish; a healthy GongWebhook's idle reconcile reads exactly what it read before."""
    from tests.support.fake_kube import ONE_POD, SELECTOR, deployment_rollout

    kube, rec = _counting(ONE_POD)
    rec.reconcile("team", "gw")
    deployment_rollout(kube, ready=1)
    rec.reconcile("team", "gw")
    kube.gets, kube.lists = [], []
    kube.writes.clear()
    rec.reconcile("team", "gw")  # idle and healthy
    assert kube.writes == [] and kube.lists == []
    idle_gets = sorted(kube.gets)
    assert idle_gets == sorted([
        "GongWebhook/gw", "Secret/src", "ConfigMap/gw-config", "Secret/gw-credentials", "Deployment/gw",
        "Service/gw", "NetworkPolicy/gw", "HorizontalPodAutoscaler/gw", "PodDisruptionBudget/gw", "Ingress/gw"])
    deployment_rollout(kube, ready=0)  # a pod went away or does not start
    kube.gets, kube.lists = [], []
    rec.reconcile("team", "gw")
    assert kube.lists == [("Pod", "team", SELECTOR)]
    assert sorted(kube.gets) == idle_gets, "the pod read is the only extra one"


def test_list_selected_is_one_get_by_label_selector():
    class Recording(k.Kube):
        def __init__(self) -> None:
            super().__init__(None, field_manager="test")  # type: ignore[arg-type]
            self.calls: list[tuple[str, str, dict[str, str] | None]] = []

        def request(self, method: str, path: str, *, query: dict[str, str] | None = None, **_: Any) -> Any:
            self.calls.append((method, path, query))
            return {"kind": "PodList", "items": [{"metadata": {"name": "gw-1"}}]}

    kube = Recording()
    labels = {"app.kubernetes.io/name": "gong-webhook", "app.kubernetes.io/instance": "gw"}
    got = kube.list_selected(k.POD, "team", labels)
    assert got == [{"metadata": {"name": "gw-1"}}]
    assert kube.calls == [("GET", "/api/v1/namespaces/team/pods",
                           {"labelSelector": "app.kubernetes.io/name=gong-webhook,app.kubernetes.io/instance=gw"})]
