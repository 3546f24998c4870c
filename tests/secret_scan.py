"""Session-wide record of the secret values tests configure and of the logs our processes write.

Tests register what they configure (``register_settings``/``register_env``/``register_secret``) and
where the app, loader and operator write their output (``register_log``). ``scan`` looks for every
registered value in every registered log and in the test reports' captured output (root conftest).
A finding names the place and a fingerprint of the value, never the value itself.

Only our own processes' output is scanned: redis-server's and fakesnow's logs stand in for the
remote services' side and are not registered.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# Values shorter than this are too likely to occur by chance ("key-1") to be a meaningful check.
MIN_LENGTH = 8
# What the app's log formatter writes in place of a secret it caught (webhook_app.logging_setup): in our
# own output it means code tried to log a secret and only the backstop saved it.
REDACTION_MARK = "[REDACTED]"
SECRET_ENV_KEYS = ("GONG_API_KEY", "GONG_API_SECRET", "GONG_WEBHOOK_SECRETS", "SNOWFLAKE_PASSWORD",
                   "SNOWFLAKE_PRIVATE_KEY", "REDIS_PASSWORD", "PULUMI_ACCESS_TOKEN")

_lock = threading.Lock()
_secrets: set[str] = set()
_logs: dict[Path, str] = {}
_log_dir: Path | None = None


@dataclass(frozen=True)
class Finding:
    where: str
    fingerprint: str  # sha256 prefix and length of the secret: enough to find it, useless to an attacker

    def __str__(self) -> str:
        return f"{self.where}: secret {self.fingerprint}"


def fingerprint(value: str) -> str:
    return f"sha256:{hashlib.sha256(value.encode()).hexdigest()[:12]}/len={len(value)}"


def variants(value: str) -> list[str]:
    """The value, and for PEM key material each base64 line, so a partial leak of a key is caught."""
    out = [value]
    if "-----BEGIN" in value:
        out += [line.strip() for line in value.splitlines() if line.strip() and not line.startswith("-----")]
    return out


def register_secret(*values: str | None) -> None:
    with _lock:
        for value in values:
            if not value:
                continue
            for part in variants(value):
                if len(part) >= MIN_LENGTH:
                    _secrets.add(part)


def register_env(env: Mapping[str, str]) -> None:
    """Secret-bearing variables of a process environment (comma lists split, URL passwords too)."""
    for key in SECRET_ENV_KEYS:
        raw = env.get(key)
        if raw:
            register_secret(raw, *(p.strip() for p in raw.split(",")) if key == "GONG_WEBHOOK_SECRETS" else ())
    for key in ("REDIS_URL",):
        url = env.get(key)
        if url:
            register_secret(urlsplit(url).password)


def register_settings(settings: Any) -> None:
    """An AppSettings: everything its own redaction treats as secret."""
    register_secret(*settings.secret_values())


def register_log(path: Path, label: str = "") -> Path:
    with _lock:
        _logs[Path(path)] = label or Path(path).name
    return Path(path)


def new_log(prefix: str) -> Path:
    """A fresh, registered log file for a process that would otherwise write nowhere."""
    global _log_dir
    with _lock:
        if _log_dir is None:
            _log_dir = Path(tempfile.mkdtemp(prefix="gong-test-logs-"))
        fd, name = tempfile.mkstemp(prefix=f"{prefix}-", suffix=".log", dir=_log_dir)
    os.close(fd)
    return register_log(Path(name), prefix)


def secrets() -> frozenset[str]:
    with _lock:
        return frozenset(_secrets)


def logs() -> dict[Path, str]:
    with _lock:
        return dict(_logs)


def find_in_text(text: str, where: str, values: Iterable[str] | None = None) -> list[Finding]:
    found = [Finding(where, fingerprint(v)) for v in (secrets() if values is None else values) if v in text]
    if REDACTION_MARK in text:
        found.append(Finding(where, f"redacted by the log formatter ({text.count(REDACTION_MARK)}x)"))
    return found


def scan_logs() -> tuple[list[Finding], int]:
    """Findings in every registered log file, and how many files were read."""
    findings: list[Finding] = []
    read = 0
    values = secrets()
    for path, label in logs().items():
        if not path.exists():
            continue
        read += 1
        findings += find_in_text(path.read_text(errors="replace"), f"{label} ({path})", values)
    return findings, read
