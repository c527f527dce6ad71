"""The sandbox's Assets API and its S3-style storage endpoint, over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from flowport.pipeline.sandbox import Sandbox, SandboxConfig
from tests.conftest import TOKEN

from .conftest import Api, SandboxFactory, TimeControl

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


async def create(api: Api, file_name: str, data: bytes, **extra: Any) -> dict[str, Any]:
    body = {"fileName": file_name, "fileHash": md5(data), **extra}
    answer = await api.post(f"/sites/{api.sandbox.site_id}/assets", body)
    assert answer.status == 200, answer.body
    return dict(answer.body)


async def upload(
    session: aiohttp.ClientSession,
    created: dict[str, Any],
    data: bytes,
    *,
    fields: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    form = aiohttp.FormData()
    for name, value in (fields if fields is not None else created["uploadDetails"]).items():
        form.add_field(name, value)
    form.add_field("file", data, filename="upload.bin", content_type="application/octet-stream")
    async with session.post(created["uploadUrl"], data=form, headers=headers) as response:
        return response.status, await response.text()


def s3_code(text: str) -> str | None:
    found = re.search(r"<Code>([^<]+)</Code>", text)
    return found.group(1) if found else None


async def fetch(session: aiohttp.ClientSession, url: str) -> tuple[int, bytes, str]:
    async with session.get(url) as response:
        return response.status, await response.read(), response.content_type


async def test_create_upload_serve_update_delete(api: Api, session: aiohttp.ClientSession) -> None:
    created = await create(api, "Red Chair.png", PNG_BYTES)
    details = created["uploadDetails"]
    assert created["contentType"] == "image/png"
    assert details["key"] == f"{api.sandbox.site_id}/{created['id']}_Red Chair.png"
    assert details["content-type"] == "image/png"
    assert details["success_action_status"] == "201"
    policy = json.loads(base64.b64decode(details["Policy"]))
    assert ["content-length-range", 1, 4_000_000] in policy["conditions"]
    # Before the upload the asset exists, empty, and its hosted URL serves nothing.
    before = await api.get(f"/assets/{created['id']}")
    assert before.body["size"] == 0
    assert (await fetch(session, created["hostedUrl"]))[0] == 404

    status, text = await upload(session, created, PNG_BYTES)
    assert status == 201, text
    assert f'"{md5(PNG_BYTES)}"' in text

    assert await fetch(session, created["hostedUrl"]) == (200, PNG_BYTES, "image/png")
    asset = (await api.get(f"/assets/{created['id']}")).body
    assert asset["size"] == len(PNG_BYTES)
    assert asset["hostedUrl"] == created["hostedUrl"]
    assert asset["originalFileName"] == "Red Chair.png"
    listed = (await api.get(f"/sites/{api.sandbox.site_id}/assets")).body
    assert [a["id"] for a in listed["assets"]] == [created["id"]]
    assert listed["pagination"] == {"limit": 100, "offset": 0, "total": 1}

    patched = await api.patch(
        f"/assets/{created['id']}", {"displayName": "chair.png", "altText": "A red chair"}
    )
    assert patched.status == 200, patched.body
    assert (patched.body["displayName"], patched.body["altText"]) == ("chair.png", "A red chair")
    assert (await api.patch(f"/assets/{created['id']}", {"size": 1})).status == 400

    assert (await api.delete(f"/assets/{created['id']}")).status == 204
    gone = await api.get(f"/assets/{created['id']}")
    assert (gone.status, gone.body["code"]) == (404, "resource_not_found")
    assert (await fetch(session, created["hostedUrl"]))[0] == 404


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"fileName": "a.png", "fileHash": "not-an-md5"}, "fileHash"),
        ({"fileName": "a.exe", "fileHash": "0" * 32}, "fileName"),
        ({"fileName": "noextension", "fileHash": "0" * 32}, "fileName"),
        ({"fileName": "x" * 100 + ".png", "fileHash": "0" * 32}, "fileName"),
        ({"fileName": "../a.png", "fileHash": "0" * 32}, "fileName"),
        ({"fileHash": "0" * 32}, "fileName"),
        ({"fileName": "a.png", "fileHash": "0" * 32, "size": 3}, "size"),
        ({"fileName": "a.png", "fileHash": "0" * 32, "parentFolder": "0" * 24}, "parentFolder"),
    ],
    ids=["bad-md5", "exe", "no-extension", "long-name", "slash", "no-name", "unknown", "folder"],
)
async def test_create_refuses_what_webflow_would(api: Api, body: Any, param: str) -> None:
    answer = await api.post(f"/sites/{api.sandbox.site_id}/assets", body)
    assert answer.status == 400, answer.body
    assert answer.body["code"] == "validation_error"
    assert [detail["param"] for detail in answer.body["details"]] == [param]


async def test_unknown_site_and_asset_are_404s(api: Api) -> None:
    unknown = "0123456789abcdef01234567"
    missing_site = await api.post(
        f"/sites/{unknown}/assets", {"fileName": "a.png", "fileHash": "0" * 32}
    )
    assert missing_site.status == 404
    assert (await api.get(f"/assets/{unknown}")).status == 404
    assert (await api.get("/assets/not-an-id")).status == 400
    assert (await api.get(f"/sites/{api.sandbox.site_id}/assets", token=None)).status == 401


async def test_a_corrupted_upload_fails_the_md5_check(
    api: Api, session: aiohttp.ClientSession
) -> None:
    created = await create(api, "photo.png", PNG_BYTES)
    corrupted = PNG_BYTES[:-1] + b"\x00"
    status, text = await upload(session, created, corrupted)
    assert (status, s3_code(text)) == (400, "BadDigest")
    assert (await api.get(f"/assets/{created['id']}")).body["size"] == 0
    assert (await fetch(session, created["hostedUrl"]))[0] == 404
    # The right bytes still go through with the same presigned fields.
    assert (await upload(session, created, PNG_BYTES))[0] == 201


def _tampered(details: dict[str, str], **changes: str | None) -> dict[str, str]:
    fields = dict(details)
    for name, value in changes.items():
        if value is None:
            fields.pop(name.replace("_", "-"), None)
        else:
            fields[name.replace("_", "-")] = value
    return fields


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        ({"content_type": "text/html"}, 403, "AccessDenied"),
        ({"key": "elsewhere/x.png"}, 403, "AccessDenied"),
        ({"X-Amz-Signature": "0" * 64}, 403, "SignatureDoesNotMatch"),
        ({"x-ignored-extra": "1"}, 403, "AccessDenied"),
        ({"Policy": None}, 400, "InvalidArgument"),
    ],
    ids=["content-type", "key", "signature", "extra-field", "no-policy"],
)
async def test_storage_checks_the_policy(
    api: Api,
    session: aiohttp.ClientSession,
    changes: dict[str, str | None],
    status: int,
    code: str,
) -> None:
    created = await create(api, "photo.png", PNG_BYTES)
    fields = _tampered(created["uploadDetails"], **changes)
    answer = await upload(session, created, PNG_BYTES, fields=fields)
    assert (answer[0], s3_code(answer[1])) == (status, code), answer[1]
    assert (await api.get(f"/assets/{created['id']}")).body["size"] == 0


async def test_storage_refuses_a_webflow_token(api: Api, session: aiohttp.ClientSession) -> None:
    created = await create(api, "photo.png", PNG_BYTES)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    status, text = await upload(session, created, PNG_BYTES, headers=headers)
    assert (status, s3_code(text)) == (400, "InvalidArgument")


async def test_an_expired_policy_is_refused(
    api: Api, session: aiohttp.ClientSession, clock: TimeControl
) -> None:
    created = await create(api, "photo.png", PNG_BYTES)
    clock.advance(901)
    status, text = await upload(session, created, PNG_BYTES)
    assert (status, s3_code(text)) == (403, "AccessDenied")
    assert "expired" in text


async def test_the_size_limit_depends_on_the_type(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession
) -> None:
    _sandbox, api = await make_sandbox(asset_image_max_bytes=1000, asset_file_max_bytes=3000)
    big = b"%PDF-1.4\n" + b"x" * 2000
    image = await create(api, "big.png", big)
    status, text = await upload(session, image, big)
    assert (status, s3_code(text)) == (400, "EntityTooLarge")
    document = await create(api, "big.pdf", big)
    assert (await upload(session, document, big))[0] == 201
    empty = await create(api, "empty.pdf", b"")
    status, text = await upload(session, empty, b"")
    assert (status, s3_code(text)) == (400, "EntityTooSmall")


async def test_uploads_do_not_count_against_the_rate_limit(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession
) -> None:
    sandbox, api = await make_sandbox(rate_limit=1, window_seconds=60.0)
    created = await create(api, "photo.png", PNG_BYTES)
    for _ in range(3):
        assert (await upload(session, created, PNG_BYTES))[0] == 201
        assert (await fetch(session, created["hostedUrl"]))[0] == 200
    assert sandbox.stats()["totals"]["requests"] == 1


async def test_assets_survive_a_restart(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    state = tmp_path / "state" / "sandbox.jsonl"
    config = SandboxConfig(tokens=(TOKEN,), state_file=state)
    async with Sandbox(config) as first:
        api = Api(session, first)
        uploaded = await create(api, "keep.png", PNG_BYTES)
        assert (await upload(session, uploaded, PNG_BYTES))[0] == 201
        pending = await create(api, "later.png", PNG_BYTES)
    assert (state.parent / "sandbox.jsonl.assets").stat().st_mode & 0o777 == 0o700
    async with Sandbox(config) as second:
        api = Api(session, second)
        kept = (await api.get(f"/assets/{uploaded['id']}")).body
        assert kept["size"] == len(PNG_BYTES)
        assert await fetch(session, kept["hostedUrl"]) == (200, PNG_BYTES, "image/png")
        assert (await api.get(f"/assets/{pending['id']}")).body["size"] == 0
        # The signing secret comes from the seed: fields handed out before the restart still work.
        pending["uploadUrl"] = pending["uploadUrl"].replace(str(first.port), str(second.port))
        assert (await upload(session, pending, PNG_BYTES))[0] == 201
        listed = (await api.get(f"/sites/{second.site_id}/assets")).body
        assert {a["id"] for a in listed["assets"]} == {uploaded["id"], pending["id"]}


async def test_reset_removes_assets(api: Api, session: aiohttp.ClientSession) -> None:
    created = await create(api, "photo.png", PNG_BYTES)
    assert (await upload(session, created, PNG_BYTES))[0] == 201
    await api.post(api.sandbox.root_url + "/_sandbox/reset")
    listed = (await api.get(f"/sites/{api.sandbox.site_id}/assets")).body
    assert listed["assets"] == []
    assert (await fetch(session, created["hostedUrl"]))[0] == 404


@pytest.mark.parametrize(
    ("content_type", "body", "status", "code"),
    [
        ("multipart/form-data; boundary=xyz", b"--xyz\r\nnot a part", 400, "MalformedPOSTRequest"),
        ("application/json", b"{}", 412, "PreconditionFailed"),
    ],
    ids=["broken-multipart", "not-multipart"],
)
async def test_storage_refuses_bodies_that_are_not_a_form(
    api: Api, session: aiohttp.ClientSession, content_type: str, body: bytes, status: int, code: str
) -> None:
    created = await create(api, "photo.png", PNG_BYTES)
    headers = {"Content-Type": content_type}
    async with session.post(created["uploadUrl"], data=body, headers=headers) as response:
        text = await response.text()
    assert (response.status, s3_code(text)) == (status, code), text


async def test_a_forged_non_ascii_signature_is_refused(
    api: Api, session: aiohttp.ClientSession
) -> None:
    created = await create(api, "photo.png", PNG_BYTES)
    fields = _tampered(created["uploadDetails"], **{"X-Amz-Signature": "é" * 64})
    status, text = await upload(session, created, PNG_BYTES, fields=fields)
    assert (status, s3_code(text)) == (403, "SignatureDoesNotMatch")
