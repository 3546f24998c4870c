"""The in-cluster operator's high availability on the real node (tests/node/test_operator_ha.py).

What the tests need besides tests/support/node.py:

* the peering object (ClusterKopfPeering ``gong-webhook-operator``): who is alive, with which priority,
  and so which replica Kopf makes active (the highest live priority);
* a hard kill of one operator container: SIGKILL of its process, found through the node's CRI
  (``crictl inspect`` gives the PID), the way a crash or the OOM killer ends it (no SIGTERM, so Kopf
  cannot remove its keep-alive);
* a second tag of the loaded operator image in the node's containerd (a "new" image to roll out);
* the operator pods' JSON logs, followed from every pod for the whole test (:class:`LogStreams`), and
  what they say: the reconciles (the operator's ``reconciled <ns>/<name> generation N`` line, logged
  for every reconcile that wrote something or failed; see gong_operator.controller._log_reconcile),
  Kopf's ``Resuming operations`` / ``Pausing operations`` lines, which start and end a replica's
  active period, and the operator's drain lines on SIGTERM (gong_operator.shutdown), which end it too;
* the checks over those (pure functions, so that they are tested on made-up logs too): reconciles of
  two replicas overlapping in time, a reconcile outside its replica's active period, a child applied
  twice for one generation, active periods that overlap, and each hand-over's timing
  (:func:`handovers`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tests.support import node as n

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "gong-system"
DEPLOYMENT = "gong-webhook-operator"
CONTAINER = "operator"
PEERING = "gong-webhook-operator"
SELECTOR = "app.kubernetes.io/name=gong-webhook-operator,app.kubernetes.io/component=operator"
# Kopf's default keep-alive lifetime; config/manager/manager.yaml passes no --peering-lifetime.
LIFETIME_SECONDS = 60
RESUMING = "Resuming operations after the pause"
PAUSING = "Pausing operations in favour of"
RECONCILED = "reconciled "
SIGNAL = "Signal "  # Kopf: "Signal SIGTERM is received. Operator is stopping." (after the drain)
# The operator (gong_operator.shutdown), on the signal: it takes no new key from then on, waits for the
# reconciles in flight, and only then lets Kopf stop (Kopf's Signal line) and remove the keep-alive.
DRAINING = ("SIGTERM received: draining", "SIGINT received: draining")
DRAINED = "drained in "
NOT_DRAINED = "reconcile(s) still in flight after"


class Cluster(Protocol):
    bin_dir: Path
    env: dict[str, str]

    def kubectl(self, *args: str, check: bool = ..., input: str | None = ...,
                timeout: float = ...) -> subprocess.CompletedProcess[str]: ...


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_ts(value: str) -> dt.datetime:
    ts = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC)


def get_json(cluster: Cluster, *args: str) -> Any:
    proc = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


# ------------------------------------------------------------------------------------------ node runtime


def containerd_sock() -> Path:
    """scripts/devcluster's CONTAINERD_SOCK: <state dir>/containerd/containerd.sock."""
    state = Path(os.environ.get("DEVCLUSTER_DIR", ROOT / ".devcluster")).resolve()
    return state / "containerd" / "containerd.sock"


