"""SIGTERM/SIGINT: drain first, then let Kopf stop and hand over the peering.

Left to itself, Kopf reacts to SIGTERM by stopping its tasks: the peering keep-alive is removed as its
root tasks end, and the operator's cleanup handler (which stops the workers) runs only after that. A
reconcile still running in its thread then goes on while the next replica has already resumed, and two
replicas reconcile at once (tests/node/test_operator_ha.py saw 0.3-2.3 s of it). So the operator takes
the signals over (:meth:`GracefulStop.take_over_signals`, from the startup handler) and stops in this
order:

1. the gate answers "not active" and the controller hands out no more keys (``Controller.drain``);
2. it waits for the reconciles in flight, up to ``--exit-grace-seconds`` counted from the signal;
3. only then it sets the ``stop_flag`` given to ``kopf.run`` (with the signal, so Kopf logs its usual
   ``Signal SIGTERM is received. Operator is stopping.``): Kopf stops its watches, removes the
   keep-alive (the successor resumes) and runs the cleanup handler;
4. :func:`gong_operator.cli.main` waits what is left of the grace for the executor's threads, then
   exits without a thread still stuck in a call.

A second signal skips the rest of the wait: Kopf stops at once and the exit waits for no thread.

Kopf installs its own handlers (``loop.add_signal_handler(SIGTERM, signal_flag.set_result, ...)``) in
``kopf._core.reactor.running.spawn_tasks``, right after it has created its tasks and let each take
its first step (``await asyncio.sleep(0)``). The startup handler runs inside one of those tasks, so
when it first gets control, the operator task's resumption (which installs Kopf's handlers) is already
queued: one ``await asyncio.sleep(0)`` there puts ours after it, and ``loop.add_signal_handler``
replaces the earlier handler of the signal. tests/operator/test_shutdown.py checks this against the
installed Kopf (a real ``kopf.run`` and a real SIGTERM).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("gong_operator.shutdown")

SIGNALS = (signal.SIGTERM, signal.SIGINT)
REINSTALL_AFTER_SECONDS = 1.0


class Drainable(Protocol):
    async def drain(self, within: float) -> bool: ...

    @property
    def in_flight(self) -> list[tuple[tuple[str, str], float]]: ...


class GracefulStop:
    """Drains ``controller`` on the first SIGTERM/SIGINT, then sets ``stop_flag`` (kopf.run's)."""

    def __init__(self, controller: Drainable, stop_flag: asyncio.Future[Any], grace: float, *,
                 release: Callable[[], None] = lambda: None, clock: Callable[[], float] = time.monotonic) -> None:
        self.controller = controller
        self.stop_flag = stop_flag
        self.grace = grace
        self.release = release  # the gate's release: "not active" from now on
        self.clock = clock
        self.signalled_at: float | None = None
        self.signal: signal.Signals | None = None  # the first one: what Kopf is told it stops for
        self.hurried = False  # a second signal came
        self.drained: bool | None = None  # None: no drain (yet)
        self._drain_task: asyncio.Task[None] | None = None

    async def take_over_signals(self) -> None:
        """From the startup handler: replace Kopf's SIGTERM/SIGINT handlers with :meth:`signalled`
        (why one ``sleep(0)`` is enough: the module's docstring). Installed once more a second later,
        in case a later Kopf installs its own later than this one does (the same handler again
        changes nothing)."""
        await asyncio.sleep(0)
        if threading.current_thread() is not threading.main_thread():
            log.warning("not in the main thread: signals are not handled, so SIGTERM does not drain")
            return
        loop = asyncio.get_running_loop()
        self._install(loop)
        loop.call_later(REINSTALL_AFTER_SECONDS, self._install, loop)

    def _install(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop.is_closed():
            return
        for sig in SIGNALS:
            loop.add_signal_handler(sig, self.signalled, sig)

    def signalled(self, sig: signal.Signals) -> None:
        if self.signal is None:
            self.signal, self.signalled_at = sig, self.clock()
            busy = len(self.controller.in_flight)
            log.info("%s received: draining, no new reconciles; waiting up to %gs for %d in flight before Kopf "
                     "stops and hands over the peering (a second signal stops at once)", sig.name, self.grace, busy,
                     extra={"signal": sig.name, "in_flight": busy})
            try:
                self.release()
            except Exception:  # the drain (and so the stop) must happen whatever the gate does
                log.exception("releasing the peering gate failed; draining anyway")
            self._drain_task = asyncio.get_running_loop().create_task(self._drain(sig), name="gong-drain")
            return
        if self.hurried:
            return
        self.hurried = True
        busy = len(self.controller.in_flight)
        log.warning("second signal (%s): stopping at once, without waiting for %d reconcile(s) in flight",
                    sig.name, busy, extra={"signal": sig.name, "in_flight": busy})
        if self._drain_task is not None:
            self._drain_task.cancel()
        self._stop(self.signal)

    async def _drain(self, sig: signal.Signals) -> None:
        assert self.signalled_at is not None
        try:
            self.drained = await self.controller.drain(self.grace)
            took = self.clock() - self.signalled_at
            if self.drained:
                log.info("drained in %.3fs: no reconcile in flight; Kopf stops now", took,
                         extra={"drain_seconds": round(took, 3), "in_flight": 0})
            else:
                left = self.controller.in_flight
                log.warning("%d reconcile(s) still in flight after %gs (%s); Kopf stops now without them",
                            len(left), self.grace, ", ".join(f"{ns}/{name}" for (ns, name), _ in left),
                            extra={"drain_seconds": round(took, 3), "in_flight": len(left)})
        finally:  # also when the drain fails or is cancelled: the operator must stop
            self._stop(sig)

    def _stop(self, sig: signal.Signals) -> None:
        if not self.stop_flag.done():
            self.stop_flag.set_result(sig)  # Kopf: "Signal SIGTERM is received. Operator is stopping."

    def exit_wait(self, default: float) -> float:
        """How long the exit may still wait for worker threads once Kopf has stopped: what is left of
        the grace since the signal, nothing after a second signal, ``default`` if no signal came."""
        if self.hurried:
            return 0.0
        if self.signalled_at is None:
            return default
        return max(0.0, self.grace - (self.clock() - self.signalled_at))
