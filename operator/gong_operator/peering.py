"""Peering: whether this replica is the active one, and why Kopf's peering cannot start.

Kopf runs the peering itself (keep-alives in a KopfPeering / ClusterKopfPeering object); this module
only reads that object: :class:`PeeringGate` (also stops the resync loop and queued retries of a
paused replica) and :func:`peering_problem` (a missing CRD or object, reported on /healthz). It never
writes the peering object and never reconciles.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from typing import Any

from gong_operator import kube, metrics
from gong_operator.settings import OperatorSettings

log = logging.getLogger("gong_operator.peering")

CLUSTER_PEERING = kube.Kind("kopf.dev/v1", "ClusterKopfPeering", "clusterkopfpeerings", namespaced=False)
NS_PEERING = kube.Kind("kopf.dev/v1", "KopfPeering", "kopfpeerings")
PEERING_REMEDY = "apply config/peering (kubectl apply -k config/peering) or run with --standalone (one replica only)"


def peer_is_active(status: Mapping[str, Any], *, identity: str, priority: int, now: dt.datetime) -> bool:
    """Kopf's rule: a replica runs only if no other live peer has an equal or higher priority."""
    for other, info in status.items():
        if other == identity or not isinstance(info, Mapping):
            continue
        try:
            seen = dt.datetime.fromisoformat(str(info.get("lastseen")))
        except ValueError:
            continue
        if seen.tzinfo is None:
            seen = seen.replace(tzinfo=dt.UTC)
        alive = seen + dt.timedelta(seconds=int(info.get("lifetime", 60))) > now
        if alive and int(info.get("priority", 0)) >= priority:
            return False
    return True


def peering_kind(settings: OperatorSettings) -> kube.Kind:
    return CLUSTER_PEERING if settings.clusterwide else NS_PEERING


class PeeringGate:
    """Whether this replica is the active one. Watch events already stop when Kopf pauses; this gate
    also stops the resync loop and queued retries of a paused replica.

    Only "active" is remembered (for ``ttl`` seconds, saving a GET per reconcile); "not active" is
    asked again every time. Kopf resumes a paused replica the moment it sees no live peer outranking it
    and lists every object again; a "not active" from a moment before would drop all those keys, and
    each object would wait for its next change or the resync (tests/node/test_operator_ha.py saw two
    GongWebhooks created during a rollout wait 60 s). For the same reason a failed read raises (the
    worker retries the key) instead of counting as "not active"; a missing peering object is "not
    active" (Kopf does not run without it either)."""

    def __init__(self, client: kube.Kube, settings: OperatorSettings, identity: str, *, ttl: float = 5.0) -> None:
        self.kube = client
        self.settings = settings
        self.identity = identity
        self.ttl = ttl
        self._active_since_check: dict[str, float] = {}  # scope -> monotonic time of the last "active"
        if settings.standalone:
            metrics.ACTIVE.set(1)

    def active(self, namespace: str) -> bool:
        if self.settings.standalone:
            return True
        scope = "" if self.settings.clusterwide else namespace
        checked = self._active_since_check.get(scope)
        if checked is not None and time.monotonic() - checked < self.ttl:
            return True
        obj = self.kube.get(peering_kind(self.settings), None if self.settings.clusterwide else namespace,
                            self.settings.peering_name)  # None when absent; other failures raise
        result = obj is not None and peer_is_active(
            (obj or {}).get("status") or {}, identity=self.identity, priority=self.settings.priority,
            now=dt.datetime.now(dt.UTC))
        if result:
            self._active_since_check[scope] = time.monotonic()
        else:
            self._active_since_check.pop(scope, None)
        metrics.ACTIVE.set(1 if result else 0)
        return result


def peering_problem(client: kube.Kube, settings: OperatorSettings) -> str | None:
    """Why Kopf's peering cannot start, or None (also when the API cannot be asked right now).

    With peering on, Kopf pauses every watch until it has seen the peering object, and it looks for
    the peering CRD only once, at start (resource scanning is off). A missing CRD or object therefore
    means the operator runs, answers probes and reconciles nothing, without a word in its log."""
    if settings.standalone:
        return None
    kind = peering_kind(settings)
    try:
        if not client.served(kind):
            return (f"peering is on but the CustomResourceDefinition {kind.plural}.{kind.group} is not installed, "
                    f"so this operator reconciles nothing: {PEERING_REMEDY}; Kopf looks for the CRD only at "
                    "start, so restart the operator after installing it (the liveness probe fails meanwhile)")
        name = settings.peering_name
        if settings.clusterwide:
            if client.get(kind, None, name) is None:
                return (f"peering is on but the {kind.kind} {name} does not exist, so this operator reconciles "
                        f"nothing: {PEERING_REMEDY} (or pass --peering with the name of an existing one)")
            return None
        missing = [ns for ns in settings.namespaces if client.get(kind, ns, name) is None]
    except Exception:  # an unreachable or refusing API is no evidence of a missing object
        log.debug("peering check failed", exc_info=True)
        return None
    if missing:
        return (f"peering is on but the {kind.kind} {name} does not exist in namespace(s) {', '.join(missing)}, so "
                f"this operator reconciles nothing there: create it (apiVersion kopf.dev/v1, kind {kind.kind}, the "
                f"CRD is in config/peering) or run with --standalone (one replica only)")
    return None
