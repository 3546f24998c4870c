"""A cap on the size of a request's head (request line + headers), enforced while it arrives.

uvicorn's httptools protocol (the fast one, and the one the app uses) has no such cap: llhttp hands
over header values as they arrive and uvicorn keeps all of them, so one client could make a worker
buffer megabytes of headers before the app sees the request (h11's 16 KiB limit only applies to the
slower h11 protocol). Gong sends a head of about 2 KiB; an ingress in front usually stops at 32 KiB.
"""

from __future__ import annotations

import logging

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("webhook_app.http_limits")  # the name it logged under before the regroup

MAX_REQUEST_HEAD_BYTES = 64 * 1024
# After the 431 the connection is half-closed and what the client still sends is read and dropped
# ("lingering close"), up to these bounds, before closing: closing a socket with unread input makes
# the kernel send a reset, which also throws away the 431 the client has not read yet.
LINGER_BYTES = 4 * 1024 * 1024
LINGER_SECONDS = 5.0
# For uvicorn's ``http=`` option: an import string survives the spawn of worker processes (WORKERS > 1).
PROTOCOL = "webhook_app.ingest.http_limits:HeadLimitedHttpToolsProtocol"
_BODY = orjson.dumps({"error": "request_head_too_large", "limit_bytes": MAX_REQUEST_HEAD_BYTES})


class HeadLimitedHttpToolsProtocol(HttpToolsProtocol):
    """Answers 431 and closes the connection when a request's head is over MAX_REQUEST_HEAD_BYTES.

    Two counts, because llhttp reports a header only once it is complete: the bytes received while a
    head is still incomplete (refused as soon as they pass the cap, so a head that never ends is not
    buffered), and the size of a head that arrived whole (refused before the app sees the request)."""

    _in_head = True
    _pending_bytes = 0  # received in chunks in which the head has not ended yet
    _head_size = 0  # request line + header lines of the head being parsed
    _over = False  # a complete head was over the cap: the app never sees this request
    _discarded: int | None = None  # set once refused: bytes dropped since
    _boundary_in_chunk = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_size = 0

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url) + 16  # method, version and line end: close enough
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._pending_bytes = 0
        self._boundary_in_chunk = True
        if self._head_size > MAX_REQUEST_HEAD_BYTES:
            self._over = True  # no ASGI cycle is created; data_received answers after this chunk
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._over:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._over:
            return
        super().on_message_complete()
        self._in_head = True
        self._boundary_in_chunk = True

    def data_received(self, data: bytes) -> None:
        if self._discarded is not None:
            self._discarded += len(data)
            if self._discarded > LINGER_BYTES:
                self.transport.close()
            return
        self._boundary_in_chunk = False
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._over:
            self._refuse()
            return
        # A chunk in which a head or a message ended is not counted: the rest of it is body or the end
        # of the last request (a pipelined next head in it is then measured when it completes).
        if self._boundary_in_chunk or not self._in_head:
            return
        self._pending_bytes += len(data)
        if self._pending_bytes > MAX_REQUEST_HEAD_BYTES:
            self._refuse()

    def _refuse(self) -> None:
        log.warning("request head over %d bytes refused with 431", MAX_REQUEST_HEAD_BYTES,
                    extra={"client": self.client[0] if self.client else None})
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(_BODY)).encode() + b"\r\nconnection: close\r\n\r\n" + _BODY)
        self._discarded = 0
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)
