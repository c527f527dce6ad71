"""Jobs with an Image field into the sandbox, which fetches and re-hosts images as Webflow does:
adoption after a lost checkpoint compares media by source identity, a nightly rerun sends
nothing, and an image Webflow cannot fetch is the item's error, never a silent gap."""

from __future__ import annotations

import csv
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import SecretStr

from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.jobfile import load_job
from flowport.pipeline.runner import run_job
from flowport.pipeline.sandbox import FaultConfig, Sandbox
from flowport.pipeline.webflow.client import WebflowClient
from tests.conftest import TOKEN, cli_command, cli_env
from tests.engine.conftest import sandbox_stats, set_faults
from tests.oldsite import ImageHost, png, running_old_site


@pytest.fixture
async def old_site() -> AsyncIterator[ImageHost]:
    async with running_old_site() as host:
        yield host


def job_text(sandbox: Sandbox) -> str:
    return f"""
[destination]
api = "{sandbox.base_url}"
site_id = "{sandbox.site_id}"
token_env = "FLOWPORT_TEST_TOKEN"
rate_limit = 100000

[run]
mode = "live"

[collections.posts]
target = "Posts"
create_missing = true
external_key_field = "source-key"
source = {{ type = "csv", path = "posts.csv", key = "id" }}
slug_from = "name"

[collections.posts.fields]
name = "title"
source-key = "id"
cover = "image"
gallery = {{ source = "gallery", transforms = [{{ split = " " }}] }}

[collections.posts.schema]
singular_name = "Post"
fields = {{ source-key = "PlainText", cover = "Image", gallery = "MultiImage" }}
"""


