from __future__ import annotations

import pytest

from gong_operator import children as ch


@pytest.fixture
def owner() -> ch.Owner:
    return ch.Owner(name="gw", namespace="team", uid="0000-uid")
