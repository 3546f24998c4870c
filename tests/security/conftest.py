"""Fixtures for the security checks.

Cluster checks use the shared `cluster`, `gw_crd`, `operator` and `namespace` fixtures of tests/conftest.py;
`bare_namespace` makes namespaces *without* the operator's secrets-writer RoleBinding. App checks use the
app fixtures of tests/app/fixtures.py (real redis-server, the real ASGI app under uvicorn).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture
def bare_namespace(cluster: Any) -> Iterator[Callable[[str], str]]:
    """Factory of namespaces that no platform team has prepared for the operator."""
    made: list[str] = []

    def make(prefix: str) -> str:
        name = f"s-{prefix}-{uuid.uuid4().hex[:6]}"
        cluster.kubectl("create", "namespace", name)
        made.append(name)
        return name

    yield make
    for name in made:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def app(make_settings: Callable[..., Any], start_app: Callable[..., Any]) -> Any:
    """The real app in JWT mode, loader off."""
    return start_app(make_settings(), run_loader=False)
