"""Real local servers for the app's tests and the benchmarks: redis-server, fakesnow, an ASGI app under
uvicorn in a thread, and a TCP proxy that can cut the network. The client libraries are imported where
they are used, so that importing this module stays cheap (bench/common.py is imported by every load
generator process)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests import secret_scan
from tests.support.net import free_port, wait_port
from tests.support.waiting import wait_for

if TYPE_CHECKING:
    import redis

VENV_BIN = Path(sys.executable).parent


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it is still running after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class RedisServer:
    """A real redis-server with AOF on and fsync on every write (the durable setting the app is deployed with)."""

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
        import redis

        return redis.Redis.from_url(self.url, password=self.password)

    def stop(self) -> None:
        stop_process(self.proc)


class FakesnowServer:
    """The local Snowflake stand-in (``fakesnow -s``), reached by the real connector over http.

    ``host``: the address to listen on (the real node's pods reach the host at its bridge address).
    ``create_database``: a database to create once the server is up (fakesnow starts with none)."""

    def __init__(self, workdir: Path, host: str = "127.0.0.1", create_database: str | None = None,
                 netns: str | None = None, port: int | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host = host
        self.log = open(workdir / "fakesnow.log", "wb")
        # ``netns``: run inside that network namespace (the devcluster's stand-in network, where the
        # real node's pods reach it the way they reach Snowflake: routed off the node).
        prefix = ["ip", "netns", "exec", netns] if netns else []
        self.proc = subprocess.Popen(
            [*prefix, str(VENV_BIN / "fakesnow"), "-s", "-p", str(self.port), "--host", host], stdout=self.log,
            stderr=subprocess.STDOUT, cwd=workdir,
        )
        wait_port(self.port, 60, host)
        if create_database:
            conn = self.connect(database=None)
            conn.cursor().execute(f"CREATE DATABASE IF NOT EXISTS {create_database}")
            conn.close()

    def connect(self, database: str | None = "SOPHIA_AI", schema: str | None = None) -> Any:
        import snowflake.connector  # a slow import: only where a connection is made

        return snowflake.connector.connect(
            host=self.host, port=self.port, protocol="http", account="test", user="test", password="test",
            database=database, schema=schema,
        )

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


class ThreadedServer:
    """Runs an ASGI app under uvicorn in a background thread (real HTTP, real lifespan)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        from webhook_app.ingest import http_limits

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
