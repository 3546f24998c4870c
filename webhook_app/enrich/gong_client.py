"""Client for the parts of Gong's REST API the enrichment uses (transcripts, extensive call data)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from webhook_app.enrich.rate_limit import DailyBudgetExhausted, RedisTokenBucket
from webhook_app.metrics import Metrics

log = logging.getLogger("webhook_app.gong_client")  # the name it logged under before the regroup

TRANSCRIPT_PATH = "/v2/calls/transcript"
EXTENSIVE_PATH = "/v2/calls/extensive"
MAX_RETRY_AFTER = 300.0

# What /v2/calls/extensive adds to each call's metaData. Media URLs are left out on purpose: they
# expire after 8 hours (useless in a warehouse) and need the extra scope api:calls:read:media-url.
CONTENT_SELECTOR: dict[str, Any] = {
    "context": "Extended",
    "exposedFields": {
        "parties": True,
        "content": {
            "structure": True, "topics": True, "trackers": True, "trackerOccurrences": True,
            "pointsOfInterest": True, "brief": True, "outline": True, "highlights": True,
            "callOutcome": True, "keyPoints": True,
        },
        "interaction": {"speakers": True, "video": True, "personInteractionStats": True, "questions": True},
        "collaboration": {"publicComments": True},
        "media": False,
    },
}

Page = tuple[dict[str, Any], str | None]


class GongApiError(Exception):
    """``auth``: Gong refused the credentials (401/403). That concerns every call, not the one
    asked for, so callers hold their work instead of giving up on it."""

    def __init__(self, message: str, *, transient: bool, auth: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
        self.auth = auth


def retry_after_seconds(value: str | None, default: float = 1.0) -> float:
    # Gong sends delta-seconds; an HTTP-date or garbage falls back to a short default.
    try:
        seconds = float(value) if value is not None else default
    except ValueError:
        seconds = default
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _cursor(page: dict[str, Any]) -> str | None:
    records = page.get("records")
    cursor = records.get("cursor") if isinstance(records, dict) else None
    return cursor if isinstance(cursor, str) and cursor else None


def transcripts_page(page: dict[str, Any]) -> Page:
    """Transcript per call id in one /v2/calls/transcript answer, and the next page's cursor."""
    found: dict[str, Any] = {}
    for item in page.get("callTranscripts") or []:
        if isinstance(item, dict) and item.get("callId") not in (None, ""):
            found[str(item["callId"])] = item.get("transcript") or []
    return found, _cursor(page)


def extensive_page(page: dict[str, Any]) -> Page:
    """The whole call object (metaData, parties, content, …) per call id in one /v2/calls/extensive
    answer, and the next page's cursor. Entries without ``metaData.id`` cannot be keyed and are skipped."""
    found: dict[str, Any] = {}
    for item in page.get("calls") or []:
        meta = item.get("metaData") if isinstance(item, dict) else None
        call_id = meta.get("id") if isinstance(meta, dict) else None
        if call_id not in (None, ""):
            found[str(call_id)] = item
    return found, _cursor(page)


class GongClient:
    def __init__(
        self,
        base_url: str,
        access_key: str,
        secret: str,
        limiter: RedisTokenBucket,
        metrics: Metrics,
        timeout_seconds: float = 30.0,
        max_throttle_retries: int = 20,
        stop: asyncio.Event | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), auth=httpx.BasicAuth(access_key, secret), timeout=timeout_seconds
        )
        self._limiter = limiter
        self._metrics = metrics
        self._max_throttle_retries = max_throttle_retries
        self._stop = stop

    async def close(self) -> None:
        await self._http.aclose()

    async def transcripts(self, call_ids: list[str]) -> dict[str, Any]:
        """Transcript per call id (calls Gong has no transcript for are absent), following cursors."""
        return await self._paged(TRANSCRIPT_PATH, {"filter": {"callIds": call_ids}}, transcripts_page, call_ids)

    async def extensive(self, call_ids: list[str]) -> dict[str, Any]:
        """Extensive call object per call id (unknown calls are absent), following cursors."""
        body = {"filter": {"callIds": call_ids}, "contentSelector": CONTENT_SELECTOR}
        return await self._paged(EXTENSIVE_PATH, body, extensive_page, call_ids)

    async def _paged(
        self, path: str, body: dict[str, Any], parse: Callable[[dict[str, Any]], Page], call_ids: list[str]
    ) -> dict[str, Any]:
        wanted = set(call_ids)
        result: dict[str, Any] = {}
        cursor: str | None = None
        while True:
            page = await self._post(path, {**body, "cursor": cursor} if cursor else body)
            if page is None:
                return result
            found, cursor = parse(page)
            result.update((k, v) for k, v in found.items() if k in wanted)
            if not cursor:
                return result

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        for _ in range(self._max_throttle_retries + 1):
            try:
                remaining = await self._limiter.acquire(self._stop)
            except DailyBudgetExhausted:
                self._metrics.gong_api_daily_budget_remaining.set(0)
                raise
            if remaining is not None:
                self._metrics.gong_api_daily_budget_remaining.set(remaining)
            try:
                response = await self._http.post(
                    path, content=orjson.dumps(body), headers={"Content-Type": "application/json"}
                )
            except httpx.HTTPError as exc:
                self._metrics.gong_api_requests.labels(endpoint=path, status="error").inc()
                raise GongApiError(f"Gong API unreachable: {type(exc).__name__}", transient=True) from None
            self._metrics.gong_api_requests.labels(endpoint=path, status=str(response.status_code)).inc()
            if response.status_code == 429:
                # Also what Gong answers once the company's daily quota is spent (other clients
                # share it): everyone sharing the bucket then waits Retry-After, capped so a
                # bogus value cannot park enrichment for a day.
                self._metrics.gong_api_throttled.inc()
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                log.warning("Gong API rate limited", extra={"retry_after": wait})
                await self._limiter.penalise(wait)
                continue
            if response.status_code in (401, 403):
                # A wrong or revoked key pair, or one without the scope: every call would get the
                # same answer until someone fixes the Secret, so this is not the call's fault.
                self._metrics.gong_api_auth_failures.inc()
                self._metrics.gong_api_auth_failing.set(1)
                raise GongApiError(
                    f"Gong API refused the credentials ({response.status_code}); check GONG_API_KEY, "
                    "GONG_API_SECRET and the key's scopes",
                    transient=True, auth=True,
                )
            self._metrics.gong_api_auth_failing.set(0)
            if response.status_code == 404:
                return None  # Gong answers 404 when no call matches the filter
            if response.status_code >= 500:
                raise GongApiError(f"Gong API answered {response.status_code}", transient=True)
            if response.status_code >= 400:
                raise GongApiError(f"Gong API answered {response.status_code}", transient=False)
            try:
                parsed: Any = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                raise GongApiError("Gong API answered with invalid JSON", transient=True) from None
            if not isinstance(parsed, dict):
                raise GongApiError("Gong API answered with unexpected JSON", transient=True)
            return parsed
        raise GongApiError("Gong API kept answering 429", transient=True)
