"""The HTTP service: Gong webhook ingest, health, readiness and metrics.

The webhook route is served by a raw ASGI fast path in front of FastAPI (``IngestApp``): POST
to the webhook path goes through ``RequestContext`` straight to ``_ingest``, which reads raw bytes
and does its own checks; FastAPI's middleware stack and router (a third of the CPU per request
under load, see bench/README.md) only serve the other routes, 404s and 405s.
"""

from __future__ import annotations

import asyncio
import logging
import string
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from webhook_app import contract, stream_stats, streams
from webhook_app.ingest import metrics_server
from webhook_app.ingest.enqueue import Enqueuer, Event
from webhook_app.ingest.jwt_verify import JwtVerifier, VerificationError, verify_url_key
from webhook_app.keys import parse_public_keys, parse_public_url
from webhook_app.logging_setup import request_id_var
from webhook_app.metrics import Metrics
from webhook_app.redis_conn import make_client, warn_if_not_durable
from webhook_app.settings import AppSettings

log = logging.getLogger("webhook_app.api")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_CALL_ID_LENGTH = 128
RETRY_AFTER_SECONDS = "5"
_URL_KEY_ROUTE = contract.WEBHOOK_PATH + "/{key}"
_URL_KEY_PREFIX = contract.WEBHOOK_PATH + "/"


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _error(status: int, reason: str, headers: dict[str, str] | None = None) -> Response:
    return _json(status, {"error": reason}, headers)


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes, failing as soon as the limit is passed (never buffering more)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


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
class AppState:
    settings: AppSettings
    metrics: Metrics
    verifier: JwtVerifier | None = None
    url_keys: list[str] = field(default_factory=list)
    enqueuer: Enqueuer | None = None
    redis: Any = None
    background: list[asyncio.Task[None]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)


def _route_label(path: str) -> str:
    # Raw paths would put url keys into metrics labels and explode cardinality.
    if path == contract.WEBHOOK_PATH:
        return path
    if path.startswith(contract.WEBHOOK_PATH + "/"):
        return _URL_KEY_ROUTE
    if path in (contract.HEALTH_PATH, contract.READY_PATH, contract.METRICS_PATH):
        return path
    return "other"


# ASCII only: str.isalnum() also accepts latin-1 letters such as "\xff", which were echoed back
# (re-encoded as UTF-8) into the response header and the logs.
_REQUEST_ID_CHARS = frozenset(string.ascii_letters + string.digits + "-_.:")


def _clean_request_id(raw: bytes | None) -> str:
    if raw and len(raw) <= 128:
        text = raw.decode("latin-1")
        if _REQUEST_ID_CHARS.issuperset(text):
            return text
    return uuid.uuid4().hex


