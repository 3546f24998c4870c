"""kube.py's own types: errors typed once by status, and Kind paths for namespaced and cluster-scoped kinds."""

from __future__ import annotations

import pytest

from gong_operator import kube


@pytest.mark.parametrize(("status", "typed"), [(404, kube.NotFound), (403, kube.Forbidden), (409, kube.Conflict),
                                               (500, kube.KubeError), (429, kube.KubeError)])
def test_an_error_is_typed_by_its_status_wherever_it_is_raised(status: int, typed: type[kube.KubeError]) -> None:
    error = kube.KubeError(status, "Reason", "message")
    assert type(error) is typed and isinstance(error, kube.KubeError)
    assert (error.status, error.reason, error.message) == (status, "Reason", "message")
    assert str(error) == f"{status} Reason: message"


def test_terminating_namespace_and_transient_answers() -> None:
    assert kube.KubeError(403, "Forbidden", 'namespace "x" is being terminated').namespace_terminating
    assert not kube.Forbidden(403, "Forbidden", "secrets is forbidden").namespace_terminating
    assert kube.KubeError(503, "ServiceUnavailable", "").transient and kube.KubeError(429, "TooMany", "").transient
    assert not kube.KubeError(404, "NotFound", "").transient


def test_paths_of_namespaced_and_cluster_scoped_kinds() -> None:
    assert kube.DEPLOYMENT.path("team", "gw", "scale") == "/apis/apps/v1/namespaces/team/deployments/gw/scale"
    assert kube.POD.path("team") == "/api/v1/namespaces/team/pods"
    peering = kube.Kind("kopf.dev/v1", "ClusterKopfPeering", "clusterkopfpeerings", namespaced=False)
    assert peering.path(None, "gong-webhook-operator") == "/apis/kopf.dev/v1/clusterkopfpeerings/gong-webhook-operator"
    with pytest.raises(ValueError, match="not namespaced"):
        peering.path("team", "x")
    with pytest.raises(ValueError, match="is namespaced"):
        kube.DEPLOYMENT.path(None, "gw")
