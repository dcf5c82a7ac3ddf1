"""Tests of sfu.errors: SfuError's code and message; every code the SFU raises is a documented one."""

from __future__ import annotations

import re
from pathlib import Path

from sfu import errors
from sfu.errors import SfuError

SFU = Path(errors.__file__).parent


def test_code_and_message() -> None:
    exc = SfuError("full", "room 7 has 200 participants")
    assert (exc.code, exc.message) == ("full", "room 7 has 200 participants")
    assert str(exc) == "full: room 7 has 200 participants"


def test_without_a_message_the_code_is_the_message() -> None:
    exc = SfuError("closed")
    assert (exc.code, exc.message, str(exc)) == ("closed", "closed", "closed")


def test_every_code_raised_is_documented() -> None:
    documented = set(re.findall(r"``([a-z-]+)``", SfuError.__doc__ or ""))
    raised = {code for path in SFU.rglob("*.py") for code in re.findall(r'SfuError\(\s*"([a-z-]+)"', path.read_text())}
    assert {"closed", "full", "state"} <= raised  # the search finds them
    assert raised <= documented, sorted(raised - documented)
