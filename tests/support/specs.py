"""Example inputs of the operator: the sample's public key, a GongWebhookSpec builder, and what
``secret_sync.sync`` reads (a source Secret's keys, a Secret getter over a dict, an ESC never to be called)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from gong_operator import spec as s
from gong_operator.pulumi_esc import EscSource

SAMPLES = Path(__file__).resolve().parents[2] / "config" / "samples"


def _example_public_key() -> str:
    """The example RSA public key of config/samples/source-secret.yaml (its private key was discarded)."""
    doc = yaml.safe_load((SAMPLES / "source-secret.yaml").read_text())
    return str(doc["stringData"]["GONG_WEBHOOK_PUBLIC_KEYS"])


EXAMPLE_PUBLIC_KEY = _example_public_key()


def make_spec(**overrides: Any) -> s.GongWebhookSpec:
    base: dict[str, Any] = {"secrets": {"sourceRef": {"name": "src"}}}
    base.update(overrides)
    return s.GongWebhookSpec.model_validate(base)


FULL = {"GONG_API_KEY": "k", "GONG_API_SECRET": "topsecret", "SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_USER": "u",
        "GONG_WEBHOOK_PUBLIC_KEYS": "pk", "UNRELATED": "x"}


class NoEsc(EscSource):
    def read(self, *a: Any, **kw: Any) -> dict[str, bytes]:
        raise AssertionError("ESC must not be called")


def getter(store: dict[tuple[str, str], dict[str, Any]]) -> Callable[[str, str], dict[str, Any] | None]:
    return lambda ns, name: store.get((ns, name))
