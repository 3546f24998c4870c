"""A small local stand-in for Gong's REST API (the only fake the project allows).

It follows Gong's documented protocol for what the enrichment uses: Basic auth with access
key and secret; ``POST /v2/calls/transcript`` and ``POST /v2/calls/extensive`` filtered by
``filter.callIds`` with cursor paging (``records.cursor``), the extensive answer shaped by
``contentSelector.exposedFields``; 404 when nothing matches; and 429 with ``Retry-After`` when a
client is over the company's limits: the per-second rate (a token bucket here) and, optionally,
the daily quota (``Retry-After`` then counts the seconds until the next day starts).
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

TRANSCRIPT_PATH = "/v2/calls/transcript"
EXTENSIVE_PATH = "/v2/calls/extensive"
DAY_SECONDS = 86_400
# Credentials of the stand-in (Basic auth) that the enrichment tests configure the app with.
GONG_ACCESS_KEY = "gong-access-key-1234"
GONG_ACCESS_SECRET = "gong-access-secret-5678"


@dataclass
class StandInLog:
    requests: list[float] = field(default_factory=list)  # monotonic arrival times of authorised calls
    endpoints: list[str] = field(default_factory=list)  # path of each entry in `requests`
    bodies: list[dict[str, Any]] = field(default_factory=list)  # parsed body of each entry in `requests`
    throttled: list[tuple[float, float]] = field(default_factory=list)  # (time, retry_after)
    over_daily_quota: int = 0  # 429s because the day's quota was spent (also in `throttled`)
    unauthorised: int = 0


class GongApiStandIn:
    def __init__(
        self, access_key: str, secret: str, *, rate_per_second: float, burst: int, page_size: int = 100,
        daily_limit: int | None = None, day_start_seconds: int = 0,
    ) -> None:
        self._auth = "Basic " + base64.b64encode(f"{access_key}:{secret}".encode()).decode()
        self.rate = rate_per_second
        self.burst = burst
        self.page_size = page_size
        self.daily_limit = daily_limit
        self.day_start_seconds = day_start_seconds
        self.log = StandInLog()
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._day = -1
        self._used_today = 0
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(routes=[
            Route(TRANSCRIPT_PATH, self._transcript, methods=["POST"]),
            Route(EXTENSIVE_PATH, self._extensive, methods=["POST"]),
        ])

    def _over_daily_quota(self) -> float:
        """0 while today's quota lasts, else the seconds until the next day starts (lock held)."""
        if self.daily_limit is None:
            return 0.0
        since_start = time.time() - self.day_start_seconds
        day = math.floor(since_start / DAY_SECONDS)
        if day != self._day:
            self._day, self._used_today = day, 0
        if self._used_today < self.daily_limit:
            return 0.0
        return (day + 1) * DAY_SECONDS - since_start

    def _take(self, path: str) -> float:
        """0 when the call is within the limits, else the seconds to wait (the Retry-After)."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if wait := self._over_daily_quota():
                self.log.over_daily_quota += 1
            elif self._tokens >= 1:
                self._tokens -= 1
                self._used_today += 1
                self.log.requests.append(now)
                self.log.endpoints.append(path)
                return 0.0
            else:
                wait = (1 - self._tokens) / self.rate
            self.log.throttled.append((now, wait))
            return wait

    async def _admit(self, request: Request, path: str) -> tuple[dict[str, Any], list[str]] | Response:
        """The parsed body and its call ids, or the error answer Gong would give."""
        if not hmac.compare_digest(request.headers.get("authorization", ""), self._auth):
            self.log.unauthorised += 1
            return _json(401, {"errors": ["Unauthorized"]})
        wait = self._take(path)
        if wait:
            return _json(429, {"errors": ["Too many requests"]}, {"Retry-After": str(math.ceil(wait))})
        try:
            body = orjson.loads(await request.body())
            call_ids = [str(c) for c in body["filter"]["callIds"]]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return _json(400, {"errors": ["Bad request"]})
        self.log.bodies.append(body)
        return body, call_ids

    def _page(self, body: dict[str, Any], call_ids: list[str]) -> tuple[list[str], dict[str, Any]] | Response:
        offset = int(body.get("cursor") or 0)
        page = call_ids[offset : offset + self.page_size]
        if not page:
            return _json(404, {"errors": ["No calls found corresponding to the provided filters"]})
        records: dict[str, Any] = {
            "totalRecords": len(call_ids), "currentPageSize": len(page), "currentPageNumber": offset // self.page_size,
        }
        if offset + self.page_size < len(call_ids):
            records["cursor"] = str(offset + self.page_size)
        return page, records

    async def _transcript(self, request: Request) -> Response:
        admitted = await self._admit(request, TRANSCRIPT_PATH)
        if isinstance(admitted, Response):
            return admitted
        paged = self._page(*admitted)
        if isinstance(paged, Response):
            return paged
        page, records = paged
        return _json(200, {
            "requestId": f"standin-{time.monotonic_ns()}",
            "records": records,
            "callTranscripts": [transcript_for(call_id) for call_id in page],
        })

    async def _extensive(self, request: Request) -> Response:
        admitted = await self._admit(request, EXTENSIVE_PATH)
        if isinstance(admitted, Response):
            return admitted
        body, call_ids = admitted
        paged = self._page(body, call_ids)
        if isinstance(paged, Response):
            return paged
        page, records = paged
        selector = _obj(body, "contentSelector")
        return _json(200, {
            "requestId": f"standin-{time.monotonic_ns()}",
            "records": records,
            "calls": [extensive_call_for(call_id, selector) for call_id in page],
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


def extensive_call_for(call_id: str, selector: dict[str, Any]) -> dict[str, Any]:
    """One call object as /v2/calls/extensive returns it: metaData always, the rest only when
    ``contentSelector.exposedFields`` asks for it (as Gong does)."""
    exposed = _obj(selector, "exposedFields")
    content_sel, interaction_sel = _obj(exposed, "content"), _obj(exposed, "interaction")
    call: dict[str, Any] = {"metaData": {
        "id": call_id, "url": f"https://app.gong.io/call?id={call_id}", "title": f"Discovery call {call_id[-4:]}",
        "scheduled": "2026-11-02T16:00:00Z", "started": "2026-11-02T16:01:00Z", "duration": 1800,
        "primaryUserId": "234599484848423", "direction": "Conference", "system": "Zoom", "scope": "External",
        "media": "Video", "language": "eng", "workspaceId": "623457276584334", "isPrivate": False,
    }}
    if exposed.get("parties"):
        call["parties"] = [
            {"id": "1", "name": "Ada Seller", "emailAddress": "ada@example.com", "affiliation": "Internal",
             "userId": "234599484848423", "speakerId": "1"},
            {"id": "2", "name": "Bo Buyer", "emailAddress": "bo@customer.example", "affiliation": "External",
             "speakerId": "2"},
        ]
    if selector.get("context") in ("Basic", "Extended"):
        call["context"] = [{"system": "Salesforce", "objects": [{"objectType": "Opportunity", "objectId": "006X"}]}]
    content: dict[str, Any] = {}
    if content_sel.get("topics"):
        content["topics"] = [{"name": "Pricing", "duration": 320}, {"name": "Next Steps", "duration": 95}]
    if content_sel.get("trackers"):
        content["trackers"] = [{"id": "t1", "name": "Competitors", "count": 2, "type": "Keyword"}]
    if content_sel.get("brief"):
        content["brief"] = f"Call {call_id}: pricing discussed, follow-up agreed."
    if content:
        call["content"] = content
    if interaction_sel.get("speakers"):
        call["interaction"] = {"speakers": [{"id": "1", "userId": "234599484848423", "talkTime": 900.5}]}
    if _obj(exposed, "collaboration").get("publicComments"):
        call["collaboration"] = {"publicComments": []}
    if exposed.get("media"):
        call["media"] = {"audioUrl": f"https://media.example/{call_id}.mp3"}
    return call


def _obj(parent: dict[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)
