"""Shared pieces of the benchmarks: the app as a subprocess, payloads, machine info. Ports, waiting and the
redis-server / fakesnow servers are the tests' own (tests/support/)."""

from __future__ import annotations

import os
import platform
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tests.support.gong import GongSigner, call_payload, new_private_key, public_key_b64
from tests.support.net import free_port, port_open
from tests.support.servers import VENV_BIN, stop_process
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_URL = "https://hooks.example.com/webhooks/gong"
WEBHOOK_PATH = "/webhooks/gong"
# The signatures stay valid for the whole run (the app checks exp with 30 s leeway).
TOKEN_TTL_SECONDS = 3 * 3600


def cores() -> int:
    return len(os.sched_getaffinity(0))


def pinned(cmd: Sequence[str], cpus: str | None) -> list[str]:
    """Prefix ``cmd`` with taskset when a CPU list is given and the machine has more than one core."""
    if cpus is None or cores() < 2 or shutil.which("taskset") is None:
        return list(cmd)
    return ["taskset", "-c", cpus, *cmd]


def machine() -> dict[str, Any]:
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = platform.processor()
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        mem_kib = int(next(x for x in meminfo if x.startswith("MemTotal")).split()[1])
    except (OSError, StopIteration, ValueError):
        mem_kib = 0
    load1 = os.getloadavg()[0]
    return {
        "cores": cores(),
        "python": platform.python_version(),
        "cpu": model,
        "mem_gib": round(mem_kib / 1024 / 1024, 1),
        "platform": platform.platform(),
        "loadavg_1m_at_start": round(load1, 2),
    }


@dataclass
class AppServer:
    """The real ``gong-webhook-app`` entry point (or the bare baseline) as a subprocess."""

    env: dict[str, str]
    log_path: Path
    bare: bool = False
    cpus: str | None = None
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AppServer:
        env = {k: v for k, v in os.environ.items() if k.startswith(("PATH", "HOME", "LANG", "LC_", "TMP"))}
        env.update(self.env)
        env["PORT"] = str(self.port)
        env["HOST"] = "127.0.0.1"
        cmd = [sys.executable, "-m", "bench.serve_bare"] if self.bare else [str(VENV_BIN / "gong-webhook-app")]
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(pinned(cmd, self.cpus), env=env, stdout=self.log, stderr=self.log, cwd=ROOT)
        try:
            wait_for(lambda: self.proc is not None and (self.proc.poll() is not None or port_open(self.port)),
                     60, 0.05, what="app start")
        except TimeoutError:
            self.stop()
            raise
        if self.proc.poll() is not None:
            raise RuntimeError(f"app exited at start, see {self.log_path}")
        time.sleep(0.3)  # let every worker process finish its lifespan start
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 30)
        self.log.close()


def app_env(redis_url: str, public_key_b64_text: str, stream: str, workers: int = 1, **extra: str) -> dict[str, str]:
    env = {
        "REDIS_URL": redis_url,
        "REDIS_STREAM": stream,
        "GONG_WEBHOOK_AUTH_MODE": "jwt",
        "GONG_WEBHOOK_PUBLIC_KEYS": public_key_b64_text,
        "GONG_WEBHOOK_PUBLIC_URL": PUBLIC_URL,
        "EVENT_SCOPE": "sales/gong-prod",
        "WORKERS": str(workers),
        "LOG_LEVEL": "INFO",
        "RUN_LOADER_IN_PROCESS": "false",
        "LOADER_METRICS_PORT": "0",
    }
    env.update(extra)
    return env


# ---------------------------------------------------------------- payloads and pre-signed requests


def bench_payload(call_id: str, rng: random.Random) -> dict[str, Any]:
    """A Gong call webhook of about 2 KB: the simulator's record plus the parties, context and
    content blocks a real discovery call carries."""
    doc = call_payload(call_id, rng=rng)
    data = doc["callData"]
    data["parties"] += [
        {"id": "3", "name": "Cleo Champion", "emailAddress": "cleo.champion@customer-example.com",
         "title": "VP Revenue Operations", "affiliation": "External", "methods": ["Invitee", "Attendee"]},
        {"id": "4", "name": "Dan Engineer", "emailAddress": "dan@seller-example.com", "title": "Solutions Engineer",
         "userId": str(rng.randrange(10**17, 10**18)), "affiliation": "Internal", "methods": ["Attendee"]},
    ]
    data["context"][0]["objects"].append(
        {"objectType": "Account", "objectId": "0015g00000AbCdE",
         "fields": [{"name": "Name", "value": "Customer Example Inc."}, {"name": "Industry", "value": "Software"}]}
    )
    data["content"]["topics"] += [{"name": "Security review", "duration": 95}, {"name": "Next steps", "duration": 60}]
    data["content"]["trackers"] += [{"id": "t2", "name": "Pricing objections", "count": 3},
                                    {"id": "t3", "name": "Timeline", "count": 1}]
    data["content"]["brief"] = (
        "Customer wants to consolidate call recording across three sales teams before Q1, asked for SSO, "
        "data residency in the EU and a Snowflake export of every call; pricing per seat was pushed back on."
    )
    data["content"]["keyPoints"] = [
        {"text": "EU data residency is a hard requirement"},
        {"text": "Procurement needs the security questionnaire by Friday"},
        {"text": "Champion will set up a call with the CFO"},
    ]
    return doc


def _sign_chunk(args: tuple[bytes, int, int, int]) -> list[str]:
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    key_der, start, count, seed = args
    key = load_der_private_key(key_der, password=None)
    signer = GongSigner(key, PUBLIC_URL, ttl_seconds=TOKEN_TTL_SECONDS)  # type: ignore[arg-type]
    rng = random.Random(seed + start)
    lines = []
    for i in range(start, start + count):
        body = orjson.dumps(bench_payload(f"{seed}{i:09d}", rng))
        lines.append(f"{signer.token(body)}\t{body.decode()}")
    return lines


@dataclass
class RequestPool:
    """Pre-signed unique requests, one per line: ``<jwt>\\t<body>``. Signing happens here, never
    in the measured path. Every line has its own call id."""

    path: Path
    count: int
    public_key_b64: str
    body_bytes: int


def make_request_pool(path: Path, count: int, seed: int | None = None) -> RequestPool:
    from cryptography.hazmat.primitives import serialization

    key = new_private_key()
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    seed = seed if seed is not None else random.randrange(10**8, 10**9)
    workers = max(1, cores())
    per = -(-count // workers)
    chunks = [(der, start, min(per, count - start), seed) for start in range(0, count, per)]
    with ProcessPoolExecutor(workers) as pool, open(path, "w") as out:
        for lines in pool.map(_sign_chunk, chunks):
            out.write("\n".join(lines) + "\n")
    first = path.open().readline()
    return RequestPool(path, count, public_key_b64(key), len(first.split("\t", 1)[1].rstrip("\n")))


def read_pool(path: Path, start: int = 0, count: int | None = None) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    with open(path) as f:
        for i, line in enumerate(f):
            if i < start:
                continue
            if count is not None and len(out) >= count:
                break
            token, body = line.rstrip("\n").split("\t", 1)
            out.append((token, body.encode()))
    return out


def percentile(values: Sequence[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]
