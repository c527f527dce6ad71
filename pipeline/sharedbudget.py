"""One rate budget per API token, however many jobs use the token and wherever they run.

Webflow counts a token's requests, not a job's: two jobs pacing alone at the token's limit are
answered 429 together. So every run takes its budget from :func:`shared_budget`:

* **In one process** (the default, ``rate_budget = "process"``): jobs that use the same token on
  the same API get the same :class:`~flowport.pipeline.ratebudget.RateBudget` (its pace, its
  pauses), for as long as any of them runs. The lowest ``rate_limit`` among them wins.
* **Across processes and machines** (``rate_budget = "redis://host:6379/0"``, or the
  ``FLOWPORT_RATE_BUDGET`` environment variable): :class:`RedisRateBudget`, a GCRA (the generic
  cell rate algorithm) kept in Redis. One Lua script, atomic on the server, hands out send times
  one interval apart (the "theoretical arrival time" moves on by an interval per request), read
  against Redis's own clock (``TIME``), so the machines' clocks need not agree. A 429's
  Retry-After or an ``X-RateLimit-Remaining: 0`` seen by any job sets a shared "blocked until"
  that every later send time, and every caller already waiting for one, respects.

Tokens are never stored, logged or sent to Redis: a budget is named by an HMAC-SHA256 of the API's
base URL and the token, keyed by ``FLOWPORT_RATE_BUDGET_SECRET`` when set (the same value on every
machine; it makes the names unlinkable even by someone holding the token) or else by a fixed
application key.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import math
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
from pydantic import SecretStr

from flowport.base.errors import ConfigError, FatalError, RateHeaders
from flowport.pipeline.logging import register_secret
from flowport.pipeline.ratebudget import DEFAULT_SAFETY, RateBudget, RateBudgetStats, RequestBudget

__all__ = [
    "BUDGET_ENV",
    "BUDGET_SECRET_ENV",
    "IN_PROCESS",
    "RedisRateBudget",
    "budget_id",
    "check_backend",
    "chosen_backend",
    "describe_backend",
    "shared_budget",
]

#: Names the budget's backend when the job does not (``[run] rate_budget``).
BUDGET_ENV: Final = "FLOWPORT_RATE_BUDGET"
#: The HMAC key naming budgets; the same on every machine that shares them.
BUDGET_SECRET_ENV: Final = "FLOWPORT_RATE_BUDGET_SECRET"  # noqa: S105 (a variable's name)
IN_PROCESS: Final = "process"
#: Used when no secret is set: ids are still not tokens, and every machine computes the same.
_APP_KEY: Final = b"flowport rate budget v1"
#: The ``prefix`` query parameter of a Redis URL is ours (redis-py refuses unknown ones).
_PREFIX_PARAMETER: Final = "prefix"
DEFAULT_PREFIX: Final = "flowport:budget"
#: Seconds a Redis command may take before the budget counts Redis as gone.
_REDIS_TIMEOUT: Final = 5.0


def budget_id(base_url: str, token: SecretStr) -> str:
    """The budget's name: the same for the same token on the same API, on any machine."""
    secret = os.environ.get(BUDGET_SECRET_ENV, "").encode() or _APP_KEY
    material = f"{base_url.rstrip('/')}\n{token.get_secret_value()}".encode()
    return hmac.new(secret, material, hashlib.sha256).hexdigest()[:32]


def check_backend(value: str) -> str:
    """``process`` or a redis:// / rediss:// URL; anything else is a mistake worth naming."""
    if value == IN_PROCESS:
        return value
    parts = urlsplit(value)
    if parts.scheme in ("redis", "rediss") and parts.hostname:
        register_secret(parts.password)  # never shown, wherever the URL's text might go
        return value
    raise ValueError(
        'must be "process" (jobs of this process share a budget per token) or a Redis URL '
        'such as "redis://127.0.0.1:6379/0" (every process using that Redis shares it)'
    )


def chosen_backend(job_setting: str | None) -> str:
    """The job's ``rate_budget``, else ``FLOWPORT_RATE_BUDGET``, else in-process."""
    if job_setting is not None:
        return job_setting
    value = os.environ.get(BUDGET_ENV, "").strip()
    if not value:
        return IN_PROCESS
    try:
        return check_backend(value)
    except ValueError as exc:
        raise ConfigError(str(exc), key=BUDGET_ENV, fix=f"correct or unset {BUDGET_ENV}") from None


def describe_backend(backend: str) -> str:
    """The backend as it may be shown: a Redis URL without its user name and password."""
    if backend == IN_PROCESS:
        return "this process"
    parts = urlsplit(backend)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, f"{host}{port}", parts.path, "", ""))


# ---- Redis --------------------------------------------------------------------------------

#: KEYS: the theoretical arrival time, blocked-until. ARGV: the interval, a pause to apply
#: first, both in microseconds. Returns the wait before the caller's send time, in
#: microseconds. Times are written with %.0f: Lua's own number-to-string keeps 14 digits, and
#: microseconds since 1970 have 16.
_RESERVE_SCRIPT: Final = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval = tonumber(ARGV[1])
local pause = tonumber(ARGV[2])
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
if pause > 0 and now + pause > blocked then
  blocked = now + pause
  redis.call('SET', KEYS[2], string.format('%.0f', blocked), 'PX', math.ceil(pause / 1000) + 1000)
end
local slot = math.max(now, blocked, tonumber(redis.call('GET', KEYS[1]) or '0'))
local tat = slot + interval
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
return slot - now
"""

#: KEYS: blocked-until. Returns the microseconds left of a pause (0: none).
_PAUSE_LEFT_SCRIPT: Final = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local blocked = tonumber(redis.call('GET', KEYS[1]) or '0')
return math.max(0, blocked - now)
"""


