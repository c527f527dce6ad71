"""The shared rate budget under a controlled clock: nothing sleeps for real."""

from __future__ import annotations

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
    await budget.acquire()
    assert fake.sleeps == [12.0]
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
