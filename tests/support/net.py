"""Local ports: a free one, and whether (or when) something listens on one."""

from __future__ import annotations

import socket

from tests.support.waiting import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_port(port: int, timeout: float = 20.0, host: str = "127.0.0.1") -> None:
    wait_for(lambda: port_open(port, host), timeout, 0.05, f"port {port}")
