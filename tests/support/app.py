"""The webhook app as the tests run it: its console scripts as subprocesses, the admin's ``migrate``
step, and waiting for rows to land in Snowflake."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from tests import secret_scan
from tests.support.servers import VENV_BIN
from tests.support.waiting import wait_for
from webhook_app.settings import AppSettings
from webhook_app.snowflake_sink import SnowflakeSink


class AppProcess:
    """`gong-webhook-app` or `gong-webhook-loader` as a real subprocess with its own environment.

    Every instance is remembered so a failing test cannot leave a process behind (see conftest)."""

    started: ClassVar[list[AppProcess]] = []

    def __init__(self, script: str, env: dict[str, str], args: list[str] | None = None, log: Path | None = None):
        full_env = {k: v for k, v in os.environ.items() if k.startswith(("PATH", "HOME", "LANG", "LC_", "TMP"))}
        full_env.update(env)
        # Every run's output is kept and scanned for the configured secrets at the end of the session.
        secret_scan.register_env(env)
        self.log_path = secret_scan.register_log(log, script) if log else secret_scan.new_log(script)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(VENV_BIN / script), *(args or [])], env=full_env, stdout=self.log, stderr=self.log,
        )
        AppProcess.started.append(self)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        return int(self.proc.returncode)

    def output(self) -> str:
        return self.log_path.read_text()


def migrate(settings: AppSettings) -> list[str]:
    """What `gong-webhook-loader migrate` does (the admin's step): the loader creates no tables."""
    sink = SnowflakeSink(settings)
    try:
        return sink.migrate()
    finally:
        sink.close()


def wait_rows(count: Callable[[Any], int], settings: Any, n: int, timeout: float = 15) -> None:
    wait_for(lambda: count(settings) >= n, timeout, 0.2, f"{n} rows in Snowflake")
