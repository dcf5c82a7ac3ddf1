"""server.live.recording_claims: with several nodes, which node holds a recording: the one recording it, finalizing
it, or keeping its segments for a continuation (server.live.recordings).

Redis key `taphuan:cluster:recording:<id>` → the holder's node id, with the cluster's lease
(`cluster.lease_seconds`); the holder renews the keys of the recordings it holds every third of the lease. A node
touches a recording it does not hold (finalizes it as recovered at its start or when it takes the meeting over,
finalizes a queued one, sweeps the segments kept for a continuation) only once it has claimed it: when nobody
holds it or the holder's heartbeat is gone (the node died; its keys would expire within a lease anyway). So a
starting node never finalizes again what a living node is finalizing, nor removes the segments a living node
keeps for a continuation; a dead node's recordings are recovered by whichever node claims them first.
"""

from __future__ import annotations

from collections.abc import Iterable

from server.live.cluster import PREFIX, Cluster

# KEYS: recording keys; ARGV: this node's id, lease (ms), heartbeat key prefix. Claims (or renews) each key that
# no living other node holds; returns the keys another living node holds.
_CLAIM = """
local others = {}
for _, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder and holder ~= ARGV[1] and redis.call('EXISTS', ARGV[3] .. holder) == 1 then
    table.insert(others, key)
  else
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  end
end
return others
"""


def recording_key(recording_id: int) -> str:
    """recording_key: the Redis key naming the node that holds a recording."""
    return f"{PREFIX}recording:{recording_id}"


async def claim(cluster: Cluster, recording_ids: Iterable[int]) -> set[int]:
    """claim: hold (or go on holding) these recordings for this node for a lease; returns the ids another living
    node holds (not claimed: leave them alone)."""
    ids = sorted(set(recording_ids))
    if not ids:
        return set()
    others = await cluster.redis.eval(_CLAIM, len(ids), *[recording_key(i) for i in ids], cluster.node_id,
                                      int(cluster.lease * 1000), PREFIX + "node:")
    return {int((k.decode() if isinstance(k, bytes) else str(k)).rsplit(":", 1)[1]) for k in others}
