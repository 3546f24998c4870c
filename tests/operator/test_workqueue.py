from __future__ import annotations

import asyncio

from gong_operator.workqueue import WorkQueue


async def test_adds_coalesce_and_keep_the_first_trigger():
    q: WorkQueue[str] = WorkQueue()
    q.add("a", "spec")
    q.add("a", "child")
    q.add("b", "secret")
    assert len(q) == 2
    assert await q.get() == ("a", "spec")
    assert await q.get() == ("b", "secret")


async def test_key_in_flight_is_not_handed_out_twice_but_reruns_after_done():
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    key, _ = await q.get()
    q.add("a", "child")  # arrives while "a" is being processed
    assert len(q) == 0
    getter = asyncio.ensure_future(q.get())
    await asyncio.sleep(0.01)
    assert not getter.done()
    q.done(key)
    assert await asyncio.wait_for(getter, 1) == ("a", "child")


async def test_add_after_and_forget():
    q: WorkQueue[str] = WorkQueue()
    q.add_after("a", 0.01, "retry")
    assert await asyncio.wait_for(q.get(), 1) == ("a", "retry")
    q.add_after("b", 0.01)
    q.forget("b")
    await asyncio.sleep(0.05)
    assert len(q) == 0 and q.pending_timers() == 0
