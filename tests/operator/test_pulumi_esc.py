"""Pulumi ESC client against a small local HTTP server that follows ESC's REST API:
POST .../environments/{org}/{project}/{env}/open -> {"id"}, then GET .../open/{id} -> {"properties"}.
This stand-in is the only ESC the operator is tested against."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from gong_operator import spec as s
from gong_operator.pulumi_esc import EscDeadlineExceeded, EscError, to_credentials, unwrap
from tests.support.esc_standin import EscState, TricklingServer, serve, standin_source

TOKEN = "pul-test-token"
ENV_PROPS = {
    "environmentVariables": {"value": {
        "GONG_API_KEY": {"value": "k-1", "secret": False},
        "GONG_API_SECRET": {"value": "s-1", "secret": True},
        "SNOWFLAKE_ACCOUNT": {"value": "acct"},
        "SNOWFLAKE_USER": {"value": "user"},
        "GONG_WEBHOOK_PUBLIC_KEYS": {"value": "pk"},
    }},
    "other": {"value": {"nested": {"value": 1}}},
}


@pytest.fixture
def esc_server() -> Iterator[tuple[str, EscState]]:
    state = EscState(token=TOKEN, org="acme", project="gong", env="prod", properties=ENV_PROPS)
    with serve(state) as url:
        yield url, state


def _cfg(url: str, env: str = "prod") -> s.PulumiEscSpec:
    return s.PulumiEscSpec.model_validate({"organization": "acme", "project": "gong", "environment": env,
                                           "accessTokenSecretRef": {"name": "t"}, "apiUrl": url})


def test_open_then_read(esc_server):
    url, state = esc_server
    values = standin_source().read(_cfg(url), TOKEN)
    assert values["GONG_API_SECRET"] == b"s-1"
    assert set(values) == {"GONG_API_KEY", "GONG_API_SECRET", "SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER",
                           "GONG_WEBHOOK_PUBLIC_KEYS"}
    assert [m for m, _ in state.requests] == ["POST", "GET"]
    assert state.requests[0][1].startswith("/api/esc/environments/acme/gong/prod/open?duration=")


def test_cache_respects_max_age(esc_server):
    url, state = esc_server
    now = [100.0]
    src = standin_source(clock=lambda: now[0])
    src.read(_cfg(url), TOKEN, max_age=300)
    src.read(_cfg(url), TOKEN, max_age=300)
    assert len(state.requests) == 2  # second read served from cache
    now[0] += 301
    state.properties = {"GONG_API_KEY": {"value": "rotated"}}
    assert src.read(_cfg(url), TOKEN, max_age=300) == {"GONG_API_KEY": b"rotated"}
    assert len(state.requests) == 4


def test_errors_carry_status_but_no_token(esc_server):
    url, state = esc_server
    with pytest.raises(EscError) as e:
        standin_source().read(_cfg(url), "wrong-token")
    assert e.value.status == 401 and "wrong-token" not in str(e.value)
    with pytest.raises(EscError) as e:
        standin_source().read(_cfg(url, env="missing"), TOKEN)
    assert e.value.status == 404
    state.fail_open = 500
    with pytest.raises(EscError) as e:
        standin_source().read(_cfg(url), TOKEN)
    assert e.value.status == 500


def test_unreachable_api():
    with pytest.raises(EscError) as e:
        standin_source(timeout=1).read(_cfg("https://127.0.0.1:9"), TOKEN)
    assert e.value.status == 0 and "cannot reach" in e.value.safe_message


def test_unwrap_and_top_level_values():
    assert unwrap({"value": {"a": {"value": [{"value": 1}]}}}) == {"a": [1]}
    assert to_credentials({"GONG_API_KEY": {"value": "x"}, "n": {"value": 3}, "obj": {"value": {}}}) == {
        "GONG_API_KEY": b"x", "n": b"3"}


@pytest.mark.parametrize("stage", ["head", "body"])
def test_a_trickling_server_fails_the_read_at_the_total_deadline(stage):
    # One byte every 0.2 s never trips the 1 s per-read timeout; only the 1.5 s total deadline ends it.
    # The read runs in a thread so that a missing deadline fails this test instead of hanging it.
    deadline = 1.5
    outcome: list[BaseException | dict[str, bytes]] = []

    def read() -> None:
        try:
            outcome.append(standin_source(timeout=1.0, deadline=deadline).read(_cfg(server.url), TOKEN))
        except BaseException as e:  # handed to the test thread, which asserts on it
            outcome.append(e)

    with TricklingServer(stage=stage, interval=0.2) as server:
        started = time.monotonic()
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(deadline + 5)
        took = time.monotonic() - started
        assert not reader.is_alive(), f"the read still runs {took:.1f}s after it started (deadline {deadline}s)"
        (error,) = outcome
        assert isinstance(error, EscDeadlineExceeded), error
        assert deadline <= took < deadline + 1.5
        assert error.safe_message == "Pulumi ESC API did not answer within the 1.5s deadline"
        assert TOKEN not in str(error) and error.__cause__ is None and error.__suppress_context__
        assert server.requests[0].startswith("POST /api/esc/environments/acme/gong/prod/open")
        # The cancelled request closed its connection (nothing left reading in the background).
        deadline_at = time.monotonic() + 5
        while server.client_closed < 1 and time.monotonic() < deadline_at:
            time.sleep(0.05)
        assert server.client_closed == 1

