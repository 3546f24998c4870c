"""The ingest step without HTTP: authenticate → read the body → parse the call id → dedup + enqueue.

``Acceptor.accept`` takes the request's headers, the url key (url-key mode) and a function that reads
the body, and answers an ``Outcome`` (status, JSON body, extra headers) that the HTTP adapter
(``api.py``) only has to send. No HTTP framework types, no Snowflake; the one I/O is the enqueue.

Authentication comes first, from the headers alone: an unauthenticated caller gets its 401 before a
byte of its body is read or hashed, and learns nothing about how the body would have been treated.
Only the body hash needs the body, and it is checked right after reading.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.exceptions import RedisError

from webhook_app.ingest.enqueue import Enqueuer, Event
from webhook_app.ingest.jwt_verify import JwtVerifier, VerificationError, verify_url_key
from webhook_app.logging_setup import request_id_var
from webhook_app.metrics import Metrics
from webhook_app.settings import AppSettings

log = logging.getLogger("webhook_app.api")  # the name these lines logged under before the regroup

MAX_CALL_ID_LENGTH = 128
RETRY_AFTER_SECONDS = "5"


class BodyTooLarge(Exception):
    """Raised by a body reader as soon as the body passes the limit (it buffers no more)."""


class BodyIncomplete(Exception):
    """Raised by a body reader when the client went away before the whole body arrived."""


# Reads the whole body, at most the given number of bytes (else BodyTooLarge).
BodyReader = Callable[[int], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] | None = None


def _error(status: int, reason: str, headers: dict[str, str] | None = None) -> Outcome:
    return Outcome(status, {"error": reason}, headers)


def extract_call(doc: Any) -> tuple[str, bool] | None:
    """(call id, isTest) from a Gong webhook document, or None when it carries no usable call id."""
    if not isinstance(doc, dict):
        return None
    call_data = doc.get("callData")
    meta = call_data.get("metaData") if isinstance(call_data, dict) else None
    call_id = meta.get("id") if isinstance(meta, dict) else None
    if isinstance(call_id, bool):
        return None
    if isinstance(call_id, int):
        call_id = str(call_id)
    if not isinstance(call_id, str):
        return None
    call_id = call_id.strip()
    if not call_id or len(call_id) > MAX_CALL_ID_LENGTH or not call_id.isprintable():
        return None
    return call_id, doc.get("isTest") is True


@dataclass
class Acceptor:
    """One webhook in, one outcome out. ``verifier`` in jwt mode, ``url_keys`` in url-key mode; the
    ``enqueuer`` is attached once Redis is connected (the app's lifespan)."""

    settings: AppSettings
    metrics: Metrics
    verifier: JwtVerifier | None = None
    url_keys: list[str] = field(default_factory=list)
    enqueuer: Enqueuer | None = None

    @property
    def keys_loaded(self) -> bool:
        return self.verifier is not None or bool(self.url_keys)

    async def accept(self, headers: Mapping[str, str], read_body: BodyReader, url_key: str = "") -> Outcome:
        """``headers`` looked up by lower-case name; ``url_key`` the key from the path (url-key mode)."""
        claims: dict[str, Any] | None = None
        try:
            if self.verifier is not None:
                claims = self.verifier.verify_token(headers.get("authorization"))
            else:
                verify_url_key(url_key, self.url_keys)
        except VerificationError as exc:
            return self._refused(exc)
        try:
            body = await read_body(self.settings.max_body_bytes)
        except BodyTooLarge:
            return _error(413, "body_too_large")
        except BodyIncomplete:
            return _error(400, "client_disconnected")
        if claims is not None:
            try:
                JwtVerifier.verify_body(claims, body)
            except VerificationError as exc:
                return self._refused(exc)
        return await self._enqueue(body)

    def _refused(self, exc: VerificationError) -> Outcome:
        self.metrics.verification_failures.labels(reason=exc.reason).inc()
        log.info("webhook refused", extra={"reason": exc.reason})
        return Outcome(401, {"error": "unauthorized", "reason": exc.reason})

    async def _enqueue(self, body: bytes) -> Outcome:
        """Parse the call id of an authenticated body and queue it once (dedup by event id)."""
        metrics = self.metrics
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            metrics.events.labels(outcome="rejected").inc()
            return _error(400, "invalid_json")
        call = extract_call(doc)
        if call is None:
            metrics.events.labels(outcome="rejected").inc()
            return _error(422, "missing_call_id")
        call_id, is_test = call
        event_id = self.settings.event_id(call_id)

        assert self.enqueuer is not None
        started = time.perf_counter()
        try:
            entry_id = await self.enqueuer.enqueue(
                Event(
                    event_id=event_id, call_id=call_id, is_test=is_test,
                    received_at=datetime.now(UTC).isoformat(), request_id=request_id_var.get() or "",
                    body=body,
                )
            )
        except (RedisError, OSError) as exc:
            log.warning("redis cannot take the write", extra={"error": type(exc).__name__})
            return _error(503, "queue_unavailable", {"Retry-After": RETRY_AFTER_SECONDS})
        metrics.enqueue_seconds.observe(time.perf_counter() - started)
        if entry_id is None:
            metrics.events.labels(outcome="duplicate").inc()
            log.info("webhook duplicate", extra={"call_id": call_id})
            return Outcome(200, {"status": "duplicate", "callId": call_id, "eventId": event_id})
        metrics.events.labels(outcome="accepted").inc()
        log.info("webhook accepted", extra={"call_id": call_id, "entry_id": entry_id})
        return Outcome(202, {"status": "accepted", "callId": call_id, "eventId": event_id})
