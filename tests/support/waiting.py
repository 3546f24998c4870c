"""Polling until something holds: the one ``wait_for`` of the tests and the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class WaitTimeout(AssertionError, TimeoutError):
    """A wait that ran out. An AssertionError, so a test fails (not errors) with the message, and a
    TimeoutError, which is what the benchmarks catch."""


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    """Calls ``predicate`` every ``interval`` seconds until it returns something truthy, and returns that;
    raises :class:`WaitTimeout` with the last value after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise WaitTimeout(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
