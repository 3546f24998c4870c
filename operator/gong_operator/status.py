"""Status: what one reconcile saw and did in, ``.status`` and the Events to post out. Pure: no I/O.

:func:`compose` is the policy: ``(Observed, ApplyReport) -> (GongWebhookStatus, [Event])``. The reads
happen before (``reconcile`` gathers them into one :class:`Observed`), the writes after (``reconcile``
PATCHes the status when it changed and posts the Events). ``lastTransitionTime`` only moves when a
condition's status flips, so an unchanged world produces an identical status and the operator skips
the PATCH.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gong_operator import children
from gong_operator.secret_sync import SyncResult
from gong_operator.spec import ChildRef, Condition, ConditionState, GongWebhookSpec, GongWebhookStatus

READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
SECRETS_SYNCED = "SecretsSynced"
MONITORING = "MonitoringConfigured"
CONDITION_TYPES = (READY, PROGRESSING, DEGRADED, SECRETS_SYNCED, MONITORING)
# Reason of Ready/Progressing/Degraded when the app would refuse the rendered configuration.
INVALID_CONFIG = "InvalidConfig"
# Reason of Ready/Degraded when a container of the Deployment's pods cannot start or keeps exiting.
PODS_FAILING = "PodsFailing"
# Waiting reasons of a container that will not start by itself (the kubelet's own names). Others
# (ContainerCreating, PodInitializing) are a pod on its way up.
FAILING_WAIT_REASONS = frozenset({
    "CrashLoopBackOff", "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
    "ImagePullBackOff", "ErrImagePull", "ErrImageNeverPull", "InvalidImageName",
})
# A condition message is read in `kubectl get`/`describe`; the termination message can be 4 KiB.
POD_MESSAGE_LIMIT = 300
# Credential values shorter than this are not blanked out of pod messages: replacing a 1-3 character
# value would garble ordinary words, and no real credential is that short.
REDACT_MIN_LENGTH = 4


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


class Cond(ConditionState):
    """A condition as decided (type, status, reason, message), positionally: ``Cond(READY, "True", ...)``.
    The fields are :class:`gong_operator.spec.ConditionState`'s; :func:`merge_conditions` adds the
    time and generation of the written :class:`gong_operator.spec.Condition`."""

    def __init__(self, type: str, status: str, reason: str, message: str = "") -> None:
        super().__init__(type=type, status=status, reason=reason, message=message)


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

    @property
    def needs_pod_check(self) -> bool:
        """Whether the pods are worth a read to say why the rollout is short of ready. Not for a
        complete rollout (an idle healthy reconcile costs no extra read), nor before the Deployment
        controller reported (no pods yet), nor at zero replicas."""
        return self.exists and self.observed and self.desired > 0 and not self.complete


def pod_failure(pods: Sequence[Mapping[str, Any]], *, redact: Iterable[str] = ()) -> str | None:
    """The first failing container of the current pods, in the container's own words, or None.

    Failing: waiting for a reason in FAILING_WAIT_REASONS, exited with a non-zero code, or restarted
    after one and not ready (a crash loop between two back-offs). A ready container's earlier crash
    is history. Terminating and finished (evicted) pods are not current. Pods are taken by name, so
    the same world gives the same message and the status is not rewritten on every reconcile (no
    restart counts either, for the same reason). ``redact``: values (the synced credentials) blanked
    out of the container's message, which is the tail of its log (FallbackToLogsOnError).
    """
    secrets = sorted((v for v in redact if len(v) >= REDACT_MIN_LENGTH), key=len, reverse=True)
    for pod in sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name", ""))):
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        if meta.get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed"):
            continue
        for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
            found = _container_failure(cs)
            if found is None:
                continue
            text = f"pod {meta.get('name', '')} container {cs.get('name', '')}: {found}"
            for value in secrets:
                text = text.replace(value, "***")
            return text if len(text) <= POD_MESSAGE_LIMIT else text[:POD_MESSAGE_LIMIT - 1] + "…"
    return None


def _container_failure(cs: Mapping[str, Any]) -> str | None:
    state, last = cs.get("state") or {}, (cs.get("lastState") or {}).get("terminated") or {}
    waiting, terminated = state.get("waiting"), state.get("terminated")
    if waiting is not None:
        reason = str(waiting.get("reason", ""))
        if reason not in FAILING_WAIT_REASONS:
            return None
        # A crash loop: how the last run ended says more than the back-off (whose message also
        # changes with every doubling of the delay).
        if last and (reason == "CrashLoopBackOff" or int(last.get("exitCode", 0) or 0) != 0):
            return f"{reason}, last {_exit(last)}{_last_line(last.get('message'))}"
        return f"{reason}{_last_line(waiting.get('message'))}"
    if terminated is not None:
        if int(terminated.get("exitCode", 0) or 0) == 0:
            return None
        return f"{terminated.get('reason') or 'Error'}, {_exit(terminated)}{_last_line(terminated.get('message'))}"
    if not cs.get("ready") and int(last.get("exitCode", 0) or 0) != 0:
        return f"{last.get('reason') or 'Error'}, last {_exit(last)}{_last_line(last.get('message'))}"
    return None


def _exit(terminated: Mapping[str, Any]) -> str:
    reason = str(terminated.get("reason") or "")
    # "Error" is the runtime's word for any non-zero exit; other reasons (OOMKilled) say something.
    return f"exit {terminated.get('exitCode')}" + (f" ({reason})" if reason and reason != "Error" else "")


def _last_line(message: object) -> str:
    """': <last non-empty line>' of a message: with FallbackToLogsOnError it is the log's tail (up to
    80 lines), whose last line is what the app said before exiting (its ConfigError, or a
    traceback's exception line)."""
    lines = [line.strip() for line in str(message or "").splitlines() if line.strip()]
    return f": {lines[-1]}" if lines else ""


def workload_conditions(
    rollout: Rollout, *, secrets_ok: bool, suspended: bool, error: str | None, minimum: int = 1,
    invalid_config: str | None = None, pods_failing: str | None = None,
) -> list[Cond]:
    """Ready, Progressing and Degraded from the rollout, the credentials and the last error.

    ``minimum`` is the replica count the spec asks for at least (``autoscaling.minReplicas`` with an
    HPA): a freshly created Deployment at its default of 1 replica is not Ready yet.
    ``invalid_config`` is the app's start-up error for the rendered config (the pods were left alone):
    not Ready whatever still runs, since the spec as written cannot be deployed.
    ``pods_failing`` is :func:`pod_failure` of the Deployment's pods (read only while the rollout is
    not complete): it names the reason the rollout does not finish, so it is Degraded (before a
    ProgressDeadlineExceeded, which is what a crash loop turns into) and the Ready message.
    """
    if rollout.complete:
        pods_failing = None  # a summary from before the rollout finished says nothing any more
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
    elif pods_failing is not None and rollout.exists:
        degraded = Cond(DEGRADED, "True", PODS_FAILING, pods_failing)
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
        if pods_failing is not None:
            ready = Cond(READY, "False", PODS_FAILING, f"{detail}; {pods_failing}")
    if error:
        ready = Cond(READY, "False", "ReconcileError", error)
    elif not secrets_ok and ready.status == "True":
        ready = Cond(READY, "False", "SecretsNotSynced", "running pods kept; credentials source is not usable")
    return [ready, progressing, degraded]


# ------------------------------------------------------------------------------------------ compose

# Kinds of the workload trio: listed in status.children once the Deployment exists or the credentials
# are synced (desired_children builds them; the apply step leaves them alone while the config is unusable).
WORKLOAD_KINDS = ("ConfigMap", "Secret", "Deployment")


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the GongWebhook."""

    type: str  # "Normal" | "Warning"
    reason: str
    message: str


@dataclass(frozen=True)
class Observed:
    """Everything one reconcile read, as one value (``compose``'s first input).

    ``spec`` is None when the spec does not parse (``spec_error`` says where); ``secrets`` is None while
    suspended (not read then). ``digest`` is the content hash the desired pods carry (the old
    ``status.secretHash`` while the config is not rendered); ``children`` the (apiVersion, kind, name)
    of the desired children; ``pod_failure`` the first failing container of the pods, when read."""

    body: Mapping[str, Any]
    now: str
    spec: GongWebhookSpec | None = None
    spec_error: str = ""
    secrets: SyncResult | None = None
    service_monitor_api: bool = False  # monitoring.coreos.com/v1 ServiceMonitor is served
    invalid_config: str | None = None
    digest: str = ""
    children: tuple[tuple[str, str, str], ...] = ()
    deployment: Mapping[str, Any] | None = None
    rollout: Rollout = Rollout(exists=False)
    pod_failure: str | None = None

    @property
    def old_status(self) -> Mapping[str, Any]:
        return self.body.get("status") or {}

    @property
    def old_conditions(self) -> list[dict[str, Any]]:
        return list(self.old_status.get("conditions") or [])

    @property
    def generation(self) -> int:
        return int(self.body["metadata"].get("generation", 0))


@dataclass(frozen=True)
class ApplyReport:
    """What the apply step did (``compose``'s second input). ``secrets`` replaces the sync result when
    the apply changed it (the Secret write was refused: SecretsSynced=False, the pods' hash stays);
    ``conflict``: ``error`` is a child name taken by an object this GongWebhook does not control;
    ``gone``: the namespace is being terminated (nothing more is written)."""

    applied: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    error: str | None = None
    conflict: bool = False
    secrets: SyncResult | None = None
    deployment: Mapping[str, Any] | None = None
    gone: bool = False


def compose(observed: Observed, report: ApplyReport) -> tuple[GongWebhookStatus, list[Event]]:
    """The new ``.status`` and the Events to post, from what was read and what was done. Pure."""
    if observed.spec is None:
        return _invalid_spec_status(observed), []
    if observed.spec.suspend:
        return _suspended_status(observed, report), []
    return _running_status(observed, observed.spec, report)


def to_json(status: GongWebhookStatus) -> dict[str, Any]:
    """The status as written: camelCase keys, only the fields set (a status carried over from an
    earlier write keeps exactly the keys it had)."""
    return status.model_dump(by_alias=True, exclude_unset=True)


def monitoring_condition(spec: GongWebhookSpec, api_served: bool) -> Cond:
    if not spec.monitoring.service_monitor.enabled:
        return Cond(MONITORING, "False", "Disabled", "spec.monitoring.serviceMonitor.enabled is false")
    if not api_served:
        return Cond(MONITORING, "False", "CRDNotInstalled",
                    "monitoring.coreos.com/v1 ServiceMonitor is not served; skipped until the CRD exists")
    return Cond(MONITORING, "True", "ServiceMonitorApplied", "ServiceMonitor is in place")


def replica_fields(rollout: Rollout) -> dict[str, Any]:
    """The replica counts of ``.status`` (python field names of GongWebhookStatus)."""
    return {"replicas": rollout.desired, "ready_replicas": rollout.ready, "updated_replicas": rollout.updated,
            "replicas_summary": f"{rollout.ready}/{rollout.desired}"}


def secret_events(old_conditions: Sequence[Mapping[str, Any]], result: SyncResult) -> list[Event]:
    """A Warning when the credentials stop syncing or fail differently, a Normal when they recover."""
    prev = find(old_conditions, SECRETS_SYNCED)
    prev_key = (prev.get("status"), prev.get("reason"), prev.get("message")) if prev else None
    now_key = ("True" if result.ok else "False", result.reason, result.message)
    if prev_key == now_key or (prev_key and prev_key[0] == "True" and result.ok):
        return []
    if result.ok:
        if prev is not None and prev.get("status") != "True":
            return [Event("Normal", "SecretsRecovered", result.message)]
        return []
    return [Event("Warning", result.reason, result.message)]


def _running_status(observed: Observed, spec: GongWebhookSpec,
                    report: ApplyReport) -> tuple[GongWebhookStatus, list[Event]]:
    secrets = report.secrets or observed.secrets
    assert secrets is not None, "a running reconcile always has a sync result"
    rollout, old_conditions = observed.rollout, observed.old_conditions
    minimum = spec.autoscaling.min_replicas if spec.autoscaling.enabled else spec.effective_replicas
    conds = workload_conditions(rollout, secrets_ok=secrets.ok, suspended=False, error=report.error,
                                minimum=minimum, invalid_config=observed.invalid_config,
                                pods_failing=observed.pod_failure)
    degraded, prev_degraded = conds[2], find(old_conditions, DEGRADED)
    events: list[Event] = []
    if report.conflict and report.error and _message(prev_degraded) != report.error:
        events.append(Event("Warning", "ChildConflict", report.error))
    if observed.invalid_config is not None and _message(prev_degraded) != degraded.message:
        events.append(Event("Warning", INVALID_CONFIG, degraded.message))
    if degraded.reason == PODS_FAILING and (prev_degraded or {}).get("reason") != PODS_FAILING:
        # Once per transition: the crash loop's later reconciles (and a message that moves to another
        # pod) post nothing more.
        events.append(Event("Warning", PODS_FAILING, degraded.message))
    conds.append(Cond(SECRETS_SYNCED, "True" if secrets.ok else "False", secrets.reason, secrets.message))
    conds.append(monitoring_condition(spec, observed.service_monitor_api))
    events += secret_events(old_conditions, secrets)
    owner = children.Owner.from_body(observed.body)
    # The workload trio is listed once it exists, even while the credentials are not synced.
    listed = secrets.ok or rollout.exists
    status = GongWebhookStatus(
        observed_generation=observed.generation,
        conditions=_merged(observed, conds),
        **replica_fields(rollout),
        selector=",".join(f"{a}={b}" for a, b in children.selector_labels(owner).items()),
        endpoint=children.endpoint(spec, owner),
        secrets=secrets.summary,
        # The pods' hash stays as it was while their credentials could not be written.
        secret_hash=observed.digest if report.secrets is None else str(observed.old_status.get("secretHash", "")),
        suspended=False,
        children=[ChildRef(api_version=api_version, kind=kind, name=name)
                  for api_version, kind, name in observed.children if listed or kind not in WORKLOAD_KINDS],
    )
    return status, events


def _suspended_status(observed: Observed, report: ApplyReport) -> GongWebhookStatus:
    conds = workload_conditions(observed.rollout, secrets_ok=True, suspended=True, error=report.error)
    # Keep the last known SecretsSynced / MonitoringConfigured as they were.
    for type_ in (SECRETS_SYNCED, MONITORING):
        prev = find(observed.old_conditions, type_)
        conds.append(Cond(type_, str(prev["status"]), str(prev["reason"]), str(prev.get("message", "")))
                     if prev else Cond(type_, "Unknown", "Suspended", "not evaluated while suspended"))
    return _carried(observed, conditions=_merged(observed, conds), suspended=True,
                    **replica_fields(observed.rollout))


def _invalid_spec_status(observed: Observed) -> GongWebhookStatus:
    error = observed.spec_error
    conds = [Cond(READY, "False", "InvalidSpec", error), Cond(DEGRADED, "True", "InvalidSpec", error)]
    keep = [Cond(str(c["type"]), str(c["status"]), str(c["reason"]), str(c.get("message", "")))
            for c in observed.old_conditions if c.get("type") not in (READY, DEGRADED)]
    return _carried(observed, conditions=_merged(observed, conds + keep))


def _carried(observed: Observed, **changes: Any) -> GongWebhookStatus:
    """The old status with ``observedGeneration`` and ``changes`` (python field names) set; the fields
    it did not have stay unset, so they are not written."""
    old = GongWebhookStatus.model_validate(observed.old_status)
    return old.model_copy(update={"observed_generation": observed.generation, **changes})


def _merged(observed: Observed, conds: Sequence[Cond]) -> list[Condition]:
    merged = merge_conditions(observed.old_conditions, conds, generation=observed.generation, now=observed.now)
    return [Condition.model_validate(c) for c in merged]


def _message(condition: Mapping[str, Any] | None) -> str | None:
    return str(condition.get("message")) if condition else None
