"""Keeping pending stream entries claimed while their consumer still works on them.

``XCLAIM … JUSTID`` with min-idle 0 resets an entry's idle time without counting a delivery, but it
also moves the entry to the caller whatever consumer owns it now. A plain XCLAIM heartbeat could
therefore take an entry back from a loader that had already taken it over, and both would MERGE
it. The script claims only the entries the caller still owns, atomically, and returns the others.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

_KEEP_CLAIMED = """
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] ~= nil and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
"""


class ClaimKeeper:
    def __init__(self, client: aioredis.Redis) -> None:
        self._script = client.register_script(_KEEP_CLAIMED)

    async def keep(self, stream: str, group: str, consumer: str, ids: list[str]) -> list[str]:
        """Reset the idle time of those of ``ids`` that ``consumer`` owns; return the ids it no
        longer owns (acknowledged meanwhile, or taken over by another consumer)."""
        if not ids:
            return []
        reply: Any = await self._script(keys=[stream], args=[group, consumer, *ids])
        return [i.decode() if isinstance(i, bytes) else str(i) for i in reply or []]
