"""The token and database passwords never show: not on stdout, stderr, nor in the state folder.

Jobs run with a distinctive token (``tok-`` + random hex) through every path that prints or
stores something: a clean run, a refused token, 429s, 5xx and dropped connections, a SIGKILL in
flight, an unexpected error with its traceback, and ``status``, ``errors``, ``plan`` and
``validate``. Everything they print and every byte of every file they leave behind (the SQLite
checkpoint log with its -wal and -shm, the lock, reports) is searched for the secret.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable
from pathlib import Path

import pytest

from flowport.pipeline.sandbox import FaultConfig, Sandbox
from tests.badinput.conftest import TOKEN_ENV, sandbox_items
from tests.conftest import CliResult, SandboxStarter, make_token, run_cli_async, write_csv

ROWS = 600


def job_text(sandbox: Sandbox, *, posts_source: str, concurrency: int = 4) -> str:
    return f"""
[destination]
api = "{sandbox.base_url}"
site_id = "{sandbox.site_id}"
token_env = "{TOKEN_ENV}"
rate_limit = 100000
concurrency = {concurrency}

[run]
mode = "live"
batch_size = 20

[collections.posts]
target = "Posts"
create_missing = true
source = {posts_source}
slug_from = "name"

[collections.posts.fields]
name = "title"
words = {{ source = "words", transforms = ["number"] }}

