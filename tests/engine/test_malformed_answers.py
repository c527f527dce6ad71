"""A 2xx answer that is not the JSON the API promises (a proxy's HTML maintenance page, a
wrong-shaped body) is an unknown outcome, never "nothing": reads are sent again, writes are read
back before anything is sent again, and past the retries the run stops with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from flowport.base.errors import FatalError, MalformedAnswer, OutcomeUnknown
from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.jobfile import load_job
from flowport.pipeline.retry import RetryPolicy
from flowport.pipeline.runner import run_job
from flowport.pipeline.sandbox import FaultConfig, Sandbox
from flowport.pipeline.webflow.client import WebflowClient
from flowport.pipeline.webflow.reliable import WebflowApi
from tests.conftest import TOKEN, SandboxStarter, write_csv
from tests.engine.conftest import make_collection, posts_job_text, sandbox_stats, set_faults

ROWS = [(str(n), f"Post number {n}") for n in range(60)]


def job_text(base_url: str, site_id: str) -> str:
    return posts_job_text(base_url, site_id, run="batch_size = 5")


@pytest.fixture
def job_dir(job_dir: Path) -> Path:
    write_csv(job_dir / "posts.csv", ["id", "title"], ROWS)
    return job_dir


@pytest.mark.parametrize("body", ["html", "wrong_shape"])
async def test_a_garbled_answer_to_a_read_is_never_an_empty_list(
    sandbox: Sandbox, body: str
) -> None:
    async with WebflowClient(sandbox.base_url, SecretStr(TOKEN)) as client:
        collection_id = await make_collection(client, sandbox.site_id)
        await set_faults(sandbox, FaultConfig(garbled_rate=1.0, garbled_body=body))
        with pytest.raises(MalformedAnswer, match="is not what the Webflow API promises"):
            await client.list_collections(sandbox.site_id)
        with pytest.raises(MalformedAnswer):
            await client.list_items(collection_id)


async def test_a_garbled_answer_to_a_create_is_an_unknown_outcome(sandbox: Sandbox) -> None:
    async with WebflowClient(sandbox.base_url, SecretStr(TOKEN)) as client:
        collection_id = await make_collection(client, sandbox.site_id)
        await set_faults(sandbox, FaultConfig(garbled_rate=1.0, garbled_methods=("POST",)))
        with pytest.raises(OutcomeUnknown):
            await client.create_items(collection_id, [{"name": "A", "slug": "a"}], live=False)


async def test_reads_are_sent_again_and_stop_clearly_past_the_retries(sandbox: Sandbox) -> None:
    async with WebflowClient(sandbox.base_url, SecretStr(TOKEN)) as client:
        await make_collection(client, sandbox.site_id)
        api = WebflowApi(client, policy=RetryPolicy(base_delay=0.0, max_delay=0.0))
        await set_faults(sandbox, FaultConfig(garbled_rate=0.5, garbled_methods=("GET",)))
        for _ in range(5):
            assert [c.display_name for c in await api.list_collections(sandbox.site_id)] == [
                "Posts"
            ]
        assert api.stats.retries > 0
        await set_faults(sandbox, FaultConfig(garbled_rate=1.0))
        with pytest.raises(FatalError, match="is not answering as its API promises"):
            await api.list_collections(sandbox.site_id)


async def test_a_garbled_collection_list_stops_the_run_without_creating_one(
    sandbox: Sandbox, job_dir: Path
) -> None:
    job_path = job_dir / "job.toml"
    job_path.write_text(job_text(sandbox.base_url, sandbox.site_id))
    await set_faults(sandbox, FaultConfig(garbled_rate=1.0, garbled_methods=("GET",)))

    summary = await run_job(load_job(job_path))

    assert summary.exit_code == 3
    assert summary.aborted is not None
    assert "is not what the Webflow API promises" in summary.aborted
    assert (await sandbox_stats(sandbox))["totals"]["writes"] == 0


async def test_maintenance_pages_on_read_backs_never_duplicate_an_item(
    start_sandbox: SandboxStarter, job_dir: Path
) -> None:
    # Webflow suffixes a duplicate slug instead of refusing it: a create sent twice lands twice.
    sandbox = await start_sandbox(duplicate_slug="suffix", seed=5)
    job_path = job_dir / "job.toml"
    job_path.write_text(job_text(sandbox.base_url, sandbox.site_id))
    await set_faults(sandbox, FaultConfig(commit_then_drop_rate=0.3, garbled_rate=0.3))

    codes = []
    for _ in range(12):
        summary = await run_job(load_job(job_path))
        codes.append(summary.exit_code)
        assert summary.exit_code in (0, 3), summary.as_dict()
        if summary.exit_code == 3:
            assert summary.aborted is not None
            assert "HTTP 200" in summary.aborted, summary.aborted
        if summary.exit_code == 0:
            break
    await set_faults(sandbox, FaultConfig())
    final = await run_job(load_job(job_path))

    assert final.exit_code == 0, (codes, final.as_dict())
    assert (await sandbox_stats(sandbox))["totals"]["faults"]["garbled"] > 0
    async with WebflowClient(sandbox.base_url, SecretStr(TOKEN)) as client:
        (posts,) = await client.list_collections(sandbox.site_id)
        slugs = sorted([i.slug or "" async for i in client.iter_items(posts.id)])
    assert slugs == sorted(f"post-number-{n}" for n in range(len(ROWS)))


async def test_creates_that_never_land_are_failed_items_not_a_clean_exit(
    sandbox: Sandbox, job_dir: Path
) -> None:
    """Every create's answer lost and nothing applied (a proxy in front of Webflow answering
    each POST with a maintenance page): once the read-backs find the items still absent, they
    are per-item failures and the run exits 1; the next run creates them."""
    path = job_dir / "job.toml"
    path.write_text(job_text(sandbox.base_url, sandbox.site_id), encoding="utf-8")
    write_csv(job_dir / "posts.csv", ["id", "title"], ROWS[:1])
    first = await run_job(load_job(path))
    assert first.collections["posts"] == {"created": 1}
    write_csv(job_dir / "posts.csv", ["id", "title"], ROWS[:3])
    await set_faults(sandbox, FaultConfig(garbled_rate=1.0, garbled_methods=("POST",)))

    lost = await run_job(load_job(path))

    assert lost.exit_code == 1, lost.as_dict()
    assert lost.collections["posts"].get("failed") == 2, lost.as_dict()
    with CheckpointLog.open(job_dir / "job" / "checkpoint.sqlite") as log:
        failed = {state.key: state.last_error or "" for state in log.errors()}
    assert set(failed) == {"1", "2"}
    assert all("not created" in reason for reason in failed.values())

    await set_faults(sandbox, FaultConfig())
    again = await run_job(load_job(path))
    assert again.exit_code == 0, again.as_dict()
    assert again.collections["posts"] == {"created": 2, "unchanged": 1}
