"""Stable hashes: of desired manifests (drift/no-op detection) and of config + credentials (pod roll)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def stable_hash(obj: Any) -> str:
    """SHA-256 of the canonical JSON form (sorted keys), hex."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()


def content_hash(config: Mapping[str, str], secret: Mapping[str, bytes], *, salt: str) -> str:
    """Short salted hash of the ConfigMap data and the synced credentials.

    It goes into a pod-template annotation and ``status.secretHash``, so it must change whenever a
    value changes and reveal nothing usable: SHA-256 over the salt (the GongWebhook's UID), every key
    and every value, truncated to 16 hex digits.
    """
    h = hashlib.sha256()
    h.update(salt.encode())
    for part, data in (("config", {k: v.encode() for k, v in config.items()}), ("secret", dict(secret))):
        h.update(b"\x00" + part.encode())
        for key in sorted(data):
            h.update(b"\x01" + key.encode() + b"\x02" + data[key])
    return h.hexdigest()[:16]
