from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.ratebudget import RateBudget
from flowport.pipeline.sandbox import FaultConfig, Sandbox, SandboxConfig
from flowport.pipeline.webflow.client import WebflowClient

TOKEN = "engine-test-token"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxConfig(tokens=(TOKEN,), rate_limit=100_000, seed=3)) as running:
        yield running


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[WebflowClient]:
    budget = RateBudget(100_000, 60.0)
    async with WebflowClient(sandbox.base_url, SecretStr(TOKEN), budget=budget) as running:
        yield running


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
