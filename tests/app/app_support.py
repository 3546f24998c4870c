"""Process and server helpers for the webhook app tests (real redis-server, fakesnow, app, loader)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import redis
import snowflake.connector
import uvicorn

from tests import secret_scan
from webhook_app import http_limits

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def wait_port(port: int, timeout: float = 20.0, host: str = "127.0.0.1") -> None:
    def up() -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False

    wait_for(up, timeout, 0.05, f"port {port}")


class RedisServer:
    """A real redis-server with AOF on and fsync on every write (the durable setting)."""

    def __init__(self, workdir: Path, password: str | None = None) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        args = [
            exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(workdir),
            "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
            "--logfile", str(workdir / "redis.log"),
        ]
        if password:
            args += ["--requirepass", password]
            secret_scan.register_secret(password)
        self.password = password
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, password=self.password)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class FakesnowServer:
    """``host``: the address to listen on (the real node's pods reach the host at its bridge address)."""

    def __init__(self, workdir: Path, host: str = "127.0.0.1") -> None:
        self.port = free_port()
        self.host = host
        self.log = open(workdir / "fakesnow.log", "wb")
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "fakesnow"), "-s", "-p", str(self.port), "--host", host], stdout=self.log,
            stderr=subprocess.STDOUT, cwd=workdir,
        )
        wait_port(self.port, 60, host)

    def connect(self, database: str = "SOPHIA_AI", schema: str | None = None) -> Any:
        return snowflake.connector.connect(
            host=self.host, port=self.port, protocol="http", account="test", user="test", password="test",
            database=database, schema=schema,
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class ThreadedServer:
    """Runs an ASGI app under uvicorn in a background thread (real HTTP, real lifespan)."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        # The same HTTP protocol as the console script (webhook_app/cli.py), head-size cap included.
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, access_log=False,
                                lifespan="on", http=http_limits.PROTOCOL)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, 20, 0.02, "app start")
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


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


class TcpProxy:
    """Forwards a local port to a target port; `down()` refuses and cuts connections (a network outage)."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target = target_port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.up()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        self.writers.update({writer, up_writer})

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                w.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers.difference_update({writer, up_writer})

    async def _up(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _down(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for w in list(self.writers):
            w.transport.abort()
        self.writers.clear()

    def up(self) -> None:
        self._call(self._up())

    def down(self) -> None:
        self._call(self._down())

    def close(self) -> None:
        self.down()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def wait_rows(count: Callable[[Any], int], settings: Any, n: int, timeout: float = 15) -> None:
    wait_for(lambda: count(settings) >= n, timeout, 0.2, f"{n} rows in Snowflake")
