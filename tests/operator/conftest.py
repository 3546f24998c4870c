from __future__ import annotations

from typing import Any

import pytest

from gong_operator import children as ch
from gong_operator import spec as s


@pytest.fixture
def owner() -> ch.Owner:
    return ch.Owner(name="gw", namespace="team", uid="0000-uid")


def make_spec(**overrides: Any) -> s.GongWebhookSpec:
    base: dict[str, Any] = {"secrets": {"sourceRef": {"name": "src"}}}
    base.update(overrides)
    return s.GongWebhookSpec.model_validate(base)