def write_posts(path: Path, rows: list[tuple[str, str, str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "title", "image", "gallery"])
        writer.writerows(rows)


def posts(
    site: ImageHost, n: int, *, changed: int | None = None
) -> list[tuple[str, str, str, str]]:
    rows = []
    for i in range(n):
        name = f"post-{i}-v2.png" if i == changed else f"post-{i}.png"
        gallery = f"{site.url(f'/uploads/g{i}a.png')} {site.url(f'/uploads/g{i}b.png')}"
        rows.append((str(i), f"Post {i}", site.url(f"/uploads/{name}"), gallery))
    return rows


def serve_images(site: ImageHost, n: int) -> None:
    for i in range(n):
        for name in (f"post-{i}.png", f"post-{i}-v2.png", f"g{i}a.png", f"g{i}b.png"):
            site.files[f"/uploads/{name}"] = (png(4, 4, len(name) + i), "image/png")


async def patches(sandbox: Sandbox) -> int:
    stats = await sandbox_stats(sandbox)
    return sum(e["count"] for e in stats["endpoints"] if e["method"] == "PATCH")


async def stored_items(sandbox: Sandbox, job_dir: Path) -> dict[str, dict[str, Any]]:
    with CheckpointLog.open(job_dir / "job" / "checkpoint.sqlite") as log:
        collection_id = log.bindings.collection_id("posts")
    assert collection_id
    async with WebflowClient(sandbox.base_url, SecretStr(TOKEN)) as client:
        found = [i async for i in client.iter_items(collection_id)]
    return {str(i.field_data["source-key"]): dict(i.field_data) for i in found}


async def test_a_lost_checkpoint_adopts_rehosted_images_unchanged_and_updates_a_changed_one(
    sandbox: Sandbox, job_dir: Path, old_site: ImageHost
) -> None:
    serve_images(old_site, 4)
    path = job_dir / "job.toml"
    path.write_text(job_text(sandbox))
    write_posts(job_dir / "posts.csv", posts(old_site, 4))
    first = await run_job(load_job(path))
    assert first.exit_code == 0, first.as_dict()
    before = await stored_items(sandbox, job_dir)
    # Webflow keeps its own copy: the stored url is the sandbox's, not the old site's.
    assert all(old_site.base_url not in str(item["cover"]) for item in before.values())
    fetched = sum(old_site.hits.values())
    # The state folder is lost; the source's post 2 now has another image.
    shutil.rmtree(job_dir / "job")
    write_posts(job_dir / "posts.csv", posts(old_site, 4, changed=2))
    patched_before = await patches(sandbox)

    summary = await run_job(load_job(path))

    assert summary.exit_code == 0, summary.as_dict()
    per = summary.collections["posts"]
    assert per["adopted"] == 4
    assert per["unchanged"] == 3
    assert per["updated"] == 1
    # One PATCH request (post 2), and only its new image was fetched again.
    assert await patches(sandbox) - patched_before == 1
    assert sum(old_site.hits.values()) - fetched == 3  # post-2-v2.png and its two gallery images
    assert old_site.hits["/uploads/post-2-v2.png"] == 1
    after = await stored_items(sandbox, job_dir)
    assert after["2"]["cover"]["url"].endswith("_post-2-v2.png")
    for key in ("0", "1", "3"):
        assert after[key]["cover"] == before[key]["cover"]
    # Each unchanged adoption names its media fields as compared by file name.
    assert per["warning:media_compared_by_name"] == 6  # cover and gallery of posts 0, 1, 3


async def test_a_nightly_rerun_with_its_checkpoint_sends_nothing_for_rehosted_images(
    sandbox: Sandbox, job_dir: Path, old_site: ImageHost
) -> None:
    serve_images(old_site, 3)
    path = job_dir / "job.toml"
    path.write_text(job_text(sandbox))
    write_posts(job_dir / "posts.csv", posts(old_site, 3))
    assert (await run_job(load_job(path))).exit_code == 0
    writes = (await sandbox_stats(sandbox))["totals"]["writes"]
    fetched = sum(old_site.hits.values())

    summary = await run_job(load_job(path))

    assert summary.exit_code == 0, summary.as_dict()
    assert summary.collections["posts"]["unchanged"] == 3
    assert (await sandbox_stats(sandbox))["totals"]["writes"] == writes
    assert sum(old_site.hits.values()) == fetched


async def test_an_image_webflow_cannot_fetch_is_the_items_error_not_a_silent_gap(
    sandbox: Sandbox, job_dir: Path, old_site: ImageHost
) -> None:
    serve_images(old_site, 3)
    del old_site.files["/uploads/post-1.png"]
    path = job_dir / "job.toml"
    path.write_text(job_text(sandbox))
    write_posts(job_dir / "posts.csv", posts(old_site, 3))

    summary = await run_job(load_job(path))

    # The post is written (its text is not held back by a dead image), and the image named.
    assert summary.exit_code == 1, summary.as_dict()
    per = summary.collections["posts"]
    assert per["created"] == 3
    assert per["failed"] == 1
    stored = await stored_items(sandbox, job_dir)
    assert set(stored) == {"0", "1", "2"}
    assert "cover" not in stored["1"]
    with CheckpointLog.open(job_dir / "job" / "checkpoint.sqlite") as log:
        (failure,) = list(log.errors())
    assert failure.key == "1"
    assert failure.error_field == "cover"
    assert failure.error_kind == "file"
    assert old_site.url("/uploads/post-1.png") in (failure.last_error or "")

    # The image is back on the old site: the next run sends the post again, and only it.
    old_site.files["/uploads/post-1.png"] = (png(4, 4), "image/png")
    again = await run_job(load_job(path))

    assert again.exit_code == 0, again.as_dict()
    assert again.collections["posts"]["updated"] == 1
    assert again.collections["posts"]["unchanged"] == 2
    assert (await stored_items(sandbox, job_dir))["1"]["cover"]["url"].endswith("_post-1.png")
    with CheckpointLog.open(job_dir / "job" / "checkpoint.sqlite") as log:
        assert list(log.errors()) == []


async def two_more_posts_one_dead(sandbox: Sandbox, job_dir: Path, old_site: ImageHost) -> Path:
    """A first run (which creates the collection) writes post 0; the source then holds posts
    1 and 2 as well, post 2's cover gone from the old site. Returns the job file."""
    serve_images(old_site, 3)
    path = job_dir / "job.toml"
    path.write_text(job_text(sandbox))
    write_posts(job_dir / "posts.csv", posts(old_site, 1))
    assert (await run_job(load_job(path))).exit_code == 0
    del old_site.files["/uploads/post-2.png"]
    write_posts(job_dir / "posts.csv", posts(old_site, 3))
    return path


async def test_an_image_dropped_from_a_create_whose_answer_was_lost_is_named(
    sandbox: Sandbox, job_dir: Path, old_site: ImageHost
) -> None:
    # Every create lands but its answer is lost, so the writer reads the items back; one of
    # them Webflow wrote without its cover (dead on the old site).
    path = await two_more_posts_one_dead(sandbox, job_dir, old_site)
    await set_faults(
        sandbox, FaultConfig(commit_then_drop_rate=1.0, commit_then_drop_methods=("POST",))
    )
    summary = await run_job(load_job(path))
    await set_faults(sandbox, FaultConfig())

    assert summary.exit_code == 1, summary.as_dict()
    assert summary.collections["posts"]["created"] == 2
    assert summary.collections["posts"]["failed"] == 1
    assert "cover" not in (await stored_items(sandbox, job_dir))["2"]
    with CheckpointLog.open(job_dir / "job" / "checkpoint.sqlite") as log:
        (failure,) = list(log.errors())
    assert (failure.key, failure.error_field, failure.error_kind) == ("2", "cover", "file")

    # Back on the old site: the next run sends that post again, and only it.
    old_site.files["/uploads/post-2.png"] = (png(4, 4), "image/png")
    again = await run_job(load_job(path))
    assert again.exit_code == 0, again.as_dict()
    assert again.collections["posts"]["updated"] == 1
    assert again.collections["posts"]["unchanged"] == 2


async def test_an_image_dropped_from_a_create_read_back_after_a_kill_is_named(
    sandbox: Sandbox, job_dir: Path, old_site: ImageHost
) -> None:
    # Killed after Webflow created the posts and before the log heard of it: the next run
    # reads them back from Webflow, where one holds no cover.
    path = await two_more_posts_one_dead(sandbox, job_dir, old_site)
    with anyio.fail_after(120):
        # Not subprocess.run: the sandbox answering the child runs on this event loop.
        killed = await anyio.run_process(
            cli_command("run", str(path), "-q"),
            cwd=job_dir,
            env=cli_env({"FLOWPORT_TEST_TOKEN": TOKEN, "FLOWPORT_CRASH_AT": "after-answer:1"}),
            check=False,
        )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert "cover" not in (await stored_items(sandbox, job_dir))["2"]

    summary = await run_job(load_job(path))

    assert summary.exit_code == 1, summary.as_dict()
    with CheckpointLog.open(job_dir / "job" / "checkpoint.sqlite") as log:
        (failure,) = list(log.errors())
    assert (failure.key, failure.error_field, failure.error_kind) == ("2", "cover", "file")
    stored = await stored_items(sandbox, job_dir)
    assert sorted(stored) == ["0", "1", "2"]  # read back, not created twice
    assert stored["1"]["cover"]["url"].endswith("_post-1.png")


async def test_an_image_dropped_from_an_update_is_named(
    sandbox: Sandbox, job_dir: Path, old_site: ImageHost
) -> None:
    serve_images(old_site, 2)
    path = job_dir / "job.toml"
    path.write_text(job_text(sandbox))
    write_posts(job_dir / "posts.csv", posts(old_site, 2))
    assert (await run_job(load_job(path))).exit_code == 0

    # The source moves post 1 to a new image the old site does not serve.
    del old_site.files["/uploads/post-1-v2.png"]
    write_posts(job_dir / "posts.csv", posts(old_site, 2, changed=1))
    summary = await run_job(load_job(path))

    assert summary.exit_code == 1, summary.as_dict()
    assert summary.collections["posts"]["updated"] == 1
    assert summary.collections["posts"]["failed"] == 1
    with CheckpointLog.open(job_dir / "job" / "checkpoint.sqlite") as log:
        (failure,) = list(log.errors())
    assert (failure.key, failure.error_field, failure.error_kind) == ("1", "cover", "file")
    assert old_site.url("/uploads/post-1-v2.png") in (failure.last_error or "")
