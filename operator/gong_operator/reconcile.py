"""One reconcile of one GongWebhook: read, compute desired, apply what differs, write status.

Flow: CR spec (pydantic) -> credentials (secret_sync) -> desired manifests (children, pure) ->
compare with live (diff) -> server-side apply only what differs (kube) -> delete switched-off
children -> observe the Deployment (and its pods, only while the rollout is short of ready) -> status
(only PATCHed when it changed) + Events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from gong_operator import app_config, metrics
from gong_operator import children as ch
from gong_operator import kube as k
from gong_operator import spec as s
from gong_operator import status as st
from gong_operator.diff import needs_apply
from gong_operator.hashing import content_hash
from gong_operator.pulumi_esc import EscSource
from gong_operator.secret_sync import SECRETS_WRITER_BINDING, SYNCED, SyncResult, sync, write_forbidden

log = logging.getLogger("gong_operator.reconcile")

GW = k.Kind(s.API_VERSION, s.KIND, s.PLURAL)
# Holds a Deployment's spec.replicas from the moment the operator stops applying it (autoscaling on).
REPLICAS_HANDOVER_MANAGER = f"{ch.MANAGER}-replicas-handover"
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


class ChildConflict(Exception):
    """A child's name is taken by an object this GongWebhook does not control."""


