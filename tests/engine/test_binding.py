"""The checkpoint log is bound to the Webflow site and collections it wrote to: a collection
deleted or recreated, or a job pointed at another site, stops the run before any write, and
``--rehome`` then creates or adopts every logged item where the job now writes."""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path

import pytest
from pydantic import SecretStr

from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.jobfile import load_job
from flowport.pipeline.runner import run_job
from flowport.pipeline.sandbox import Sandbox, SandboxConfig
from flowport.pipeline.webflow.client import WebflowClient
from tests.conftest import TOKEN, SandboxStarter, write_csv
from tests.engine.conftest import POSTS_COLLECTION, sandbox_stats

ROWS = [(str(n), f"Post number {n}") for n in range(30)]


def job_text(api: str, site_id: str | None) -> str:
    site = f'site_id = "{site_id}"\ntoken_env = "FLOWPORT_TEST_TOKEN"' if site_id else ""
    return (
        textwrap.dedent(
            """
        [destination]
        api = "{api}"
        {site}
        rate_limit = 100000
        rate_window_seconds = 60
        """
        ).format(api=api, site=site)
        + POSTS_COLLECTION
    )


@pytest.fixture
def job_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FLOWPORT_TEST_TOKEN", TOKEN)
    write_csv(tmp_path / "posts.csv", ["id", "title"], ROWS)
    return tmp_path


async def items_in(base_url: str, site_id: str) -> dict[str, int]:
    """Items per collection display name on the site."""
    async with WebflowClient(base_url, SecretStr(TOKEN)) as client:
        counts: dict[str, int] = {}
        for collection in await client.list_collections(site_id):
            counts[collection.display_name] = len(
                [i async for i in client.iter_items(collection.id)]
            )
        return counts


async def delete_posts(base_url: str, site_id: str) -> str:
    async with WebflowClient(base_url, SecretStr(TOKEN)) as client:
        (posts,) = [c for c in await client.list_collections(site_id) if c.slug == "posts"]
        await client.send("DELETE", f"/collections/{posts.id}")
        return posts.id


async def writes(sandbox: Sandbox) -> int:
    return int((await sandbox_stats(sandbox))["totals"]["writes"])


async def test_a_deleted_collection_stops_the_run_before_any_write_and_rehome_fills_it(
    sandbox: Sandbox, job_dir: Path
) -> None:
    path = job_dir / "job.toml"
    path.write_text(job_text(sandbox.base_url, sandbox.site_id))
    assert (await run_job(load_job(path))).exit_code == 0
    old_id = await delete_posts(sandbox.base_url, sandbox.site_id)
    before = await writes(sandbox)

    stopped = await run_job(load_job(path))

    assert stopped.exit_code == 3
    assert stopped.aborted is not None
    assert old_id in stopped.aborted
    assert "--rehome" in stopped.aborted
    assert await writes(sandbox) == before  # not even the collection was created again
    assert await items_in(sandbox.base_url, sandbox.site_id) == {}

    rehomed = await run_job(load_job(path), rehome=True)

    assert rehomed.exit_code == 0, rehomed.as_dict()
    assert rehomed.collections["posts"]["created"] == len(ROWS)
    assert await items_in(sandbox.base_url, sandbox.site_id) == {"Posts": len(ROWS)}
    again = await run_job(load_job(path))
    assert again.exit_code == 0
    assert again.collections == {"posts": {"unchanged": len(ROWS)}}


async def test_a_recreated_collection_with_some_items_adopts_them_on_rehome(
    sandbox: Sandbox, job_dir: Path
) -> None:
    path = job_dir / "job.toml"
    path.write_text(job_text(sandbox.base_url, sandbox.site_id))
    assert (await run_job(load_job(path))).exit_code == 0
    await delete_posts(sandbox.base_url, sandbox.site_id)
    # Someone recreates the collection and puts a third of the items back by hand.
    write_csv(job_dir / "posts.csv", ["id", "title"], ROWS[:10])
    other = job_dir / "other.toml"
    other.write_text(job_text(sandbox.base_url, sandbox.site_id))
    assert (await run_job(load_job(other))).exit_code == 0
    write_csv(job_dir / "posts.csv", ["id", "title"], ROWS)

    stopped = await run_job(load_job(path))
    assert stopped.exit_code == 3
    assert await items_in(sandbox.base_url, sandbox.site_id) == {"Posts": 10}

    rehomed = await run_job(load_job(path), rehome=True)

    assert rehomed.exit_code == 0, rehomed.as_dict()
    counts = rehomed.collections["posts"]
    assert counts.get("created") == len(ROWS) - 10
    assert counts.get("adopted") == 10, counts  # found by slug, not created twice
    assert await items_in(sandbox.base_url, sandbox.site_id) == {"Posts": len(ROWS)}


async def test_a_job_pointed_at_another_site_stops_naming_both_sites(
    start_sandbox: SandboxStarter, job_dir: Path
) -> None:
    staging = await start_sandbox()
    production = await start_sandbox(seed=11)
    assert staging.site_id != production.site_id
    path = job_dir / "job.toml"
    path.write_text(job_text(staging.base_url, staging.site_id))
    assert (await run_job(load_job(path))).exit_code == 0

    path.write_text(job_text(production.base_url, production.site_id))
    stopped = await run_job(load_job(path))

    assert stopped.exit_code == 3
    assert stopped.aborted is not None
    assert staging.site_id in stopped.aborted
    assert production.site_id in stopped.aborted
    assert await writes(production) == 0

    rehomed = await run_job(load_job(path), rehome=True)
    assert rehomed.exit_code == 0, rehomed.as_dict()
    assert await items_in(production.base_url, production.site_id) == {"Posts": len(ROWS)}
    assert await items_in(staging.base_url, staging.site_id) == {"Posts": len(ROWS)}


async def test_the_embedded_sandbox_with_its_collection_deleted_between_runs(
    job_dir: Path,
) -> None:
    path = job_dir / "job.toml"
    path.write_text(job_text("sandbox", None))
    assert (await run_job(load_job(path))).exit_code == 0
    # The embedded sandbox keeps its state beside the log: delete the collection there.
    config = SandboxConfig(tokens=(TOKEN,), state_file=job_dir / "job" / "sandbox-state.jsonl")
    async with Sandbox(config) as embedded:
        await delete_posts(embedded.base_url, embedded.site_id)

    stopped = await run_job(load_job(path))
    assert stopped.exit_code == 3

    rehomed = await run_job(load_job(path), rehome=True)
    assert rehomed.exit_code == 0, rehomed.as_dict()
    assert rehomed.collections["posts"]["created"] == len(ROWS)
    async with Sandbox(config) as embedded:
        assert await items_in(embedded.base_url, embedded.site_id) == {"Posts": len(ROWS)}


def test_a_log_from_before_site_binding_records_the_site_on_its_next_run(
    tmp_path: Path,
) -> None:
    path = tmp_path / "checkpoint.sqlite"
    with CheckpointLog.open(path) as log:
        log.set_collection_id("posts", "c1")
        log.bindings.bind_site(["posts"], "s1")
        assert log.bindings.binding("posts") == ("c1", "s1")
    # A v4 log has no site column: the migration adds it empty.
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE collections DROP COLUMN site_id")
    db.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with CheckpointLog.open(path) as log:
        assert log.bindings.binding("posts") == ("c1", None)
