"""Nightly runs: adopting items made by others, deletions within a cap, incremental reads, plans.

Every test runs on both state backends: SQLite beside the job, and PostgreSQL."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from flowport.pipeline.jobfile import load_job
from flowport.pipeline.runner import run_job
from flowport.pipeline.sandbox import Sandbox
from flowport.pipeline.webflow.client import WebflowClient
from tests.conftest import TOKEN, run_cli_async
from tests.engine.conftest import sandbox_stats
from tests.state_backends import StateBackend, sqlite_backend


def job_text(
    base_url: str, site_id: str, source: str, *, extra: str = "", state: StateBackend | None = None
) -> str:
    return (
        (state.toml() if state is not None else "")
        + f"""
[destination]
api = "{base_url}"
site_id = "{site_id}"
token_env = "FLOWPORT_TEST_TOKEN"
rate_limit = 100000

[run]
mode = "live"

[collections.books]
target = "Books"
create_missing = true
external_key_field = "source-key"
source = {source}
slug_from = "name"
{extra}

[collections.books.fields]
name = "title"
source-key = "id"
pages = {{ source = "pages", transforms = ["number"] }}

[collections.books.schema]
singular_name = "Book"
fields = {{ source-key = "PlainText", pages = "Number" }}
"""
    )


CSV_SOURCE = '{ type = "csv", path = "books.csv", key = "id" }'


def write_books(path: Path, rows: list[tuple[str, str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "title", "pages"])
        writer.writerows(rows)


def books(n: int, *, start: int = 0) -> list[tuple[str, str, str]]:
    return [(str(i), f"Book {i}", str(100 + i)) for i in range(start, start + n)]


def write_job(
    job_dir: Path,
    sandbox: Sandbox,
    state: StateBackend,
    source: str = CSV_SOURCE,
    *,
    extra: str = "",
) -> Path:
    """``job_dir/job.toml``: :func:`job_text` for the sandbox, on the test's state backend."""
    path = job_dir / "job.toml"
    path.write_text(job_text(sandbox.base_url, sandbox.site_id, source, extra=extra, state=state))
    return path


#: The books table of :func:`write_books_table`, read incrementally by its ``updated_at``.
INCREMENTAL_SQL_SOURCE = (
    '{ type = "sql", url_env = "BOOKS_URL", table = "books", key = "id", '
    'cursor_column = "updated_at" }'
)


