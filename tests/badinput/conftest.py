"""Shared parts of the bad-input corpus: a sandbox that accepts this test's own token, and
readers of what a run left behind. The CLI runners and the sandbox come from ``tests/conftest.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flowport.pipeline.checkpoint import CheckpointLog, ItemState
from flowport.pipeline.sandbox import Sandbox
from tests.conftest import make_token

__all__ = ["TOKEN_ENV", "checkpoint_states", "sandbox_items"]

#: The job files name this variable; each test puts its own token in it.
TOKEN_ENV = "FLOWPORT_BADINPUT_TOKEN"


def checkpoint_states(state_dir: Path, collection: str) -> dict[str, ItemState]:
    with CheckpointLog.open(state_dir / "checkpoint.sqlite") as log:
        return {
            item.key: item
            for state in ("done", "staged", "sending", "failed")
            for item in log.in_state(collection, state)
        }


def sandbox_items(sandbox: Sandbox, collection_slug: str) -> list[dict[str, Any]]:
    """Staged items of one collection, read from the sandbox's own state (no API request)."""
    for collection in sandbox.core.dump_state()["collections"]:
        if collection["slug"] == collection_slug:
            return list(collection["items"])
    return []


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    value = make_token()
    monkeypatch.setenv(TOKEN_ENV, value)
    return value


@pytest.fixture
def sandbox_token(token: str) -> str:
    # A token of each test's own, so a leak check can only find this test's token.
    return token
