"""One request budget per API token, shared by every worker that uses the token.

Webflow counts every request of a token in a window (60 or 120 per minute). Pacing requests evenly
at a little under that rate keeps any window of the server's under its limit, whether the server
counts in fixed or sliding windows; a burst at the start would not. The budget is corrected live:
a 429's Retry-After pauses every worker (not only the one that got it), an ``X-RateLimit-Limit``
lower than configured slows the pace to the server's, and ``X-RateLimit-Remaining: 0`` holds
everyone back for one interval.

The pace is a GCRA (generic cell rate algorithm), as in the Redis budget
(:mod:`flowport.pipeline.sharedbudget`): each caller reserves the next send time, one interval
after the previous one's *send time*, not after the moment its caller woke. A caller woken late
by a busy event loop (many jobs in one process, a loaded machine) then costs no more than its own
lateness, where a leaky bucket of one restarted the interval from each late wake-up and the
lateness of every request added up (3 jobs sharing a token in one process ran at 0.80 of the
ceiling that way; benchmarks/bench_budgets.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import anyio

from flowport.base.errors import RateHeaders

__all__ = ["RateBudget", "RateBudgetStats", "RequestBudget"]

#: Pace at this share of the limit: the gap absorbs clock drift between us and the server.
DEFAULT_SAFETY = 0.985


@dataclass(slots=True)
class RateBudgetStats:
    acquired: int = 0
    pauses: int = 0
    paused_seconds: float = 0.0
    last_remaining: int | None = None
    server_limit: int | None = None


class RequestBudget(Protocol):
    """What the client and the retry loop need of a budget: this module's, kept in the process,
    or :class:`~flowport.pipeline.sharedbudget.RedisRateBudget`, shared between processes."""

    window_seconds: float
    stats: RateBudgetStats

    async def acquire(self) -> None: ...

    def pause_for(self, seconds: float) -> None: ...

    def observe(self, rate: RateHeaders) -> None: ...


class RateBudget:
    def __init__(
        self,
        limit: int,
        window_seconds: float = 60.0,
        *,
        safety: float = DEFAULT_SAFETY,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1 request per window")
        if window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        self.window_seconds = window_seconds
        self.safety = safety
        self._clock = clock or anyio.current_time
        self._sleep = sleep or anyio.sleep
        self._resume_at = 0.0
        #: The send time the next caller gets, unless that is already past.
        self._next_send = 0.0
        self.stats = RateBudgetStats()
        self._set_limit(limit)

    def _set_limit(self, limit: int) -> None:
        self.limit = limit
        self.interval = self.window_seconds / (limit * self.safety)

    def lower_limit(self, limit: int) -> None:
        """Another job joined the budget: the lowest limit any of its jobs gives wins."""
        if limit < self.limit:
            self._set_limit(limit)

    @property
    def requests_per_minute(self) -> float:
        return 60.0 / self.interval

    async def acquire(self) -> None:
        while True:
            await self._wait_out_pause()
            now = self._clock()
            # The next send time: one interval after the last one given out, never earlier than
            # now (an idle budget saves up no burst).
            send_at = max(now, self._next_send)
            self._next_send = send_at + self.interval
            if send_at > now:
                await self._sleep(send_at - now)
            if self._clock() >= self._resume_at:
                self.stats.acquired += 1
                return
            # A pause began while this caller waited for its send time: wait it out, queue again.

    async def _wait_out_pause(self) -> None:
        while (delay := self._resume_at - self._clock()) > 0:
            await self._sleep(delay)

    def pause_for(self, seconds: float) -> None:
        """Hold every caller back for ``seconds`` from now (extends, never shortens, a pause)."""
        resume_at = self._clock() + max(seconds, 0.0)
        if resume_at > self._resume_at:
            self.stats.pauses += 1
            self.stats.paused_seconds += resume_at - max(self._resume_at, self._clock())
            self._resume_at = resume_at
            # Send times start again when the pause ends (callers holding earlier ones queue
            # again, after it).
            self._next_send = max(self._next_send, resume_at)

    def rate_limited(self, retry_after: float | None) -> None:
        """A 429 came back: pause everyone as the server says, or one window if it said nothing."""
        self.pause_for(retry_after if retry_after is not None else self.window_seconds)

    def observe(self, rate: RateHeaders) -> None:
        if rate.limit is not None and rate.limit > 0:
            self.stats.server_limit = rate.limit
            if rate.limit < self.limit:
                self._set_limit(rate.limit)
        if rate.remaining is not None:
            self.stats.last_remaining = rate.remaining
            if rate.remaining <= 0:
                self.pause_for(self.interval)
