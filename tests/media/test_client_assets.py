"""WebflowClient's asset calls and the presigned upload, against the sandbox over HTTP."""

from __future__ import annotations

import hashlib

import aiohttp
import pytest

from flowport.base.errors import (
    NotFoundError,
    RequestRejected,
    ServerError,
)
from flowport.pipeline.ratebudget import RateBudget
from flowport.pipeline.sandbox import Sandbox
from flowport.pipeline.webflow.client import WebflowClient, classify_storage
from tests.oldsite import png


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


async def test_create_upload_get_list_update_delete(
    sandbox: Sandbox, client: WebflowClient, budget: RateBudget
) -> None:
    data = png(8, 8)
    upload = await client.create_asset(sandbox.site_id, file_name="tiny.png", file_hash=md5(data))
    assert upload.content_type == "image/png"
    assert upload.upload_details["key"].endswith("_tiny.png")
    assert (await client.get_asset(upload.id)).size == 0

    api_calls = budget.stats.acquired
    sandbox_requests = sandbox.stats()["totals"]["requests"]
    # The sandbox's storage refuses any Authorization header, so this passing also shows that
    # the Webflow token stayed home.
    await client.upload_asset(upload, data)
    assert budget.stats.acquired == api_calls
    assert sandbox.stats()["totals"]["requests"] == sandbox_requests

    asset = await client.get_asset(upload.id)
    assert (asset.size, asset.hosted_url, asset.original_file_name) == (
        len(data),
        upload.hosted_url,
        "tiny.png",
    )
    async with aiohttp.ClientSession() as plain, plain.get(asset.hosted_url) as served:
        assert (served.status, await served.read()) == (200, data)

    page = await client.list_assets(sandbox.site_id, limit=1)
    assert [a.id for a in page.assets] == [upload.id]
    assert page.pagination.total == 1
    assert [a.id async for a in client.iter_assets(sandbox.site_id)] == [upload.id]

    updated = await client.update_asset(upload.id, alt_text="A tiny square")
    assert updated.alt_text == "A tiny square"
    await client.delete_asset(upload.id)
    with pytest.raises(NotFoundError):
        await client.get_asset(upload.id)


async def test_storage_refusals_are_named_by_storage_code(
    sandbox: Sandbox, client: WebflowClient
) -> None:
    data = png(4, 4)
    upload = await client.create_asset(sandbox.site_id, file_name="a.png", file_hash=md5(data))
    with pytest.raises(RequestRejected) as refused:
        await client.upload_asset(upload, data[:-1] + b"\x01")
    assert (refused.value.status, refused.value.code) == (400, "BadDigest")
    with pytest.raises(RequestRejected) as bad_type:
        await client.create_asset(sandbox.site_id, file_name="a.exe", file_hash=md5(data))
    assert bad_type.value.code == "validation_error"


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected", "code"),
    [
        (201, b"<PostResponse/>", {}, None, None),
        (204, b"", {}, None, None),
        (400, b"<Error><Code>BadDigest</Code><Message>m</Message></Error>", {}, RequestRejected,
         "BadDigest"),
        (400, b"<Error><Code>EntityTooLarge</Code></Error>", {}, RequestRejected, "EntityTooLarge"),
        (403, b"<Error><Code>AccessDenied</Code></Error>", {}, RequestRejected, "AccessDenied"),
        (503, b"<Error><Code>SlowDown</Code></Error>", {"Retry-After": "2"}, ServerError,
         "SlowDown"),
        (500, b"", {}, ServerError, "http_500"),
        (408, b"not xml", {}, ServerError, "http_408"),
    ],
)  # fmt: skip
def test_classify_storage(
    status: int,
    body: bytes,
    headers: dict[str, str],
    expected: type[Exception] | None,
    code: str | None,
) -> None:
    problem = classify_storage(status, headers, body)
    if expected is None:
        assert problem is None
        return
    assert type(problem) is expected
    assert isinstance(problem, RequestRejected | ServerError)
    assert problem.body is not None
    assert problem.body.code == code
    if headers:
        assert isinstance(problem, ServerError)
        assert problem.retry_after == 2.0
