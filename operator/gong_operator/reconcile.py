"""One reconcile of one GongWebhook: gather → desired → apply → observe → write.

gather: GET the GongWebhook, parse its spec (pydantic), read the credentials (secret_sync) and whether
the ServiceMonitor API is served. desired: the child manifests (children, pure) and the pods' content
hash. apply: server-side apply only what differs (diff, kube), delete switched-off children; returns
an :class:`~gong_operator.status.ApplyReport`. observe: the Deployment and, only while its rollout is
short of ready, its pods, into one :class:`~gong_operator.status.Observed`. write:
:func:`gong_operator.status.compose` plans status and Events purely; the status is PATCHed only when
it changed, the Events posted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from gong_operator import app_config, children, kube, metrics, spec, status
from gong_operator.diff import needs_apply
from gong_operator.hashing import content_hash
from gong_operator.pulumi_esc import EscSource, parse_duration
from gong_operator.secret_sync import (
    SECRETS_WRITER_BINDING,
    SYNCED,
    SyncResult,
    secret_sources,
    sync,
    write_forbidden,
)
from gong_operator.status import ApplyReport, Observed

log = logging.getLogger("gong_operator.reconcile")

GW = kube.Kind(spec.API_VERSION, spec.KIND, spec.PLURAL)
# Holds a Deployment's spec.replicas from the moment the operator stops applying it (autoscaling on).
REPLICAS_HANDOVER_MANAGER = f"{children.MANAGER}-replicas-handover"
# While a rollout is short of ready and no pod is failing yet, look again this soon: a container that
# starts crash-looping changes no Deployment field (no watch event), and the resync may be a minute off.
POD_RECHECK_SECONDS = 10.0


@dataclass
class Outcome:
    applied: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    status_written: bool = False
    error: str | None = None
    gone: bool = False
    ready: bool = False
    secret_sources: tuple[tuple[str, str], ...] = ()
    requeue_after: float | None = None
    retry: bool = False  # retry with backoff although no reconcile error was recorded (a transient read)
    generation: int = 0  # metadata.generation of the object this reconcile read (0 when it was gone)


class ChildConflict(Exception):
    """A child's name is taken by an object this GongWebhook does not control."""


@dataclass(frozen=True)
class Desired:
    """The desired step's result: the manifests, whether the workload trio may be applied (credentials
    synced and a config the app accepts), the app's refusal of its config, and the pods' content hash."""

    manifests: list[children.Manifest]
    workload_ok: bool
    invalid_config: str | None
    digest: str


class Events:
    """Kubernetes Events on the GongWebhook (core/v1), posted only for real changes."""

    def __init__(self, client: kube.Kube, component: str) -> None:
        self.kube = client
        self.component = component

    def post(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        meta = body["metadata"]
        ts = status.now_rfc3339()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": spec.API_VERSION, "kind": spec.KIND, "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta["uid"],
                               "resourceVersion": meta.get("resourceVersion", "")},
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.component,
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "count": 1,
        }
        try:
            self.kube.create(kube.EVENT, meta["namespace"], event)
        except kube.KubeError as e:
            if e.namespace_terminating:
                return
            log.warning("cannot post event %s on %s/%s: %s", reason, meta["namespace"], meta["name"], e.status)


def _owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    return any(r.get("uid") == uid and r.get("controller") for r in obj["metadata"].get("ownerReferences") or [])


