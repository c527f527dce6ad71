"""The site's CMS item limit: the first refusal stops creating in the site (no batch split into
halves of refusals), the records left are per-item errors naming the limit, updates still go,
the run exits 1 saying the limit and the fix; ``plan`` warns before; the embedded sandbox takes
its limit from the job."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.jobfile import load_job
from flowport.pipeline.runner import run_job
from flowport.pipeline.sandbox import Sandbox
from flowport.pipeline.webflow.client import WebflowClient
from tests.conftest import TOKEN, SandboxStarter, write_csv
from tests.engine.conftest import POSTS_COLLECTION


def job_text(destination: str, *, concurrency: int = 1, item_limit: int | None = None) -> str:
    limit = f"item_limit = {item_limit}" if item_limit is not None else ""
    return (
        textwrap.dedent(
            f"""
        [destination]
        {destination}
        rate_limit = 100000
        concurrency = {concurrency}
        {limit}

        [run]
        batch_size = 100
        """
        )
        + POSTS_COLLECTION
    )


def external(sandbox: Sandbox) -> str:
    return (
        f'api = "{sandbox.base_url}"\nsite_id = "{sandbox.site_id}"\n'
        'token_env = "FLOWPORT_TEST_TOKEN"'
    )


def rows(n: int, *, revised: range = range(0)) -> list[tuple[str, str]]:
    return [(str(i), f"Post {i}{' (revised)' if i in revised else ''}") for i in range(n)]


def item_reads(sandbox: Sandbox) -> int:
    """GETs of a collection's items (the count of each collection reads one)."""
    return sum(
        row["count"]
        for row in sandbox.stats()["endpoints"]
        if row["method"] == "GET" and row["route"].endswith("/items")
    )


async def other_collection(sandbox: Sandbox, items: int) -> None:
    """A collection of the site the job does not write to, holding ``items``: it counts toward
    the site's limit all the same."""
    async with WebflowClient(sandbox.base_url, SecretStr(TOKEN)) as client:
        pages = await client.create_collection(
            sandbox.site_id, display_name="Pages", singular_name="Page"
        )
        names = [{"name": f"Page {i}", "slug": f"page-{i}"} for i in range(items)]
        await client.create_items(pages.id, names, live=False)


def create_requests(sandbox: Sandbox) -> dict[int, int]:
    """POSTs of items, by answer status."""
    counted: dict[int, int] = {}
    for row in sandbox.stats()["endpoints"]:
        if row["method"] == "POST" and row["route"].endswith(("/items", "/items/live")):
            counted[row["status"]] = counted.get(row["status"], 0) + row["count"]
    return counted


@pytest.fixture
def job_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FLOWPORT_TEST_TOKEN", TOKEN)
    return tmp_path


async def test_past_the_item_limit_creating_stops_at_once_and_updates_still_go(
    start_sandbox: SandboxStarter, job_dir: Path
) -> None:
    sandbox = await start_sandbox(item_limit=250)
    path = job_dir / "job.toml"
    path.write_text(job_text(external(sandbox)))
    write_csv(job_dir / "posts.csv", ["id", "title"], rows(150))
    assert (await run_job(load_job(path))).exit_code == 0

    # 10 records change and 850 are new: 100 fit under the limit, 750 do not.
    write_csv(job_dir / "posts.csv", ["id", "title"], rows(1000, revised=range(0, 100, 10)))
    before = create_requests(sandbox)
    summary = await run_job(load_job(path))
    after = create_requests(sandbox)

    posts: dict[str, Any] = summary.collections["posts"]
    assert posts["created"] == 100, summary.as_dict()
    assert posts["updated"] == 10, summary.as_dict()
    assert posts["failed"] == 750, summary.as_dict()
    assert summary.exit_code == 1
    # One refused request, not a split of every remaining batch into halves of refusals.
    assert after.get(400, 0) - before.get(400, 0) == 1, after
    assert after.get(202, 0) + after.get(200, 0) - before.get(202, 0) - before.get(200, 0) == 1
    (said,) = summary.notes
    assert "750 records were not created" in said
    assert "item limit" in said
    assert "upgrade the site's plan" in said

    with CheckpointLog.open(job_dir / "job" / "checkpoint.sqlite") as log:
        errors = [e for e in log.errors() if e.collection == "posts"]
        posts_id = log.bindings.collection_id("posts")
    assert len(errors) == 750
    assert {e.error_kind for e in errors} == {"item_limit"}
    assert all("item limit" in (e.last_error or "") for e in errors)
    assert posts_id
    async with WebflowClient(sandbox.base_url, SecretStr(TOKEN)) as client:
        names = {i.field_data["name"] async for i in client.iter_items(posts_id)}
    assert len(names) == 250
    assert {f"Post {i} (revised)" for i in range(0, 100, 10)} <= names


