"""tests.watchdog: ends the run, with the stack of every asyncio task and thread, when a test outlives its
pytest-timeout limit by `Watchdog.grace` seconds.

pytest-timeout's method (SIGALRM) raises its failure in whatever Python code runs when the alarm comes. On a busy
event loop that is often another task's callback: the loop logs the exception ("Exception in callback") and goes on,
and the test hangs with no second alarm (a CI run on record printed 328 tests, then nothing for an hour). The thread
stacks alone show only the loop running; the tasks' stacks show which await is stuck. pytest's own
`faulthandler_timeout` (pyproject.toml) stays the last resort for a main thread stuck in C with the GIL held, where
this thread cannot run.
"""

from __future__ import annotations

import asyncio
import faulthandler
import io
import os
import sys
import threading
import weakref
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import pytest

GRACE_INI = "watchdog_grace"
NAME = "taphuan-watchdog"  # the plugin's name: config.pluginmanager.get_plugin(NAME)


def timeout_of(item: pytest.Item) -> float:
    """timeout_of: the item's pytest-timeout limit in seconds (its `timeout` marker, else the ini value); 0: none."""
    marker = item.get_closest_marker("timeout")
    if marker is not None:
        value = marker.args[0] if marker.args else marker.kwargs.get("timeout", 0)
    else:
        value = item.config.getini("timeout")
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def await_chain(task: asyncio.Task[Any]) -> list[str]:
    """await_chain: where `task` waits, outermost coroutine first, down the chain of awaits (Task.print_stack shows
    only the outermost frame of a suspended coroutine), and last what the innermost awaits (a future, say)."""
    lines: list[str] = []
    obj: Any = task.get_coro()
    for _ in range(100):
        frame = getattr(obj, "cr_frame", None) or getattr(obj, "ag_frame", None) or getattr(obj, "gi_frame", None)
        if frame is None:
            break
        code = frame.f_code
        lines.append(f'  File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}')
        nxt = getattr(obj, "cr_await", None) or getattr(obj, "ag_await", None) or getattr(obj, "gi_yieldfrom", None)
        if nxt is None:
            break
        obj = nxt
    if obj is not None and not hasattr(obj, "cr_frame"):
        lines.append(f"  awaiting {obj!r}")
    return lines


def task_stacks(loop: asyncio.AbstractEventLoop) -> str:
    """task_stacks: every pending task of `loop` with its chain of awaits (read from another thread while the loop
    may run: a diagnosis, not a consistent snapshot)."""
    out = io.StringIO()
    try:
        tasks = asyncio.all_tasks(loop)
    except RuntimeError as exc:  # the set changed under us too often
        return f"(tasks not readable: {exc})\n"
    for task in sorted(tasks, key=repr):
        out.write(f"--- {task!r}\n")
        try:
            out.write("\n".join(await_chain(task)) + "\n")
        except Exception as exc:  # a frame went away while read
            out.write(f"(stack not readable: {exc!r})\n")
    return out.getvalue()


def pytest_addoption(parser: pytest.Parser) -> None:
    """pytest_addoption: the watchdog's grace (seconds after a test's timeout; tests/test_watchdog.py shortens it)."""
    parser.addini(GRACE_INI, "seconds a test may outlive its pytest-timeout limit before the run ends", default="60")


def pytest_configure(config: pytest.Config) -> None:
    """pytest_configure: the watchdog, as a plugin named NAME (the loop factories find it by that name)."""
    config.pluginmanager.register(Watchdog(grace=float(config.getini(GRACE_INI))), NAME)


@dataclass
class Watchdog:
    """Watchdog: a pytest plugin (registered by pytest_configure above); `track` wraps the event-loop factories
    (tests/conftest.py) so that the dump can list the loop's tasks."""

    grace: float = 60.0
    loop: weakref.ReferenceType[asyncio.AbstractEventLoop] | None = None

    def track(self, factory: Callable[[], asyncio.AbstractEventLoop]) -> Callable[[], asyncio.AbstractEventLoop]:
        """Watchdog.track: `factory`, remembering the last loop it made."""
        def make() -> asyncio.AbstractEventLoop:
            loop = factory()
            self.loop = weakref.ref(loop)
            return loop
        return make

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, Any]:
        """Watchdog.pytest_runtest_protocol: a timer over the item's setup, call and teardown."""
        limit = timeout_of(item)
        if limit <= 0:
            return (yield)
        timer = threading.Timer(limit + self.grace, self.expired, args=(item, limit))
        timer.daemon = True
        timer.start()
        try:
            return (yield)
        finally:
            timer.cancel()

    def expired(self, item: pytest.Item, limit: float) -> None:
        """Watchdog.expired: print what the test is stuck in, then end the process (exit status 1)."""
        terminal = item.config.get_terminal_writer()
        try:
            capman = item.config.pluginmanager.getplugin("capturemanager")
            if capman is not None:
                capman.suspend_global_capture(in_=True)
                out, err = capman.read_global_capture()
                for title, text in (("captured stdout", out), ("captured stderr", err)):
                    if text:
                        terminal.sep("~", title=title)
                        terminal.write(text[-20000:])
            terminal.sep("+", title=f"watchdog: {item.nodeid} still running {self.grace:.0f} s after its "
                                    f"{limit:.0f} s timeout")
            loop = self.loop() if self.loop is not None else None
            if loop is not None and not loop.is_closed():
                terminal.sep("~", title="asyncio tasks")
                terminal.write(task_stacks(loop))
            terminal.sep("~", title="threads")
            terminal.flush()
            sys.stderr.flush()
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
            terminal.sep("+", title="watchdog")
        except Exception as exc:  # the dump is best effort; the exit is not
            terminal.write(f"watchdog: dump failed: {exc!r}\n")
        finally:
            terminal.flush()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)
