"""JSON logs with the request id, and a last-line redaction of configured secrets.

Code never logs secrets on purpose; the redaction filter is the backstop for the ones that
slip in through exception messages or third-party libraries.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
import traceback
from collections.abc import Iterable
from datetime import UTC, datetime

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in ("request_id", "color_message"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        line = orjson.dumps(entry, default=str).decode()
        return self.redact(line)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "[REDACTED]")
        return text


def _thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    exc_info = (args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)
    name = args.thread.name if args.thread else "?"
    logging.getLogger("webhook_app.thread").error("exception in thread %s", name, exc_info=exc_info)


def setup_logging(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "snowflake.connector", "httpx", "httpcore"):
        lib = logging.getLogger(name)
        lib.handlers[:] = []
        lib.propagate = True
    # The connector and httpx log URLs and request details at INFO/DEBUG; keep them quiet.
    for noisy in ("snowflake.connector", "httpx", "httpcore", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    for noisiest in ("snowflake.connector.vendored", "snowflake.connector.network"):
        logging.getLogger(noisiest).setLevel(logging.ERROR)
    # Exceptions in library threads (the connector's abort timers) would otherwise go to stderr
    # raw, bypassing the JSON format and the redaction.
    threading.excepthook = _thread_exception
    # uvicorn's access log prints raw paths, which in url-key mode contain the secret.
    logging.getLogger("uvicorn.access").disabled = True
