"""Load generators.

* ``run_wrk``: closed-loop maximum throughput with wrk (Debian package) and ``pool.lua``, which
  replays the pre-signed request pool so every request carries its own call id and a valid
  signature. It counts responses per status, so duplicates or errors never pass as throughput.
* ``python -m bench.loadgen``: an open-loop generator at a fixed offered rate (wrk cannot do fixed
  rates). Raw asyncio protocol on uvloop, keep-alive connections opened on demand. Request ``i`` is
  due at ``t0 + i/rate`` and its latency is measured from that due time, so a slow server cannot
  slow the generator down and hide its own queueing (no coordinated omission). Run pinned to the
  other core (taskset) so it does not share a core with the server under test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import time
from collections import deque
from pathlib import Path
from typing import Any

LUA = Path(__file__).with_name("pool.lua")


def ensure_wrk() -> str:
    exe = shutil.which("wrk")
    if exe is None:
        raise RuntimeError("wrk is not installed (scripts/bench installs it with apt-get)")
    return exe


def run_wrk(port: int, pool_path: Path, offset: int, duration: float, connections: int = 64,
            cpus: str | None = None) -> dict[str, Any]:
    from bench.common import pinned

    cmd = pinned([ensure_wrk(), "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "5s",
                  "-s", str(LUA), f"http://127.0.0.1:{port}/webhooks/gong", "--", str(pool_path), str(offset)], cpus)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=duration + 120).stdout
    match = re.search(r"^BENCH_JSON (.*)$", out, re.M)
    if not match:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    result: dict[str, Any] = json.loads(match.group(1))
    result["raw"] = out
    return result


# ---------------------------------------------------------------- open loop


class _Conn(asyncio.Protocol):
    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).lower()
        m = re.search(rb"\r\ncontent-length:\s*(\d+)", head)
        length = int(m.group(1)) if m else 0
        if len(self.buf) < end + 4 + length:
            return
        status = int(self.buf[9:12])
        del self.buf[: end + 4 + length]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed"))


class _Pool:
    def __init__(self, port: int, max_conns: int) -> None:
        self.port = port
        self.max = max_conns
        self.idle: deque[_Conn] = deque()
        self.total = 0
        self.freed = asyncio.Condition()

    async def get(self) -> _Conn:
        while True:
            while self.idle:
                conn = self.idle.pop()
                if not conn.closed:
                    return conn
                self.total -= 1
            if self.total < self.max:
                self.total += 1
                try:
                    _, proto = await asyncio.get_running_loop().create_connection(
                        lambda: _Conn(self), "127.0.0.1", self.port)
                except OSError:
                    self.total -= 1
                    raise
                return proto
            async with self.freed:
                await self.freed.wait()

    async def put(self, conn: _Conn) -> None:
        if conn.closed:
            self.total -= 1
        else:
            self.idle.append(conn)
        async with self.freed:
            self.freed.notify()


async def open_loop(port: int, requests: list[bytes], rate: float, request_timeout: float = 10.0,
                    max_conns: int = 512) -> list[tuple[float, float, int, float]]:
    """Send ``requests`` at ``rate`` per second; per request (due offset s, latency s, status, wall time
    of the response). Status 0 means a connection error or timeout."""
    pool = _Pool(port, max_conns)
    results: list[tuple[float, float, int, float]] = [(0.0, 0.0, 0, 0.0)] * len(requests)
    loop = asyncio.get_running_loop()
    clock = time.perf_counter  # uvloop's loop.time() has millisecond resolution
    t0 = clock() + 0.05

    async def one(i: int, due: float, raw: bytes) -> None:
        status = 0
        conn: _Conn | None = None
        try:
            conn = await pool.get()
            conn.waiter = loop.create_future()
            assert conn.transport is not None
            conn.transport.write(raw)
            status = await asyncio.wait_for(conn.waiter, request_timeout)
        except (OSError, ConnectionError, TimeoutError):
            if conn is not None and conn.transport is not None:
                conn.transport.close()
                conn.closed = True
        done = clock()
        results[i] = (due - t0, done - due, status, time.time())
        if conn is not None:
            conn.waiter = None
            await pool.put(conn)

    tasks = []
    interval = 1.0 / rate
    i = 0
    n = len(requests)
    while i < n:
        now = clock()
        while i < n and t0 + i * interval <= now:
            tasks.append(asyncio.ensure_future(one(i, t0 + i * interval, requests[i])))
            i += 1
        if i < n:
            await asyncio.sleep(max(0.0, t0 + i * interval - clock()))
    await asyncio.gather(*tasks)
    return results


def build_requests(pool_path: Path, start: int, count: int, port: int) -> list[bytes]:
    from bench.common import read_pool

    out = []
    for token, body in read_pool(pool_path, start, count):
        head = (f"POST /webhooks/gong HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        out.append(head.encode() + body)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="open-loop fixed-rate HTTP load generator")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pool", type=Path, required=True)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    count = int(args.rate * args.duration)
    requests = build_requests(args.pool, args.offset, count, args.port)
    if len(requests) < count:
        raise SystemExit(f"pool has only {len(requests)} requests from offset {args.offset}, need {count}")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    started = time.monotonic()
    results = asyncio.run(open_loop(args.port, requests, args.rate))
    elapsed = time.monotonic() - started
    args.out.write_text(json.dumps({"rate": args.rate, "elapsed_s": elapsed, "results": results}))


if __name__ == "__main__":
    main()
