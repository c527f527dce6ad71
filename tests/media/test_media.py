"""The media uploader against a real local image host and the sandbox (create + storage)."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
from pydantic import SecretStr

from flowport.base.models import AssetUpload
from flowport.pipeline.media import (
    AssetIntent,
    HostPace,
    InMemoryAssetLedger,
    MediaFailure,
    MediaKind,
    MediaLimits,
    MediaUploader,
    Uploaded,
)
from flowport.pipeline.ratebudget import RateBudget
from flowport.pipeline.retry import RetryPolicy
from flowport.pipeline.sandbox import Sandbox
from flowport.pipeline.webflow.client import WebflowClient
from tests.conftest import TOKEN
from tests.oldsite import ImageHost, png

from .conftest import no_sleep

FAST = RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0)


def uploader(client: WebflowClient, sandbox: Sandbox, **limits: Any) -> MediaUploader:
    return MediaUploader(
        client, sandbox.site_id, limits=MediaLimits(**{"retry": FAST, **limits}), sleep=no_sleep
    )


def site_assets(sandbox: Sandbox) -> list[dict[str, object]]:
    return list(sandbox.core.assets.dump())


async def test_the_same_bytes_at_two_urls_are_uploaded_once(
    sandbox: Sandbox, client: WebflowClient, image_host: ImageHost, budget: RateBudget
) -> None:
    picture = png(16, 16)
    image_host.files["/a/photo.png"] = (picture, "image/png")
    image_host.files["/b/copy-of-photo.png"] = (picture, "image/png")
    async with uploader(client, sandbox) as media:
        first = await media.upload(image_host.url("/a/photo.png"))
        calls_after_first = budget.stats.acquired
        second = await media.upload(image_host.url("/b/copy-of-photo.png"))
        again = await media.upload(image_host.url("/a/photo.png"))
    assert isinstance(first, Uploaded)
    assert isinstance(second, Uploaded)
    assert isinstance(again, Uploaded)
    assert not first.deduplicated
    assert second.deduplicated
    assert again.deduplicated
    assert first.asset_id == second.asset_id == again.asset_id
    assert first.hosted_url == second.hosted_url
    # One look at the site's assets (the ledger knows none of the site's) and one create went
    # to Webflow (the upload itself is not on the budget); nothing for the copies.
    assert calls_after_first == 2
    assert budget.stats.acquired == 2
    # A URL already seen is not fetched again.
    assert image_host.hits["/a/photo.png"] == 1
    [asset] = site_assets(sandbox)
    # The name carries the content's hash, so a killed run's create is found again exactly.
    assert (asset["size"], asset["uploaded"], asset["originalFileName"]) == (
        len(picture),
        True,
        f"photo-{first.sha256[:12]}.png",
    )


async def test_concurrent_uploads_of_the_same_bytes_make_one_asset(
    sandbox: Sandbox, client: WebflowClient, image_host: ImageHost
) -> None:
    picture = png(32, 8)
    for n in range(6):
        image_host.files[f"/same/{n}.png"] = (picture, "image/png")
    results: list[Uploaded | MediaFailure] = []
    async with uploader(client, sandbox) as media:

        async def one(n: int) -> None:
            results.append(await media.upload(image_host.url(f"/same/{n}.png")))

        async with anyio.create_task_group() as group:
            for n in range(6):
                group.start_soon(one, n)
    assert all(isinstance(r, Uploaded) for r in results)
    assert len({r.asset_id for r in results if isinstance(r, Uploaded)}) == 1
    assert sum(1 for r in results if isinstance(r, Uploaded) and not r.deduplicated) == 1
    assert len(site_assets(sandbox)) == 1


async def test_a_missing_image_is_not_found(
    sandbox: Sandbox, client: WebflowClient, image_host: ImageHost
) -> None:
    async with uploader(client, sandbox) as media:
        result = await media.upload(image_host.url("/gone.png"))
    assert isinstance(result, MediaFailure)
    assert result.kind == "not_found"
    assert "404" in result.detail
    assert image_host.hits["/gone.png"] == 1  # a 404 is not retried
    assert site_assets(sandbox) == []


@pytest.mark.parametrize("path", ["/big.png", "/chunked/big.png"], ids=["declared", "streamed"])
async def test_an_oversized_image_is_too_large(
    sandbox: Sandbox, client: WebflowClient, image_host: ImageHost, path: str
) -> None:
    big = png(64, 64)
    assert len(big) > 5000
    image_host.files[path] = (big, "image/png")
    async with uploader(client, sandbox, image_max_bytes=5000) as media:
        result = await media.upload(image_host.url(path))
        as_file = await media.upload(image_host.url(path), kind=MediaKind.FILE)
    assert isinstance(result, MediaFailure)
    assert result.kind == "too_large"
    assert "5,000 bytes" in result.detail
    # The file limit is separate (10 MB by default): as a File the same bytes go through.
    assert isinstance(as_file, Uploaded)
    assert len(site_assets(sandbox)) == 1


async def test_a_redirect_to_an_html_page_is_not_an_image(
    sandbox: Sandbox, client: WebflowClient, image_host: ImageHost
) -> None:
    image_host.redirects["/wp-content/uploads/photo.jpg"] = "/login"
    login = b"<!DOCTYPE html><html><body>Please log in</body></html>"
    # The host even claims it is an image: the bytes decide.
    image_host.files["/login"] = (login, "image/jpeg")
    async with uploader(client, sandbox) as media:
        result = await media.upload(image_host.url("/wp-content/uploads/photo.jpg"))
        as_file = await media.upload(
            image_host.url("/wp-content/uploads/photo.jpg"), kind=MediaKind.FILE
        )
    assert isinstance(result, MediaFailure)
    assert result.kind == "not_an_image"
    assert "text/html" in result.detail
    assert "/login" in result.detail
    assert isinstance(as_file, MediaFailure)
    assert as_file.kind == "unsupported_type"
    assert site_assets(sandbox) == []


async def test_a_slow_server_times_out_after_its_retries(
    sandbox: Sandbox, client: WebflowClient, image_host: ImageHost
) -> None:
    async with uploader(client, sandbox, read_seconds=0.2, total_seconds=2.0) as media:
        with anyio.fail_after(10):
            result = await media.upload(image_host.url("/slow/photo.png"))
    assert isinstance(result, MediaFailure)
    assert result.kind == "timeout"
    assert image_host.hits["/slow/photo.png"] == FAST.max_attempts
    assert site_assets(sandbox) == []


async def test_a_server_error_is_retried(
    sandbox: Sandbox, client: WebflowClient, image_host: ImageHost
) -> None:
    image_host.files["/flaky.png"] = (png(4, 4), "image/png")
    image_host.failures_first["/flaky.png"] = [503]
    async with uploader(client, sandbox) as media:
        result = await media.upload(image_host.url("/flaky.png"))
    assert isinstance(result, Uploaded)
    assert image_host.hits["/flaky.png"] == 2


class CorruptingClient(WebflowClient):
    """Flips one byte on the way to storage, as a damaged transfer would."""

    async def upload_asset(self, upload: AssetUpload, data: bytes) -> None:
        await super().upload_asset(upload, data[:-1] + bytes([data[-1] ^ 0xFF]))


async def test_a_corrupted_upload_fails_the_md5_check(
    sandbox: Sandbox, budget: RateBudget, image_host: ImageHost
) -> None:
    image_host.files["/photo.png"] = (png(8, 8), "image/png")
    ledger = InMemoryAssetLedger()
    async with (
        CorruptingClient(sandbox.base_url, SecretStr(TOKEN), budget=budget) as corrupting,
        MediaUploader(corrupting, sandbox.site_id, ledger=ledger, sleep=no_sleep) as media,
    ):
        result = await media.upload(image_host.url("/photo.png"))
    assert isinstance(result, MediaFailure)
    assert result.kind == "checksum_mismatch"
    assert "BadDigest" in result.detail
    # Storage refused the bytes for good: the empty asset is deleted, the intent settled as
    # failed; nothing counts as uploaded and nothing is left for a rerun to reconcile.
    assert ledger.pending == ()
    assert ledger.uploaded == ()
    assert site_assets(sandbox) == []


@pytest.mark.parametrize(
    ("path", "data", "content_type", "kind", "expected"),
    [
        ("/photo.bmp", b"BM" + b"\x00" * 200, "image/bmp", MediaKind.IMAGE, "unsupported_type"),
        ("/notes.txt", b"just text", "text/plain", MediaKind.IMAGE, "not_an_image"),
        ("/tool.exe", b"MZ\x90\x00" + b"\x00" * 100, "application/octet-stream", MediaKind.FILE,
         "unsupported_type"),
    ],
    ids=["bmp-image", "text-as-image", "exe-file"],
)  # fmt: skip
async def test_types_webflow_does_not_take_are_named(
    sandbox: Sandbox,
    client: WebflowClient,
    image_host: ImageHost,
    path: str,
    data: bytes,
    content_type: str,
    kind: MediaKind,
    expected: str,
) -> None:
    image_host.files[path] = (data, content_type)
    async with uploader(client, sandbox) as media:
        result = await media.upload(image_host.url(path), kind=kind)
    assert isinstance(result, MediaFailure)
    assert result.kind == expected
    assert site_assets(sandbox) == []


async def test_files_and_names(
    sandbox: Sandbox, client: WebflowClient, image_host: ImageHost
) -> None:
    pdf = b"%PDF-1.4\n" + b"0" * 500
    image_host.files["/files/Annual Report!.pdf"] = (pdf, "application/pdf")
    image_host.files["/download.php"] = (png(4, 4, shade=9), "image/png")
    image_host.files["/notes/readme"] = (b"plain words", "text/plain")
    async with uploader(client, sandbox) as media:
        report = await media.upload(
            image_host.url("/files/Annual%20Report!.pdf"), kind=MediaKind.FILE
        )
        image = await media.upload(image_host.url("/download.php"))
        text = await media.upload(image_host.url("/notes/readme"), kind=MediaKind.FILE)
    assert isinstance(report, Uploaded)
    assert isinstance(image, Uploaded)
    assert isinstance(text, Uploaded)
    assert (report.content_type, image.content_type, text.content_type) == (
        "application/pdf",
        "image/png",
        "text/plain",
    )
    names = {a["id"]: a["originalFileName"] for a in site_assets(sandbox)}
    assert names == {
        report.asset_id: f"Annual Report-{report.sha256[:12]}.pdf",
        image.asset_id: f"download-{image.sha256[:12]}.png",
        text.asset_id: f"readme-{text.sha256[:12]}.txt",
    }


async def test_a_rate_limiting_source_host_gets_few_tries(
    sandbox: Sandbox, client: WebflowClient, image_host: ImageHost
) -> None:
    image_host.files["/busy.png"] = (png(4, 4), "image/png")
    image_host.failures_first["/busy.png"] = [429] * 10
    async with MediaUploader(client, sandbox.site_id, sleep=no_sleep) as media:
        result = await media.upload(image_host.url("/busy.png"))
    assert isinstance(result, MediaFailure)
    assert result.kind == "unreachable"
    assert "rate limiting" in result.detail
    assert image_host.hits["/busy.png"] == 4  # the first try and three more


async def test_reconcile_forgets_a_half_made_asset_someone_already_deleted(
    sandbox: Sandbox, client: WebflowClient, image_host: ImageHost
) -> None:
    picture = png(5, 7, shade=2)
    image_host.files["/p.png"] = (picture, "image/png")
    ledger = InMemoryAssetLedger()
    async with uploader(client, sandbox) as media:
        media.ledger = ledger
        made = await media.upload(image_host.url("/p.png"))
        assert isinstance(made, Uploaded)
        # A killed run's 'created' row whose asset an editor deleted since.
        intent = AssetIntent(
            sha256="0" * 64,
            md5="0" * 32,
            source_url=image_host.url("/other.png"),
            file_name="other-000000000000.png",
            content_type="image/png",
            size=10,
        )
        await client.delete_asset(made.asset_id)
        ledger.record_intent(intent)
        ledger.record_created(intent, made.asset_id, made.hosted_url)
        settled = await media.reconcile()
    assert (settled.kept, settled.deleted, settled.forgotten) == (0, 1, 1)
    assert ledger.pending == ()


async def test_an_asset_whose_record_was_lost_is_found_in_the_site_not_made_again(
    sandbox: Sandbox, client: WebflowClient, image_host: ImageHost, budget: RateBudget
) -> None:
    picture = png(12, 12, shade=90)
    image_host.files["/u/lost.png"] = (picture, "image/png")
    async with uploader(client, sandbox) as media:
        first = await media.upload(image_host.url("/u/lost.png"))
    assert isinstance(first, Uploaded)

    # A new ledger, as after a lost checkpoint log: the site's assets are looked at, and the
    # asset with this content's name and bytes is taken.
    ledger = InMemoryAssetLedger()
    before = budget.stats.acquired
    async with MediaUploader(
        client, sandbox.site_id, ledger=ledger, limits=MediaLimits(retry=FAST), sleep=no_sleep
    ) as media:
        again = await media.upload(image_host.url("/u/lost.png"))
    assert isinstance(again, Uploaded), again
    assert (again.asset_id, again.hosted_url) == (first.asset_id, first.hosted_url)
    assert again.deduplicated
    assert budget.stats.acquired - before == 1  # the listing; no create
    assert len(site_assets(sandbox)) == 1
    assert [r.asset_id for r in ledger.uploaded] == [first.asset_id]

    # Other bytes at that URL get another name (it carries their hash): a new asset is made.
    image_host.files["/u/lost.png"] = (png(12, 12, shade=91), "image/png")
    async with uploader(client, sandbox) as media:
        other = await media.upload(image_host.url("/u/lost.png"))
    assert isinstance(other, Uploaded)
    assert other.asset_id != first.asset_id
    assert len(site_assets(sandbox)) == 2


async def test_the_old_site_is_asked_at_its_pace_not_the_pools(
    sandbox: Sandbox, client: WebflowClient, image_host: ImageHost
) -> None:
    for n in range(12):
        image_host.files[f"/p/{n}.png"] = (png(5, 5, shade=n), "image/png")
    # 4 a second to the old site: a burst of 4, then one every quarter second.
    async with uploader(client, sandbox, downloads_per_second=4.0) as media:
        started = time.monotonic()
        async with anyio.create_task_group() as group:
            for n in range(12):
                group.start_soon(media.upload, image_host.url(f"/p/{n}.png"))
        took = time.monotonic() - started
    assert sum(image_host.hits.values()) == 12
    assert took >= (12 - 4) / 4 * 0.9, took


async def test_a_slow_pace_below_one_a_second_still_paces() -> None:
    pace = HostPace(2.0 / 3.0)
    started = time.monotonic()
    for _ in range(2):
        await pace.wait("http://old.example/a.png")
    # One request each 1.5 s: the second waits for the first's slot to drain.
    assert time.monotonic() - started >= 1.35
    await pace.wait("http://other.example/b.png")  # another host: its own pace, no wait
    assert time.monotonic() - started < 2.5