async def site_at_175_of_300(start_sandbox: SandboxStarter, job_dir: Path) -> tuple[Sandbox, Path]:
    """A site whose limit (300) the job declares, holding 25 items in another collection and the
    job's 150 posts, written by a first run; the job's path, 4 requests in flight."""
    sandbox = await start_sandbox(item_limit=300)
    await other_collection(sandbox, 25)
    path = job_dir / "job.toml"
    path.write_text(job_text(external(sandbox), concurrency=4, item_limit=300))
    write_csv(job_dir / "posts.csv", ["id", "title"], rows(150))
    assert (await run_job(load_job(path))).exit_code == 0
    return sandbox, path


async def test_with_four_creates_in_flight_at_most_one_is_refused_at_the_declared_limit(
    start_sandbox: SandboxStarter, job_dir: Path
) -> None:
    sandbox, path = await site_at_175_of_300(start_sandbox, job_dir)

    write_csv(job_dir / "posts.csv", ["id", "title"], rows(1000))
    before = create_requests(sandbox)
    summary = await run_job(load_job(path))
    after = create_requests(sandbox)

    # 125 fit: a batch of 100 and 25 of the next (the room left, counted over the whole site);
    # then one request alone, refused; no other create request is sent.
    assert after.get(400, 0) - before.get(400, 0) == 1, after
    assert after.get(202, 0) - before.get(202, 0) == 2, after
    posts: dict[str, Any] = summary.collections["posts"]
    assert posts["created"] == 125, summary.as_dict()
    assert posts["failed"] == 725, summary.as_dict()
    assert summary.exit_code == 1
    (said,) = summary.notes
    assert "725 records were not created" in said
    with CheckpointLog.open(job_dir / "job" / "checkpoint.sqlite") as log:
        errors = [e for e in log.errors() if e.collection == "posts"]
    assert len(errors) == 725
    assert {e.error_kind for e in errors} == {"item_limit"}


async def test_the_site_is_counted_only_by_a_run_that_creates(
    start_sandbox: SandboxStarter, job_dir: Path
) -> None:
    sandbox, path = await site_at_175_of_300(start_sandbox, job_dir)

    # Nothing to create: no count. Then one record to create: one read per collection of the
    # site (Pages and Posts) besides what the rerun reads.
    start = item_reads(sandbox)
    assert (await run_job(load_job(path))).collections["posts"] == {"unchanged": 150}
    nothing_to_create = item_reads(sandbox) - start
    write_csv(job_dir / "posts.csv", ["id", "title"], rows(151))
    start = item_reads(sandbox)
    assert (await run_job(load_job(path))).collections["posts"]["created"] == 1
    one_to_create = item_reads(sandbox) - start
    assert one_to_create - nothing_to_create == 2


async def test_past_a_declared_limit_lower_than_the_sites_creates_go_on_and_the_run_says_so(
    start_sandbox: SandboxStarter, job_dir: Path
) -> None:
    sandbox = await start_sandbox(item_limit=500)
    path = job_dir / "job.toml"
    path.write_text(job_text(external(sandbox), concurrency=4, item_limit=250))
    write_csv(job_dir / "posts.csv", ["id", "title"], rows(1000))
    summary = await run_job(load_job(path))
    # Up to the site's real limit: 450 at least (a batch of 100 refused there, and a part of
    # one sent to fill the room under the declared limit).
    assert summary.collections["posts"]["created"] >= 450, summary.as_dict()
    assert summary.exit_code == 1
    (passed,) = [note for note in summary.notes if "more than the CMS item limit" in note]
    assert "(item_limit = 250)" in passed
    assert "set item_limit (or plan) to the site's limit" in passed


async def test_plan_warns_when_creates_would_pass_the_limit_the_job_declares(
    sandbox: Sandbox, job_dir: Path
) -> None:
    path = job_dir / "job.toml"
    write_csv(job_dir / "posts.csv", ["id", "title"], rows(300))
    path.write_text(job_text(external(sandbox), item_limit=250))
    summary = await run_job(load_job(path), dry_run=True)
    (warning,) = [note for note in summary.notes if "item limit" in note]
    assert "item_limit = 250" in warning
    assert "this run would create 300, so 50 would fail" in warning

    # Without item_limit, the plan's: cms allows 2,000 items.
    path.write_text(job_text(external(sandbox)))
    planned = await run_job(load_job(path), dry_run=True)
    assert not [note for note in planned.notes if "item limit" in note]


async def test_the_embedded_sandbox_takes_its_item_limit_from_the_job(job_dir: Path) -> None:
    path = job_dir / "job.toml"
    write_csv(job_dir / "posts.csv", ["id", "title"], rows(80))
    path.write_text(job_text('api = "sandbox"', concurrency=4, item_limit=30))
    summary = await run_job(load_job(path))
    assert summary.collections["posts"].get("created", 0) <= 30
    assert summary.collections["posts"]["failed"] >= 50
    assert summary.exit_code == 1
