import asyncio
from dataclasses import dataclass

import pytest

from sfu.errors import SfuError
from sfu.mailbox import Action, Mailbox


@dataclass
class Add(Action[int]):
    value: int
    delay: float = 0.0


@dataclass
class Fail(Action[None]):
    code: str


async def test_actions_run_in_order_one_at_a_time() -> None:
    log: list[int] = []
    running = 0

    async def handle(action: Action) -> object:
        nonlocal running
        running += 1
        assert running == 1
        if isinstance(action, Add):
            await asyncio.sleep(action.delay)
            log.append(action.value)
            running -= 1
            return action.value * 2
        running -= 1
        raise SfuError(action.code)  # type: ignore[attr-defined]

    box = Mailbox("t", handle)
    box.start()
    box.post(Add(1, 0.02))
    results = await asyncio.gather(box.ask(Add(2, 0.01)), box.ask(Add(3)))
    assert results == [4, 6]
    assert log == [1, 2, 3]
    with pytest.raises(SfuError) as err:
        await box.ask(Fail("forbidden"))
    assert err.value.code == "forbidden"
    assert await box.ask(Add(5)) == 10  # the task survived the error
    await box.close()
    with pytest.raises(SfuError):
        await box.ask(Add(1))


async def test_posted_errors_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def handle(action: Action) -> object:
        raise ValueError("boom")

    box = Mailbox("t", handle)
    box.start()
    box.post(Fail("x"))
    await asyncio.sleep(0.01)
    assert "Fail failed" in caplog.text
    await box.close()


async def test_ask_from_own_task_is_refused() -> None:
    box: Mailbox

    async def handle(action: Action) -> object:
        with pytest.raises(RuntimeError):
            await box.ask(Add(1))
        return 1

    box = Mailbox("t", handle)
    box.start()
    assert await box.ask(Add(0)) == 1
    await box.close()
