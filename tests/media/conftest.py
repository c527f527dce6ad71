"""Fixtures for the media tests: the root's sandbox, an open client, a real local image host."""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from pydantic import SecretStr

from flowport.pipeline.ratebudget import RateBudget
from flowport.pipeline.sandbox import Sandbox
from flowport.pipeline.webflow.client import WebflowClient
from tests.conftest import TOKEN, UNLIMITED_RATE
from tests.oldsite import ImageHost, running_old_site


def png(width: int, height: int, shade: int = 0) -> bytes:
    """A real PNG (8-bit RGB), built by hand so the tests need no imaging library."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    rows = b"".join(
        b"\x00" + bytes((x * 7 + y * 13 + shade) % 256 for x in range(width * 3))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 0))
        + chunk(b"IEND", b"")
    )


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
