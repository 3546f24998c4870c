"""An HTTP proxy in front of the fakesnow server that records every SQL statement the Snowflake
connector sends (what reaches the server, not what the code meant to send) and can stall chosen
statements, e.g. to make a MERGE slower than the loader's claim-idle time."""

from __future__ import annotations

import asyncio
import gzip
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.servers import ThreadedServer

QUERY_PATH = "/queries/v1/query-request"
DDL = re.compile(r"^\s*(CREATE|ALTER|DROP|GRANT|REVOKE|UNDROP|TRUNCATE|COMMENT)\b", re.IGNORECASE)
_HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding", "content-encoding"}


@dataclass(frozen=True)
class Statement:
    sql: str
    bindings: dict[str, Any]
    client_port: int

    def bound_values(self) -> list[Any]:
        values: list[Any] = []
        for key in sorted(self.bindings, key=lambda k: int(k) if k.isdigit() else 0):
            value = self.bindings[key].get("value")
            values.extend(value if isinstance(value, list) else [value])
        return values


class SnowflakeSpy:
    def __init__(self, target_port: int) -> None:
        self.target = f"http://127.0.0.1:{target_port}"
        self.statements: list[Statement] = []
        # Seconds to hold a statement before forwarding it (0: none); called once per statement.
        self.stall: Callable[[str], float] = lambda sql: 0.0
        self._lock = threading.Lock()
        self._client: httpx.AsyncClient | None = None
        app = Starlette(routes=[Route("/{path:path}", self._forward, methods=["GET", "POST", "PUT", "DELETE"])])
        self.server = ThreadedServer(app)
        self.port = self.server.port

    async def _forward(self, request: Request) -> Response:
        body = await request.body()
        if request.url.path == QUERY_PATH:
            raw = gzip.decompress(body) if request.headers.get("content-encoding") == "gzip" else body
            doc = orjson.loads(raw)
            sql = str(doc.get("sqlText", ""))
            client = request.client
            with self._lock:
                self.statements.append(Statement(sql, doc.get("bindings") or {}, client.port if client else 0))
            delay = self.stall(sql)
            if delay > 0:
                await asyncio.sleep(delay)
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.target, timeout=120)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in {"host", "content-length"}}
        upstream = await self._client.request(
            request.method, request.url.path, params=request.query_params, content=body, headers=headers,
        )
        out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
        return Response(upstream.content, status_code=upstream.status_code, headers=out_headers)

    def sql(self) -> list[str]:
        with self._lock:
            return [s.sql for s in self.statements]

    def ddl(self) -> list[str]:
        return [sql for sql in self.sql() if DDL.match(sql)]

    def merges(self) -> list[Statement]:
        with self._lock:
            return [s for s in self.statements if s.sql.lstrip().upper().startswith("MERGE")]

    def stop(self) -> None:
        self.server.stop()
