"""The baseline: a bare FastAPI endpoint that returns 202 without doing any work, served with the
same uvicorn settings as ``gong-webhook-app`` (webhook_app/cli.py): same host/port/worker count,
no access log, no server header, uvloop + httptools from uvicorn[standard]."""

from __future__ import annotations

import os

from fastapi import FastAPI
from starlette.responses import Response

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@app.post("/webhooks/gong")
async def webhook() -> Response:
    return Response(b'{"status":"accepted"}', status_code=202, media_type="application/json")


def main() -> None:
    import uvicorn

    workers = int(os.environ.get("WORKERS", "1"))
    uvicorn.run(
        "bench.serve_bare:app", host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ["PORT"]),
        workers=workers, access_log=False, log_config=None, timeout_graceful_shutdown=30, server_header=False,
    )


if __name__ == "__main__":
    main()
