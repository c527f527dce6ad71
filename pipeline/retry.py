"""Retries live here and nowhere else.

A 429 pauses the shared budget for Retry-After and is sent again; a 5xx, a timeout or a dropped
connection backs off with full jitter, or as long as Retry-After says. A write whose outcome is
unknown (sent, no answer; or a 5xx, which may have landed) is NOT sent again by this wrapper unless
the caller says the operation is idempotent: for a create, the caller reads back first.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio

from flowport.base.errors import (
    OutcomeUnknown,
    RateLimited,
    RetriableError,
    ServerError,
)
from flowport.pipeline.ratebudget import RateBudget

__all__ = ["RetryPolicy", "call_with_retries"]

T = TypeVar("T")

RetryListener = Callable[[RetriableError, int], None]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    #: Attempts for 5xx/transport failures; 429s are budgeted separately, they cost nothing.
    max_attempts: int = 8
    #: 429s in a row before giving up: a server that never lets us in is a fatal condition.
    max_rate_limited: int = 50
    base_delay: float = 0.5
    max_delay: float = 30.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


_rng = random.Random()


async def call_with_retries(
    operation: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    budget: RateBudget | None,
    idempotent: bool,
    on_retry: RetryListener | None = None,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> T:
    attempts = 0
    rate_limited = 0
    while True:
        try:
            return await operation()
        except RateLimited as error:
            rate_limited += 1
            if rate_limited > policy.max_rate_limited:
                raise
            if budget is not None:
                budget.rate_limited(error.retry_after)
            else:
                await sleep(error.retry_after if error.retry_after is not None else 1.0)
            if on_retry is not None:
                on_retry(error, rate_limited)
        except RetriableError as error:
            might_have_landed = isinstance(error, OutcomeUnknown | ServerError)
            if might_have_landed and not idempotent:
                raise
            attempts += 1
            if attempts >= policy.max_attempts:
                raise
            if on_retry is not None:
                on_retry(error, attempts)
            delay = error.retry_after
            await sleep(delay if delay is not None else policy.backoff(attempts, _rng))
