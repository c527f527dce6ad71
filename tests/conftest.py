"""What every test folder shares: the sandbox on loopback, the CLI as a child process, the paths
to ``../shared`` and the rule for a missing dependency (skip here, fail under ``CI=true``).

The sandbox is configured, not redefined, per folder or test:

* ``sandbox_settings`` (a fixture) holds the :class:`SandboxConfig` fields besides the token; a
  folder's or module's conftest overrides it (the engine's seed, the sandbox tests' hand-moved
  clock), and ``@pytest.mark.parametrize("sandbox_settings", [...])`` sets it for one test.
* ``sandbox_token`` is the token the sandbox accepts (a folder may make it per test).
* ``start_sandbox`` starts further sandboxes with overrides, all stopped at the test's end.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import anyio
import pytest

from flowport.pipeline.sandbox import Sandbox, SandboxConfig

if TYPE_CHECKING:
    from tests.state_backends import StateBackend

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared"
ACCEPTANCE = SHARED / "acceptance-data"

#: The token the default sandbox accepts.
TOKEN = "test-token"
#: Far above what any test sends, so only a test that asks for a limit meets one.
UNLIMITED_RATE = 100_000

SandboxStarter = Callable[..., Awaitable[Sandbox]]


# ---- a missing dependency ----------------------------------------------------------------------


def unavailable(reason: str) -> NoReturn:
    """Skip with the reason, except in CI where a missing dependency is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: required, not skipped)")
    pytest.skip(reason)


def require_shared(path: Path) -> Path:
    """The path under ``../shared``, or :func:`unavailable` when it is absent."""
    if not path.exists():
        unavailable(f"shared acceptance data not found at {path.resolve()}")
    return path


# ---- small makers ------------------------------------------------------------------------------


def make_token() -> str:
    # Distinctive enough that a hit in any output can only be a leak.
    return "tok-" + secrets.token_hex(16)


def free_port() -> int:
    """A loopback port bound and released: nothing listens there for the few seconds a test
    needs it (to start a server on it, or to find a refused connection)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


# ---- the CLI as a child process ----------------------------------------------------------------


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "flowport.pipeline.cli", *args]


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment, with the working tree importable, wide plain output, and
    ``extra`` last so a test can override any of it."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "COLUMNS": "200",
        "NO_COLOR": "1",
        **(extra or {}),
    }


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


def run_cli(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 120
) -> CliResult:
    done = subprocess.run(
        cli_command(*args),
        cwd=cwd,
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


async def run_cli_async(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> CliResult:
    """:func:`run_cli` for a test whose sandbox serves in its own event loop: the child is
    awaited, since a blocking wait would starve the sandbox that serves it."""
    with anyio.fail_after(120):
        done = await anyio.run_process(cli_command(*args), cwd=cwd, env=cli_env(env), check=False)
    return CliResult(
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
    )


# ---- the sandbox, in this test's event loop ----------------------------------------------------


@pytest.fixture
def sandbox_token() -> str:
    return TOKEN


@pytest.fixture
def sandbox_settings() -> dict[str, Any]:
    """:class:`SandboxConfig` fields of the test's sandbox, besides its token."""
    return {"rate_limit": UNLIMITED_RATE, "window_seconds": 60.0}


@pytest.fixture
async def start_sandbox(
    sandbox_token: str, sandbox_settings: dict[str, Any]
) -> AsyncIterator[SandboxStarter]:
    """Start a sandbox on 127.0.0.1: ``sandbox_settings``, then the keyword overrides."""
    async with AsyncExitStack() as running:

        async def start(**overrides: Any) -> Sandbox:
            settings = {"tokens": (sandbox_token,), **sandbox_settings, **overrides}
            return await running.enter_async_context(Sandbox(SandboxConfig(**settings)))

        yield start


@pytest.fixture
async def sandbox(start_sandbox: SandboxStarter) -> Sandbox:
    return await start_sandbox()


# ---- where a job's state lives -----------------------------------------------------------------


@pytest.fixture(
    params=[pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]
)
def state_backend(request: pytest.FixtureRequest) -> Iterator[StateBackend]:
    """Each backend in turn (see tests/state_backends.py); its ``toml()`` goes in the job file."""
    from tests.state_backends import postgres_backend, sqlite_backend

    if request.param == "sqlite":
        yield sqlite_backend()
        return
    with postgres_backend() as backend:
        yield backend


@pytest.fixture
def postgres_state() -> Iterator[StateBackend]:
    """A PostgreSQL backend of the test's own."""
    from tests.state_backends import postgres_backend

    with postgres_backend() as backend:
        yield backend
