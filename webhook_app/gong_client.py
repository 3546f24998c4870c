"""Client for the parts of Gong's REST API the enrichment uses (transcripts)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import orjson

from webhook_app.metrics import Metrics
from webhook_app.rate_limit import RedisTokenBucket

log = logging.getLogger(__name__)

TRANSCRIPT_PATH = "/v2/calls/transcript"
MAX_RETRY_AFTER = 300.0


class GongApiError(Exception):
    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def retry_after_seconds(value: str | None, default: float = 1.0) -> float:
    # Gong sends delta-seconds; an HTTP-date or garbage falls back to a short default.
    try:
        seconds = float(value) if value is not None else default
    except ValueError:
        seconds = default
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


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
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), auth=httpx.BasicAuth(access_key, secret), timeout=timeout_seconds
        )
        self._limiter = limiter
        self._metrics = metrics
        self._max_throttle_retries = max_throttle_retries

    async def close(self) -> None:
        await self._http.aclose()

    async def transcripts(self, call_ids: list[str]) -> dict[str, Any]:
        """Transcript per call id (calls Gong has no transcript for are absent), following cursors."""
        result: dict[str, Any] = {}
        cursor: str | None = None
        while True:
            body: dict[str, Any] = {"filter": {"callIds": call_ids}}
            if cursor:
                body["cursor"] = cursor
            page = await self._post(TRANSCRIPT_PATH, body)
            if page is None:
                return result
            for item in page.get("callTranscripts") or []:
                if isinstance(item, dict) and item.get("callId") is not None:
                    result[str(item["callId"])] = item.get("transcript") or []
            cursor = (page.get("records") or {}).get("cursor")
            if not cursor:
                return result

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        for _ in range(self._max_throttle_retries + 1):
            await self._limiter.acquire()
            try:
                response = await self._http.post(
                    path, content=orjson.dumps(body), headers={"Content-Type": "application/json"}
                )
            except httpx.HTTPError as exc:
                self._metrics.gong_api_requests.labels(endpoint=path, status="error").inc()
                raise GongApiError(f"Gong API unreachable: {type(exc).__name__}", transient=True) from None
            self._metrics.gong_api_requests.labels(endpoint=path, status=str(response.status_code)).inc()
            if response.status_code == 429:
                self._metrics.gong_api_throttled.inc()
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                log.warning("Gong API rate limited", extra={"retry_after": wait})
                await self._limiter.penalise(wait)
                await asyncio.sleep(wait)
                continue
            if response.status_code == 404:
                return None  # Gong answers 404 when no call matches the filter
            if response.status_code >= 500:
                raise GongApiError(f"Gong API answered {response.status_code}", transient=True)
            if response.status_code >= 400:
                raise GongApiError(f"Gong API answered {response.status_code}", transient=False)
            try:
                parsed: dict[str, Any] = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                raise GongApiError("Gong API answered with invalid JSON", transient=True) from None
            return parsed
        raise GongApiError("Gong API kept answering 429", transient=True)
