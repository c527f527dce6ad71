"""Fixtures for the sandbox tests: the root's sandbox on 127.0.0.1 (``tests/conftest.py``) with
a clock the test moves by hand, and a thin JSON client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from flowport.pipeline.sandbox import Sandbox
from tests.conftest import TOKEN, SandboxStarter
from tests.oldsite import ImageHost, running_old_site


@dataclass
class TimeControl:
    """Monotonic seconds and a wall clock that move only when the test says so."""

    now: float = 1000.0
    epoch: datetime = field(default_factory=lambda: datetime(2025, 3, 1, 12, 0, tzinfo=UTC))

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return self.epoch + timedelta(seconds=self.now - 1000.0)

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


class Api:
    """A thin JSON client for the sandbox: every call returns status, parsed body and headers."""

    def __init__(self, session: aiohttp.ClientSession, sandbox: Sandbox) -> None:
        self.session = session
        self.sandbox = sandbox
        self.base = sandbox.base_url

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, str] | None = None,
        token: str | None = TOKEN,
        raw: bytes | None = None,
    ) -> Answer:
        url = path if path.startswith("http") else self.base + path
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        kwargs: dict[str, Any] = {"headers": headers, "params": params}
        if raw is not None:
            kwargs["data"] = raw
            headers["Content-Type"] = "application/json"
        elif body is not None:
            kwargs["json"] = body
        async with self.session.request(method, url, **kwargs) as response:
            text = await response.read()
            parsed = None
            if text:
                assert response.content_type == "application/json", text[:200]
                parsed = await response.json()
            return Answer(response.status, parsed, dict(response.headers))

    async def get(self, path: str, **kwargs: Any) -> Answer:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return await self.call("POST", path, body, **kwargs)

    async def patch(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return await self.call("PATCH", path, body, **kwargs)

    async def delete(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return await self.call("DELETE", path, body, **kwargs)

    async def collection(self, name: str = "Posts", fields: list[Any] | None = None) -> str:
        answer = await self.post(
            f"/sites/{self.sandbox.site_id}/collections",
            {"displayName": name, "singularName": name.rstrip("s"), "fields": fields or []},
        )
        assert answer.status == 200, answer.body
        return str(answer.body["id"])

    async def item(self, collection_id: str, slug: str, **extra: Any) -> dict[str, Any]:
        data = {"name": slug.replace("-", " ").title(), "slug": slug, **extra}
        answer = await self.post(f"/collections/{collection_id}/items", {"fieldData": data})
        assert answer.status == 202, answer.body
        return dict(answer.body)


SandboxFactory = Callable[..., Awaitable[tuple[Sandbox, Api]]]


@pytest.fixture
def clock() -> TimeControl:
    return TimeControl()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def sandbox_settings(clock: TimeControl) -> dict[str, Any]:
    # The sandbox's own default rate limit (the tests of limits set theirs), on the test's clock.
    return {"clock": clock.monotonic, "wall_clock": clock.wall, "site_publish_interval": 60.0}


@pytest.fixture
def make_sandbox(start_sandbox: SandboxStarter, session: aiohttp.ClientSession) -> SandboxFactory:
    """Another sandbox for the test, ``sandbox_settings`` with keyword overrides, and its client."""

    async def start(**overrides: Any) -> tuple[Sandbox, Api]:
        sandbox = await start_sandbox(**overrides)
        return sandbox, Api(session, sandbox)

    return start


@pytest.fixture
def api(sandbox: Sandbox, session: aiohttp.ClientSession) -> Api:
    return Api(session, sandbox)


@pytest.fixture
async def old_site() -> AsyncIterator[ImageHost]:
    async with running_old_site() as host:
        yield host
