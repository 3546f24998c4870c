"""Console entry point ``gong-webhook-operator``: runs the Kopf operator.

    gong-webhook-operator --all-namespaces                 # cluster-wide, with peering
    gong-webhook-operator --namespace team-a --namespace team-b
    gong-webhook-operator --all-namespaces --standalone    # development: no peering object needed
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import socket
import sys

import kopf
from prometheus_client import start_http_server

from gong_operator import handlers
from gong_operator.kube import Kube, load_api_client
from gong_operator.pulumi_esc import EscSource
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
                   help="peering priority; default: random, so replicas never tie (a tie pauses all of them)")
    p.add_argument("--liveness", default="http://0.0.0.0:8081/healthz", help="liveness endpoint URL ('' = off)")
    p.add_argument("--metrics-port", type=int, default=8080, help="Prometheus metrics port (0 = off)")
    p.add_argument("--resync-seconds", type=float, default=60.0, help="periodic full reconcile interval")
    p.add_argument("--workers", type=int, default=2, help="concurrent reconciles")
    p.add_argument("--stuck-reconcile-seconds", type=float, default=300.0,
                   help="liveness fails while one reconcile has run longer than this (a hung call)")
    p.add_argument("--esc-deadline-seconds", type=float, default=30.0,
                   help="total deadline of one Pulumi ESC read; past it SecretsSynced=False, PulumiEscTimeout")
    p.add_argument("--log-format", choices=["json", "plain", "full"], default="json",
                   help="log line format: json (one object per line), plain or full")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging, including Kopf's per-event lines")
    return p


def parse_args(argv: list[str] | None) -> OperatorSettings:
    a = build_parser().parse_args(argv)
    priority = a.priority if a.priority is not None else 1 + secrets.randbelow(1_000_000)
    return OperatorSettings(
        namespaces=tuple(a.namespaces), standalone=a.standalone, peering_name=a.peering, priority=priority,
        liveness_endpoint=a.liveness or None, metrics_port=a.metrics_port, resync_seconds=a.resync_seconds,
        workers=a.workers, stuck_reconcile_seconds=a.stuck_reconcile_seconds,
        esc_deadline_seconds=a.esc_deadline_seconds, log_format=a.log_format, verbose=a.verbose,
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
    gate = handlers.PeeringGate(kube, settings, me)
    reconciler = Reconciler(kube, esc=EscSource(deadline=settings.esc_deadline_seconds))
    controller = handlers.Controller(reconciler, settings, gate.active)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, controller, settings)
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    log.info("starting: %s, peering=%s priority=%d identity=%s",
             "all namespaces" if settings.clusterwide else ",".join(settings.namespaces),
             "off" if settings.standalone else settings.peering_name, settings.priority, me)
    kopf.run(
        registry=registry,
        settings=handlers.kopf_settings(settings),
        standalone=settings.standalone,
        priority=settings.priority,
        peering_name=None if settings.standalone else settings.peering_name,
        identity=me,  # type: ignore[arg-type]  # kopf's Identity is a NewType of str
        liveness_endpoint=settings.liveness_endpoint,
        clusterwide=settings.clusterwide,
        namespaces=settings.namespaces,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
