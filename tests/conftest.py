"""Shared fixtures: the real local control plane from scripts/devcluster."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import secret_scan
from tests.support.cluster import DEVCLUSTER, Cluster

# The app fixtures (redis-server, fakesnow, app/loader processes) serve tests/app and tests/faults.
pytest_plugins = ("tests.app.fixtures",)

ROOT = Path(__file__).resolve().parent.parent


def _cluster_env() -> tuple[Path, Path]:
    out = subprocess.run([str(DEVCLUSTER), "env"], capture_output=True, text=True, check=True).stdout
    kubeconfig = Path(re.search(r"export KUBECONFIG=(\S+)", out).group(1))  # type: ignore[union-attr]
    bin_dir = Path(re.search(r'export PATH="([^:"]+):', out).group(1))  # type: ignore[union-attr]
    return kubeconfig, bin_dir


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    was_up = subprocess.run([str(DEVCLUSTER), "status"], capture_output=True).returncode == 0
    # Progress of a first build goes to the terminal (stderr is not captured).
    subprocess.run([str(DEVCLUSTER), "up"], check=True, stdout=subprocess.DEVNULL)
    kubeconfig, bin_dir = _cluster_env()
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), PATH=f"{bin_dir}:{os.environ['PATH']}")
    yield Cluster(kubeconfig=kubeconfig, bin_dir=bin_dir, env=env)
    # Leave a cluster the developer started running; stop the one this session started.
    if not was_up and os.environ.get("KEEP_DEVCLUSTER") != "1":
        subprocess.run([str(DEVCLUSTER), "down"], check=False)


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace. When the test also uses the `operator` fixture, the namespace gets the
    operator's per-namespace secrets-writer RoleBinding, as a platform team would add it."""
    base = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    name = f"t-{base}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    if "operator" in request.fixturenames:
        cluster.grant_operator_secret_writes(name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


# The operator fixtures live here so that tests/cluster, tests/security and tests/faults share the one
# operator process of the session; their helpers are in tests/support/cluster.py.


@pytest.fixture(scope="session")
def gw_crd(cluster: Cluster) -> None:
    """The GongWebhook CRD (and Kopf's peering CRDs + object), installed as admin."""
    cluster.kubectl("apply", "-f", str(ROOT / "crds" / "gongwebhooks.yaml"))
    cluster.kubectl("apply", "-f", str(ROOT / "config" / "peering" / "crds.yaml"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    "crd/gongwebhooks.gong.sophia-ai.com", "crd/clusterkopfpeerings.kopf.dev")
    cluster.kubectl("apply", "-f", str(ROOT / "config" / "peering" / "peering.yaml"))


@pytest.fixture(scope="session")
def operator(cluster: Cluster, gw_crd: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One `gong-webhook-operator` process for the session, running as its ServiceAccount with the
    RBAC from config/rbac (see tests/support/cluster.py)."""
    from tests.support.cluster import RESYNC_SECONDS
    from tests.support.operator_process import SA_NAMESPACE, OperatorProcess, sa_kubeconfig

    cluster.kubectl("create", "namespace", SA_NAMESPACE, check=False)
    cluster.kubectl("apply", "-k", str(ROOT / "config" / "rbac"))
    workdir = tmp_path_factory.mktemp("operator")
    kubeconfig = sa_kubeconfig(cluster, workdir / "kubeconfig")
    op = OperatorProcess(kubeconfig, workdir, RESYNC_SECONDS, name="test-operator",
                         on_new_log=lambda log: secret_scan.register_log(log, "operator"))
    op.start()
    yield op
    op.stop()


# ---------------------------------------------------------------------------------- secret scan
# Every registered secret value (tests/secret_scan.py) is looked for in every test's captured output,
# in the in-process log records of the app and the operator (written unredacted, so code that logs a
# secret is caught even where the app's redaction would have hidden it) and, at the end of the
# session, in every log file the app, loader and operator processes wrote.

_report_findings: list[secret_scan.Finding] = []
SCANNED_LOGGERS = ("webhook_app", "gong_operator")


_scanned = {"sections": 0, "logs": 0}


# Wall time per suite (tests/<suite>/...), setup + call + teardown, so the README's durations can be
# re-measured from any run's summary. Session fixtures count towards the first suite that needs them.
_suite_seconds: dict[str, float] = {}
_suite_tests: dict[str, int] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    parts = report.nodeid.split("/")
    suite = parts[1] if len(parts) > 2 and parts[0] == "tests" else "(other)"
    _suite_seconds[suite] = _suite_seconds.get(suite, 0.0) + report.duration
    if report.when == "call":
        _suite_tests[suite] = _suite_tests.get(suite, 0) + 1
    for name, content in report.sections:
        _scanned["sections"] += 1
        _report_findings.extend(secret_scan.find_in_text(content, f"{report.nodeid} [{name}]"))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _suite_seconds:
        terminalreporter.write_line("time per suite (setup + call + teardown):")
        for suite, seconds in sorted(_suite_seconds.items()):
            terminalreporter.write_line(f"  tests/{suite:<13} {_suite_tests.get(suite, 0):>4} tests  {seconds:7.1f} s")
    terminalreporter.write_line(
        f"secret scan: {len(secret_scan.secrets())} configured secret values looked for in "
        f"{_scanned['logs']} process logs and {_scanned['sections']} captured-output sections")


@pytest.fixture(scope="session", autouse=True)
def _session_secret_scan() -> Iterator[None]:
    import yaml

    from webhook_app.logging_setup import JsonFormatter

    # The repository's sample credentials are applied by cluster tests (config/samples).
    sample = yaml.safe_load((ROOT / "config" / "samples" / "source-secret.yaml").read_text())
    secret_scan.register_env(sample["stringData"])
    path = secret_scan.new_log("in-process")
    handler = logging.FileHandler(path)
    handler.setFormatter(JsonFormatter())  # no secrets given: nothing is redacted
    handler.setLevel(logging.DEBUG)
    loggers = [logging.getLogger(n) for n in SCANNED_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        if lg.getEffectiveLevel() > logging.INFO:
            lg.setLevel(logging.INFO)
    yield
    for lg, level in zip(loggers, levels, strict=True):
        lg.removeHandler(handler)
        lg.setLevel(level)
    handler.close()
    findings, _scanned["logs"] = secret_scan.scan_logs()
    findings += _report_findings
    if findings:
        pytest.fail("configured secret values in the output of this run:\n" + "\n".join(map(str, findings)),
                    pytrace=False)
