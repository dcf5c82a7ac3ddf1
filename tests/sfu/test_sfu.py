"""Tests of sfu/sfu.py: the process's rooms and their participant limits."""

from __future__ import annotations

import pytest

from sfu.errors import SfuError
from sfu.sfu import Sfu
from tests.sfu.helpers import CAPABILITIES, Client, join, sfu_config

pytestmark = pytest.mark.timeout(60)


async def test_full_room_and_full_server(clients: list[Client]) -> None:
    sfu = Sfu(sfu_config(max_participants_per_room=1, max_participants=2))
    try:
        r1 = await sfu.room("a")
        r2 = await sfu.room("b")
        clients.append(await join(r1, "x", "classroom", decode=False))
        with pytest.raises(SfuError) as err:
            await r1.join("y", "classroom", "Y", CAPABILITIES["classroom"], clients[0].on_event)
        assert err.value.code == "full"
        clients.append(await join(r2, "y", "classroom", decode=False))
        r3 = await sfu.room("c")
        with pytest.raises(SfuError) as err:
            await r3.join("z", "classroom", "Z", CAPABILITIES["classroom"], clients[0].on_event)
        assert err.value.code == "full"
    finally:
        await sfu.close()
