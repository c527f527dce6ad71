"""One error taxonomy for the whole engine.

    FlowportError
    ├── FatalError                 nothing more can succeed: stop the run cleanly (exit 3)
    │   ├── ConfigError            a bad job file or argument, found before any write (exit 2)
    │   ├── AuthError              401/403: the token is wrong or lacks a scope
    │   ├── NotFoundError          404 on a site or collection the job writes to
    │   └── SourceError            the source cannot be read at all (unreachable, unreadable)
    ├── RetriableError             try again later; ``retry_after`` says when, if the server said
    │   ├── RateLimited            429 too_many_requests (``retry_after`` from Retry-After)
    │   ├── ServerError            5xx
    │   └── TransportError         timeout, refused or dropped connection
    │       └── OutcomeUnknown     the request was sent but no answer came: a write may have landed
    └── RequestRejected            4xx about the request's content (400 validation_error, 409
                                   conflict, 404 item_not_found): per item once isolated

A response is turned into one of these by :func:`classify`, a pure function of the status, the
headers and the body, so the whole table is tested without a network.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AuthError",
    "ConfigError",
    "ErrorBody",
    "FatalError",
    "FlowportError",
    "MalformedAnswer",
    "NotFoundError",
    "OutcomeUnknown",
    "RateLimited",
    "RequestRejected",
    "RetriableError",
    "ServerError",
    "SourceError",
    "TransportError",
    "classify",
    "parse_retry_after",
]

#: Retry-After beyond this is treated as a server mistake rather than obeyed for hours.
MAX_RETRY_AFTER_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """Webflow's one error body shape."""

    code: str
    message: str
    external_reference: str | None = None
    details: tuple[Any, ...] = ()

    @classmethod
    def from_json(cls, body: object, *, fallback_message: str = "") -> ErrorBody:
        if not isinstance(body, Mapping):
            return cls(code="unknown", message=fallback_message)
        details = body.get("details")
        return cls(
            code=str(body.get("code") or "unknown"),
            message=str(body.get("message") or fallback_message),
            external_reference=(
                str(body["externalReference"]) if body.get("externalReference") else None
            ),
            details=tuple(details) if isinstance(details, list) else (),
        )

    def describe(self) -> str:
        """One line for humans: the message plus the details Webflow gave."""
        parts = [self.message or self.code]
        for detail in self.details:
            if isinstance(detail, Mapping):
                param = detail.get("param") or detail.get("field")
                text = detail.get("description") or detail.get("message") or ""
                parts.append(f"{param}: {text}" if param else str(text))
            else:
                parts.append(str(detail))
        return "; ".join(p for p in parts if p)


class FlowportError(Exception):
    """Root of every error flowport raises on purpose."""


class FatalError(FlowportError):
    """Nothing more can succeed; the run stops cleanly, keeping what it logged."""


class ConfigError(FatalError):
    """A job file or argument is wrong; raised before anything is written."""

    def __init__(self, message: str, *, key: str | None = None, fix: str | None = None) -> None:
        self.key = key
        self.fix = fix
        text = message
        if key:
            text = f"{key}: {text}"
        if fix:
            text = f"{text}\n  fix: {fix}"
        super().__init__(text)


@dataclass(eq=False)
class _HttpFailure(FlowportError):
    status: int | None = None
    body: ErrorBody | None = None
    message: str = ""

    def __post_init__(self) -> None:
        FlowportError.__init__(self, self.__str__())

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status is not None else "no HTTP answer"
        what = self.body.describe() if self.body else self.message
        return f"{where}: {what}" if what else where


@dataclass(eq=False)
class AuthError(_HttpFailure, FatalError):
    """401 or 403."""


@dataclass(eq=False)
class NotFoundError(_HttpFailure, FatalError):
    """A site or collection is not there (404 other than item_not_found)."""


class SourceError(FatalError):
    """The source as a whole cannot be read."""


@dataclass(eq=False)
class RetriableError(_HttpFailure):
    """Worth sending again; ``retry_after`` is the server's word on when, in seconds."""

    retry_after: float | None = None


@dataclass(eq=False)
class RateLimited(RetriableError):
    """429: every worker pauses, not only the one that got it."""

    limit: int | None = None


@dataclass(eq=False)
class ServerError(RetriableError):
    """5xx."""


@dataclass(eq=False)
class TransportError(RetriableError):
    """No HTTP answer: connection refused before sending, or a timeout."""


@dataclass(eq=False)
class OutcomeUnknown(TransportError):
    """The request left, the answer never came: a create may have landed; read back first."""


@dataclass(eq=False)
class MalformedAnswer(OutcomeUnknown):
    """A 2xx answer that is not the JSON the API promises (a proxy's HTML maintenance page, a
    garbled or wrong-shaped body). Nothing can be read from it, so it is never taken as
    "nothing": a read is sent again like after a 5xx, and a write's outcome is unknown (it may
    have landed), so its caller reads back before sending it again."""


@dataclass(eq=False)
class RequestRejected(_HttpFailure):
    """The server refused this request's content; sending it again unchanged fails again."""

    @property
    def code(self) -> str:
        return self.body.code if self.body else "unknown"


@dataclass(frozen=True, slots=True)
class RateHeaders:
    limit: int | None = None
    remaining: int | None = None


@dataclass(frozen=True, slots=True)
class Classified:
    """What :func:`classify` says of one response: ``error`` is None for success."""

    error: FlowportError | None
    rate: RateHeaders = field(default_factory=RateHeaders)


def parse_retry_after(
    value: str | None, *, now: float | None = None, limit: float | None = MAX_RETRY_AFTER_SECONDS
) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date, cut to
    ``limit`` (None: the server's word, for a caller that caps its waits itself)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds) or seconds < 0:
        return 0.0
    return seconds if limit is None else min(seconds, limit)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    raw = _header(headers, name)
    if raw is None:
        return None
    try:
        return int(float(raw))
    except ValueError:
        return None


def classify(
    status: int, headers: Mapping[str, str], body: object, *, now: float | None = None
) -> Classified:
    """Map one HTTP answer onto the taxonomy. Pure: no I/O, no clock unless a date needs one."""
    rate = RateHeaders(
        limit=_int_header(headers, "X-RateLimit-Limit"),
        remaining=_int_header(headers, "X-RateLimit-Remaining"),
    )
    if 200 <= status < 300:
        return Classified(None, rate)
    error_body = ErrorBody.from_json(body, fallback_message=f"HTTP {status}")
    # Uncut: the engine's wait ledger decides, and a day-long Retry-After stops a run at once
    # instead of being taken for five minutes again and again.
    retry_after = parse_retry_after(_header(headers, "Retry-After"), now=now, limit=None)
    error: FlowportError
    if status == 429:
        error = RateLimited(
            status=status, body=error_body, retry_after=retry_after, limit=rate.limit
        )
    elif status in (401, 403):
        error = AuthError(status=status, body=error_body)
    elif status == 404 and error_body.code != "item_not_found":
        error = NotFoundError(status=status, body=error_body)
    elif status == 408 or status >= 500:
        error = ServerError(status=status, body=error_body, retry_after=retry_after)
    else:
        error = RequestRejected(status=status, body=error_body)
    return Classified(error, rate)
