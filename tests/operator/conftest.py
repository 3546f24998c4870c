from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gong_operator import children as ch
from gong_operator import spec as s

SAMPLES = Path(__file__).resolve().parents[2] / "config" / "samples"


def _example_public_key() -> str:
    """The example RSA public key of config/samples/source-secret.yaml (its private key was discarded)."""
    doc = yaml.safe_load((SAMPLES / "source-secret.yaml").read_text())
    return str(doc["stringData"]["GONG_WEBHOOK_PUBLIC_KEYS"])


EXAMPLE_PUBLIC_KEY = _example_public_key()


@pytest.fixture
def owner() -> ch.Owner:
    return ch.Owner(name="gw", namespace="team", uid="0000-uid")


def make_spec(**overrides: Any) -> s.GongWebhookSpec:
    base: dict[str, Any] = {"secrets": {"sourceRef": {"name": "src"}}}
    base.update(overrides)
    return s.GongWebhookSpec.model_validate(base)