class Reconciler:
    def __init__(self, client: kube.Kube, *, esc: EscSource | None = None,
                 component: str = children.MANAGER) -> None:
        self.kube = client
        self.esc = esc or EscSource()
        self.events = Events(client, component)

    # ------------------------------------------------------------------ entry point

    def reconcile(self, namespace: str, name: str) -> Outcome:
        started = time.monotonic()
        try:
            body = self.kube.get(GW, namespace, name)
            if body is None or body["metadata"].get("deletionTimestamp"):
                return Outcome(gone=True)
            out = self._reconcile(body)
            out.generation = int(body["metadata"].get("generation", 0))
            return out
        finally:
            metrics.RECONCILE_DURATION.observe(time.monotonic() - started)

    def _reconcile(self, body: dict[str, Any]) -> Outcome:
        owner = children.Owner.from_body(body)
        try:
            parsed = spec.GongWebhookSpec.model_validate(body.get("spec") or {})
        except ValidationError as e:
            error = "spec is invalid at: " + ", ".join(".".join(str(p) for p in err["loc"]) for err in e.errors())
            metrics.RECONCILE_ERRORS.labels(stage="spec").inc()
            return self._write(Observed(body, status.now_rfc3339(), spec_error=error), ApplyReport(error=error),
                               Outcome())
        out = Outcome(secret_sources=secret_sources(body.get("spec") or {}, owner.namespace))
        if parsed.suspend:
            report = self._apply_suspend(body, owner)
            rollout = status.Rollout.from_deployment(report.deployment)
            return self._write(Observed(body, status.now_rfc3339(), parsed, deployment=report.deployment,
                                        rollout=rollout), report, out)
        # gather
        secrets = self._sync_secrets(parsed, owner, out)
        sm_api = self.kube.served(kube.SERVICEMONITOR)  # asked once per reconcile (Kube caches it briefly)
        sm_wanted = sm_api and parsed.monitoring.service_monitor.enabled
        # desired, apply
        desired = self._desired(body, parsed, owner, secrets, sm_wanted)
        report = self._apply(body, parsed, owner, desired, secrets, sm_wanted, sm_api)
        if report.gone:
            return Outcome(gone=True)
        # observe
        rollout = status.Rollout.from_deployment(report.deployment)
        pod_failure = self._observe_pods(owner, rollout, report, desired, report.secrets or secrets, out)
        observed = Observed(
            body, status.now_rfc3339(), parsed, secrets=secrets, service_monitor_api=sm_api,
            invalid_config=desired.invalid_config, digest=desired.digest,
            children=tuple((m["apiVersion"], m["kind"], m["metadata"]["name"]) for m in desired.manifests),
            deployment=report.deployment, rollout=rollout, pod_failure=pod_failure)
        # write
        return self._write(observed, report, out)

    # ------------------------------------------------------------------ gather, desired, apply

    def _sync_secrets(self, parsed: spec.GongWebhookSpec, owner: children.Owner, out: Outcome) -> SyncResult:
        result = sync(parsed, owner.namespace, lambda ns, n: self.kube.get(kube.SECRET, ns, n), self.esc,
                      synced_name=children.credentials_name(owner))
        metrics.SECRET_SYNCS.labels(source=result.source, result="ok" if result.ok else result.reason).inc()
        if not result.ok:
            metrics.RECONCILE_ERRORS.labels(stage="secrets").inc()
            out.retry = result.transient
        if parsed.secrets.pulumi_esc is not None:
            out.requeue_after = parse_duration(parsed.secrets.refresh_interval)
        return result

    def _desired(self, body: Mapping[str, Any], parsed: spec.GongWebhookSpec, owner: children.Owner,
                 secrets: SyncResult, sm_wanted: bool) -> Desired:
        """Every desired child, the workload trio included (status lists it); the apply step leaves the
        trio alone unless ``workload_ok``."""
        cfg = children.config_data(parsed)
        # The app exits 2 at start on a setting it refuses; rolling pods with such a config would replace
        # working pods by crash-looping ones. So its own start-up check runs first, over the exact env.
        invalid_config = app_config.refusal(_pod_env(cfg, secrets.data)) \
            if secrets.ok and secrets.data is not None else None
        if invalid_config is not None:
            metrics.RECONCILE_ERRORS.labels(stage="config").inc()
            log.warning("reconcile of %s/%s: the app would refuse its config, pods left as they are: %s",
                        owner.namespace, owner.name, invalid_config)
        workload_ok = secrets.ok and invalid_config is None and secrets.data is not None
        digest = content_hash(cfg, secrets.data, salt=owner.uid) if workload_ok and secrets.data is not None \
            else str((body.get("status") or {}).get("secretHash", ""))
        manifests = children.desired_children(parsed, owner, secret_data=secrets.data or {}, content_hash=digest,
                                              service_monitor_served=sm_wanted)
        return Desired(manifests, workload_ok, invalid_config, digest)

    def _apply(self, body: Mapping[str, Any], parsed: spec.GongWebhookSpec, owner: children.Owner,
               desired: Desired, secrets: SyncResult, sm_wanted: bool, sm_api: bool) -> ApplyReport:
        """Apply what differs, delete what is switched off; a failed request ends the step (reported)."""
        applied: list[str] = []
        deleted: list[str] = []
        forbidden: SyncResult | None = None
        live_deployment: dict[str, Any] | None = None
        error: str | None = None
        try:
            for manifest in desired.manifests:
                if manifest["kind"] in status.WORKLOAD_KINDS and not desired.workload_ok:
                    continue  # no usable credentials or config: the workload stays as it was
                if manifest["kind"] == "Deployment" and forbidden is not None:
                    continue  # the credentials could not be written: the workload stays as it was
                try:
                    live = self._apply_one(body, manifest, applied)
                except kube.Forbidden as e:
                    if manifest["kind"] != "Secret" or e.namespace_terminating:
                        raise
                    # Secret writes are granted per namespace; a namespace without the binding is a
                    # configuration state the platform team fixes, reported in SecretsSynced.
                    forbidden = write_forbidden(owner.namespace, manifest["metadata"]["name"], secrets.source)
                    metrics.RECONCILE_ERRORS.labels(stage="secrets").inc()
                    log.warning("reconcile of %s/%s: not allowed to write Secret %s (no %s RoleBinding)",
                                owner.namespace, owner.name, manifest["metadata"]["name"], SECRETS_WRITER_BINDING)
                    continue
                if manifest["kind"] == "Deployment":
                    live_deployment = live
            self._delete_unwanted(body, parsed, owner, sm_wanted, sm_api, deleted)
            if live_deployment is None:
                live_deployment = self.kube.get(kube.DEPLOYMENT, owner.namespace, owner.name)
            live_deployment = self._scale_up_to_minimum(parsed, owner, live_deployment)
        except kube.KubeError as e:
            if e.namespace_terminating:  # the GongWebhook goes away with its namespace
                return ApplyReport(gone=True)
            error = f"API request failed: {e.status} {e.reason}"
            metrics.RECONCILE_ERRORS.labels(stage="apply").inc()
            log.warning("reconcile of %s/%s failed: %s", owner.namespace, owner.name, e)
        except ChildConflict as e:
            metrics.RECONCILE_ERRORS.labels(stage="conflict").inc()
            log.warning("reconcile of %s/%s: %s", owner.namespace, owner.name, e)
            return ApplyReport(tuple(applied), tuple(deleted), str(e), conflict=True, secrets=forbidden,
                               deployment=live_deployment)
        return ApplyReport(tuple(applied), tuple(deleted), error, secrets=forbidden, deployment=live_deployment)

    def _apply_suspend(self, body: Mapping[str, Any], owner: children.Owner) -> ApplyReport:
        """Suspended: scale the Deployment to zero (through the scale subresource), nothing else."""
        dep = None
        try:
            dep = self.kube.get(kube.DEPLOYMENT, owner.namespace, owner.name)
            if dep is not None and (dep.get("spec") or {}).get("replicas", 0) != 0:
                self.kube.merge_patch(kube.DEPLOYMENT, owner.namespace, owner.name, {"spec": {"replicas": 0}},
                                      subresource="scale")
                self.events.post(body, "Normal", "Suspended", f"Scaled Deployment {owner.name} to zero")
                dep = self.kube.get(kube.DEPLOYMENT, owner.namespace, owner.name)
        except kube.KubeError as e:
            return ApplyReport(error=f"API request failed: {e.status} {e.reason}", deployment=dep)
        return ApplyReport(deployment=dep)

    # ------------------------------------------------------------------ observe, write

    def _observe_pods(self, owner: children.Owner, rollout: status.Rollout, report: ApplyReport,
                      desired: Desired, secrets: SyncResult, out: Outcome) -> str | None:
        """The first failing container of the Deployment's pods, read only while its rollout is short of
        ready (and nothing else explains it). One LIST by the Deployment's selector labels. A refused or
        failed read only loses the detail (the status falls back to the replica counts): it is logged,
        not a reconcile error, since the workload itself was applied."""
        if not rollout.needs_pod_check or report.error or desired.invalid_config is not None:
            return None
        try:
            pods = self.kube.list_selected(kube.POD, owner.namespace, children.selector_labels(owner))
        except kube.KubeError as e:
            metrics.RECONCILE_ERRORS.labels(stage="pods").inc()
            log.warning("cannot list the pods of %s/%s: %s %s", owner.namespace, owner.name, e.status, e.reason)
            return None
        # The container's message is the tail of its log: blank out any synced credential value in it.
        values = [v.decode("utf-8", "replace") for v in (secrets.data or {}).values()]
        found = status.pod_failure(pods, redact=values)
        if found is None:
            out.requeue_after = min(out.requeue_after or POD_RECHECK_SECONDS, POD_RECHECK_SECONDS)
        return found

    def _write(self, observed: Observed, report: ApplyReport, out: Outcome) -> Outcome:
        """Compose the status and Events, post the Events, PATCH the status if it changed."""
        new_status, events = status.compose(observed, report)
        for event in events:
            if event.reason == status.PODS_FAILING:
                meta = observed.body["metadata"]
                log.warning("pods of %s/%s are failing: %s", meta["namespace"], meta["name"], event.message)
            self.events.post(observed.body, event.type, event.reason, event.message)
        out.applied, out.deleted, out.error = list(report.applied), list(report.deleted), report.error
        written = status.to_json(new_status)
        self._write_status(observed.body, observed.old_status, written, out)
        out.ready = (status.find(written.get("conditions") or [], status.READY) or {}).get("status") == "True"
        return out

    def _apply_one(self, body: Mapping[str, Any], manifest: dict[str, Any],
                   applied: list[str]) -> dict[str, Any] | None:
        kind = kube.KINDS[manifest["kind"]]
        name = manifest["metadata"]["name"]
        live = self.kube.get(kind, manifest["metadata"]["namespace"], name)
        if live is not None and not _owned_by(live, body["metadata"]["uid"]):
            # Never take over an object someone else created (e.g. a source Secret with the child's name).
            raise ChildConflict(f"{kind.kind} {name} exists and is not controlled by this GongWebhook")
        if not needs_apply(manifest, live):
            return live
        if manifest["kind"] == "Deployment" and live is not None and "replicas" not in manifest["spec"]:
            self._hand_replicas_over(live)
        result: dict[str, Any] = self.kube.apply(manifest)
        action = "Created" if live is None else "Updated"
        applied.append(f"{kind.kind}/{name}")
        metrics.CHILDREN_APPLIED.labels(kind=kind.kind, action=action.lower()).inc()
        self.events.post(body, "Normal", action, f"{action} {kind.kind} {name}")
        log.info("%s %s %s/%s", action.lower(), kind.kind, manifest["metadata"]["namespace"], name)
        return result

    def _delete_unwanted(self, body: Mapping[str, Any], parsed: spec.GongWebhookSpec, owner: children.Owner,
                         sm_wanted: bool, sm_api: bool, deleted: list[str]) -> None:
        want = children.wanted_optional(parsed, service_monitor_served=sm_wanted)
        for kind_name in children.OPTIONAL_KINDS:
            if want[kind_name]:
                continue
            kind = kube.KINDS[kind_name]
            if kind is kube.SERVICEMONITOR and not sm_api:
                continue
            live = self.kube.get(kind, owner.namespace, owner.name)
            if live is None or not _owned_by(live, owner.uid):
                continue
            if self.kube.delete(kind, owner.namespace, owner.name):
                deleted.append(f"{kind_name}/{owner.name}")
                metrics.CHILDREN_APPLIED.labels(kind=kind_name, action="deleted").inc()
                self.events.post(body, "Normal", "Deleted", f"Deleted {kind_name} {owner.name} (switched off in spec)")

    def _hand_replicas_over(self, live: dict[str, Any]) -> None:
        """Before the first apply without ``spec.replicas`` (autoscaling switched on), give the field to
        another field manager at its current value.

        Server-side apply removes a field its only manager stops sending; for ``replicas`` the API server
        then defaults it to 1, and the ReplicaSet controller can scale the pods down to one before this
        reconcile raises it to ``minReplicas`` (seen on the real control plane: 5 -> 1 -> 3). With a
        second manager holding the field it stays where it is; the HPA takes it over through the scale
        subresource from there. The value is never lowered: at least the current count (the HPA's
        minimum is applied afterwards, by ``_scale_up_to_minimum``)."""
        manager = self.kube.field_manager
        owned = any(m.get("manager") == manager and m.get("operation") == "Apply"
                    and "f:replicas" in ((m.get("fieldsV1") or {}).get("f:spec") or {})
                    for m in live["metadata"].get("managedFields") or [])
        if not owned:
            return
        meta = live["metadata"]
        current = int((live.get("spec") or {}).get("replicas", 1))
        self.kube.apply({"apiVersion": "apps/v1", "kind": "Deployment",
                         "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                         "spec": {"replicas": current}}, field_manager=REPLICAS_HANDOVER_MANAGER)
        log.info("Deployment %s/%s: replicas (%d) handed over for autoscaling", meta["namespace"], meta["name"],
                 current)

    def _scale_up_to_minimum(self, parsed: spec.GongWebhookSpec, owner: children.Owner,
                             dep: dict[str, Any] | None) -> dict[str, Any] | None:
        """An autoscaled Deployment below ``autoscaling.minReplicas`` is scaled up to it at once.

        The operator leaves ``spec.replicas`` of an autoscaled Deployment to the HPA, so a new one
        starts at the API server's default of 1 (below the PodDisruptionBudget's minAvailable) and
        one after a suspend sits at 0, where the HPA does not act at all. The HPA would raise a 1 to
        the minimum only on its next sync (15 s, much longer on a busy controller-manager), and never
        goes below it, so doing it now cannot fight the HPA. Written through the scale subresource
        (an Update, not part of the operator's applied fields), as the HPA does. Works on the
        Deployment this reconcile already read or applied: no GET of its own (the operator benchmark
        counted it as a second read of the same object on every reconcile)."""
        if not parsed.autoscaling.enabled or dep is None or not _owned_by(dep, owner.uid):
            return dep
        # Absent only before the API server defaulted it (it defaults to 1).
        current = (dep.get("spec") or {}).get("replicas", 1)
        if current >= parsed.autoscaling.min_replicas:
            return dep
        self.kube.merge_patch(kube.DEPLOYMENT, owner.namespace, owner.name,
                              {"spec": {"replicas": parsed.autoscaling.min_replicas}}, subresource="scale")
        log.info("scaled Deployment %s/%s from %d to autoscaling.minReplicas %d",
                 owner.namespace, owner.name, current, parsed.autoscaling.min_replicas)
        return self.kube.get(kube.DEPLOYMENT, owner.namespace, owner.name)

    def _write_status(self, body: Mapping[str, Any], old: Mapping[str, Any], new: dict[str, Any],
                      out: Outcome) -> None:
        if _normalise(old) == _normalise(new):
            return
        meta = body["metadata"]
        try:
            self.kube.merge_patch(GW, meta["namespace"], meta["name"], {"status": new}, subresource="status")
            out.status_written = True
        except kube.NotFound:
            pass  # deleted meanwhile: nothing to report on
        except kube.KubeError as e:
            metrics.RECONCILE_ERRORS.labels(stage="status").inc()
            out.error = out.error or f"status write failed: {e.status} {e.reason}"


def _pod_env(config: Mapping[str, str], credentials: Mapping[str, bytes] | None) -> dict[str, str]:
    """The environment the Deployment's envFrom gives the app: ConfigMap, then the synced Secret.
    (``spec.pod.envFromConfigMaps`` come after these and are not read, so not checked.)"""
    env = dict(config)
    env.update({key: v.decode("utf-8", "replace") for key, v in (credentials or {}).items()})
    return env


def _normalise(written: Mapping[str, Any]) -> dict[str, Any]:
    """A status without its empty values: what the comparison before a write looks at."""
    return {key: v for key, v in written.items() if v not in (None, "", [], {}) or key in ("conditions",)}


__all__ = ["SYNCED", "Outcome", "Reconciler"]
