"""Tests of sfu.config: SfuConfig is frozen, its defaults, its documentation, and every setting is used."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from sfu import config as config_module
from sfu.config import SfuConfig

SFU = Path(config_module.__file__).parent


def test_it_is_frozen_and_instances_share_nothing() -> None:
    a, b = SfuConfig(), SfuConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.grid_slots = 4  # type: ignore[misc]
    a.ice_addresses.append("10.0.0.1")
    assert b.ice_addresses == []  # a default list per instance
    changed = dataclasses.replace(a, grid_slots=4)
    assert (changed.grid_slots, a.grid_slots) == (4, 9)


def test_defaults_suit_a_single_public_server() -> None:
    c = SfuConfig()
    assert c.ice_addresses == [] and c.announce_address is None and c.udp_ports is None  # every interface, any port
    assert (c.fast_path, c.compiled_fanout) == (True, True)
    assert c.consent_interval == 5.0  # RFC 7675
    assert c.max_participants_per_room <= c.max_participants
    assert c.video_codec == "VP8"


def test_every_setting_is_read_by_the_sfu() -> None:
    code = "\n".join(p.read_text() for p in SFU.rglob("*.py") if p.name != "config.py")
    unused = [f.name for f in dataclasses.fields(SfuConfig) if not re.search(rf"\bconfig\.{f.name}\b", code)]
    assert unused == []


def test_the_documented_settings_exist() -> None:
    documented = re.findall(r"^\s{4}(\w+): ", SfuConfig.__doc__ or "", re.M)
    assert len(documented) >= 5
    assert set(documented) <= {f.name for f in dataclasses.fields(SfuConfig)}
