"""Compare a desired manifest with the live object, so an unchanged child costs no write request."""

from __future__ import annotations

from typing import Any

from kubernetes.utils.quantity import parse_quantity

from gong_operator.children import DESIRED_HASH_ANNOTATION


def _scalar_equal(want: Any, have: Any) -> bool:
    if want == have:
        return True
    if isinstance(want, str) and isinstance(have, str):
        try:
            return bool(parse_quantity(want) == parse_quantity(have))  # type: ignore[no-untyped-call]  # "1000m" == "1"
        except ValueError:
            return False
    return False


def is_subset(want: Any, have: Any) -> bool:
    """True when every field in ``want`` is present in ``have`` with the same value.

    Server defaulting adds fields (``clusterIP``, probe defaults …), which is fine; lists must match
    element-wise; an empty map/list in ``want`` matches an absent field.
    """
    if isinstance(want, dict):
        if have is None and not want:
            return True
        if not isinstance(have, dict):
            return False
        return all(is_subset(v, have.get(k)) for k, v in want.items())
    if isinstance(want, list):
        if have is None and not want:
            return True
        if not isinstance(have, list) or len(want) != len(have):
            return False
        return all(is_subset(w, h) for w, h in zip(want, have, strict=True))
    return _scalar_equal(want, have)


def needs_apply(desired: dict[str, Any], live: dict[str, Any] | None) -> bool:
    """Apply when the child is missing, when the desired manifest changed since the last apply (its
    hash annotation differs, which also catches fields the operator stopped sending), or when
    someone edited a field the operator owns."""
    if live is None:
        return True
    want_hash = desired["metadata"].get("annotations", {}).get(DESIRED_HASH_ANNOTATION)
    have_hash = (live.get("metadata", {}).get("annotations") or {}).get(DESIRED_HASH_ANNOTATION)
    if want_hash != have_hash:
        return True
    body = {k: v for k, v in desired.items() if k not in ("apiVersion", "kind")}
    return not is_subset(body, {k: v for k, v in live.items() if k not in ("apiVersion", "kind")})
