"""Peering: whether this replica is the active one, and why Kopf's peering cannot start.

Kopf runs the peering itself (keep-alives in a KopfPeering / ClusterKopfPeering object); this module
only reads that object: :class:`PeeringGate` (also stops the resync loop and queued retries of a
paused replica) and :func:`peering_problem` (a missing CRD or object, reported on /healthz). It never
writes the peering object and never reconciles. :func:`default_priority` is the priority a replica
peers with unless ``--priority`` is given: the oldest replica wins.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from collections.abc import Mapping
from typing import Any

from gong_operator import kube, metrics
from gong_operator.settings import OperatorSettings

log = logging.getLogger("gong_operator.peering")

CLUSTER_PEERING = kube.Kind("kopf.dev/v1", "ClusterKopfPeering", "clusterkopfpeerings", namespaced=False)
NS_PEERING = kube.Kind("kopf.dev/v1", "KopfPeering", "kopfpeerings")
PEERING_REMEDY = "apply config/peering (kubectl apply -k config/peering) or run with --standalone (one replica only)"


# The random low digits of a default priority: two replicas started in the same millisecond still differ
# (999 times in 1000; Kopf pauses every replica of a tie).
PRIORITY_TIE_BREAK = 1000


def start_priority(start_ms: int, tie_break: int) -> int:
    """The peering priority of a replica started at ``start_ms`` (wall clock, ms since the epoch): the
    earlier the start, the higher. Negative, so that any explicit ``--priority`` >= 0 (also ``kopf
    freeze``, 100, and ``kopf run --dev``, 666) outranks every replica on the default; an int64 for
    another 290,000 years, and below 2**53 (exact in any JSON reader) until 2255.

    Kopf makes the highest live priority active, so with this a newly started replica (a rollout, a
    container the kubelet restarted) never preempts one that runs: it peers paused and takes over only
    when the older one leaves (its keep-alive removed on a graceful stop, or expired)."""
    if not 0 <= tie_break < PRIORITY_TIE_BREAK:
        raise ValueError(f"tie_break must be in [0, {PRIORITY_TIE_BREAK}): {tie_break}")
    return -(start_ms * PRIORITY_TIE_BREAK + tie_break)


def default_priority() -> int:
    """:func:`start_priority` of this process, now (called once, as it starts), random low digits."""
    return start_priority(time.time_ns() // 1_000_000, secrets.randbelow(PRIORITY_TIE_BREAK))


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
    active" (Kopf does not run without it either).

    :meth:`release` (on SIGTERM/SIGINT, :mod:`gong_operator.shutdown`) makes every later answer "not
    active", without asking: the replica is leaving and starts no reconcile, although Kopf still holds
    its keep-alive until the reconciles in flight are done."""

    def __init__(self, client: kube.Kube, settings: OperatorSettings, identity: str, *, ttl: float = 5.0) -> None:
        self.kube = client
        self.settings = settings
        self.identity = identity
        self.ttl = ttl
        self._active_since_check: dict[str, float] = {}  # scope -> monotonic time of the last "active"
        self._released = False
        if settings.standalone:
            metrics.ACTIVE.set(1)

    def release(self) -> None:
        """Stopping: "not active" from now on (also with --standalone), and the gauge says 0 at once."""
        self._released = True
        self._active_since_check.clear()
        metrics.ACTIVE.set(0)

    @property
    def released(self) -> bool:
        return self._released

    def active(self, namespace: str) -> bool:
        if self._released:
            return False
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
        if self._released:  # released while this read was under way
            return False
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
