"""Fixtures of the real-node tests: pods that run the images built from our Dockerfiles.

The operator runs in-cluster (config/without-monitoring, its own image, its ServiceAccount) on the
real node; Redis runs as a pod behind Service ``redis`` in each test namespace; fakesnow runs in the
devcluster's stand-in network (a netns routed through the host) behind Service ``snowflake``. See
tests/support/node.py.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import node as n
from tests.support.servers import FakesnowServer


@pytest.fixture(scope="session")
def real_node(cluster: Any) -> dict[str, Any]:
    if os.environ.get("DEVCLUSTER_NODE") == "none":
        pytest.skip("DEVCLUSTER_NODE=none: this cluster was started without the real node")
    node = n.real_node(cluster)
    n.load_images()
    return node


@pytest.fixture(scope="session")
def node_fakesnow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakesnowServer]:
    server = FakesnowServer(tmp_path_factory.mktemp("node-fakesnow"), host=n.SNOWFLAKE_ADDRESS, port=n.HTTPS_PORT,
                            netns=n.WAN_NETNS, create_database="SOPHIA_AI")
    yield server
    server.stop()


# Package scope: the session's operator process is started again as soon as the last node test is done,
# since the suites after this one (tests/security, ...) use it.
@pytest.fixture(scope="package")
def node_operator(cluster: Any, real_node: dict[str, Any], operator: Any) -> Iterator[None]:
    """The in-cluster operator is the one reconciling while these tests run: the session's operator
    process (tests/conftest.py, shared with the other suites) stops meanwhile, so that peering cannot
    hand the work to it."""
    operator.stop()
    n.deploy_operator(cluster)
    yield
    n.remove_operator(cluster)
    operator.start()


@pytest.fixture
def node_namespace(cluster: Any, real_node: dict[str, Any], node_fakesnow: FakesnowServer,
                   request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace on the real node (restricted PSS) with Redis and the Snowflake Service in it."""
    base = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:30].strip("-")
    name = f"node-{base}-{uuid.uuid4().hex[:6]}"
    n.node_namespace(cluster, name)
    cluster.grant_operator_secret_writes(name)
    n.deploy_redis(cluster, name)
    n.snowflake_service(cluster, name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
