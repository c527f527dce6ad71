"""The runner end to end, in-process, against a real sandbox over loopback."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.jobfile import load_job
from flowport.pipeline.retry import RetryPolicy
from flowport.pipeline.runner import run_job
from flowport.pipeline.sandbox import FaultConfig, Sandbox
from tests.conftest import TOKEN, SandboxStarter, write_csv
from tests.engine.conftest import sandbox_stats, set_faults

CATEGORIES = [
    # id, name, parent
    ("1", "News", ""),
    ("2", "World", "1"),
    ("3", "Europe", "2"),
    ("4", "Sport", ""),
    ("5", "Tennis", "4"),
    ("6", "Clay courts", "5"),
    ("7", "Asia", "2"),
]


def job_text(
    base_url: str,
    site_id: str,
    *,
    rate_limit: int = 100_000,
    window: float = 60.0,
    concurrency: int = 4,
) -> str:
    return f"""
[destination]
api = "{base_url}"
site_id = "{site_id}"
token_env = "FLOWPORT_TEST_TOKEN"
rate_limit = {rate_limit}
rate_window_seconds = {window}
concurrency = {concurrency}

[run]
mode = "live"

[collections.categories]
target = "Categories"
create_missing = true
source = {{ type = "csv", path = "categories.csv", key = "id" }}
slug_from = "name"

[collections.categories.fields]
name = "name"
parent = {{ source = "parent", reference = "categories" }}

[collections.categories.schema]
singular_name = "Category"
fields = {{ parent = {{ type = "Reference", collection = "categories" }} }}

[collections.posts]
target = "Posts"
create_missing = true
source = {{ type = "csv", path = "posts.csv", key = "id" }}
slug_from = "name"

[collections.posts.fields]
name = "title"
category = {{ source = "category", reference = "categories" }}
words = {{ source = "words", transforms = ["number"] }}

