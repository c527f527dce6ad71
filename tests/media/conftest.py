"""Fixtures for the media tests: the root's sandbox, an open client, a real local image host."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from pydantic import SecretStr

from flowport.pipeline.ratebudget import RateBudget
from flowport.pipeline.sandbox import Sandbox
from flowport.pipeline.webflow.client import WebflowClient
from tests.conftest import TOKEN, UNLIMITED_RATE
from tests.oldsite import ImageHost, running_old_site


@pytest.fixture
async def image_host() -> AsyncIterator[ImageHost]:
    async with running_old_site(head=True) as host:
        yield host


@pytest.fixture
def sandbox_settings() -> dict[str, Any]:
    return {"rate_limit": UNLIMITED_RATE, "window_seconds": 60.0, "seed": 5}


@pytest.fixture
def budget() -> RateBudget:
    return RateBudget(100_000, 60.0)


@pytest.fixture
async def client(sandbox: Sandbox, budget: RateBudget) -> AsyncIterator[WebflowClient]:
    async with WebflowClient(sandbox.base_url, SecretStr(TOKEN), budget=budget) as running:
        yield running


async def no_sleep(seconds: float) -> None:
    """Retries in tests back off in no time."""


Sleep = Callable[[float], Awaitable[None]]
