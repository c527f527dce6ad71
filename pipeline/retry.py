"""Retries live here and nowhere else.

A 429 pauses the shared budget for Retry-After and is sent again; a 5xx, a timeout or a dropped
connection backs off with full jitter, or as long as Retry-After says. A write whose outcome is
unknown (sent, no answer; or a 5xx, which may have landed) is NOT sent again by this wrapper unless
the caller says the operation is idempotent: for a create, the caller reads back first.

Every such wait of a run goes through one :class:`WaitLedger`, which counts them as wall time
(workers waiting out the same window count it once), says each long one, and stops the run
instead of waiting past ``[run] max_total_wait_seconds``: a ``Retry-After: 86400`` stops it at
once, with the setting named, rather than keeping a cron run silent for a day.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import anyio

from flowport.base.errors import (
    MAX_RETRY_AFTER_SECONDS,
    FatalError,
    OutcomeUnknown,
    RateLimited,
    RetriableError,
    ServerError,
)
from flowport.pipeline.ratebudget import RequestBudget

__all__ = ["RetryPolicy", "WaitCapReached", "WaitLedger", "call_with_retries", "why_waiting"]

T = TypeVar("T")

RetryListener = Callable[[RetriableError, int], None]
#: Told of each long wait: how long, and why (one line, the collection named when known).
WaitListener = Callable[[float, str], None]

#: A wait this long or longer is said: shorter ones are the ordinary pace of retries.
ANNOUNCE_WAITS_FROM_SECONDS = 5.0


class WaitCapReached(FatalError):
    """The run would wait past ``[run] max_total_wait_seconds``: it stops instead."""


@dataclass(slots=True)
class WaitLedger:
    """The waits of one run (one token's budget): what the server ordered (Retry-After) and the
    backoffs after failures, counted as wall time. Eight workers waiting out one 429's window
    wait once, so the total is the union of the waits, not their sum."""

    cap_seconds: float
    on_wait: WaitListener | None = None
    clock: Callable[[], float] = field(default=anyio.current_time)
    #: Wall time covered by waits so far.
    waited: float = 0.0
    #: The end of the latest wait: waits ending before it add nothing.
    _until: float = 0.0

    def claim(self, seconds: float, reason: str) -> None:
        """Count a wait about to start, or raise :class:`WaitCapReached` without waiting when
        it would pass the cap (a wait longer than what is left stops the run at once)."""
        now = self.clock()
        end = now + max(seconds, 0.0)
        extra = max(0.0, end - max(now, self._until))
        if self.waited + extra > self.cap_seconds:
            raise WaitCapReached(
                f"not waiting {_duration(seconds)} more ({reason}): the run's waits "
                f"would pass [run] max_total_wait_seconds = {self.cap_seconds:g} "
                f"({_duration(self.waited)} waited so far). Nothing is lost: run the job again "
                "later (it resumes where it stopped), or raise max_total_wait_seconds"
            )
        self.waited += extra
        self._until = max(self._until, end)
        # A window another worker already announced is not said again.
        if self.on_wait is not None and seconds >= ANNOUNCE_WAITS_FROM_SECONDS and extra >= 1.0:
            self.on_wait(seconds, reason)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def why_waiting(error: RetriableError) -> str:
    """Why a retry waits, for a person: the answer that made it wait."""
    if error.status == 429:
        if error.retry_after is None:
            return "429 Too Many Requests without Retry-After: waiting one rate window"
        return f"429 Too Many Requests with Retry-After: {_duration(error.retry_after)}"
    if error.status is None:
        return f"backing off after no answer ({error})"
    if error.retry_after is not None:
        return f"HTTP {error.status} with Retry-After: {_duration(error.retry_after)}"
    return f"backing off after HTTP {error.status}"


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
    budget: RequestBudget | None,
    idempotent: bool,
    on_retry: RetryListener | None = None,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    waits: WaitLedger | None = None,
    context: str = "",
) -> T:
    """``waits`` counts and caps the waits (see :class:`WaitLedger`); without one, each wait is
    cut to MAX_RETRY_AFTER_SECONDS. ``context`` names what the call was for in wait notices."""
    attempts = 0
    rate_limited = 0
    while True:
        try:
            return await operation()
        except RateLimited as error:
            rate_limited += 1
            if rate_limited > policy.max_rate_limited:
                raise
            default = budget.window_seconds if budget is not None else 1.0
            wait = _bounded(error, default, waits, context)
            if budget is not None:
                budget.pause_for(wait)  # every worker of the token waits, not only this one
            else:
                await sleep(wait)
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
            await sleep(_bounded(error, policy.backoff(attempts, _rng), waits, context))


def _bounded(
    error: RetriableError, default: float, waits: WaitLedger | None, context: str
) -> float:
    """How long to wait after ``error``: as the server said, else ``default``; claimed from the
    run's ledger (which may stop the run instead), or cut to a sane single wait without one."""
    seconds = error.retry_after if error.retry_after is not None else default
    if waits is None:
        return min(seconds, MAX_RETRY_AFTER_SECONDS)
    reason = why_waiting(error)
    waits.claim(seconds, f"{context}: {reason}" if context else reason)
    return seconds