class RequestContext:
    """Request id (taken from X-Request-ID or made up, echoed back), request metrics and access log."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_id = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        request_id = _clean_request_id(raw_id)
        token = request_id_var.set(request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = _route_label(scope["path"])
            self.metrics.http_requests.labels(route=route, status=str(status)).inc()
            if route != contract.METRICS_PATH and log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "request",
                    extra={
                        "method": scope["method"], "route": route, "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
            request_id_var.reset(token)


class IngestApp(FastAPI):
    """FastAPI with the webhook route dispatched before the framework's own stack."""

    webhook_asgi: ASGIApp | None = None
    url_key_mode: bool = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.webhook_asgi is not None and scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            if path == contract.WEBHOOK_PATH:
                await self.webhook_asgi(scope, receive, send)
                return
            if self.url_key_mode and path.startswith(_URL_KEY_PREFIX):
                key = path[len(_URL_KEY_PREFIX):]
                if key and "/" not in key:  # what the "{key}" route pattern matches
                    scope["path_params"] = {"key": key}
                    await self.webhook_asgi(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


def _webhook_asgi(state: AppState) -> ASGIApp:
    async def webhook(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await _ingest(state, request)
        except Exception as exc:
            # What the app's catch-all exception handler does for the other routes.
            log.error("unhandled error", extra={"error_type": type(exc).__name__})
            response = _error(500, "internal_error")
        await response(scope, receive, send)

    return webhook


async def _missing_tables(state: AppState) -> list[str]:
    """Tables a loader of this stream last reported missing (any process: in-process or standalone)."""
    try:
        raw = await state.redis.get(streams.snowflake_status_key(state.settings.redis_stream))
        doc = orjson.loads(raw) if raw else {}
    except (RedisError, OSError, orjson.JSONDecodeError):
        return []
    missing = doc.get("missing_tables") if isinstance(doc, dict) else None
    return [str(t) for t in missing] if isinstance(missing, list) else []


def create_app(
    settings: AppSettings,
    metrics: Metrics | None = None,
    *,
    run_loader: bool | None = None,
) -> FastAPI:
    metrics = metrics or Metrics()
    state = AppState(settings=settings, metrics=metrics)
    # Keys are parsed once here; a bad key already stopped start-up in settings validation.
    if settings.gong_webhook_auth_mode == "jwt":
        assert settings.gong_webhook_public_keys is not None and settings.gong_webhook_public_url is not None
        state.verifier = JwtVerifier(
            parse_public_keys(settings.gong_webhook_public_keys.get_secret_value()),
            parse_public_url(settings.gong_webhook_public_url),
        )
    else:
        state.url_keys = settings.url_keys()
    with_loader = settings.run_loader_in_process if run_loader is None else run_loader

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.redis = make_client(settings)
        state.enqueuer = Enqueuer(state.redis, settings.redis_stream, settings.dedup_ttl_seconds)
        await warn_if_not_durable(state.redis)
        metrics_listener = (await metrics_server.start(settings.host, settings.metrics_port, metrics.registry)
                            if settings.metrics_port else None)
        if with_loader:
            from webhook_app.worker import run_loader as run_worker

            state.background.append(asyncio.create_task(run_worker(settings, metrics, state.stop)))
        else:
            state.background.append(
                asyncio.create_task(stream_stats.run(state.redis, settings.redis_stream, metrics, state.stop))
            )
        try:
            yield
        finally:
            # uvicorn has stopped accepting and finished in-flight requests by now; the loader
            # gets to finish (and acknowledge) its batch.
            if metrics_listener is not None:
                metrics_listener.close()
            state.stop.set()
            results = await asyncio.gather(*state.background, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    log.error("background task failed", exc_info=result)
            await state.redis.aclose()

    app = IngestApp(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.app_state = state
    app.webhook_asgi = RequestContext(_webhook_asgi(state), metrics)
    app.url_key_mode = settings.gong_webhook_auth_mode != "jwt"

    async def webhook(request: Request) -> Response:
        return await _ingest(state, request)

    if settings.gong_webhook_auth_mode == "jwt":
        app.add_route(contract.WEBHOOK_PATH, webhook, methods=["POST"])
    else:
        app.add_route(_URL_KEY_ROUTE, webhook, methods=["POST"])
        app.add_route(contract.WEBHOOK_PATH, webhook, methods=["POST"])

    @app.get(contract.HEALTH_PATH)
    async def health() -> Response:
        return _json(200, {"status": "ok"})

    @app.get(contract.READY_PATH)
    async def ready() -> Response:
        keys_loaded = state.verifier is not None or bool(state.url_keys)
        try:
            redis_ok = bool(await state.redis.ping())
        except (RedisError, OSError):
            redis_ok = False
        ok = keys_loaded and redis_ok
        body: dict[str, Any] = {"status": "ready" if ok else "not_ready", "redis": redis_ok,
                                "keys_loaded": keys_loaded}
        if redis_ok:
            # A detail, not a reason to be unready: ingest still queues durably in Redis while
            # tables are missing, and taking every pod out of the Service would turn a warehouse
            # problem into webhooks Gong gives up on (and block node drains).
            body["snowflake_missing_tables"] = await _missing_tables(state)
        return _json(200 if ok else 503, body)

    @app.get(contract.METRICS_PATH)
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, reason)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled error", extra={"error_type": type(exc).__name__})
        return _error(500, "internal_error")

    app.add_middleware(RequestContext, metrics=metrics)
    return app


def _refused(state: AppState, exc: VerificationError) -> Response:
    state.metrics.verification_failures.labels(reason=exc.reason).inc()
    log.info("webhook refused", extra={"reason": exc.reason})
    return _json(401, {"error": "unauthorized", "reason": exc.reason})


async def _ingest(state: AppState, request: Request) -> Response:
    settings, metrics = state.settings, state.metrics
    # Authentication comes first, from the headers alone: an unauthenticated caller gets its 401
    # before a byte of its body is read or hashed, and learns nothing about how the body would have
    # been treated. Only the body hash needs the body, and it is checked right after reading.
    claims: dict[str, Any] | None = None
    try:
        if state.verifier is not None:
            claims = state.verifier.verify_token(request.headers.get("authorization"))
        else:
            verify_url_key(request.path_params.get("key", ""), state.url_keys)
    except VerificationError as exc:
        return _refused(state, exc)
    try:
        body = await read_body(request, settings.max_body_bytes)
    except BodyTooLarge:
        return _error(413, "body_too_large")
    except ClientDisconnect:
        return _error(400, "client_disconnected")
    if claims is not None:
        try:
            JwtVerifier.verify_body(claims, body)
        except VerificationError as exc:
            return _refused(state, exc)

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
    event_id = settings.event_id(call_id)

    assert state.enqueuer is not None
    started = time.perf_counter()
    try:
        entry_id = await state.enqueuer.enqueue(
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
        return _json(200, {"status": "duplicate", "callId": call_id, "eventId": event_id})
    metrics.events.labels(outcome="accepted").inc()
    log.info("webhook accepted", extra={"call_id": call_id, "entry_id": entry_id})
    return _json(202, {"status": "accepted", "callId": call_id, "eventId": event_id})
