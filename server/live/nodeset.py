"""server.live.nodeset: the cluster's node set in Redis (`taphuan:cluster:nodes`) holds the nodes alive or seen lately.

Every heartbeat of a node (server.live.cluster) also writes when it was seen: `taphuan:cluster:seen`, a hash of
node id → Unix time in milliseconds. A node whose heartbeat has been gone for `FORGET_SECONDS` (one day) is then
forgotten by the next heartbeat of any node: removed from `nodes`, from `seen`, and its `draining:<id>` mark
deleted. So a node that was renamed, retired or replaced stops being read at every heartbeat, offered to
`taphuan drain` or trusted as a page's Origin; a node stopped for maintenance longer than a day is simply added
back by its first heartbeat when it starts. A node listed without a `seen` time (written before this existed)
starts its day from the first heartbeat that finds it dead.

A day is far longer than any lease (`cluster.lease_seconds` ≤ 60 s): a node is never forgotten while it might be
alive, and the clocks of the nodes (which write `seen`) need only agree within hours.
"""

from __future__ import annotations

import time
from typing import Any

PREFIX = "taphuan:cluster:"
NODES_KEY = PREFIX + "nodes"
SEEN_KEY = PREFIX + "seen"
FORGET_SECONDS = 24 * 3600

# KEYS: the node set, the seen hash; ARGV: heartbeat key prefix, drain key prefix, now (ms), forget after (ms).
# Returns the ids forgotten.
_FORGET = """
local gone = {}
local now, after = tonumber(ARGV[3]), tonumber(ARGV[4])
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. id) == 0 then
    local seen = redis.call('HGET', KEYS[2], id)
    if not seen then
      redis.call('HSET', KEYS[2], id, now)
    elseif now - tonumber(seen) >= after then
      redis.call('SREM', KEYS[1], id)
      redis.call('HDEL', KEYS[2], id)
      redis.call('DEL', ARGV[2] .. id)
      table.insert(gone, id)
    end
  end
end
return gone
"""


def now_ms() -> int:
    """now_ms: this machine's Unix time in milliseconds (what `seen` holds)."""
    return int(time.time() * 1000)


async def forget_dead_nodes(redis: Any, forget_seconds: float = FORGET_SECONDS) -> list[str]:
    """forget_dead_nodes: remove the nodes whose heartbeat has been gone for `forget_seconds` (see the module's
    docstring); returns their ids."""
    gone = await redis.eval(_FORGET, 2, NODES_KEY, SEEN_KEY, PREFIX + "node:", PREFIX + "draining:", now_ms(),
                            int(forget_seconds * 1000))
    return [g.decode() if isinstance(g, bytes) else str(g) for g in gone]