[collections.posts.schema]
singular_name = "Post"
fields = {{ words = "Number" }}
"""


CSV_SOURCE = '{ type = "csv", path = "posts.csv", key = "id" }'


def write_posts(folder: Path, *, revision: str = "", bad_every: int = 50) -> None:
    rows = [
        (str(n), f"Post {n}{revision}", "many" if n % bad_every == 7 else str(n))
        for n in range(ROWS)
    ]
    write_csv(folder / "posts.csv", ("id", "title", "words"), rows)


def files_under(folder: Path) -> Iterable[Path]:
    return (path for path in sorted(folder.rglob("*")) if path.is_file())


def assert_never_shown(secrets: Iterable[str], results: Iterable[CliResult], folder: Path) -> None:
    """No secret in any output, nor in any file under ``folder`` read as raw bytes."""
    results = list(results)
    scanned = list(files_under(folder))
    assert any(p.name == "checkpoint.sqlite" for p in scanned), scanned
    for secret in secrets:
        for result in results:
            assert secret not in result.stdout
            assert secret not in result.stderr
        needle = secret.encode()
        for path in scanned:
            assert needle not in path.read_bytes(), f"{secret} found in {path}"


def assert_private(state_dir: Path) -> None:
    checkpoint_files = sorted(state_dir.glob("checkpoint.sqlite*"))
    assert checkpoint_files
    for path in checkpoint_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


@pytest.fixture
async def faulty_sandbox(start_sandbox: SandboxStarter) -> Sandbox:
    # A seed of its own: which requests the faults below strike follows from it.
    return await start_sandbox(seed=5)


async def run_cli(path: Path, **env: str) -> CliResult:
    return await run_cli_async("run", str(path), "--log-format", "json", cwd=path.parent, env=env)


async def test_the_token_is_never_shown_nor_stored(
    tmp_path: Path, faulty_sandbox: Sandbox, token: str
) -> None:
    sandbox = faulty_sandbox
    path = tmp_path / "job.toml"
    path.write_text(job_text(sandbox, posts_source=CSV_SOURCE), encoding="utf-8")
    write_posts(tmp_path)
    results: list[CliResult] = []
    wrong = make_token()

    # Before anything exists: a plan and an online validation read the site with the token.
    results.append(await run_cli_async("plan", str(path), cwd=tmp_path))
    results.append(await run_cli_async("plan", str(path), "--format", "json", cwd=tmp_path))
    results.append(await run_cli_async("validate", str(path), cwd=tmp_path))
    # The plan sees the rows whose words are "many": exit 1, as the run will.
    assert [r.returncode for r in results] == [1, 1, 0], [r.output for r in results]

    refused = await run_cli(path, **{TOKEN_ENV: wrong})
    assert refused.returncode == 3, refused.output
    results.append(refused)

    clean = await run_cli(path)
    assert clean.returncode == 1, clean.output  # every 50th row has words = "many"
    results.append(clean)

    # Faults on every kind of request: 429 bursts, 500/503s, writes answered by a dropped line.
    sandbox.set_faults(
        FaultConfig(
            burst_429_rate=0.1, burst_429_length=2, error_rate=0.15, commit_then_drop_rate=0.25
        )
    )
    write_posts(tmp_path, revision=" (revised)")
    faulty = await run_cli(path)
    assert faulty.returncode == 1, faulty.output
    finished = faulty.finished()
    assert finished["retries"] > 0
    assert finished["rate_limited"] > 0
    results.append(faulty)
    faults = sandbox.stats()["totals"]["faults"]
    assert all(faults[kind] for kind in ("burst_429", "error", "commit_then_drop")), faults
    sandbox.set_faults(FaultConfig())

    # A SIGKILL between an answer and its commit leaves a -wal behind: it is scanned too.
    write_posts(tmp_path, revision=" (again)")
    killed = await run_cli(path, FLOWPORT_CRASH_AT="after-answer:3")
    assert killed.returncode < 0 or killed.returncode == 137, killed.output
    results.append(killed)
    assert (tmp_path / "job" / "checkpoint.sqlite-wal").exists()
    assert_private(tmp_path / "job")
    assert_never_shown([token, wrong], results, tmp_path)

    for command in (
        ["status", str(path)],
        ["errors", str(path)],
        ["errors", str(path), "--format", "json"],
        ["errors", str(path), "--format", "csv"],
        ["plan", str(path)],
        ["validate", str(path)],
    ):
        shown = await run_cli_async(*command, cwd=tmp_path)
        assert shown.returncode in (0, 1), shown.output
        results.append(shown)

    resumed = await run_cli(path)
    assert resumed.returncode == 1, resumed.output
    results.append(resumed)
    names = [i["fieldData"]["name"] for i in sandbox_items(sandbox, "posts")]
    assert len(names) == len(set(names)) == ROWS - ROWS // 50

    # An unexpected error, printed with its traceback.
    path.write_text(
        job_text(sandbox, posts_source='{ type = "csv", path = "gone.csv", key = "id" }'),
        encoding="utf-8",
    )
    crashed = await run_cli(path)
    assert crashed.returncode == 3, crashed.output
    results.append(crashed)

    assert_private(tmp_path / "job")
    assert_never_shown([token, wrong], results, tmp_path)


async def test_a_database_password_never_shows(tmp_path: Path, sandbox: Sandbox) -> None:
    password = "secretpw-" + make_token()[4:20]
    with_password = f"postgresql+asyncpg://u:{password}@127.0.0.1:1/db"
    path = tmp_path / "job.toml"
    source = '{ type = "sql", url_env = "FLOWPORT_BADINPUT_DB", table = "posts", key = "id" }'
    path.write_text(job_text(sandbox, posts_source=source), encoding="utf-8")
    env = {"FLOWPORT_BADINPUT_DB": with_password}
    results = [
        await run_cli(path, **env),
        await run_cli_async("plan", str(path), cwd=tmp_path, env=env),
        await run_cli_async("validate", str(path), cwd=tmp_path, env=env),
        await run_cli_async("status", str(path), cwd=tmp_path, env=env),
        await run_cli_async("errors", str(path), "--format", "json", cwd=tmp_path, env=env),
    ]

    assert results[0].returncode == 3, results[0].output
    # The message still says where it tried to connect, with the password masked.
    assert "u:***@127.0.0.1:1/db" in results[0].output
    assert "cannot connect" in results[0].output
    assert_private(tmp_path / "job")
    assert_never_shown([password], results, tmp_path)
