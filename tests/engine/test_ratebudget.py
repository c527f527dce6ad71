"""The shared rate budget under a controlled clock: nothing sleeps for real."""

from __future__ import annotations

import time

import anyio
import anyio.lowlevel
import pytest

from flowport.base.errors import RateHeaders
from flowport.pipeline.ratebudget import RateBudget


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def test_a_429_pauses_every_caller_for_retry_after() -> None:
    fake = FakeTime()
    budget = RateBudget(1_000_000, 60.0, clock=fake.clock, sleep=fake.sleep)
    budget.rate_limited(12.0)
    await budget.acquire()
    assert fake.sleeps == [12.0]
    # The next caller waits its one interval, not a second pause.
    await budget.acquire()
    assert fake.sleeps == [12.0, pytest.approx(budget.interval)]
    assert budget.stats.pauses == 1


async def test_a_pause_is_extended_never_shortened() -> None:
    fake = FakeTime()
    budget = RateBudget(100, 60.0, clock=fake.clock, sleep=fake.sleep)
    budget.pause_for(10.0)
    budget.pause_for(3.0)
    assert budget.stats.pauses == 1
    budget.pause_for(20.0)
    await budget.acquire()
    assert sum(fake.sleeps) == 20.0


async def test_without_retry_after_a_429_waits_one_window() -> None:
    fake = FakeTime()
    budget = RateBudget(120, 6.0, clock=fake.clock, sleep=fake.sleep)
    budget.rate_limited(None)
    await budget.acquire()
    assert fake.sleeps == [6.0]


def test_pace_stays_under_the_limit() -> None:
    budget = RateBudget(120, 60.0)
    assert 0.95 * 120 <= budget.requests_per_minute < 120
    compressed = RateBudget(120, 6.0)
    assert 0.95 * 1200 <= compressed.requests_per_minute < 1200


def test_server_limit_lower_than_configured_slows_the_pace() -> None:
    budget = RateBudget(120, 60.0)
    budget.observe(RateHeaders(limit=60, remaining=59))
    assert budget.limit == 60
    assert budget.requests_per_minute < 60
    budget.observe(RateHeaders(limit=120, remaining=100))
    assert budget.limit == 60


async def test_remaining_zero_holds_everyone_back_one_interval() -> None:
    fake = FakeTime()
    budget = RateBudget(120, 60.0, clock=fake.clock, sleep=fake.sleep)
    budget.observe(RateHeaders(limit=120, remaining=0))
    await budget.acquire()
    assert fake.sleeps == [pytest.approx(budget.interval)]


async def test_callers_woken_late_by_a_busy_loop_keep_the_pace() -> None:
    # Each caller's send time is one interval after the previous send time, not after its late
    # wake-up: lateness must not add up request after request (a leaky bucket of one let it, and
    # three jobs sharing a token in one process ran at 0.80 of the ceiling).
    budget = RateBudget(200, 1.0)
    sent: list[float] = []
    done = anyio.Event()

    async def hog_the_loop() -> None:
        while not done.is_set():
            # A job's synchronous work (mapping, the checkpoint's commit): blocking on purpose.
            time.sleep(0.003)  # noqa: ASYNC251
            await anyio.lowlevel.checkpoint()

    async def worker() -> None:
        for _ in range(30):
            await budget.acquire()
            sent.append(anyio.current_time())

    async with anyio.create_task_group() as group:
        group.start_soon(hog_the_loop)
        async with anyio.create_task_group() as workers:
            for _ in range(4):
                workers.start_soon(worker)
        done.set()
    pace = (len(sent) - 1) / (sent[-1] - sent[0])
    assert 0.92 * 200 <= pace <= 200
