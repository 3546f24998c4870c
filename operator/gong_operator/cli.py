"""Console entry point ``gong-webhook-operator``: runs the Kopf operator.

    gong-webhook-operator --all-namespaces                 # cluster-wide, with peering
    gong-webhook-operator --namespace team-a --namespace team-b
    gong-webhook-operator --all-namespaces --standalone    # development: no peering object needed

On SIGTERM/SIGINT the operator first drains (no new reconciles; those in flight may finish within
``--exit-grace-seconds``), and only then lets Kopf stop and hand the peering over
(:mod:`gong_operator.shutdown`); a second signal stops at once.

Exit status: 0 after SIGTERM/SIGINT, also when a worker thread was still stuck in a call after
``--exit-grace-seconds`` (the orderly shutdown has run; the thread is abandoned and the reason logged
at ERROR); 1 when the operator fails (e.g. the peering object is missing); 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys

import kopf
from prometheus_client import start_http_server

from gong_operator import peering, registration, shutdown
from gong_operator.controller import Controller
from gong_operator.executor import WorkerExecutor
from gong_operator.kube import Kube, load_api_client
from gong_operator.pulumi_esc import DEFAULT_ALLOWED_HOSTS, EscSource
from gong_operator.reconcile import Reconciler
from gong_operator.settings import OperatorSettings


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gong-webhook-operator", description="Kopf operator for GongWebhook resources.")
    scope = p.add_mutually_exclusive_group(required=True)
    scope.add_argument("-n", "--namespace", action="append", dest="namespaces", default=[],
                       help="serve this namespace (repeatable)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="serve every namespace")
    p.add_argument("--standalone", action="store_true", help="no peering (one replica, or development)")
    p.add_argument("--peering", default="gong-webhook-operator", help="Kopf peering object name")
    p.add_argument("--priority", type=int, default=None,
                   help="peering priority (the highest live one is active); default: from the process start "
                        "time, so that the oldest replica wins and a newer one (a rollout, a restarted container) "
                        "never preempts it: -(start time in ms since the epoch * 1000 + random 0-999), negative, "
                        "the random digits against ties (a tie pauses all of them); any N >= 0 outranks every "
                        "default")
    p.add_argument("--peering-lifetime", type=int, default=60,
                   help="seconds a keep-alive counts (at least 10): failover time after a silent death; the keep-alive "
                        "is renewed 5-10 s before it ends (at least every second)")
    p.add_argument("--liveness", default="http://0.0.0.0:8081/healthz", help="liveness endpoint URL ('' = off)")
    p.add_argument("--metrics-port", type=int, default=8080, help="Prometheus metrics port (0 = off)")
    p.add_argument("--resync-seconds", type=float, default=60.0, help="periodic full reconcile interval")
    p.add_argument("--workers", type=int, default=2, help="concurrent reconciles")
    p.add_argument("--stuck-reconcile-seconds", type=float, default=300.0,
                   help="liveness fails while one reconcile has run longer than this (a hung call)")
    p.add_argument("--esc-deadline-seconds", type=float, default=30.0,
                   help="total deadline of one Pulumi ESC read; past it SecretsSynced=False, PulumiEscTimeout")
    p.add_argument("--esc-allowed-host", action="append", dest="esc_allowed_hosts", default=None, metavar="HOST",
                   help="host (or host:port) spec.secrets.pulumiEsc.apiUrl may name; the operator sends its ESC token "
                        "only there (repeatable; default: api.pulumi.com)")
    p.add_argument("--exit-grace-seconds", type=float, default=5.0,
                   help="on SIGTERM, take no new work and wait up to this long (from the signal) for running "
                        "reconciles before Kopf stops and hands the peering over; then exit anyway")
    p.add_argument("--log-format", choices=["json", "plain", "full"], default="json",
                   help="log line format: json (one object per line), plain or full")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging, including Kopf's per-event lines")
    return p


def parse_args(argv: list[str] | None) -> OperatorSettings:
    a = build_parser().parse_args(argv)
    priority = a.priority if a.priority is not None else peering.default_priority()
    return OperatorSettings(
        namespaces=tuple(a.namespaces), standalone=a.standalone, peering_name=a.peering, priority=priority,
        peering_lifetime=a.peering_lifetime,
        liveness_endpoint=a.liveness or None, metrics_port=a.metrics_port, resync_seconds=a.resync_seconds,
        workers=a.workers, stuck_reconcile_seconds=a.stuck_reconcile_seconds,
        esc_deadline_seconds=a.esc_deadline_seconds, exit_grace_seconds=a.exit_grace_seconds,
        esc_allowed_hosts=tuple(a.esc_allowed_hosts) if a.esc_allowed_hosts else DEFAULT_ALLOWED_HOSTS,
        log_format=a.log_format, verbose=a.verbose,
    )


def identity() -> str:
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}@{os.getpid()}"


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    kopf.configure(verbose=settings.verbose, log_format=kopf.LogFormat[settings.log_format.upper()])
    if not settings.verbose:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # one "Handler succeeded" per watch event
        # Per liveness probe: Kopf's "Activity 'workers' succeeded" and aiohttp's access line. A failing
        # probe still logs its reason (ERROR).
        logging.getLogger("kopf.activities.probe").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    log = logging.getLogger("gong_operator")
    kube = Kube(load_api_client(), field_manager=settings.field_manager, timeout=settings.api_timeout_seconds)
    me = identity()
    gate = peering.PeeringGate(kube, settings, me)
    reconciler = Reconciler(kube, esc=EscSource(deadline=settings.esc_deadline_seconds,
                                                allowed_hosts=settings.esc_allowed_hosts))
    controller = Controller(reconciler, settings, gate.active,
                            peering_check=None if settings.standalone
                            else (lambda: peering.peering_problem(kube, settings)))
    # Kopf runs on a loop whose default executor (asyncio.to_thread: peering checks, reconciles) counts
    # its calls, so that the exit below can wait for them with a bound.
    executor = WorkerExecutor()
    loop = asyncio.new_event_loop()
    loop.set_default_executor(executor)
    asyncio.set_event_loop(loop)
    # Set by the drain after SIGTERM/SIGINT (with the signal): what stops Kopf.
    stop_flag: asyncio.Future[signal.Signals] = loop.create_future()
    graceful = shutdown.GracefulStop(controller, stop_flag, settings.exit_grace_seconds, release=gate.release)
    registry = kopf.OperatorRegistry()
    registration.register(registry, controller, settings, graceful)
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    log.info("starting: %s, peering=%s priority=%d identity=%s",
             "all namespaces" if settings.clusterwide else ",".join(settings.namespaces),
             "off" if settings.standalone else settings.peering_name, settings.priority, me)
    try:
        _run_kopf(loop, registry, settings, me, stop_flag)
    except BaseException:
        _finish(loop, executor, graceful, settings.exit_grace_seconds, log, failed=True)
        raise
    _finish(loop, executor, graceful, settings.exit_grace_seconds, log, failed=False)
    return 0


def _run_kopf(loop: asyncio.AbstractEventLoop, registry: kopf.OperatorRegistry, settings: OperatorSettings,
              me: str, stop_flag: asyncio.Future[signal.Signals]) -> None:
    """Until ``stop_flag`` is set (by the drain after SIGTERM/SIGINT): Kopf then stops its watches,
    removes this replica's peering keep-alive and runs the cleanup handler (which cancels the worker
    tasks) before returning."""
    kopf.run(
        loop=loop,
        registry=registry,
        settings=registration.kopf_settings(settings),
        standalone=settings.standalone,
        priority=settings.priority,
        peering_name=None if settings.standalone else settings.peering_name,
        identity=me,  # type: ignore[arg-type]  # kopf's Identity is a NewType of str
        liveness_endpoint=settings.liveness_endpoint,
        clusterwide=settings.clusterwide,
        namespaces=settings.namespaces,
        stop_flag=stop_flag,
    )


def _finish(loop: asyncio.AbstractEventLoop, executor: WorkerExecutor, graceful: shutdown.GracefulStop,
            grace: float, log: logging.Logger, *, failed: bool) -> None:
    """End like ``asyncio.run`` does, except that a thread still stuck in a call (a reconcile cannot be
    cancelled) does not keep the process alive: it exits without that thread once ``grace`` seconds
    have passed since the signal (the drain used part of them), at once after a second signal, or
    ``grace`` seconds after Kopf stopped for another reason. ``failed``: called while Kopf's exception
    propagates (logged here, since os._exit skips it)."""
    if not executor.wait_idle(graceful.exit_wait(grace)):
        if graceful.hurried:
            log.error("%d worker thread(s) still busy after a second signal; exiting without them", executor.busy,
                      exc_info=failed)
        else:
            log.error("%d worker thread(s) still busy %gs after the operator stopped (a call without a deadline); "
                      "exiting without them", executor.busy, grace, exc_info=failed)
        logging.shutdown()  # flush the log handlers; os._exit runs no cleanup
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1 if failed else 0)
    try:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


if __name__ == "__main__":
    sys.exit(main())
