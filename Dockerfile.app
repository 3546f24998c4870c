# syntax=docker/dockerfile:1
# FastAPI ingest service for Gong webhooks (and its Snowflake loader).
# Build: docker build -f Dockerfile.app -t gong-webhook-app:0.1.0 .
# Pinned base tag; pin by digest too when your registry mirror allows it.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

# --- build: wheels for the project and its locked dependency set (compilers stay here)
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml requirements.lock README.md ./
# Dependencies first (the list in pyproject.toml, pinned by the lock), so that a source change
# rebuilds only the project's own wheel and the dependency layers below stay cached.
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip wheel --no-cache-dir --wheel-dir /wheels/deps --constraint requirements.lock -r /tmp/requirements.txt
COPY operator ./operator
COPY webhook_app ./webhook_app
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels/project .

# --- runtime: no compilers, no pip cache, non-root, read-only root filesystem friendly
FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="gong-webhook-app" \
      org.opencontainers.image.description="FastAPI ingest service for Gong webhooks (and its Snowflake loader)" \
      org.opencontainers.image.source="https://github.com/gong-webhook-operator/gong-webhook-operator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# No .pyc writes (the root filesystem is read-only) and unbuffered logs; HOME and TMPDIR
# point at /tmp, the one writable mount (an emptyDir in the pod).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --gid 1000 app \
    && useradd --uid 1000 --gid 1000 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin app
# Byte-compile at build time so a read-only filesystem costs nothing at start.
COPY --from=build /wheels/deps /wheels/deps
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --no-index /wheels/deps/*.whl \
    && /opt/venv/bin/python -m compileall -q /opt/venv \
    && rm -rf /wheels
COPY --from=build /wheels/project /wheels/project
RUN /opt/venv/bin/pip install --no-cache-dir --no-index --no-deps /wheels/project/*.whl \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib \
    && rm -rf /wheels
USER 1000:1000
EXPOSE 8080
ENTRYPOINT ["gong-webhook-app"]
