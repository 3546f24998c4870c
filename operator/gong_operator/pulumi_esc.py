"""Read credentials from a Pulumi ESC environment through ESC's REST API.

Flow (Pulumi Cloud REST API, "Open Environment" then "Read Open Environment"):

    POST {apiUrl}/api/esc/environments/{org}/{project}/{env}/open?duration=…  -> {"id": "<session>"}
    GET  {apiUrl}/api/esc/environments/{org}/{project}/{env}/open/{session}   -> {"properties": {...}}

with ``Authorization: token <access token>`` and ``Accept: application/vnd.pulumi+8``. Property values
come wrapped as ``{"value": …, "secret": bool, "trace": …}`` at every level; they are unwrapped. Keys
are taken from ``environmentVariables`` when the environment defines that object (ESC's convention),
else from the top-level string properties. Only this stand-in-tested subset of the API is used.
Values are cached per GongWebhook for ``spec.secrets.refreshInterval``.

Every read has a total deadline (``--esc-deadline-seconds``, default 30 s) on top of httpx's timeout,
which applies to each socket read: a server that keeps sending a byte now and then would otherwise
hold the reconcile's worker thread forever. httpx has no whole-request timeout, so both requests run
on a private event loop under :func:`asyncio.timeout`; cancellation closes the connection, and no
thread is left behind.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import httpx

from gong_operator.spec import PulumiEscSpec


class EscError(Exception):
    def __init__(self, status: int, safe_message: str) -> None:
        super().__init__(safe_message)
        self.status = status
        self.safe_message = safe_message


class EscDeadlineExceeded(EscError):
    """The open + read did not complete within the deadline (the server is slow or trickles bytes)."""

    def __init__(self, deadline: float) -> None:
        super().__init__(0, f"Pulumi ESC API did not answer within the {deadline:g}s deadline")
        self.deadline = deadline


def unwrap(value: Any) -> Any:
    """Turn ESC's Value tree into plain JSON values."""
    if isinstance(value, dict) and "value" in value and set(value) <= {"value", "secret", "unknown", "trace"}:
        return unwrap(value["value"])
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def to_credentials(properties: dict[str, Any]) -> dict[str, bytes]:
    plain = unwrap(properties)
    source = plain.get("environmentVariables") if isinstance(plain.get("environmentVariables"), dict) else plain
    out: dict[str, bytes] = {}
    for key, value in source.items():
        if isinstance(value, str):
            out[key] = value.encode()
        elif isinstance(value, (int, float, bool)):
            out[key] = json.dumps(value).encode()
    return out


def parse_duration(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"([0-9]+)(ms|s|m|h)", text))


# Where the operator may send ESC access tokens unless the platform team says otherwise.
DEFAULT_ALLOWED_HOSTS: tuple[str, ...] = ("api.pulumi.com",)


class EscSource:
    """ESC client with a per-environment cache (keyed by everything that selects the values).

    ``apiUrl`` is chosen by whoever writes the GongWebhook, and the request carries an access token and
    leaves from the operator's network position: only https URLs on ``allowed_hosts`` (the operator's
    ``--esc-allowed-host``, entries ``host`` or ``host:port``) are called; anything else is refused
    before a connection is made. ``verify`` is httpx's TLS verification (the system CA store, which
    ``SSL_CERT_FILE`` replaces); tests pass their stand-in's CA."""

    def __init__(self, *, timeout: float = 10.0, deadline: float = 30.0,
                 clock: Callable[[], float] = time.monotonic,
                 allowed_hosts: tuple[str, ...] = DEFAULT_ALLOWED_HOSTS,
                 verify: ssl.SSLContext | bool = True) -> None:
        self.timeout = timeout  # connect, and each read or write
        self.deadline = deadline  # the whole open + read
        self.clock = clock
        self.allowed_hosts = tuple(h.lower() for h in allowed_hosts)
        self.verify = verify
        self._cache: dict[tuple[str, ...], tuple[float, dict[str, bytes]]] = {}
        self._lock = threading.Lock()

    def refusal(self, api_url: str) -> str | None:
        """Why the token may not be sent to ``api_url`` (names the host, never the token), or None."""
        parts = urllib.parse.urlsplit(api_url)
        if parts.scheme != "https":
            return "spec.secrets.pulumiEsc.apiUrl must be an https URL (the request carries the access token)"
        host = (parts.hostname or "").lower()
        try:
            port = parts.port
        except ValueError:
            return "spec.secrets.pulumiEsc.apiUrl has an invalid port"
        if host in self.allowed_hosts or (port is not None and f"{host}:{port}" in self.allowed_hosts):
            return None
        return (f"spec.secrets.pulumiEsc.apiUrl: host {host} is not one the operator may send its Pulumi ESC token "
                f"to (allowed: {', '.join(self.allowed_hosts) or 'none'}); the platform team adds hosts with "
                f"gong-webhook-operator --esc-allowed-host {host}")

    def read(self, cfg: PulumiEscSpec, token: str, *, max_age: float = 0.0) -> dict[str, bytes]:
        key = (cfg.api_url, cfg.organization, cfg.project, cfg.environment, str(hash(token)))
        now = self.clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit and now - hit[0] < max_age:
                return hit[1]
        values = self._fetch(cfg, token)
        with self._lock:
            self._cache[key] = (now, values)
        return values

    def _fetch(self, cfg: PulumiEscSpec, token: str) -> dict[str, bytes]:
        # Called from a reconcile worker thread, which has no event loop of its own.
        return asyncio.run(self._fetch_within_deadline(cfg, token))

    async def _fetch_within_deadline(self, cfg: PulumiEscSpec, token: str) -> dict[str, bytes]:
        try:
            async with asyncio.timeout(self.deadline):
                return await self._fetch_async(cfg, token)
        except TimeoutError:
            raise EscDeadlineExceeded(self.deadline) from None

    async def _fetch_async(self, cfg: PulumiEscSpec, token: str) -> dict[str, bytes]:
        q = urllib.parse.quote
        base = (f"{cfg.api_url.rstrip('/')}/api/esc/environments/"
                f"{q(cfg.organization, safe='')}/{q(cfg.project, safe='')}/{q(cfg.environment, safe='')}")
        headers = {"Authorization": f"token {token}", "Accept": "application/vnd.pulumi+8",
                   "Content-Type": "application/json"}
        try:
            # No redirects (httpx's default): a 3xx must not carry the token to a host nobody allowed.
            async with httpx.AsyncClient(timeout=self.timeout, verify=self.verify, follow_redirects=False) as http:
                opened = await http.post(f"{base}/open", params={"duration": "2h"}, headers=headers)
                if opened.status_code != 200:
                    raise EscError(opened.status_code, f"open environment returned HTTP {opened.status_code}")
                session = opened.json().get("id")
                if not isinstance(session, str) or not session:
                    raise EscError(502, "open environment returned no session id")
                read = await http.get(f"{base}/open/{q(session, safe='')}", headers=headers)
                if read.status_code != 200:
                    raise EscError(read.status_code, f"read open environment returned HTTP {read.status_code}")
                body = read.json()
        except httpx.HTTPError as e:
            raise EscError(0, f"cannot reach Pulumi ESC API: {type(e).__name__}") from None
        except ValueError:
            raise EscError(502, "Pulumi ESC API returned invalid JSON") from None
        properties = body.get("properties") if isinstance(body, dict) else None
        if not isinstance(properties, dict):
            raise EscError(502, "read open environment returned no properties")
        return to_credentials(properties)