[collections.posts.schema]
singular_name = "Post"
fields = {{ category = {{ type = "Reference", collection = "categories" }}, words = "Number" }}
"""


def posts(n: int, *, changed: frozenset[int] = frozenset()) -> list[tuple[str, ...]]:
    return [
        (
            str(i),
            f"Post number {i}{' (revised)' if i in changed else ''}",
            CATEGORIES[i % len(CATEGORIES)][0],
            str(100 + i),
        )
        for i in range(n)
    ]


@pytest.fixture
def job_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FLOWPORT_TEST_TOKEN", TOKEN)
    write_csv(tmp_path / "categories.csv", ["id", "name", "parent"], CATEGORIES)
    write_csv(tmp_path / "posts.csv", ["id", "title", "category", "words"], posts(500))
    return tmp_path


async def live_items(sandbox: Sandbox, collection_id: str) -> list[dict[str, Any]]:
    from pydantic import SecretStr

    from flowport.pipeline.webflow.client import WebflowClient

    async with WebflowClient(sandbox.base_url, SecretStr(TOKEN)) as client:
        return [
            i.model_dump(by_alias=True) async for i in client.iter_items(collection_id, live=True)
        ]


async def writes(sandbox: Sandbox) -> int:
    stats = await sandbox_stats(sandbox)
    return int(stats["totals"]["writes"])


async def test_self_references_are_set_in_a_second_pass_and_a_rerun_sends_nothing(
    sandbox: Sandbox, job_dir: Path
) -> None:
    path = job_dir / "job.toml"
    path.write_text(job_text(sandbox.base_url, sandbox.site_id))
    summary = await run_job(load_job(path))
    assert summary.exit_code == 0, summary.as_dict()
    assert summary.collections["categories"]["created"] == 7
    assert summary.collections["categories"]["references_set"] == 5
    assert summary.collections["posts"]["created"] == 500

    with CheckpointLog.open(job_dir / "job" / "checkpoint.sqlite") as log:
        ids = {s.key: s.webflow_id for s in log.in_state("categories", "done")}
        post_ids = {s.key: s.webflow_id for s in log.in_state("posts", "done")}
        categories_id = log.bindings.collection_id("categories")
        posts_id = log.bindings.collection_id("posts")
    assert categories_id
    assert posts_id
    by_id = {i["id"]: i for i in await live_items(sandbox, categories_id)}
    for key, name, parent in CATEGORIES:
        item = by_id[ids[key] or ""]
        assert item["fieldData"]["name"] == name
        assert item["fieldData"].get("parent") == (ids[parent] if parent else None)
    stored_posts = {i["id"]: i for i in await live_items(sandbox, posts_id)}
    assert len(stored_posts) == 500
    for key, _title, category, _words in posts(500):
        assert stored_posts[post_ids[key] or ""]["fieldData"]["category"] == ids[category]

    before = await writes(sandbox)
    again = await run_job(load_job(path))
    assert again.exit_code == 0
    assert await writes(sandbox) == before
    assert again.collections == {"categories": {"unchanged": 7}, "posts": {"unchanged": 500}}


async def test_a_one_percent_change_sends_only_those_updates(
    sandbox: Sandbox, job_dir: Path
) -> None:
    path = job_dir / "job.toml"
    path.write_text(job_text(sandbox.base_url, sandbox.site_id))
    assert (await run_job(load_job(path))).exit_code == 0
    changed = frozenset(range(0, 500, 100))
    write_csv(
        job_dir / "posts.csv", ["id", "title", "category", "words"], posts(500, changed=changed)
    )
    stats_before = await sandbox_stats(sandbox)

    summary = await run_job(load_job(path))

    stats_after = await sandbox_stats(sandbox)
    assert summary.collections["posts"] == {"unchanged": 495, "updated": 5}
    assert stats_after["totals"]["writes"] - stats_before["totals"]["writes"] == 1
    with CheckpointLog.open(job_dir / "job" / "checkpoint.sqlite") as log:
        posts_id = log.bindings.collection_id("posts")
    assert posts_id
    names = {i["fieldData"]["name"] for i in await live_items(sandbox, posts_id)}
    assert {f"Post number {i} (revised)" for i in changed} <= names


async def test_updates_webflow_never_takes_are_this_runs_errors_and_the_next_run_sends_them(
    sandbox: Sandbox, job_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every retry is still made, without the backoff's seconds between them.
    monkeypatch.setattr(
        "flowport.pipeline.webflow.reliable.RetryPolicy",
        functools.partial(RetryPolicy, base_delay=0.0, max_delay=0.0),
    )
    path = job_dir / "job.toml"
    path.write_text(job_text(sandbox.base_url, sandbox.site_id))
    assert (await run_job(load_job(path))).exit_code == 0
    with CheckpointLog.open(job_dir / "job" / "checkpoint.sqlite") as log:
        posts_id = log.bindings.collection_id("posts")
        old_hashes = {s.key: s.content_hash for s in log.in_state("posts", "done")}
    assert posts_id
    changed = frozenset(range(0, 500, 10))
    write_csv(
        job_dir / "posts.csv", ["id", "title", "category", "words"], posts(500, changed=changed)
    )
    # Every update (PATCH) is answered 500/503, every attempt; reads and creates still work.
    await set_faults(sandbox, FaultConfig(error_rate=1.0, error_methods=("PATCH",)))

    summary = await run_job(load_job(path))

    assert summary.aborted is None, summary.as_dict()
    assert summary.exit_code == 1, summary.as_dict()
    assert summary.collections["posts"] == {"unchanged": 450, "failed": 50}
    assert summary.retries > 0
    assert (await sandbox_stats(sandbox))["totals"]["faults"]["error"] > 0
    with CheckpointLog.open(job_dir / "job" / "checkpoint.sqlite") as log:
        errors = list(log.errors())
        kept = log.lookup("posts", [str(i) for i in changed])
    assert {e.key for e in errors} == {str(i) for i in changed}
    for error in errors:
        assert error.error_kind == "unavailable"
        assert error.last_error
        assert "the next run sends it again" in error.last_error
    # The old hashes stay: the next run still sees the records as changed.
    assert {key: state.content_hash for key, state in kept.items()} == {
        str(i): old_hashes[str(i)] for i in changed
    }
    names = {i["fieldData"]["name"] for i in await live_items(sandbox, posts_id)}
    assert not {f"Post number {i} (revised)" for i in changed} & names

    await set_faults(sandbox, FaultConfig())
    again = await run_job(load_job(path))

    assert again.exit_code == 0, again.as_dict()
    assert again.collections["posts"] == {"unchanged": 450, "updated": 50}
    names = {i["fieldData"]["name"] for i in await live_items(sandbox, posts_id)}
    assert {f"Post number {i} (revised)" for i in changed} <= names
    with CheckpointLog.open(job_dir / "job" / "checkpoint.sqlite") as log:
        assert list(log.errors()) == []
        assert log.counts()["posts"] == {"done": 500}


async def test_a_server_limit_lower_than_the_plan_slows_the_pace_instead_of_429s(
    job_dir: Path, start_sandbox: SandboxStarter
) -> None:
    # The server allows 20 requests per 0.5 s; the job believes it may send ten times that.
    sandbox = await start_sandbox(rate_limit=20, window_seconds=0.5)
    path = job_dir / "job.toml"
    path.write_text(
        job_text(sandbox.base_url, sandbox.site_id, rate_limit=200, window=0.5, concurrency=8)
    )
    write_csv(job_dir / "posts.csv", ["id", "title", "category", "words"], posts(3000))
    summary = await run_job(load_job(path))
    stats = await sandbox_stats(sandbox)
    assert summary.exit_code == 0, summary.as_dict()
    assert summary.collections["posts"]["created"] == 3000
    # At most the first answer's worth of requests can outrun the correction.
    assert stats["totals"]["rateLimited"] <= 8


async def test_429_bursts_pause_every_worker_and_nothing_is_lost(
    job_dir: Path, start_sandbox: SandboxStarter
) -> None:
    faults = FaultConfig(burst_429_rate=0.05, burst_429_length=3)
    sandbox = await start_sandbox(faults=faults, seed=11)
    path = job_dir / "job.toml"
    path.write_text(job_text(sandbox.base_url, sandbox.site_id, concurrency=8))
    write_csv(job_dir / "posts.csv", ["id", "title", "category", "words"], posts(5000))
    summary = await run_job(load_job(path))
    stats = await sandbox_stats(sandbox)
    await set_faults(sandbox, FaultConfig())
    posts_id = CheckpointLog.open(job_dir / "job" / "checkpoint.sqlite").bindings.collection_id(
        "posts"
    )
    assert posts_id
    stored = await live_items(sandbox, posts_id)
    assert summary.exit_code == 0, summary.as_dict()
    assert summary.collections["posts"]["created"] == 5000
    assert summary.rate_limited > 0
    assert stats["totals"]["rateLimited"] == summary.rate_limited
    assert len({i["fieldData"]["slug"] for i in stored}) == len(stored) == 5000


async def test_colliding_titles_get_unique_slugs_within_a_chunk_across_chunks_and_runs(
    sandbox: Sandbox, job_dir: Path
) -> None:
    # 1,200 posts, three chunks of the runner's 500: each title is shared by three posts,
    # one in each chunk, and "Post 5" also collides with the slug "post-5-2" a later record
    # asks for itself.
    rows = [(str(i), f"Post {i % 400}", "1", "1") for i in range(1200)]
    rows.append(("extra", "Post 5 2", "1", "1"))
    write_csv(job_dir / "posts.csv", ["id", "title", "category", "words"], rows)
    path = job_dir / "job.toml"
    path.write_text(job_text(sandbox.base_url, sandbox.site_id))
    summary = await run_job(load_job(path))
    assert summary.exit_code == 0, summary.as_dict()
    assert summary.collections["posts"]["created"] == 1201

    with CheckpointLog.open(job_dir / "job" / "checkpoint.sqlite") as log:
        posts_id = log.bindings.collection_id("posts")
        assert posts_id is not None
        states = log.lookup("posts", [r[0] for r in rows])
    slugs = {key: state.slug for key, state in states.items()}
    assert len(set(slugs.values())) == 1201
    # First come, first served, in source order: the record in the first chunk keeps the bare
    # slug, the later ones take the next free suffix.
    assert slugs["7"] == "post-7"
    assert slugs["407"] == "post-7-2"
    assert slugs["807"] == "post-7-3"
    assert slugs["5"] == "post-5"
    assert slugs["405"] == "post-5-2"
    assert slugs["extra"] not in ("post-5", "post-5-2")
    items = await live_items(sandbox, posts_id)
    # key=str: a slug left None would sort among the strings and fail the comparison.
    assert sorted(i["fieldData"]["slug"] for i in items) == sorted(slugs.values(), key=str)

    # A rerun keeps every slug and sends nothing; a new record takes a slug no one holds.
    before = await writes(sandbox)
    rows.append(("late", "Post 7", "1", "1"))
    write_csv(job_dir / "posts.csv", ["id", "title", "category", "words"], rows)
    again = await run_job(load_job(path))
    assert again.exit_code == 0, again.as_dict()
    assert again.collections["posts"]["created"] == 1
    assert again.collections["posts"]["unchanged"] == 1201
    assert await writes(sandbox) == before + 1
    with CheckpointLog.open(job_dir / "job" / "checkpoint.sqlite") as log:
        assert log.lookup("posts", ["late"])["late"].slug == "post-7-4"


async def test_staged_items_keep_their_source_fingerprint_through_publishing(
    sandbox: Sandbox, job_dir: Path
) -> None:
    # A rerun skips mapping records whose fingerprint matches; publishing must not erase it.
    path = job_dir / "job.toml"
    path.write_text(
        job_text(sandbox.base_url, sandbox.site_id).replace('mode = "live"', 'mode = "staged"')
    )
    summary = await run_job(load_job(path))
    assert summary.exit_code == 0, summary.as_dict()
    with CheckpointLog.open(job_dir / "job" / "checkpoint.sqlite") as log:
        posts = log.lookup("posts", [str(i) for i in range(500)])
    assert {s.state for s in posts.values()} == {"done"}
    assert all(s.source_hash for s in posts.values())
    again = await run_job(load_job(path))
    assert again.collections["posts"] == {"unchanged": 500}
