"""The event loop's default executor, which runs every blocking call (``asyncio.to_thread``): the
peering check and each reconcile.

It counts the calls in progress so that shutdown can wait for them *with a bound*. A thread cannot be
cancelled, and both ``asyncio.run`` (``shutdown_default_executor``) and the interpreter's exit join
executor threads without a timeout; one reconcile stuck in a call would keep the process alive after
SIGTERM until the kubelet's SIGKILL. :func:`gong_operator.cli.main` waits ``--exit-grace-seconds``
for :meth:`WorkerExecutor.wait_idle` and otherwise ends the process without the stuck thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class WorkerExecutor(ThreadPoolExecutor):
    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix="gong-worker")
        self._busy = 0
        self._changed = threading.Condition()

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        def call() -> T:
            try:
                return fn(*args, **kwargs)
            finally:
                self._done()

        with self._changed:
            self._busy += 1
        try:
            return super().submit(call)
        except BaseException:  # refused (shut down): the call never runs, so it is not busy either
            self._done()
            raise

    def _done(self) -> None:
        with self._changed:
            self._busy -= 1
            self._changed.notify_all()

    @property
    def busy(self) -> int:
        """Calls submitted and not finished (queued or running)."""
        return self._busy

    def wait_idle(self, timeout: float) -> bool:
        """True once no call is in progress; False if some still is after ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: self._busy == 0, timeout)
