"""The app's metrics on a port of their own (``METRICS_PORT``; 0 keeps them on the main port only).

A NetworkPolicy can only tell ports apart, not paths: with ``/metrics`` on the webhook port, whoever
may post webhooks (the ingress controller) may also scrape, and whoever may scrape may post. A second
listener lets the policy admit the monitoring namespaces to this port only.

Deliberately tiny: GET ``/metrics`` answers the registry, anything else 404, one request per
connection, a bounded request head and read time. It binds with ``SO_REUSEPORT`` because with
``WORKERS`` > 1 every worker process builds its own app (and registry) and binds the same port, as the
kernel then spreads scrapes over them, which is what the main port does too.
"""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from webhook_app import contract

_MAX_HEAD = 8192
_READ_SECONDS = 5.0


def _response(status: str, body: bytes, content_type: str) -> bytes:
    head = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n")
    return head.encode() + body


async def _serve(registry: CollectorRegistry, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        async with asyncio.timeout(_READ_SECONDS):
            head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_HEAD:
            raise ValueError("request head too large")
        method, _, rest = head.partition(b" ")
        path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
        if method in (b"GET", b"HEAD") and path == contract.METRICS_PATH.encode():
            body = generate_latest(registry)
            out = _response("200 OK", body, CONTENT_TYPE_LATEST)
            writer.write(out if method == b"GET" else out[: len(out) - len(body)])
        else:
            writer.write(_response("404 Not Found", b'{"error": "not_found"}', "application/json"))
        await writer.drain()
    except (TimeoutError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def start(host: str, port: int, registry: CollectorRegistry) -> asyncio.Server:
    """Listen on ``host:port`` until the returned server is closed."""
    return await asyncio.start_server(lambda r, w: _serve(registry, r, w), host, port, reuse_port=True,
                                      limit=_MAX_HEAD)
