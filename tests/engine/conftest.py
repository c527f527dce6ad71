from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.ratebudget import RateBudget
from flowport.pipeline.sandbox import FaultConfig, Sandbox
from flowport.pipeline.webflow.client import WebflowClient
from tests.conftest import TOKEN, UNLIMITED_RATE


@pytest.fixture
def sandbox_settings() -> dict[str, Any]:
    # A fixed seed: the fault draws of the writer's tests follow from it.
    return {"rate_limit": UNLIMITED_RATE, "window_seconds": 60.0, "seed": 3}


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[WebflowClient]:
    budget = RateBudget(100_000, 60.0)
    async with WebflowClient(sandbox.base_url, SecretStr(TOKEN), budget=budget) as running:
        yield running


@pytest.fixture
def job_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder for the test's job; its file names the token by ``FLOWPORT_TEST_TOKEN``."""
    monkeypatch.setenv("FLOWPORT_TEST_TOKEN", TOKEN)
    return tmp_path


#: The collection most engine jobs write: ``posts.csv`` (``id``, ``title``) into a "Posts"
#: collection the run creates.
POSTS_COLLECTION = textwrap.dedent(
    """
    [collections.posts]
    target = "Posts"
    create_missing = true
    source = { type = "csv", path = "posts.csv", key = "id" }
    slug_from = "name"
    fields = { name = "title" }
    schema = { singular_name = "Post" }
    """
)

_POSTS_JOB = textwrap.dedent(
    """
    [destination]
    api = "{base_url}"
    site_id = "{site_id}"
    token_env = "FLOWPORT_TEST_TOKEN"
    rate_limit = 100000
    rate_window_seconds = 60
    {destination}

    [run]
    {run}
    """
)


def posts_job_text(base_url: str, site_id: str, *, destination: str = "", run: str) -> str:
    """A job that creates a "Posts" collection on the sandbox and writes ``posts.csv`` (``id``,
    ``title``) into it, unlimited in rate; ``destination`` and ``run`` are further lines (TOML)
    of those tables."""
    return (
        _POSTS_JOB.format(base_url=base_url, site_id=site_id, destination=destination, run=run)
        + POSTS_COLLECTION
    )


@pytest.fixture
def checkpoint(tmp_path: Path) -> CheckpointLog:
    return CheckpointLog.open(tmp_path / "state" / "checkpoint.sqlite")


async def sandbox_stats(sandbox: Sandbox) -> dict[str, Any]:
    return sandbox.stats()


async def set_faults(sandbox: Sandbox, faults: FaultConfig) -> None:
    sandbox.set_faults(faults)


async def make_collection(client: WebflowClient, site_id: str, name: str = "Posts") -> str:
    collection = await client.create_collection(
        site_id, display_name=name, singular_name=name.rstrip("s")
    )
    await client.create_field(collection.id, {"type": "Email", "displayName": "Contact"})
    return collection.id