def crictl(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    """scripts/devcluster's ``_crictl``: the crictl it builds, against the real node's containerd."""
    return subprocess.run([str(cluster.bin_dir / "crictl"), f"--runtime-endpoint=unix://{containerd_sock()}",
                           "--timeout=30s", *args], capture_output=True, text=True, check=True, timeout=60)


def ctr(*args: str) -> subprocess.CompletedProcess[str]:
    """containerd's ctr in the k8s.io namespace (the images the kubelet sees)."""
    return subprocess.run(["ctr", "--address", str(containerd_sock()), "--namespace", "k8s.io", *args],
                          capture_output=True, text=True, check=True, timeout=120)


def container_id(pod: dict[str, Any]) -> str:
    (status,) = [s for s in pod["status"]["containerStatuses"] if s["name"] == CONTAINER]
    cid = str(status.get("containerID") or "")
    assert cid.startswith("containerd://"), f"{pod['metadata']['name']}: no running container ({status})"
    return cid.removeprefix("containerd://")


def container_pid(cluster: Cluster, cid: str) -> int:
    info = json.loads(crictl(cluster, "inspect", cid).stdout)
    assert info["status"]["state"] == "CONTAINER_RUNNING", info["status"]["state"]
    return int(info["info"]["pid"])


@dataclass(frozen=True)
class Kill:
    pod: str
    container_id: str
    pid: int
    at: dt.datetime


def kill_container(cluster: Cluster, pod: dict[str, Any]) -> Kill:
    """SIGKILL to the container's process (its PID on the host, from the CRI): no SIGTERM first, so Kopf
    runs no shutdown and leaves its keep-alive in the peering object."""
    cid = container_id(pod)
    pid = container_pid(cluster, cid)
    at = utcnow()
    os.kill(pid, signal.SIGKILL)
    return Kill(pod["metadata"]["name"], cid, pid, at)


def tag_image(source: str, target: str) -> None:
    ctr("images", "tag", "--force", source, target)


def untag_image(ref: str) -> None:
    subprocess.run(["ctr", "--address", str(containerd_sock()), "--namespace", "k8s.io", "images", "rm", ref],
                   capture_output=True, text=True, timeout=60)


# ------------------------------------------------------------------------------------------ peering


@dataclass(frozen=True)
class Peer:
    identity: str
    priority: int
    lifetime: int
    lastseen: dt.datetime

    @property
    def pod(self) -> str:
        return self.identity.rsplit("@", 1)[0]

    def alive(self, now: dt.datetime) -> bool:
        return self.lastseen + dt.timedelta(seconds=self.lifetime) > now


def peers(cluster: Cluster) -> dict[str, Peer]:
    obj = get_json(cluster, "clusterkopfpeering", PEERING)
    assert obj is not None, f"ClusterKopfPeering {PEERING} is missing"
    return {ident: Peer(ident, int(info.get("priority", 0)), int(info.get("lifetime", LIFETIME_SECONDS)),
                        parse_ts(str(info["lastseen"])))
            for ident, info in (obj.get("status") or {}).items() if isinstance(info, dict) and info.get("lastseen")}


def expected_active(found: Iterable[Peer], now: dt.datetime) -> Peer | None:
    """Kopf's rule (and gong_operator.peering.peer_is_active): the one live peer with the highest
    priority; None on a tie (Kopf then pauses every tied peer)."""
    live = sorted((p for p in found if p.alive(now)), key=lambda p: p.priority, reverse=True)
    if not live or (len(live) > 1 and live[0].priority == live[1].priority):
        return None
    return live[0]


def operator_pods(cluster: Cluster) -> list[dict[str, Any]]:
    got = get_json(cluster, "pods", "-n", NAMESPACE, "-l", SELECTOR)
    return [p for p in (got or {}).get("items") or [] if not p["metadata"].get("deletionTimestamp")]


def pod_logs(cluster: Cluster, pod: str, *, previous: bool = False) -> list[str]:
    args = ["logs", "-n", NAMESPACE, pod, "-c", CONTAINER] + (["--previous"] if previous else [])
    return cluster.kubectl(*args, timeout=60).stdout.splitlines()


METRICS_READER = ("import urllib.request as u\n"
                  "print(u.urlopen('http://127.0.0.1:8080/metrics', timeout=10).read().decode())")


def metric(cluster: Cluster, pod: str, name: str) -> float | None:
    """One sample of the operator's /metrics (port 8080), read inside its pod (from 127.0.0.1: the
    operator's NetworkPolicy admits scrapes from namespace ``monitoring`` only)."""
    proc = cluster.kubectl("exec", "-n", NAMESPACE, pod, "-c", CONTAINER, "--", "python", "-c", METRICS_READER,
                           check=False, timeout=30)
    for line in proc.stdout.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


# ------------------------------------------------------------------------------------------ logs


@dataclass(frozen=True)
class LogLine:
    process: str  # the pod, or pod#restart for a restarted container
    ts: dt.datetime
    message: str
    fields: dict[str, Any]


def parse_lines(process: str, raw: Iterable[str]) -> list[LogLine]:
    out = []
    for line in raw:
        try:
            obj = json.loads(line)
        except ValueError:
            continue  # a traceback's continuation line, say
        if isinstance(obj, dict) and "timestamp" in obj:
            out.append(LogLine(process, parse_ts(str(obj["timestamp"])), str(obj.get("message", "")), obj))
    return out


def save(lines: Iterable[LogLine], prefix: str) -> Path:
    """The lines in a log file that the session's secret scan reads (tests/secret_scan.py), with the
    process each came from; the path is printed by the tests for a look after a failure."""
    from tests import secret_scan

    path = secret_scan.new_log(prefix)
    path.write_text("".join(json.dumps({"process": line.process, **line.fields}) + "\n" for line in lines))
    return path


class LogStreams:
    """``kubectl logs -f`` of every operator pod, the ones there now and every one that appears until
    :meth:`stop`, each in a thread; an interrupted stream (API server restart) is attached again, its
    lines deduplicated. A container that ends is not followed into a restart: a restart during the
    rollout test is a failure of its own (see ``restarts``)."""

    def __init__(self, cluster: Cluster, poll_seconds: float = 0.3) -> None:
        self.cluster = cluster
        self.poll_seconds = poll_seconds
        self._raw: dict[str, list[str]] = defaultdict(list)
        self._seen: dict[str, set[str]] = defaultdict(set)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._procs: set[subprocess.Popen[str]] = set()
        self.pods: dict[str, dict[str, Any]] = {}  # last seen object of every pod streamed
        self.errors: list[str] = []
        self._watcher = threading.Thread(target=self._discover, name="operator-log-discovery", daemon=True)

    def __enter__(self) -> LogStreams:
        self._scan()  # the pods there now are followed before the test goes on
        self._watcher.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _discover(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self._scan()
            except Exception as e:  # the API server may be restarting; try again
                self.errors.append(f"pod discovery: {type(e).__name__}: {e}")

    def _scan(self) -> None:
        got = get_json(self.cluster, "pods", "-n", NAMESPACE, "-l", SELECTOR)
        for pod in (got or {}).get("items") or []:
            name = pod["metadata"]["name"]
            self.pods[name] = pod
            if name not in self._threads:
                t = threading.Thread(target=self._follow, args=(name,), name=f"logs-{name}", daemon=True)
                self._threads[name] = t
                t.start()

    def _follow(self, pod: str) -> None:
        cmd = [str(self.cluster.bin_dir / "kubectl"), "logs", "-f", "-n", NAMESPACE, pod, "-c", CONTAINER]
        while not self._stop.is_set():
            proc = subprocess.Popen(cmd, env=self.cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
            with self._lock:
                self._procs.add(proc)
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip("\n")
                with self._lock:
                    if line not in self._seen[pod]:
                        self._seen[pod].add(line)
                        self._raw[pod].append(line)
            proc.wait()
            with self._lock:
                self._procs.discard(proc)
            if self._stop.is_set():
                return
            state = self._container_state(pod)
            if state in ("gone", "terminated"):
                return
            time.sleep(0.3)  # still waiting to start, or the stream was cut: attach again

    def _container_state(self, pod: str) -> str:
        obj = get_json(self.cluster, "pod", "-n", NAMESPACE, pod)
        if obj is None:
            return "gone"
        self.pods[pod] = obj
        for s in (obj.get("status") or {}).get("containerStatuses") or []:
            if s["name"] == CONTAINER:
                return str(next(iter(s.get("state") or {"waiting": None})))
        return "waiting"

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            proc.terminate()
        for t in [self._watcher, *self._threads.values()]:
            if t.ident is not None:
                t.join(timeout=10)

    def lines(self) -> list[LogLine]:
        with self._lock:
            raw = {pod: list(lines) for pod, lines in self._raw.items()}
        out = [line for pod, lines in raw.items() for line in parse_lines(pod, lines)]
        return sorted(out, key=lambda line: line.ts)


# ------------------------------------------------------------------------------------------ analysis


@dataclass(frozen=True)
class Reconcile:
    process: str
    gongwebhook: str  # namespace/name
    generation: int
    trigger: str
    result: str
    start: dt.datetime
    end: dt.datetime
    applied: tuple[str, ...]
    deleted: tuple[str, ...]
    status_written: bool

    def __str__(self) -> str:
        return (f"{self.process}: {self.gongwebhook} gen {self.generation} {self.trigger} "
                f"{self.start.time()}..{self.end.time()} applied={list(self.applied)} status={self.status_written}")


def reconciles(lines: Iterable[LogLine]) -> list[Reconcile]:
    out = []
    for line in lines:
        f = line.fields
        if not line.message.startswith(RECONCILED) or "gongwebhook" not in f:
            continue
        seconds = float(f.get("duration_seconds", 0.0))
        out.append(Reconcile(line.process, str(f["gongwebhook"]), int(f["generation"]), str(f.get("trigger")),
                             str(f.get("result")), line.ts - dt.timedelta(seconds=seconds), line.ts,
                             tuple(f.get("applied") or ()), tuple(f.get("deleted") or ()),
                             bool(f.get("status_written"))))
    return sorted(out, key=lambda r: r.start)


@dataclass
class Period:
    process: str
    start: dt.datetime
    end: dt.datetime | None  # None: still active when the logs were read
    ended_by: str = ""
    paused_for: str = ""  # Kopf's Pausing line: the peers it paused in favour of

    def started_within(self, start: dt.datetime) -> bool:
        return self.start <= start and (self.end is None or start <= self.end)

    def __str__(self) -> str:
        end = self.end.time() if self.end else "now"
        return f"{self.process}: {self.start.time()}..{end} ({self.ended_by or 'still active'})"


def active_periods(lines: Iterable[LogLine], exits: dict[str, dt.datetime] | None = None) -> list[Period]:
    """Kopf's active periods per process: from ``Resuming operations`` to ``Pausing operations``, to
    the operator's drain line on SIGTERM (it takes no new key from then on; the reconciles in flight
    finish before Kopf stops, see :func:`handovers`), to Kopf's ``Signal SIGTERM is received`` where
    no drain line came first (Kopf stops its watches and removes its keep-alive then) or to the
    process's end (``exits``: e.g. a kill)."""
    exits = exits or {}
    by_process: dict[str, list[LogLine]] = defaultdict(list)
    for line in sorted(lines, key=lambda x: x.ts):
        by_process[line.process].append(line)
    out: list[Period] = []
    for process, own in by_process.items():
        current: Period | None = None
        for line in own:
            if line.message.startswith(RESUMING) and current is None:
                current = Period(process, line.ts, None)
            elif line.message.startswith((PAUSING, SIGNAL, *DRAINING)) and current is not None:
                paused = line.message.startswith(PAUSING)
                current.end, current.ended_by = line.ts, "paused" if paused else "stopping"
                current.paused_for = line.message if paused else ""
                out.append(current)
                current = None
        if current is not None:
            if process in exits:
                current.end, current.ended_by = exits[process], "process ended"
            out.append(current)
    return sorted(out, key=lambda p: p.start)


def _overlap(a_start: dt.datetime, a_end: dt.datetime | None, b_start: dt.datetime,
             b_end: dt.datetime | None) -> float:
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    return (min(a_end or far, b_end or far) - max(a_start, b_start)).total_seconds()


def overlapping_periods(periods: list[Period]) -> list[tuple[Period, Period, float]]:
    """Pairs of active periods of different processes that overlap, with the overlap in seconds."""
    out = []
    for i, a in enumerate(periods):
        for b in periods[i + 1:]:
            if a.process != b.process and (seconds := _overlap(a.start, a.end, b.start, b.end)) > 0:
                out.append((a, b, seconds))
    return out


def preemption(a: Period, b: Period) -> bool:
    """Whether the overlap of ``a`` and the later ``b`` is Kopf's hand-over to a peer with a higher
    priority: ``b`` resumed as soon as it saw that no live peer outranks it, and ``a`` paused in its
    favour on the next peering event (Kopf has no lock: this window is by its design)."""
    return a.start <= b.start and a.ended_by == "paused" and f"<Peer {b.process.split(' ')[0]}@" in a.paused_for


def overlapping_reconciles(found: list[Reconcile]) -> list[tuple[Reconcile, Reconcile]]:
    """Reconciles of two different processes that ran at the same time (any objects)."""
    out = []
    ordered = sorted(found, key=lambda r: r.start)
    for i, a in enumerate(ordered):
        for b in ordered[i + 1:]:
            if b.start >= a.end:
                break
            if a.process != b.process:
                out.append((a, b))
    return out


def outside_active_periods(found: list[Reconcile], periods: list[Period]) -> list[Reconcile]:
    """Reconciles a process started while Kopf had it paused or stopping (or before it was ever active).
    One that started while it was active and ended after is one in flight: what it overlapped with is
    for :func:`overlapping_reconciles` to say."""
    return [r for r in found if not any(p.process == r.process and p.started_within(r.start) for p in periods)]


@dataclass(frozen=True)
class Handover:
    """One replica's active period ending (``old``) and the next one's beginning (``new``, None if
    none began in the logs), with the stopping replica's drain."""

    old: Period
    new: Period | None
    kopf_stopped: dt.datetime | None  # stopping: the old one's Kopf "Signal ... Operator is stopping." line
    drained: bool | None  # stopping: all in flight finished (True), not (False); None: no drain line
    last_reconcile_end: dt.datetime | None  # the old one's last reconcile (that wrote) begun in that period

    @property
    def drain_seconds(self) -> float | None:
        """The signal (the drain line) -> Kopf told to stop."""
        if self.old.ended_by != "stopping" or self.kopf_stopped is None or self.old.end is None:
            return None
        return (self.kopf_stopped - self.old.end).total_seconds()

    @property
    def resume_seconds(self) -> float | None:
        """The old one's period end (its signal) -> the new one resumed."""
        if self.new is None or self.old.end is None:
            return None
        return (self.new.start - self.old.end).total_seconds()

    @property
    def after_last_reconcile_seconds(self) -> float | None:
        """The old one's last reconcile ended -> the new one resumed (negative: they overlapped)."""
        if self.new is None or self.last_reconcile_end is None:
            return None
        return (self.new.start - self.last_reconcile_end).total_seconds()

    def __str__(self) -> str:
        def s(x: float | None) -> str:
            return "-" if x is None else f"{x:.3f}s"

        return (f"{self.old.process} ({self.old.ended_by} at {self.old.end.time() if self.old.end else '?'}) -> "
                f"{self.new.process if self.new else 'nobody'}: drain {s(self.drain_seconds)} "
                f"(all finished: {self.drained}), signal -> successor resumed {s(self.resume_seconds)}, "
                f"last reconcile end -> successor resumed {s(self.after_last_reconcile_seconds)}")


def handovers(lines: Iterable[LogLine], periods: list[Period], found: list[Reconcile]) -> list[Handover]:
    """Each active period that ended while the process lived on (paused or stopping), with the first
    period of another process that began at or after its end; for a stop, the drain that followed."""
    ordered = sorted(lines, key=lambda x: x.ts)
    out = []
    for p in periods:
        if p.end is None or p.ended_by not in ("paused", "stopping"):
            continue
        end = p.end
        kopf_stopped, drained = None, None
        if p.ended_by == "stopping":
            own = [x for x in ordered if x.process == p.process and x.ts >= end]
            kopf_stopped = next((x.ts for x in own if x.message.startswith(SIGNAL)), None)
            drain = next((x for x in own if x.message.startswith((DRAINED, NOT_DRAINED))), None)
            drained = None if drain is None else drain.message.startswith(DRAINED)
        ends = [r.end for r in found if r.process == p.process and p.started_within(r.start)]
        new = next((q for q in periods if q.process != p.process and q.start >= end), None)
        out.append(Handover(p, new, kopf_stopped, drained, max(ends) if ends else None))
    return out


def in_flight_after_handover(found: list[Reconcile], periods: list[Period]) -> list[tuple[Reconcile, Period, float]]:
    """Reconciles that a replica started while active and that were still running when another replica
    had become active (the seconds they ran on into its period). Before the operator drained on
    SIGTERM, Kopf removed the keep-alive before the operator's cleanup cancelled its workers, and a
    reconcile running in a thread then still completed (--exit-grace-seconds) while the successor had
    resumed; now none should (a drain that times out would show here)."""
    out = []
    for r in found:
        own = next((p for p in periods if p.process == r.process and p.started_within(r.start)), None)
        if own is None or own.end is None or r.end <= own.end:
            continue
        for p in periods:
            if p.process != r.process and p.start < r.end and (p.end is None or p.end > r.start):
                out.append((r, p, (r.end - max(p.start, r.start)).total_seconds()))
    return out


def applied_twice(found: list[Reconcile]) -> dict[tuple[str, int, str], list[str]]:
    """A child applied (created/updated) or deleted more than once for one generation of its object:
    the same change made twice, by one replica or by two."""
    writes: dict[tuple[str, int, str], list[str]] = defaultdict(list)
    for r in found:
        for child in r.applied:
            writes[(r.gongwebhook, r.generation, f"apply {child}")].append(r.process)
        for child in r.deleted:
            writes[(r.gongwebhook, r.generation, f"delete {child}")].append(r.process)
    return {key: procs for key, procs in writes.items() if len(procs) > 1}


def generations_by_process(found: list[Reconcile]) -> dict[tuple[str, int], set[str]]:
    out: dict[tuple[str, int], set[str]] = defaultdict(set)
    for r in found:
        out[(r.gongwebhook, r.generation)].add(r.process)
    return dict(out)


def timeline(lines: Iterable[LogLine], since: dt.datetime, only: str | None = None) -> list[str]:
    """The lines that tell who was active and who reconciled what, from ``since`` on, as
    ``+seconds process: message`` (``only``: reconciles of that namespace/ prefix only)."""
    out = []
    for line in sorted(lines, key=lambda x: x.ts):
        m = line.message
        keep = m.startswith(("starting:", RESUMING, PAUSING, SIGNAL, *DRAINING, DRAINED, NOT_DRAINED)) or (
            m.startswith(RECONCILED) and (only is None or str(line.fields.get("gongwebhook", "")).startswith(only)))
        if keep and line.ts >= since:
            out.append(f"{(line.ts - since).total_seconds():+8.3f}s {line.process}: {m[:160]}")
    return out


@dataclass
class Op:
    """One create or edit of a GongWebhook during a test: the generation it produced, and when."""

    kind: str
    name: str
    generation: int
    at: dt.datetime
    detail: str = ""


@dataclass
class OpLog:
    ops: list[Op] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ the objects


def light_cr(name: str, schema: str = "GW_HA") -> dict[str, Any]:
    """config/samples' GongWebhook (tests.support.node.sample_cr) at one small pod: fixed 1 replica, no
    PodDisruptionBudget, small requests, so that a test can run several at once on the 2-core node."""
    cr = n.sample_cr(schema)
    cr["metadata"]["name"] = name
    spec = cr["spec"]
    spec["autoscaling"] = {"enabled": False}
    spec["replicas"] = 1
    spec["disruptionBudget"] = {"enabled": False}
    spec["resources"] = {"requests": {"cpu": "20m", "memory": "96Mi"},
                         "limits": {"cpu": "500m", "memory": "384Mi"}}
    return cr


def done(gw: dict[str, Any]) -> bool:
    """The operator has acted on the object's last change and it is Ready."""
    status = gw.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return ready and status.get("observedGeneration") == gw["metadata"]["generation"]


def kopf_active(lines: list[LogLine]) -> bool:
    """Whether the last of Kopf's Resuming/Pausing lines of one process says it is active now."""
    marks = [line for line in lines if line.message.startswith((RESUMING, PAUSING))]
    return bool(marks) and marks[-1].message.startswith(RESUMING)


@dataclass(frozen=True)
class Settled:
    active: dict[str, Any]  # pod objects
    standby: dict[str, Any]
    peers: dict[str, Peer]

    @property
    def active_name(self) -> str:
        return str(self.active["metadata"]["name"])

    @property
    def standby_name(self) -> str:
        return str(self.standby["metadata"]["name"])


def settled(cluster: Cluster, timeout: float = 90) -> Settled:
    """Waits until the operator's two pods run, both keep-alives are live in the peering object (and no
    other live peer is: another operator on this peering would take the work), and exactly one of
    them, the one Kopf's rule names, says in its log that it is active."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        pods = [p for p in operator_pods(cluster) if n.ready(p)]
        now = utcnow()
        found = peers(cluster)
        live = {p.identity: p for p in found.values() if p.alive(now)}
        names = {p["metadata"]["name"] for p in pods}
        foreign = [ident for ident, p in live.items() if p.pod not in names]
        top = expected_active(live.values(), now)
        if len(pods) == 2 and len(live) == 2 and not foreign and top is not None:
            actives = [p for p in pods if kopf_active(parse_lines(p["metadata"]["name"],
                                                                  pod_logs(cluster, p["metadata"]["name"])))]
            if [a["metadata"]["name"] for a in actives] == [top.pod]:
                (standby,) = [p for p in pods if p["metadata"]["name"] != top.pod]
                return Settled(actives[0], standby, found)
            last = f"Kopf-active by the logs: {[a['metadata']['name'] for a in actives]}, by the peering: {top.pod}"
        else:
            last = f"ready pods {sorted(names)}, live peers {sorted(live)}, foreign {foreign}"
        time.sleep(0.5)
    raise AssertionError(f"the operator's peering did not settle within {timeout}s: {last}")