class _Script(Protocol):
    def __call__(self, keys: list[str], args: list[Any]) -> Awaitable[Any]: ...


class RedisRateBudget:
    """The token's budget in Redis, for every process that names the same Redis.

    ``pause_for`` is synchronous (the retry loop and the client call it between awaits): the
    pause holds this process's callers at once and reaches Redis with the next reservation,
    which the caller that met the 429 makes straight away when it sends again."""

    def __init__(
        self,
        redis: Any,
        key: str,
        limit: int,
        window_seconds: float,
        *,
        where: str,
        safety: float = DEFAULT_SAFETY,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1 request per window")
        self.window_seconds = window_seconds
        self.safety = safety
        self.stats = RateBudgetStats()
        self._redis = redis
        self._keys = [f"{key}:tat", f"{key}:blocked"]
        self._where = where
        self._sleep = sleep
        self._clock = clock
        self._reserve: _Script = redis.register_script(_RESERVE_SCRIPT)
        self._pause_left: _Script = redis.register_script(_PAUSE_LEFT_SCRIPT)
        #: A pause not yet written to Redis: when it ends, by this process's clock.
        self._pending_until = 0.0
        self._set_limit(limit)

    def _set_limit(self, limit: int) -> None:
        self.limit = limit
        self.interval = self.window_seconds / (limit * self.safety)

    def lower_limit(self, limit: int) -> None:
        if limit < self.limit:
            self._set_limit(limit)

    async def ping(self) -> None:
        await self._command(self._redis.ping())

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a connection Redis already dropped
            await self._redis.aclose()

    async def _command(self, call: Awaitable[Any]) -> Any:
        from redis.exceptions import RedisError

        try:
            return await call
        except (RedisError, OSError) as exc:
            raise FatalError(
                f"the shared rate budget in Redis at {self._where} is unreachable "
                f"({type(exc).__name__}); no request is sent without it. Check Redis, then run "
                "the job again: it resumes where it stopped"
            ) from None

    async def acquire(self) -> None:
        while True:
            pause = max(self._pending_until - self._clock(), 0.0)
            self._pending_until = 0.0
            wait_us = await self._command(
                self._reserve(keys=self._keys, args=[_micros(self.interval), _micros(pause)])
            )
            if int(wait_us) <= 0:
                break
            await self._sleep(int(wait_us) / 1_000_000)
            # A pause may have begun while this caller waited for its send time.
            left_us = int(await self._command(self._pause_left(keys=self._keys[1:], args=[])))
            if left_us <= 0:
                break
            self.stats.pauses += 1
            self.stats.paused_seconds += left_us / 1_000_000
            await self._sleep(left_us / 1_000_000)
        self.stats.acquired += 1

    def pause_for(self, seconds: float) -> None:
        until = self._clock() + max(seconds, 0.0)
        if until > self._pending_until:
            self._pending_until = until

    def rate_limited(self, retry_after: float | None) -> None:
        self.pause_for(retry_after if retry_after is not None else self.window_seconds)

    def observe(self, rate: RateHeaders) -> None:
        if rate.limit is not None and rate.limit > 0:
            self.stats.server_limit = rate.limit
            self.lower_limit(rate.limit)
        if rate.remaining is not None:
            self.stats.last_remaining = rate.remaining
            if rate.remaining <= 0:
                self.pause_for(self.interval)


def _micros(seconds: float) -> int:
    return math.ceil(seconds * 1_000_000)


def _redis_budget(backend: str, name: str, limit: int, window_seconds: float) -> RedisRateBudget:
    import redis.asyncio

    parts = urlsplit(backend)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == _PREFIX_PARAMETER), DEFAULT_PREFIX)
    rest = urlencode([(k, v) for k, v in query if k != _PREFIX_PARAMETER])
    client = redis.asyncio.Redis.from_url(
        urlunsplit(parts._replace(query=rest)),
        socket_timeout=_REDIS_TIMEOUT,
        socket_connect_timeout=_REDIS_TIMEOUT,
    )
    where = describe_backend(backend)
    return RedisRateBudget(client, f"{prefix}:{name}", limit, window_seconds, where=where)


# ---- the process's registry ---------------------------------------------------------------


@dataclass(slots=True)
class _Shared:
    budget: RateBudget | RedisRateBudget
    users: int = 0


#: The budgets in use, by event loop (a Redis connection belongs to one), backend and name.
_in_use: dict[tuple[int, str, str], _Shared] = {}


@contextlib.asynccontextmanager
async def shared_budget(
    *,
    backend: str,
    base_url: str,
    token: SecretStr,
    limit: int,
    window_seconds: float,
) -> AsyncIterator[RequestBudget]:
    """The token's budget for the block: the one already in use in this process, if any."""
    name = budget_id(base_url, token)
    slot = (id(asyncio.get_running_loop()), backend, name)
    shared = _in_use.get(slot)
    if shared is None:
        budget: RateBudget | RedisRateBudget = (
            RateBudget(limit, window_seconds)
            if backend == IN_PROCESS
            else _redis_budget(backend, name, limit, window_seconds)
        )
        shared = _in_use[slot] = _Shared(budget)
    else:
        shared.budget.lower_limit(limit)
    shared.users += 1
    try:
        if isinstance(shared.budget, RedisRateBudget):
            await shared.budget.ping()
        yield shared.budget
    finally:
        shared.users -= 1
        if shared.users == 0:
            del _in_use[slot]
            if isinstance(shared.budget, RedisRateBudget):
                with anyio.CancelScope(shield=True):  # closed even when the run is cancelled
                    await shared.budget.close()
