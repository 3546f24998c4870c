"""A small local stand-in for Gong's REST API (the only fake the project allows).

It follows Gong's documented protocol for what the enrichment uses: Basic auth with access
key and secret, ``POST /v2/calls/transcript`` filtered by ``filter.callIds`` with cursor
paging, 404 when nothing matches, and 429 with ``Retry-After`` when a client is over the
company's rate limit (enforced here as a token bucket).
"""

from __future__ import annotations

import base64
import hmac
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class StandInLog:
    requests: list[float] = field(default_factory=list)  # monotonic arrival times of authorised calls
    throttled: list[tuple[float, float]] = field(default_factory=list)  # (time, retry_after)
    unauthorised: int = 0


class GongApiStandIn:
    def __init__(
        self, access_key: str, secret: str, *, rate_per_second: float, burst: int, page_size: int = 100
    ) -> None:
        self._auth = "Basic " + base64.b64encode(f"{access_key}:{secret}".encode()).decode()
        self.rate = rate_per_second
        self.burst = burst
        self.page_size = page_size
        self.log = StandInLog()
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(routes=[Route("/v2/calls/transcript", self._transcript, methods=["POST"])])

    def _take(self) -> float:
        """0 when the call is within the limit, else the seconds until a token is free."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1:
                self._tokens -= 1
                self.log.requests.append(now)
                return 0.0
            wait = (1 - self._tokens) / self.rate
            self.log.throttled.append((now, wait))
            return wait

    async def _transcript(self, request: Request) -> Response:
        if not hmac.compare_digest(request.headers.get("authorization", ""), self._auth):
            self.log.unauthorised += 1
            return _json(401, {"errors": ["Unauthorized"]})
        wait = self._take()
        if wait:
            return _json(429, {"errors": ["Too many requests"]}, {"Retry-After": str(math.ceil(wait))})
        try:
            body = orjson.loads(await request.body())
            call_ids = [str(c) for c in body["filter"]["callIds"]]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return _json(400, {"errors": ["Bad request"]})
        offset = int(body.get("cursor") or 0)
        page = call_ids[offset : offset + self.page_size]
        if not page:
            return _json(404, {"errors": ["No calls found corresponding to the provided filters"]})
        records: dict[str, Any] = {
            "totalRecords": len(call_ids), "currentPageSize": len(page), "currentPageNumber": offset // self.page_size,
        }
        if offset + self.page_size < len(call_ids):
            records["cursor"] = str(offset + self.page_size)
        return _json(200, {
            "requestId": f"standin-{time.monotonic_ns()}",
            "records": records,
            "callTranscripts": [transcript_for(call_id) for call_id in page],
        })

    def start(self, port: int, host: str = "127.0.0.1") -> str:
        config = uvicorn.Config(self.app, host=host, port=port, log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="gong-api-standin", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("Gong API stand-in did not start")
            time.sleep(0.02)
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)


def transcript_for(call_id: str) -> dict[str, Any]:
    return {
        "callId": call_id,
        "transcript": [
            {"speakerId": "1", "topic": "Pricing", "sentences": [
                {"start": 0, "end": 4100, "text": f"Thanks for joining call {call_id}."},
                {"start": 4100, "end": 9000, "text": "Let's talk about pricing."},
            ]},
        ],
    }


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)
