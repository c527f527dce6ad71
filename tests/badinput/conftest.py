"""Shared parts of the bad-input corpus: a real sandbox on loopback and the CLI as a child process.

The sandbox runs in this test's event loop, so the CLI child is awaited (``anyio.run_process``)
rather than waited for: a blocking wait would starve the sandbox that serves it.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from flowport.pipeline.checkpoint import CheckpointLog, ItemState
from flowport.pipeline.sandbox import Sandbox, SandboxConfig

__all__ = [
    "REPO",
    "TOKEN_ENV",
    "CliResult",
    "checkpoint_states",
    "flowport",
    "make_token",
    "sandbox_items",
    "write_csv",
]

REPO = Path(__file__).resolve().parents[2]
#: The job files name this variable; each test puts its own token in it.
TOKEN_ENV = "FLOWPORT_BADINPUT_TOKEN"


def make_token() -> str:
    # Distinctive enough that a hit in any output can only be a leak.
    return "tok-" + secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def events(self) -> list[dict[str, Any]]:
        """The JSON lines a ``--log-format json`` run wrote to stdout."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]

    def finished(self) -> dict[str, Any]:
        found = [e for e in self.events() if e.get("event") == "run_finished"]
        assert found, f"no run_finished event in:\n{self.output}"
        return found[-1]


async def flowport(*args: str, cwd: Path, env: dict[str, str] | None = None) -> CliResult:
    child_env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "COLUMNS": "200",
        "NO_COLOR": "1",
        **(env or {}),
    }
    with anyio.fail_after(120):
        done = await anyio.run_process(
            [sys.executable, "-m", "flowport.pipeline.cli", *args],
            cwd=cwd,
            env=child_env,
            check=False,
        )
    return CliResult(
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
    )


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


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
async def sandbox(token: str) -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxConfig(tokens=(token,), rate_limit=100_000)) as running:
        yield running
