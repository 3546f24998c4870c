"""Profile the full ingest path under wrk load: ``python -m bench.profile_ingest [--seconds N]``.

Runs the real ``gong-webhook-app`` entry point under pyinstrument (wall-clock sampling of the event
loop thread) pinned to core 0, drives it with wrk on core 1 with pre-signed unique requests, stops
it with SIGINT and writes the pyinstrument text report into a temp directory (path printed)."""

from __future__ import annotations

import argparse
import signal
import tempfile
import uuid
from pathlib import Path

from bench import common
from bench.loadgen import run_wrk
from bench.run import QUICK, _pool
from tests.support.net import wait_port
from tests.support.servers import VENV_BIN, RedisServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="gong-profile-"))
    redis = RedisServer(workdir / "redis")
    pool = _pool(QUICK, workdir)
    text_out = workdir / "profile_ingest.txt"
    env = common.app_env(redis.url, pool.public_key_b64, f"bench:profile:{uuid.uuid4().hex[:8]}")
    server = common.AppServer(env, workdir / "app.log", cpus="0")
    # Same process as scripts/bench measures, wrapped by pyinstrument.
    server_cmd = [str(VENV_BIN / "pyinstrument"), "-r", "text", "-o", str(text_out),
                  str(VENV_BIN / "gong-webhook-app")]
    try:
        start_with(server, server_cmd)
        res = run_wrk(server.port, pool.path, 0, args.seconds, 64, "1")
        print({k: v for k, v in res.items() if k != "raw"})
    finally:
        assert server.proc is not None
        server.proc.send_signal(signal.SIGINT)
        server.proc.wait(60)
        redis.stop()
    print(f"profile: {text_out} (log {workdir})")


def start_with(server: common.AppServer, cmd: list[str]) -> None:
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k.startswith(("PATH", "HOME", "LANG", "LC_", "TMP"))}
    env.update(server.env)
    env["PORT"] = str(server.port)
    env["HOST"] = "127.0.0.1"
    server.log = open(server.log_path, "ab")
    server.proc = subprocess.Popen(common.pinned(cmd, server.cpus), env=env, stdout=server.log,
                                   stderr=server.log, cwd=common.ROOT)
    wait_port(server.port, 60)


if __name__ == "__main__":
    main()
