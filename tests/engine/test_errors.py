"""classify() and Retry-After parsing: the whole table, no network."""

from __future__ import annotations

import email.utils

import pytest

from flowport.base.errors import (
    AuthError,
    FlowportError,
    NotFoundError,
    RateLimited,
    RequestRejected,
    ServerError,
    classify,
    parse_retry_after,
)

BODY_429 = {"code": "too_many_requests", "message": "Too many requests", "details": []}
DUP_SLUG = {
    "code": "validation_error",
    "message": "Validation Error",
    "externalReference": None,
    "details": [{"param": "slug", "description": "Unique value is already in database: 'a'"}],
}


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        (200, {}, {}, None),
        (202, {"X-RateLimit-Remaining": "3"}, {}, None),
        (204, {}, None, None),
        (429, {"Retry-After": "7"}, BODY_429, RateLimited),
        (401, {}, {"code": "not_authorized", "message": "Request not authorized"}, AuthError),
        (403, {}, {"code": "missing_scopes", "message": "no cms:write"}, AuthError),
        (404, {}, {"code": "collection_not_found", "message": "gone"}, NotFoundError),
        (404, {}, {"code": "item_not_found", "message": "no item"}, RequestRejected),
        (400, {}, DUP_SLUG, RequestRejected),
        (409, {}, {"code": "conflict", "message": "never published"}, RequestRejected),
        (500, {}, {"code": "internal_error", "message": "oops"}, ServerError),
        (503, {"Retry-After": "2"}, "not json at all", ServerError),
        (408, {}, None, ServerError),
    ],
)
def test_classify_table(
    status: int, headers: dict[str, str], body: object, expected: type[FlowportError] | None
) -> None:
    outcome = classify(status, headers, body)
    if expected is None:
        assert outcome.error is None
    else:
        assert type(outcome.error) is expected


def test_rate_headers_are_read_case_insensitively() -> None:
    outcome = classify(200, {"x-ratelimit-limit": "120", "X-RATELIMIT-REMAINING": "0"}, {})
    assert outcome.rate.limit == 120
    assert outcome.rate.remaining == 0


def test_429_carries_retry_after_and_limit() -> None:
    outcome = classify(429, {"Retry-After": "7", "X-RateLimit-Limit": "60"}, BODY_429)
    assert isinstance(outcome.error, RateLimited)
    assert outcome.error.retry_after == 7.0
    assert outcome.error.limit == 60


def test_duplicate_slug_reason_names_the_field() -> None:
    outcome = classify(400, {}, DUP_SLUG)
    assert isinstance(outcome.error, RequestRejected)
    assert outcome.error.code == "validation_error"
    assert "slug: Unique value is already in database: 'a'" in str(outcome.error)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        ("12", 12.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("99999", 300.0),
        ("soon", None),
    ],
)
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(header, now=now) == pytest.approx(30.0, abs=1.0)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0
