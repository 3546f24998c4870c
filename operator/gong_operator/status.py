"""Status: conditions in the metav1.Condition shape and the rest of ``.status``, computed purely.

``lastTransitionTime`` only moves when a condition's status flips, so an unchanged world produces an
identical status and the operator skips the PATCH.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
SECRETS_SYNCED = "SecretsSynced"
MONITORING = "MonitoringConfigured"
CONDITION_TYPES = (READY, PROGRESSING, DEGRADED, SECRETS_SYNCED, MONITORING)
# Reason of Ready/Progressing/Degraded when the app would refuse the rendered configuration.
INVALID_CONFIG = "InvalidConfig"


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Cond:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str = ""


def merge_conditions(
    old: Sequence[Mapping[str, Any]], new: Sequence[Cond], *, generation: int, now: str
) -> list[dict[str, Any]]:
    """New conditions in a fixed order, keeping lastTransitionTime where the status did not change."""
    previous = {c.get("type"): c for c in old}
    out: list[dict[str, Any]] = []
    for c in new:
        prev = previous.get(c.type)
        ltt = prev.get("lastTransitionTime") if prev and prev.get("status") == c.status else None
        out.append({
            "type": c.type,
            "status": c.status,
            "reason": c.reason,
            "message": c.message,
            "lastTransitionTime": ltt or now,
            "observedGeneration": generation,
        })
    return out


def find(conditions: Sequence[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


@dataclass(frozen=True)
class Rollout:
    """What the Deployment reports."""

    exists: bool
    observed: bool = False  # the Deployment controller has reported on it at least once
    desired: int = 0
    ready: int = 0
    updated: int = 0
    available: bool = False
    observed_current: bool = False  # deployment status.observedGeneration >= metadata.generation
    deadline_exceeded: bool = False

    @classmethod
    def from_deployment(cls, dep: Mapping[str, Any] | None) -> Rollout:
        if not dep:
            return cls(exists=False)
        st = dep.get("status") or {}
        conds = {c.get("type"): c for c in st.get("conditions") or []}
        avail = conds.get("Available", {}).get("status") == "True"
        prog = conds.get("Progressing", {})
        return cls(
            exists=True,
            observed="observedGeneration" in st,
            desired=int((dep.get("spec") or {}).get("replicas", 0) or 0),
            ready=int(st.get("readyReplicas", 0) or 0),
            updated=int(st.get("updatedReplicas", 0) or 0),
            available=avail,
            observed_current=int(st.get("observedGeneration", 0) or 0) >= int(dep["metadata"].get("generation", 0)),
            deadline_exceeded=prog.get("reason") == "ProgressDeadlineExceeded",
        )

    @property
    def complete(self) -> bool:
        return (self.exists and self.observed_current and self.available
                and self.updated == self.desired and self.ready == self.desired and self.desired > 0)


def workload_conditions(
    rollout: Rollout, *, secrets_ok: bool, suspended: bool, error: str | None, minimum: int = 1,
    invalid_config: str | None = None,
) -> list[Cond]:
    """Ready, Progressing and Degraded from the rollout, the credentials and the last error.

    ``minimum`` is the replica count the spec asks for at least (``autoscaling.minReplicas`` with an
    HPA): a freshly created Deployment at its default of 1 replica is not Ready yet.
    ``invalid_config`` is the app's start-up error for the rendered config (the pods were left alone):
    not Ready whatever still runs, since the spec as written cannot be deployed.
    """
    if suspended:
        return [Cond(READY, "False", "Suspended", "spec.suspend is true; scaled to zero"),
                Cond(PROGRESSING, "False", "Suspended", "reconciliation is suspended"),
                Cond(DEGRADED, "False", "Suspended", "")]
    if invalid_config is not None and not error:
        message = (f"the app would refuse to start with the rendered settings ({invalid_config}); "
                   "ConfigMap, credentials Secret and Deployment are left as they were")
        return [Cond(READY, "False", INVALID_CONFIG, message), Cond(PROGRESSING, "False", INVALID_CONFIG, ""),
                Cond(DEGRADED, "True", INVALID_CONFIG, message)]
    if error:
        degraded = Cond(DEGRADED, "True", "ReconcileError", error)
    elif not secrets_ok:
        degraded = Cond(DEGRADED, "True", "SecretsNotSynced", "credentials are not synced; workload left as is")
    elif rollout.deadline_exceeded:
        degraded = Cond(DEGRADED, "True", "ProgressDeadlineExceeded", "the Deployment rollout is stuck")
    else:
        degraded = Cond(DEGRADED, "False", "AsExpected", "")
    if not rollout.exists:
        if not secrets_ok:
            ready = Cond(READY, "False", "SecretsNotSynced", "the Deployment waits for the credentials")
        else:
            ready = Cond(READY, "Unknown", "Pending", "the Deployment has not been observed yet")
        progressing = Cond(PROGRESSING, "Unknown" if secrets_ok else "False",
                           "Pending" if secrets_ok else "SecretsNotSynced", "")
        return [ready, progressing, degraded]
    if not rollout.observed and not error:
        return [Cond(READY, "Unknown", "Pending", "the Deployment controller has not reported yet"),
                Cond(PROGRESSING, "Unknown", "Pending", ""), degraded]
    detail = f"{rollout.ready}/{rollout.desired} ready, {rollout.updated} updated"
    if rollout.complete and rollout.desired >= minimum:
        ready = Cond(READY, "True", "Available", detail)
        progressing = Cond(PROGRESSING, "False", "Complete", detail)
    else:
        reason = ("ScaledToZero" if rollout.desired == 0 else
                  "ScalingUp" if rollout.complete else "RollingOut")
        ready = Cond(READY, "False", reason, detail)
        progressing = Cond(PROGRESSING, "True" if rollout.desired else "False", reason, detail)
    if error:
        ready = Cond(READY, "False", "ReconcileError", error)
    elif not secrets_ok and ready.status == "True":
        ready = Cond(READY, "False", "SecretsNotSynced", "running pods kept; credentials source is not usable")
    return [ready, progressing, degraded]
