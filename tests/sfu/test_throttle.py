from sfu.throttle import Throttle


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_per_interval() -> None:
    clock = FakeClock()
    t = Throttle(0.5, clock)
    assert t.allow()
    assert not t.allow()
    clock.now += 0.49
    assert not t.allow()
    assert abs(t.wait_time() - 0.01) < 1e-9
    clock.now += 0.01
    assert t.allow()
    assert (t.passed, t.dropped) == (2, 2)


def test_first_call_passes_and_wait_is_zero() -> None:
    t = Throttle(10.0, FakeClock())
    assert t.wait_time() == 0.0
    assert t.allow()
