"""The HTTP adapter of the ingest process: Gong webhook route, health, readiness and metrics.

The webhook route is served by a raw ASGI fast path in front of FastAPI (``IngestApp``): POST
to the webhook path goes through ``RequestContext`` straight to ``WebhookEndpoint``, which hands the
headers and a bounded body reader to ``accept.Acceptor`` and sends the ``Outcome`` as JSON; FastAPI's
middleware stack and router (a third of the CPU per request under load, see bench/README.md) only
serve the other routes, 404s and 405s. What a webhook means (verification, dedup, enqueue) lives in
``accept.py``; nothing here decides it.
"""

from __future__ import annotations

import asyncio
import logging
import string
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from webhook_app import contract, stream_stats, streams
from webhook_app.ingest import metrics_server
from webhook_app.ingest.accept import Acceptor, BodyIncomplete, BodyReader, BodyTooLarge
from webhook_app.ingest.enqueue import Enqueuer
from webhook_app.ingest.jwt_verify import JwtVerifier
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

_URL_KEY_ROUTE = contract.WEBHOOK_PATH + "/{key}"
_URL_KEY_PREFIX = contract.WEBHOOK_PATH + "/"


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _error(status: int, reason: str, headers: dict[str, str] | None = None) -> Response:
    return _json(status, {"error": reason}, headers)


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


def _body_reader(request: Request) -> BodyReader:
    async def read(limit: int) -> bytes:
        try:
            return await read_body(request, limit)
        except ClientDisconnect:
            raise BodyIncomplete from None

    return read


@dataclass
class AppState:
    settings: AppSettings
    metrics: Metrics
    acceptor: Acceptor
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


class WebhookEndpoint:
    """The one way into ``Acceptor.accept``: ASGI request in, its ``Outcome`` out as a JSON response."""

    def __init__(self, acceptor: Acceptor) -> None:
        self.acceptor = acceptor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            outcome = await self.acceptor.accept(
                request.headers, _body_reader(request), request.path_params.get("key", "")
            )
            response = _json(outcome.status, outcome.body, outcome.headers)
        except Exception as exc:
            # What the app's catch-all exception handler does for the other routes.
            log.error("unhandled error", extra={"error_type": type(exc).__name__})
            response = _error(500, "internal_error")
        await response(scope, receive, send)


async def _missing_tables(state: AppState) -> list[str]:
    """Tables a loader of this stream last reported missing (any process: in-process or standalone)."""
    try:
        raw = await state.redis.get(streams.snowflake_status_key(state.settings.redis_stream))
        doc = orjson.loads(raw) if raw else {}
    except (RedisError, OSError, orjson.JSONDecodeError):
        return []
    missing = doc.get("missing_tables") if isinstance(doc, dict) else None
    return [str(t) for t in missing] if isinstance(missing, list) else []


def _acceptor(settings: AppSettings, metrics: Metrics) -> Acceptor:
    # Keys are parsed once here; a bad key already stopped start-up in settings validation.
    if settings.gong_webhook_auth_mode == "jwt":
        assert settings.gong_webhook_public_keys is not None and settings.gong_webhook_public_url is not None
        verifier = JwtVerifier(
            parse_public_keys(settings.gong_webhook_public_keys.get_secret_value()),
            parse_public_url(settings.gong_webhook_public_url),
        )
        return Acceptor(settings, metrics, verifier=verifier)
    return Acceptor(settings, metrics, url_keys=settings.url_keys())


def _lifespan(state: AppState, with_loader: bool) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    settings, metrics = state.settings, state.metrics

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.redis = make_client(settings)
        state.acceptor.enqueuer = Enqueuer(state.redis, settings.redis_stream, settings.dedup_ttl_seconds)
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

    return lifespan


def create_app(
    settings: AppSettings,
    metrics: Metrics | None = None,
    *,
    run_loader: bool | None = None,
) -> FastAPI:
    metrics = metrics or Metrics()
    state = AppState(settings=settings, metrics=metrics, acceptor=_acceptor(settings, metrics))
    with_loader = settings.run_loader_in_process if run_loader is None else run_loader
    app = IngestApp(lifespan=_lifespan(state, with_loader), docs_url=None, redoc_url=None, openapi_url=None)
    app.state.app_state = state
    webhook = WebhookEndpoint(state.acceptor)
    app.webhook_asgi = RequestContext(webhook, metrics)
    app.url_key_mode = settings.gong_webhook_auth_mode != "jwt"
    # POSTs to these paths take the fast path above; the router knows them for its 405 answers.
    if app.url_key_mode:
        app.router.routes.append(Route(_URL_KEY_ROUTE, webhook, methods=["POST"]))
    app.router.routes.append(Route(contract.WEBHOOK_PATH, webhook, methods=["POST"]))
    _add_service_routes(app, state)
    app.add_middleware(RequestContext, metrics=metrics)
    return app


def _add_service_routes(app: FastAPI, state: AppState) -> None:
    """Health, readiness, metrics, and the JSON answers for errors on any route."""

    @app.get(contract.HEALTH_PATH)
    async def health() -> Response:
        return _json(200, {"status": "ok"})

    @app.get(contract.READY_PATH)
    async def ready() -> Response:
        keys_loaded = state.acceptor.keys_loaded
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
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, reason)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled error", extra={"error_type": type(exc).__name__})
        return _error(500, "internal_error")
