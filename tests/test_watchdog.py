"""Tests of tests.watchdog: a test whose pytest-timeout alarm is swallowed by the event loop (it lands in another
callback) ends the run within the grace, with the stuck task's stack printed; a test within its limit is untouched.
Each case is a real pytest run in a subprocess, on the suite's loop (uvloop)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.watchdog import NAME

ROOT = Path(__file__).resolve().parent.parent

CONFTEST = f"""
import uvloop

def pytest_asyncio_loop_factories(config, item):
    return {{"uvloop": config.pluginmanager.get_plugin("{NAME}").track(uvloop.new_event_loop)}}
"""

HANGS = """
import asyncio, time
import pytest

pytestmark = pytest.mark.timeout(1)

def busy():
    time.sleep(0.05)  # the alarm comes in here: the loop logs the failure as a callback's and goes on
    asyncio.get_running_loop().call_soon(busy)

async def waiting_for_a_peer_that_never_answers():
    await asyncio.Event().wait()  # the innermost await: the dump must reach it

async def test_stuck():
    asyncio.get_running_loop().call_soon(busy)
    await waiting_for_a_peer_that_never_answers()
"""

QUICK = """
import asyncio
import pytest

pytestmark = pytest.mark.timeout(1)

async def test_quick():
    await asyncio.sleep(0.1)  # well within its limit

def test_plain():
    assert True
"""


def run(tmp_path: Path, body: str, grace: float) -> subprocess.CompletedProcess[str]:
    """run: pytest on one test module in `tmp_path` with the watchdog's grace set."""
    (tmp_path / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    (tmp_path / "test_case.py").write_text(textwrap.dedent(body), encoding="utf-8")
    (tmp_path / "pytest.ini").write_text(
        f"[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\ntimeout = 300\n"
        f"watchdog_grace = {grace}\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.watchdog",
                           "test_case.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_a_test_whose_alarm_is_swallowed_ends_the_run_with_the_stuck_tasks_stack(tmp_path: Path) -> None:
    done = run(tmp_path, HANGS, grace=2)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "watchdog: test_case.py::test_stuck still running 2 s after its 1 s timeout" in out, out
    tasks = out.split("asyncio tasks", 1)[1].split("threads", 1)[0]
    assert "in waiting_for_a_peer_that_never_answers" in tasks, out  # the await it is stuck in, through the chain
    assert "locks.py" in tasks and "in wait" in tasks, out  # down to asyncio.Event.wait
    assert "Timeout" in out, out  # pytest-timeout's alarm did come, and was swallowed


def test_a_test_within_its_limit_is_left_alone(tmp_path: Path) -> None:
    done = run(tmp_path, QUICK, grace=0.5)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout and "watchdog" not in done.stdout + done.stderr