class Events:
    """Kubernetes Events on the GongWebhook (core/v1), posted only for real changes."""

    def __init__(self, kube: k.Kube, component: str) -> None:
        self.kube = kube
        self.component = component

    def post(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        meta = body["metadata"]
        ts = st.now_rfc3339()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": s.API_VERSION, "kind": s.KIND, "name": meta["name"],
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
            self.kube.create(k.EVENT, meta["namespace"], event)
        except k.KubeError as e:
            if e.namespace_terminating:
                return
            log.warning("cannot post event %s on %s/%s: %s", reason, meta["namespace"], meta["name"], e.status)


def _owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    return any(r.get("uid") == uid and r.get("controller") for r in obj["metadata"].get("ownerReferences") or [])


class Reconciler:
    def __init__(self, kube: k.Kube, *, esc: EscSource | None = None, component: str = ch.MANAGER) -> None:
        self.kube = kube
        self.esc = esc or EscSource()
        self.events = Events(kube, component)

    # ------------------------------------------------------------------ entry point

    def reconcile(self, namespace: str, name: str) -> Outcome:
        started = time.monotonic()
        try:
            body = self.kube.get(GW, namespace, name)
            if body is None or body["metadata"].get("deletionTimestamp"):
                return Outcome(gone=True)
            return self._reconcile(body)
        finally:
            metrics.RECONCILE_DURATION.observe(time.monotonic() - started)

    def _reconcile(self, body: dict[str, Any]) -> Outcome:
        meta = body["metadata"]
        owner = ch.Owner.from_body(body)
        generation = int(meta.get("generation", 0))
        old_status: dict[str, Any] = body.get("status") or {}
        old_conditions = old_status.get("conditions") or []
        out = Outcome()
        try:
            spec = s.GongWebhookSpec.model_validate(body.get("spec") or {})
        except ValidationError as e:
            fields = ", ".join(".".join(str(p) for p in err["loc"]) for err in e.errors())
            out.error = f"spec is invalid at: {fields}"
            metrics.RECONCILE_ERRORS.labels(stage="spec").inc()
            self._write_status(body, old_status, self._error_status(old_status, out.error, generation), out)
            return out
        out.secret_sources = _secret_sources(spec, owner.namespace)

        if spec.suspend:
            return self._suspend(body, spec, owner, old_status, out)

        # 1. credentials
        result = sync(spec, owner.namespace, lambda ns, n: self.kube.get(k.SECRET, ns, n), self.esc,
                      synced_name=ch.credentials_name(owner))
        metrics.SECRET_SYNCS.labels(source=result.source, result="ok" if result.ok else result.reason).inc()
        if not result.ok:
            metrics.RECONCILE_ERRORS.labels(stage="secrets").inc()
            out.retry = result.transient
        if spec.secrets.pulumi_esc is not None:
            from gong_operator.pulumi_esc import parse_duration
            out.requeue_after = parse_duration(spec.secrets.refresh_interval)

        # 2. desired children. Whether the ServiceMonitor API exists is asked once per reconcile (the
        # answer serves both the desired set and the switched-off check) and Kube caches it briefly.
        sm_api = self.kube.served(k.SERVICEMONITOR)
        sm_served = sm_api and spec.monitoring.service_monitor.enabled
        cfg = ch.config_data(spec)
        # The app exits 2 at start on a setting it refuses; rolling pods with such a config would replace
        # working pods by crash-looping ones. So its own start-up check runs first, over the exact env.
        invalid_config = app_config.refusal(_pod_env(cfg, result.data)) \
            if result.ok and result.data is not None else None
        if invalid_config is not None:
            metrics.RECONCILE_ERRORS.labels(stage="config").inc()
            log.warning("reconcile of %s/%s: the app would refuse its config, pods left as they are: %s",
                        owner.namespace, owner.name, invalid_config)
        workload_ok = result.ok and invalid_config is None
        digest = content_hash(cfg, result.data, salt=owner.uid) if workload_ok and result.data is not None \
            else str(old_status.get("secretHash", ""))
        desired = ch.desired_children(spec, owner, secret_data=result.data if workload_ok else None,
                                      content_hash=digest, service_monitor_served=sm_served)

        # 3. apply what differs, delete what is switched off
        live_deployment: dict[str, Any] | None = None
        try:
            for manifest in desired:
                if manifest["kind"] == "Deployment" and not result.ok:
                    continue  # the credentials could not be written: the workload stays as it was
                try:
                    live = self._apply_one(body, manifest, out)
                except k.KubeError as e:
                    if manifest["kind"] != "Secret" or e.status != 403 or e.namespace_terminating:
                        raise
                    # Secret writes are granted per namespace; a namespace without the binding is a
                    # configuration state the platform team fixes, reported in SecretsSynced.
                    result = write_forbidden(owner.namespace, manifest["metadata"]["name"], result.source)
                    digest = str(old_status.get("secretHash", ""))
                    metrics.RECONCILE_ERRORS.labels(stage="secrets").inc()
                    log.warning("reconcile of %s/%s: not allowed to write Secret %s (no %s RoleBinding)",
                                owner.namespace, owner.name, manifest["metadata"]["name"], SECRETS_WRITER_BINDING)
                    continue
                if manifest["kind"] == "Deployment":
                    live_deployment = live
            self._delete_unwanted(body, spec, owner, sm_served, sm_api, out)
            if live_deployment is None:
                live_deployment = self.kube.get(k.DEPLOYMENT, owner.namespace, owner.name)
            live_deployment = self._scale_up_to_minimum(spec, owner, live_deployment)
        except k.KubeError as e:
            if e.namespace_terminating:  # the GongWebhook goes away with its namespace
                return Outcome(gone=True)
            out.error = f"API request failed: {e.status} {e.reason}"
            metrics.RECONCILE_ERRORS.labels(stage="apply").inc()
            log.warning("reconcile of %s/%s failed: %s", owner.namespace, owner.name, e)
        except ChildConflict as e:
            out.error = str(e)
            metrics.RECONCILE_ERRORS.labels(stage="conflict").inc()
            if _condition_message(old_conditions, st.DEGRADED) != out.error:
                self.events.post(body, "Warning", "ChildConflict", out.error)
            log.warning("reconcile of %s/%s: %s", owner.namespace, owner.name, e)

        # 4. status
        rollout = st.Rollout.from_deployment(live_deployment)
        pods_failing = None
        if rollout.needs_pod_check and not out.error and invalid_config is None:
            pods_failing, listed = self._pods_failing(owner, result)
            if listed and pods_failing is None:
                out.requeue_after = min(out.requeue_after or POD_RECHECK_SECONDS, POD_RECHECK_SECONDS)
        minimum = spec.autoscaling.min_replicas if spec.autoscaling.enabled else spec.effective_replicas
        conds = st.workload_conditions(rollout, secrets_ok=result.ok, suspended=False, error=out.error,
                                       minimum=minimum, invalid_config=invalid_config, pods_failing=pods_failing)
        if invalid_config is not None and _condition_message(old_conditions, st.DEGRADED) != conds[2].message:
            self.events.post(body, "Warning", st.INVALID_CONFIG, conds[2].message)
        prev_degraded = st.find(old_conditions, st.DEGRADED)
        if conds[2].reason == st.PODS_FAILING and (prev_degraded or {}).get("reason") != st.PODS_FAILING:
            # Once per transition: the crash loop's later reconciles (and a message that moves to
            # another pod) post nothing more.
            self.events.post(body, "Warning", st.PODS_FAILING, conds[2].message)
            log.warning("pods of %s/%s are failing: %s", owner.namespace, owner.name, conds[2].message)
        conds.append(st.Cond(st.SECRETS_SYNCED, "True" if result.ok else "False", result.reason, result.message))
        conds.append(self._monitoring_condition(spec, sm_served))
        new_status = self._status(body, spec, owner, old_conditions, conds, rollout, result, digest, generation)
        self._secret_events(body, old_conditions, result)
        self._write_status(body, old_status, new_status, out)
        out.ready = conds[0].status == "True"
        return out

    # ------------------------------------------------------------------ pieces

    def _pods_failing(self, owner: ch.Owner, result: SyncResult) -> tuple[str | None, bool]:
        """(the first failing container of the Deployment's pods, whether the pods could be listed).

        One LIST by the Deployment's selector labels. A refused or failed read only loses the detail
        (the status falls back to the replica counts): it is logged, not a reconcile error, since the
        workload itself was applied."""
        try:
            pods = self.kube.list_selected(k.POD, owner.namespace, ch.selector_labels(owner))
        except k.KubeError as e:
            metrics.RECONCILE_ERRORS.labels(stage="pods").inc()
            log.warning("cannot list the pods of %s/%s: %s %s", owner.namespace, owner.name, e.status, e.reason)
            return None, False
        # The container's message is the tail of its log: blank out any synced credential value in it.
        values = [v.decode("utf-8", "replace") for v in (result.data or {}).values()]
        return st.pod_failure(pods, redact=values), True

    def _apply_one(self, body: Mapping[str, Any], manifest: dict[str, Any], out: Outcome) -> dict[str, Any] | None:
        kind = k.KINDS[manifest["kind"]]
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
        out.applied.append(f"{kind.kind}/{name}")
        metrics.CHILDREN_APPLIED.labels(kind=kind.kind, action=action.lower()).inc()
        self.events.post(body, "Normal", action, f"{action} {kind.kind} {name}")
        log.info("%s %s %s/%s", action.lower(), kind.kind, manifest["metadata"]["namespace"], name)
        return result

    def _delete_unwanted(self, body: Mapping[str, Any], spec: s.GongWebhookSpec, owner: ch.Owner,
                         sm_served: bool, sm_api: bool, out: Outcome) -> None:
        want = ch.wanted_optional(spec, service_monitor_served=sm_served)
        for kind_name in ch.OPTIONAL_KINDS:
            if want[kind_name]:
                continue
            kind = k.KINDS[kind_name]
            if kind is k.SERVICEMONITOR and not sm_api:
                continue
            live = self.kube.get(kind, owner.namespace, owner.name)
            if live is None or not _owned_by(live, owner.uid):
                continue
            if self.kube.delete(kind, owner.namespace, owner.name):
                out.deleted.append(f"{kind_name}/{owner.name}")
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

    def _scale_up_to_minimum(self, spec: s.GongWebhookSpec, owner: ch.Owner,
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
        if not spec.autoscaling.enabled or dep is None or not _owned_by(dep, owner.uid):
            return dep
        # Absent only before the API server defaulted it (it defaults to 1).
        current = (dep.get("spec") or {}).get("replicas", 1)
        if current >= spec.autoscaling.min_replicas:
            return dep
        self.kube.merge_patch(k.DEPLOYMENT, owner.namespace, owner.name,
                              {"spec": {"replicas": spec.autoscaling.min_replicas}}, subresource="scale")
        log.info("scaled Deployment %s/%s from %d to autoscaling.minReplicas %d",
                 owner.namespace, owner.name, current, spec.autoscaling.min_replicas)
        return self.kube.get(k.DEPLOYMENT, owner.namespace, owner.name)

    def _suspend(self, body: dict[str, Any], spec: s.GongWebhookSpec, owner: ch.Owner,
                 old_status: dict[str, Any], out: Outcome) -> Outcome:
        dep = None
        try:
            dep = self.kube.get(k.DEPLOYMENT, owner.namespace, owner.name)
            if dep is not None and (dep.get("spec") or {}).get("replicas", 0) != 0:
                self.kube.merge_patch(k.DEPLOYMENT, owner.namespace, owner.name, {"spec": {"replicas": 0}},
                                      subresource="scale")
                self.events.post(body, "Normal", "Suspended", f"Scaled Deployment {owner.name} to zero")
                dep = self.kube.get(k.DEPLOYMENT, owner.namespace, owner.name)
        except k.KubeError as e:
            out.error = f"API request failed: {e.status} {e.reason}"
        generation = int(body["metadata"].get("generation", 0))
        old_conditions = old_status.get("conditions") or []
        conds = st.workload_conditions(st.Rollout.from_deployment(dep), secrets_ok=True, suspended=True,
                                       error=out.error)
        # Keep the last known SecretsSynced / MonitoringConfigured as they were.
        for t in (st.SECRETS_SYNCED, st.MONITORING):
            prev = st.find(old_conditions, t)
            conds.append(st.Cond(t, str(prev["status"]), str(prev["reason"]), str(prev.get("message", "")))
                         if prev else st.Cond(t, "Unknown", "Suspended", "not evaluated while suspended"))
        new_status = dict(old_status)
        new_status.update({
            "observedGeneration": generation,
            "conditions": st.merge_conditions(old_conditions, conds, generation=generation, now=st.now_rfc3339()),
            "suspended": True,
        })
        rollout = st.Rollout.from_deployment(dep)
        new_status.update(_replica_fields(rollout))
        self._write_status(body, old_status, new_status, out)
        return out

    def _monitoring_condition(self, spec: s.GongWebhookSpec, served: bool) -> st.Cond:
        if not spec.monitoring.service_monitor.enabled:
            return st.Cond(st.MONITORING, "False", "Disabled", "spec.monitoring.serviceMonitor.enabled is false")
        if not served:
            return st.Cond(st.MONITORING, "False", "CRDNotInstalled",
                           "monitoring.coreos.com/v1 ServiceMonitor is not served; skipped until the CRD exists")
        return st.Cond(st.MONITORING, "True", "ServiceMonitorApplied", "ServiceMonitor is in place")

    def _status(self, body: Mapping[str, Any], spec: s.GongWebhookSpec, owner: ch.Owner,
                old_conditions: list[dict[str, Any]], conds: list[st.Cond], rollout: st.Rollout,
                result: SyncResult, digest: str, generation: int) -> dict[str, Any]:
        sm_served = any(c.type == st.MONITORING and c.status == "True" for c in conds)
        # The workload trio is listed once it exists, even while the credentials are not synced.
        kids = ch.desired_children(spec, owner, secret_data={} if result.ok or rollout.exists else None,
                                   content_hash="", service_monitor_served=sm_served)
        listed = [{"apiVersion": m["apiVersion"], "kind": m["kind"], "name": m["metadata"]["name"]} for m in kids]
        return {
            "observedGeneration": generation,
            "conditions": st.merge_conditions(old_conditions, conds, generation=generation, now=st.now_rfc3339()),
            **_replica_fields(rollout),
            "selector": ",".join(f"{a}={b}" for a, b in ch.selector_labels(owner).items()),
            "endpoint": ch.endpoint(spec, owner),
            "secrets": result.summary,
            "secretHash": digest,
            "suspended": False,
            "children": listed,
        }

    def _error_status(self, old_status: dict[str, Any], error: str, generation: int) -> dict[str, Any]:
        conds = [st.Cond(st.READY, "False", "InvalidSpec", error), st.Cond(st.DEGRADED, "True", "InvalidSpec", error)]
        old_conditions = old_status.get("conditions") or []
        keep = [st.Cond(str(c["type"]), str(c["status"]), str(c["reason"]), str(c.get("message", "")))
                for c in old_conditions if c.get("type") not in (st.READY, st.DEGRADED)]
        return {**old_status, "observedGeneration": generation,
                "conditions": st.merge_conditions(old_conditions, conds + keep, generation=generation,
                                                  now=st.now_rfc3339())}

    def _secret_events(self, body: Mapping[str, Any], old_conditions: list[dict[str, Any]],
                       result: SyncResult) -> None:
        prev = st.find(old_conditions, st.SECRETS_SYNCED)
        prev_key = (prev.get("status"), prev.get("reason"), prev.get("message")) if prev else None
        now_key = ("True" if result.ok else "False", result.reason, result.message)
        if prev_key == now_key or (prev_key and prev_key[0] == "True" and result.ok):
            return
        if result.ok:
            if prev is not None and prev.get("status") != "True":
                self.events.post(body, "Normal", "SecretsRecovered", result.message)
        else:
            self.events.post(body, "Warning", result.reason, result.message)

    def _write_status(self, body: Mapping[str, Any], old: Mapping[str, Any], new: dict[str, Any],
                      out: Outcome) -> None:
        if _normalise(old) == _normalise(new):
            return
        meta = body["metadata"]
        try:
            self.kube.merge_patch(GW, meta["namespace"], meta["name"], {"status": new}, subresource="status")
            out.status_written = True
        except k.KubeError as e:
            if e.status != 404:
                metrics.RECONCILE_ERRORS.labels(stage="status").inc()
                out.error = out.error or f"status write failed: {e.status} {e.reason}"


def _condition_message(conditions: list[dict[str, Any]], type_: str) -> str | None:
    found = st.find(conditions, type_)
    return str(found.get("message")) if found else None


def _pod_env(config: Mapping[str, str], credentials: Mapping[str, bytes] | None) -> dict[str, str]:
    """The environment the Deployment's envFrom gives the app: ConfigMap, then the synced Secret.
    (``spec.pod.envFromConfigMaps`` come after these and are not read, so not checked.)"""
    env = dict(config)
    env.update({k_: v.decode("utf-8", "replace") for k_, v in (credentials or {}).items()})
    return env


def _replica_fields(rollout: st.Rollout) -> dict[str, Any]:
    return {
        "replicas": rollout.desired,
        "readyReplicas": rollout.ready,
        "updatedReplicas": rollout.updated,
        "replicasSummary": f"{rollout.ready}/{rollout.desired}",
    }


def _normalise(status: Mapping[str, Any]) -> dict[str, Any]:
    return {k_: v for k_, v in status.items() if v not in (None, "", [], {}) or k_ in ("conditions",)}


def _secret_sources(spec: s.GongWebhookSpec, namespace: str) -> tuple[tuple[str, str], ...]:
    """(namespace, name) of every Secret whose change must trigger this GongWebhook."""
    if spec.secrets.source_ref is not None:
        return ((spec.secrets.source_ref.namespace or namespace, spec.secrets.source_ref.name),)
    if spec.secrets.pulumi_esc is not None:
        return ((namespace, spec.secrets.pulumi_esc.access_token_secret_ref.name),)
    return ()


__all__ = ["SYNCED", "Outcome", "Reconciler"]
