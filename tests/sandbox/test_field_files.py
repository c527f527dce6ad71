"""Image, MultiImage and File field values given by URL: fetched and hosted, as Webflow does.

Webflow fetches the URL itself (public, at most 4 MB for images), keeps its own copy and stores
``{fileId, url: <hosted url>, alt}``; a file it cannot take is a 400 naming the field, or is
dropped when ``skipInvalidFiles`` is true (the spec's default). The "old site" is a real aiohttp
server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from flowport.pipeline.sandbox import Sandbox, SandboxConfig
from tests.conftest import TOKEN
from tests.oldsite import ImageHost, png
from tests.sandbox.conftest import Api, SandboxFactory

FIELDS: list[dict[str, Any]] = [
    {"type": "Image", "displayName": "Picture"},
    {"type": "MultiImage", "displayName": "Gallery"},
    {"type": "File", "displayName": "Attachment"},
]
PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


async def fetch(session: aiohttp.ClientSession, url: str) -> tuple[int, bytes, str]:
    async with session.get(url) as response:
        return response.status, await response.read(), response.content_type


def hosted_pattern(sandbox: Sandbox, name: str) -> re.Pattern[str]:
    root = re.escape(f"{sandbox.root_url}/_sandbox/assets/{sandbox.site_id}/")
    return re.compile(root + r"([0-9a-f]{24})_" + re.escape(name))


async def create(api: Api, collection_id: str, data: dict[str, Any], **params: str) -> Any:
    body = {"fieldData": {"name": "Post", "slug": "post", **data}}
    return await api.post(f"/collections/{collection_id}/items", body, params=params or None)


async def test_an_image_url_is_fetched_hosted_and_served(
    api: Api, old_site: ImageHost, session: aiohttp.ClientSession
) -> None:
    image = png(8, 8)
    old_site.files["/uploads/cat.png"] = (image, "image/png")
    collection_id = await api.collection("Posts", FIELDS)
    picture = {"url": old_site.url("/uploads/cat.png"), "alt": "a cat"}
    answer = await create(api, collection_id, {"picture": picture})
    assert answer.status == 202, answer.body
    stored = answer.body["fieldData"]["picture"]
    match = hosted_pattern(api.sandbox, "cat.png").fullmatch(stored["url"])
    assert match is not None, stored
    assert stored["fileId"] == match.group(1)
    assert stored["alt"] == "a cat"
    assert old_site.hits["/uploads/cat.png"] == 1
    assert await fetch(session, stored["url"]) == (200, image, "image/png")
    # The old site can go: Webflow's copy stays.
    del old_site.files["/uploads/cat.png"]
    assert (await fetch(session, stored["url"]))[0] == 200
    item = await api.get(f"/collections/{collection_id}/items/{answer.body['id']}")
    assert item.body["fieldData"]["picture"] == stored


BAD_IMAGES = [
    pytest.param("/missing.png", "HTTP 404", id="404"),
    pytest.param("/page.png", "not an image", id="html"),
    pytest.param("/huge.png", "larger than 4,000,000 bytes", id="5MB"),
    pytest.param("/chunked/huge.png", "larger than 4,000,000 bytes", id="5MB-chunked"),
]


def serve_bad_images(old_site: ImageHost) -> None:
    old_site.files["/page.png"] = (b"<!DOCTYPE html><html><body>login</body></html>", "text/html")
    huge = png(8, 8) + b"\0" * 5_000_000
    old_site.files["/huge.png"] = (huge, "image/png")
    old_site.files["/chunked/huge.png"] = (huge, "image/png")


@pytest.mark.parametrize(("path", "reason"), BAD_IMAGES)
async def test_a_bad_image_is_a_400_naming_the_field_when_files_are_not_skipped(
    api: Api, old_site: ImageHost, path: str, reason: str
) -> None:
    serve_bad_images(old_site)
    collection_id = await api.collection("Posts", FIELDS)
    answer = await create(
        api, collection_id, {"picture": old_site.url(path)}, skipInvalidFiles="false"
    )
    assert answer.status == 400, answer.body
    assert answer.body["code"] == "validation_error"
    (detail,) = answer.body["details"]
    assert detail["param"] == "picture"
    assert reason in detail["description"]
    assert old_site.url(path) in detail["description"]
    listed = await api.get(f"/collections/{collection_id}/items")
    assert listed.body["items"] == []


@pytest.mark.parametrize(("path", "reason"), BAD_IMAGES)
async def test_a_bad_image_is_dropped_and_the_item_written_when_files_are_skipped(
    api: Api, old_site: ImageHost, path: str, reason: str
) -> None:
    serve_bad_images(old_site)
    collection_id = await api.collection("Posts", FIELDS)
    # The spec's default for skipInvalidFiles is true.
    answer = await create(api, collection_id, {"picture": old_site.url(path)})
    assert answer.status == 202, answer.body
    assert "picture" not in answer.body["fieldData"]
    assert answer.body["fieldData"]["name"] == "Post"
    state = await api.get(api.sandbox.root_url + "/_sandbox/state")
    assert state.body["assets"] == []


async def test_multi_image_hosts_each_image_and_drops_or_refuses_a_bad_one(
    api: Api, old_site: ImageHost
) -> None:
    old_site.files["/a.png"] = (png(4, 4, 1), "image/png")
    old_site.files["/b.png"] = (png(4, 4, 2), "image/png")
    collection_id = await api.collection("Posts", FIELDS)
    gallery = [old_site.url("/a.png"), {"url": old_site.url("/b.png"), "alt": "b"}]
    answer = await create(api, collection_id, {"gallery": [*gallery, old_site.url("/gone.png")]})
    assert answer.status == 202, answer.body
    stored = answer.body["fieldData"]["gallery"]
    assert [image["alt"] for image in stored] == [None, "b"]
    assert hosted_pattern(api.sandbox, "a.png").fullmatch(stored[0]["url"])
    assert hosted_pattern(api.sandbox, "b.png").fullmatch(stored[1]["url"])
    assert stored[0]["fileId"] != stored[1]["fileId"]
    strict = await api.post(
        f"/collections/{collection_id}/items",
        {
            "fieldData": {
                "name": "Other",
                "slug": "other",
                "gallery": [*gallery, "http://127.0.0.1:9/x.png"],
            }
        },
        params={"skipInvalidFiles": "false"},
    )
    assert strict.status == 400
    assert [d["param"] for d in strict.body["details"]] == ["gallery"]


async def test_a_file_field_hosts_a_document_and_refuses_an_html_page(
    api: Api, old_site: ImageHost, session: aiohttp.ClientSession
) -> None:
    old_site.files["/files/guide.pdf"] = (PDF, "application/pdf")
    old_site.files["/files/login"] = (b"<html><body>sign in</body></html>", "text/html")
    collection_id = await api.collection("Posts", FIELDS)
    answer = await create(api, collection_id, {"attachment": old_site.url("/files/guide.pdf")})
    assert answer.status == 202, answer.body
    stored = answer.body["fieldData"]["attachment"]
    assert hosted_pattern(api.sandbox, "guide.pdf").fullmatch(stored["url"])
    assert await fetch(session, stored["url"]) == (200, PDF, "application/pdf")
    refused = await api.post(
        f"/collections/{collection_id}/items",
        {"fieldData": {"name": "B", "slug": "b", "attachment": old_site.url("/files/login")}},
        params={"skipInvalidFiles": "false"},
    )
    assert refused.status == 400
    assert refused.body["details"][0]["param"] == "attachment"


async def test_an_existing_file_is_named_by_file_id_and_its_url_filled_in(
    api: Api, old_site: ImageHost
) -> None:
    old_site.files["/cat.png"] = (png(4, 4), "image/png")
    collection_id = await api.collection("Posts", FIELDS)
    first = await create(api, collection_id, {"picture": old_site.url("/cat.png")})
    hosted = first.body["fieldData"]["picture"]
    second = await api.post(
        f"/collections/{collection_id}/items",
        {"fieldData": {"name": "B", "slug": "b", "picture": {"fileId": hosted["fileId"]}}},
    )
    assert second.status == 202, second.body
    assert second.body["fieldData"]["picture"] == {**hosted, "alt": None}
    assert old_site.hits["/cat.png"] == 1
    unknown = await api.post(
        f"/collections/{collection_id}/items",
        {"fieldData": {"name": "C", "slug": "c", "picture": {"fileId": "0" * 24}}},
        params={"skipInvalidFiles": "false"},
    )
    assert unknown.status == 400
    assert "no file with fileId" in unknown.body["details"][0]["description"]


async def test_an_update_fetches_too(api: Api, old_site: ImageHost) -> None:
    old_site.files["/one.png"] = (png(4, 4, 1), "image/png")
    old_site.files["/two.png"] = (png(4, 4, 2), "image/png")
    collection_id = await api.collection("Posts", FIELDS)
    created = await create(api, collection_id, {"picture": old_site.url("/one.png")})
    item_id = created.body["id"]
    answer = await api.patch(
        f"/collections/{collection_id}/items",
        {"items": [{"id": item_id, "fieldData": {"picture": old_site.url("/two.png")}}]},
    )
    assert answer.status == 200, answer.body
    stored = answer.body["items"][0]["fieldData"]["picture"]
    assert hosted_pattern(api.sandbox, "two.png").fullmatch(stored["url"])
    refused = await api.patch(
        f"/collections/{collection_id}/items/{item_id}",
        {"fieldData": {"picture": old_site.url("/three.png")}},
        params={"skipInvalidFiles": "false"},
    )
    assert refused.status == 400
    assert refused.body["details"][0]["param"] == "picture"


async def test_loopback_urls_are_refused_when_the_sandbox_acts_as_public_webflow(
    make_sandbox: SandboxFactory, old_site: ImageHost
) -> None:
    _, api = await make_sandbox(file_fetch_loopback=False)
    old_site.files["/cat.png"] = (png(4, 4), "image/png")
    collection_id = await api.collection("Posts", FIELDS)
    answer = await create(
        api, collection_id, {"picture": old_site.url("/cat.png")}, skipInvalidFiles="false"
    )
    assert answer.status == 400
    assert "not a publicly accessible URL" in answer.body["details"][0]["description"]
    assert old_site.hits["/cat.png"] == 0


async def test_a_slow_file_times_out_without_holding_up_other_requests(
    make_sandbox: SandboxFactory, old_site: ImageHost
) -> None:
    _, api = await make_sandbox(file_fetch_timeout_seconds=1.0)
    collection_id = await api.collection("Posts", FIELDS)
    slow = asyncio.create_task(
        create(
            api, collection_id, {"picture": old_site.url("/slow/cat.png")}, skipInvalidFiles="false"
        )
    )
    await asyncio.sleep(0.2)
    # The fetch waits on the loop; the server answers others meanwhile.
    started = asyncio.get_running_loop().time()
    sites = await api.get("/sites")
    assert sites.status == 200
    assert asyncio.get_running_loop().time() - started < 0.5
    assert not slow.done()
    answer = await slow
    assert answer.status == 400
    assert "could not be fetched in 1 s" in answer.body["details"][0]["description"]


async def test_hosted_files_survive_a_restart(
    tmp_path: Path, old_site: ImageHost, session: aiohttp.ClientSession
) -> None:
    image = png(6, 6)
    old_site.files["/kept.png"] = (image, "image/png")
    config = SandboxConfig(tokens=(TOKEN,), state_file=tmp_path / "sandbox.jsonl")
    async with Sandbox(config) as first:
        api = Api(session, first)
        collection_id = await api.collection("Posts", FIELDS)
        answer = await create(api, collection_id, {"picture": old_site.url("/kept.png")})
        url = answer.body["fieldData"]["picture"]["url"]
        item_id = answer.body["id"]
    del old_site.files["/kept.png"]
    async with Sandbox(config.model_copy(update={"port": first.port})) as second:
        api = Api(session, second)
        item = await api.get(f"/collections/{collection_id}/items/{item_id}")
        assert item.body["fieldData"]["picture"]["url"] == url
        assert await fetch(session, url) == (200, image, "image/png")
        listed = await api.get(f"/sites/{second.site_id}/assets")
        # A file fetched for a field is not an Assets API asset (the sandbox's reading).
        assert listed.body["assets"] == []