def write_books_table(database: Path, n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """``books(n)`` in an SQLite table (``BOOKS_URL``), each row updated at a second of its
    own on 2026-01-01 (the row's number of seconds, modulo 60)."""
    with sqlite3.connect(database) as db:
        db.execute(
            "CREATE TABLE books (id TEXT PRIMARY KEY, title TEXT, pages TEXT, updated_at TEXT)"
        )
        db.executemany(
            "INSERT INTO books VALUES (?, ?, ?, ?)",
            [(k, t, p, f"2026-01-01T00:00:{int(k) % 60:02d}") for k, t, p in books(n)],
        )
    monkeypatch.setenv("BOOKS_URL", f"sqlite+aiosqlite:///{database}")


async def items(sandbox: Sandbox, collection_id: str, *, live: bool = False) -> list[Any]:
    async with WebflowClient(sandbox.base_url, SecretStr(TOKEN)) as client:
        return [i async for i in client.iter_items(collection_id, live=live)]


def collection_id(job_dir: Path, state: StateBackend | None = None) -> str:
    """The collection id the log of ``job_dir/job.toml`` holds for books."""
    if state is None:
        state = sqlite_backend()
    with state.open_log(job_dir / "job.toml") as log:
        found = log.bindings.collection_id("books")
    assert found
    return found


async def writes(sandbox: Sandbox) -> int:
    return int((await sandbox_stats(sandbox))["totals"]["writes"])


async def test_items_made_by_someone_else_are_adopted_not_duplicated(
    sandbox: Sandbox, job_dir: Path, state_backend: StateBackend
) -> None:
    path = write_job(job_dir, sandbox, state_backend)
    write_books(job_dir / "books.csv", books(3))
    assert (await run_job(load_job(path))).exit_code == 0
    target = collection_id(job_dir, state_backend)
    # Someone adds items by hand; then the job is set up afresh (its state folder lost).
    async with WebflowClient(sandbox.base_url, SecretStr(TOKEN)) as client:
        await client.create_items(
            target,
            [
                {"name": "Book 3", "slug": "book-3", "source-key": "3", "pages": 103},
                {"name": "Old title", "slug": "book-4", "pages": 1},
            ],
            live=True,
        )
    write_books(job_dir / "books.csv", books(6))
    state_backend.forget(path)

    summary = await run_job(load_job(path))

    assert summary.exit_code == 0, summary.as_dict()
    stored = await items(sandbox, target)
    assert sorted(i.field_data["slug"] for i in stored) == [f"book-{i}" for i in range(6)]
    per = summary.collections["books"]
    assert per["adopted"] == 5  # three of its own earlier items, two made by hand
    assert per["created"] == 1  # book-5 only
    assert per["updated"] == 1  # book-4 held other values
    assert per["unchanged"] == 4
    by_slug = {i.field_data["slug"]: i.field_data for i in stored}
    assert by_slug["book-4"]["name"] == "Book 4"
    assert by_slug["book-4"]["pages"] == 104


async def test_vanished_records_are_archived_within_the_cap_and_come_back(
    sandbox: Sandbox, job_dir: Path, state_backend: StateBackend
) -> None:
    path = write_job(
        job_dir, sandbox, state_backend, extra='deletions = "archive"\nmax_delete_share = 0.1'
    )
    write_books(job_dir / "books.csv", books(100))
    assert (await run_job(load_job(path))).exit_code == 0
    target = collection_id(job_dir, state_backend)

    # Half the source is gone: a broken export. Nothing may be removed.
    write_books(job_dir / "books.csv", books(50))
    refused = await run_job(load_job(path))
    assert refused.exit_code == 1
    assert refused.collections["books"]["deletions_refused"] == 50
    assert any("max_delete_share" in note for note in refused.notes)
    assert len(await items(sandbox, target, live=True)) == 100

    # Five records really went away.
    write_books(job_dir / "books.csv", books(95))
    archived = await run_job(load_job(path))
    assert archived.exit_code == 0, archived.as_dict()
    assert archived.collections["books"]["archived"] == 5
    live = await items(sandbox, target, live=True)
    assert sorted(int(i.field_data["source-key"]) for i in live) == list(range(95))
    with state_backend.open_log(path) as log:
        assert log.counts()["books"] == {"done": 95, "archived": 5}

    # One comes back.
    write_books(job_dir / "books.csv", books(96))
    back = await run_job(load_job(path))
    assert back.exit_code == 0, back.as_dict()
    live = await items(sandbox, target, live=True)
    assert len(live) == 96
    with state_backend.open_log(path) as log:
        assert log.counts()["books"] == {"done": 96, "archived": 4}


async def test_records_gone_from_the_source_are_named_when_the_job_keeps_their_items(
    sandbox: Sandbox, job_dir: Path, state_backend: StateBackend
) -> None:
    # No deletions line: "keep" is the default, and what `flowport init` writes.
    path = write_job(job_dir, sandbox, state_backend)
    write_books(job_dir / "books.csv", books(10))
    first = await run_job(load_job(path))
    assert first.exit_code == 0, first.as_dict()
    assert "removed_kept" not in first.collections["books"]
    assert first.removals == {}
    target = collection_id(job_dir, state_backend)

    write_books(job_dir / "books.csv", books(7))
    plan = await run_job(load_job(path), dry_run=True)
    assert plan.collections["books"]["removed_kept"] == 3
    assert plan.as_dict()["removals"] == {"books": ["7", "8", "9"]}

    kept = await run_job(load_job(path))
    assert kept.exit_code == 0, kept.as_dict()
    assert kept.collections["books"] == {"unchanged": 7, "removed_kept": 3}
    assert kept.removals == {"books": ["7", "8", "9"]}
    assert len(await items(sandbox, target, live=True)) == 10

    status = await run_cli_async("status", str(path), cwd=job_dir)
    assert status.returncode == 0, status.output
    assert "books: 3 records gone from the source, their items kept" in status.stdout
    listed = await run_cli_async("errors", str(path), "--format", "csv", cwd=job_dir)
    assert listed.returncode == 0, listed.output
    rows = list(csv.DictReader(listed.stdout.splitlines()))
    assert [(r["collection"], r["key"], r["kind"], r["state"]) for r in rows] == [
        ("books", key, "removed-from-source", "kept") for key in ("7", "8", "9")
    ]
    table = await run_cli_async("errors", str(path), cwd=job_dir)
    assert "0 item errors" in table.stdout
    assert "3 records gone from the source, their items kept" in table.stdout

    # Back in the source: nothing is gone any more, and nothing is named.
    write_books(job_dir / "books.csv", books(10))
    back = await run_job(load_job(path))
    assert back.removals == {}
    assert "removed_kept" not in back.collections["books"]


async def test_delete_policy_removes_items_and_an_unreadable_source_removes_nothing(
    sandbox: Sandbox, job_dir: Path, state_backend: StateBackend
) -> None:
    path = write_job(job_dir, sandbox, state_backend, extra='deletions = "delete"')
    write_books(job_dir / "books.csv", books(40))
    assert (await run_job(load_job(path))).exit_code == 0
    target = collection_id(job_dir, state_backend)

    # A malformed row: its key is unknown, so nothing missing may be taken as deleted.
    with (job_dir / "books.csv").open("a", encoding="utf-8") as handle:
        handle.write('41,"unterminated\n')
    rows = books(38)
    text = (job_dir / "books.csv").read_text(encoding="utf-8").splitlines()
    (job_dir / "books.csv").write_text("\n".join(text[:1] + text[1:39] + text[-1:]) + "\n")
    assert len(rows) == 38
    careful = await run_job(load_job(path))
    assert careful.collections["books"].get("deleted", 0) == 0
    assert any("could not be read" in note for note in careful.notes)
    assert len(await items(sandbox, target)) == 40

    write_books(job_dir / "books.csv", books(38))
    removed = await run_job(load_job(path))
    assert removed.collections["books"]["deleted"] == 2
    assert len(await items(sandbox, target)) == 38


async def test_incremental_sql_reads_only_rows_changed_since_the_last_successful_run(
    sandbox: Sandbox, job_dir: Path, state_backend: StateBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = job_dir / "books.sqlite"
    write_books_table(database, 60, monkeypatch)
    path = write_job(
        job_dir, sandbox, state_backend, INCREMENTAL_SQL_SOURCE, extra="incremental = true"
    )
    first = await run_job(load_job(path))
    assert first.collections["books"]["created"] == 60

    with sqlite3.connect(database) as db:
        db.execute(
            "UPDATE books SET title = 'Book 7, revised', updated_at = "
            "'2026-02-01T00:00:00' WHERE id = '7'"
        )
        db.execute("INSERT INTO books VALUES ('60', 'Book 60', '160', '2026-02-01T00:00:01')")
    second = await run_job(load_job(path))
    # Book 59 holds the first run's cursor: read again (the read is inclusive), sent no more.
    assert second.collections["books"] == {"updated": 1, "created": 1, "unchanged": 1}

    # The read is inclusive: the row at the saved cursor is read again, and skipped unsent.
    before = await writes(sandbox)
    third = await run_job(load_job(path))
    assert third.collections.get("books", {}) == {"unchanged": 1}
    assert await writes(sandbox) == before


async def test_run_full_reads_an_incremental_source_whole_and_commits_the_cursor_again(
    sandbox: Sandbox, job_dir: Path, state_backend: StateBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = job_dir / "books.sqlite"
    write_books_table(database, 20, monkeypatch)
    path = write_job(
        job_dir, sandbox, state_backend, INCREMENTAL_SQL_SOURCE, extra="incremental = true"
    )
    assert (await run_job(load_job(path))).collections["books"]["created"] == 20

    # Changes the cursor cannot see: a row edited without touching updated_at, a row removed.
    with sqlite3.connect(database) as db:
        db.execute("UPDATE books SET title = 'Book 3, quietly fixed' WHERE id = '3'")
        db.execute("DELETE FROM books WHERE id = '5'")
    blind = await run_job(load_job(path))
    assert blind.collections["books"] == {"unchanged": 1}  # only the row at the cursor

    full = await run_cli_async("run", str(path), "--full", "--log-format", "json", cwd=job_dir)
    assert full.returncode == 0, full.output
    finished = full.finished()
    assert finished["collections"]["books"] == {
        "updated": 1,
        "unchanged": 18,
        "removed_kept": 1,
    }
    assert finished["removals"] == {"books": ["5"]}
    names = {
        i.field_data["name"] for i in await items(sandbox, collection_id(job_dir, state_backend))
    }
    assert "Book 3, quietly fixed" in names
    with state_backend.open_log(path) as log:
        assert log.cursor("books") == "2026-01-01T00:00:19"

    # The next run is incremental again, from the committed cursor.
    after = await run_job(load_job(path))
    assert after.collections["books"] == {"unchanged": 1}


async def test_a_sql_row_repeating_a_key_is_a_per_item_error_and_the_first_row_wins(
    sandbox: Sandbox, job_dir: Path, state_backend: StateBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = job_dir / "books.sqlite"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE books (n INTEGER PRIMARY KEY, id TEXT, title TEXT, pages TEXT)")
        db.executemany(
            "INSERT INTO books (id, title, pages) VALUES (?, ?, ?)",
            [*books(5), ("3", "Book 3 again", "9")],
        )
    monkeypatch.setenv("BOOKS_URL", f"sqlite+aiosqlite:///{database}")
    source = (
        '{ type = "sql", url_env = "BOOKS_URL", query = "SELECT id, title, pages FROM books '
        'ORDER BY n", key = "id" }'
    )
    path = write_job(job_dir, sandbox, state_backend, source)

    summary = await run_job(load_job(path))

    assert summary.collections["books"] == {"created": 5, "failed": 1}
    names = sorted(
        i.field_data["name"] for i in await items(sandbox, collection_id(job_dir, state_backend))
    )
    assert names == [f"Book {n}" for n in range(5)]
    with state_backend.open_log(path) as log:
        (failure,) = log.in_state("books", "failed")
    assert failure.key == "3~row 6"
    assert failure.last_error == (
        "row 6: duplicate key '3' in the source; the first record with this key was kept"
    )


async def test_plan_says_what_a_run_would_do_and_writes_nothing(
    sandbox: Sandbox, job_dir: Path, state_backend: StateBackend
) -> None:
    path = write_job(job_dir, sandbox, state_backend)
    write_books(job_dir / "books.csv", books(250))

    plan = await run_job(load_job(path), dry_run=True)
    assert plan.exit_code == 0, plan.as_dict()
    assert plan.collections["books"] == {"would_create": 250}
    assert "would create collection Books" in plan.notes
    assert await writes(sandbox) == 0
    assert not (job_dir / "job").exists()
    assert not state_backend.has_state(path)

    assert (await run_job(load_job(path))).exit_code == 0
    changed = books(250)
    changed[10] = ("10", "Book ten", "999")
    write_books(job_dir / "books.csv", changed)
    before = await writes(sandbox)
    plan = await run_job(load_job(path), dry_run=True)
    assert plan.collections["books"] == {"unchanged": 249, "would_update": 1}
    assert plan.samples == [
        {
            "collection": "books",
            "key": "10",
            "changes": {
                "name": {"from": "Book 10", "to": "Book ten"},
                "pages": {"from": 110, "to": 999},
            },
        }
    ]
    assert await writes(sandbox) == before


async def test_a_changed_mapping_rewrites_items_whose_records_did_not_change(
    sandbox: Sandbox, job_dir: Path, state_backend: StateBackend
) -> None:
    path = write_job(job_dir, sandbox, state_backend)
    write_books(job_dir / "books.csv", books(30))
    assert (await run_job(load_job(path))).exit_code == 0
    assert (await run_job(load_job(path))).collections == {"books": {"unchanged": 30}}

    # Same source, new mapping: every item's content changes, so every item is sent.
    path.write_text(
        path.read_text().replace('name = "title"', 'name = { template = "{title} (2nd ed.)" }')
    )
    rerun = await run_job(load_job(path))
    assert rerun.collections == {"books": {"updated": 30}}
    names = {
        i.field_data["name"] for i in await items(sandbox, collection_id(job_dir, state_backend))
    }
    assert names == {f"Book {i} (2nd ed.)" for i in range(30)}
