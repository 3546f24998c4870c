"""WorkerExecutor counts calls in progress, so the exit can wait for them with a bound (cli._finish)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from gong_operator.executor import WorkerExecutor


def test_wait_idle_is_bounded_while_a_call_blocks_and_true_once_it_returns():
    executor = WorkerExecutor(max_workers=2)
    release = threading.Event()
    assert executor.wait_idle(0) and executor.busy == 0
    future = executor.submit(release.wait, 10)
    try:
        started = time.monotonic()
        assert not executor.wait_idle(0.3)
        assert 0.3 <= time.monotonic() - started < 1.0
        assert executor.busy == 1
    finally:
        release.set()  # a failed assertion must not leave a thread that the interpreter waits for
    assert future.result(5) is True
    assert executor.wait_idle(5) and executor.busy == 0
    executor.shutdown()


def test_a_failing_or_refused_call_is_not_counted_as_busy():
    executor = WorkerExecutor(max_workers=1)
    with pytest.raises(ZeroDivisionError):
        executor.submit(lambda: 1 / 0).result(5)
    assert executor.wait_idle(1)
    executor.shutdown()
    with pytest.raises(RuntimeError):
        executor.submit(print)
    assert executor.busy == 0


def test_asyncio_to_thread_goes_through_it_as_the_loops_default_executor():
    executor = WorkerExecutor(max_workers=1)
    seen: list[int] = []

    async def main() -> None:
        asyncio.get_running_loop().set_default_executor(executor)
        await asyncio.to_thread(lambda: seen.append(executor.busy))

    asyncio.run(main())
    assert seen == [1]
