"""The incremental cursor's steps: observe every record read, commit once at the end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.stages.cursor import IncrementalCursor, later_cursor


@pytest.fixture
def log(tmp_path: Path) -> Iterator[CheckpointLog]:
    with CheckpointLog.open(tmp_path / "checkpoint.sqlite") as opened:
        yield opened


@pytest.mark.parametrize(
    ("current", "candidate", "later"),
    [
        (None, None, None),
        (None, "5", "5"),
        ("5", None, "5"),
        ("9", "10", "10"),  # numbers, not text: "9" > "10" as text
        ("2024-01-02T00:00:00Z", "2024-01-01T23:00:00-02:00", "2024-01-01T23:00:00-02:00"),
        ("2024-01-02T00:00:00", "2024-01-01T00:00:00Z", "2024-01-02T00:00:00"),
        ("b", "a", "b"),
        ("a", "b", "b"),
    ],
)
def test_later_cursor_compares_dates_numbers_or_text(
    current: str | None, candidate: str | None, later: str | None
) -> None:
    assert later_cursor(current, candidate) == later


def test_a_cursor_starts_from_the_saved_value_and_commits_the_latest_observed(
    log: CheckpointLog,
) -> None:
    log.set_cursor("posts", "2024-01-05T00:00:00Z")
    cursor = IncrementalCursor(log, "posts", incremental=True)
    assert cursor.since == "2024-01-05T00:00:00Z"
    for value in ("2024-01-07T00:00:00Z", None, "2024-01-06T00:00:00Z"):
        cursor.observe(value)
    assert log.cursor("posts") == "2024-01-05T00:00:00Z"  # nothing saved before the commit
    assert cursor.commit(failed=False)
    assert log.cursor("posts") == "2024-01-07T00:00:00Z"


def test_a_collection_with_a_failure_keeps_the_cursor_where_it_was(log: CheckpointLog) -> None:
    log.set_cursor("posts", "3")
    cursor = IncrementalCursor(log, "posts", incremental=True)
    cursor.observe("8")
    assert not cursor.commit(failed=True)
    assert log.cursor("posts") == "3"  # the failed record is read again next time


def test_a_full_read_neither_starts_from_nor_saves_a_cursor(log: CheckpointLog) -> None:
    log.set_cursor("posts", "3")
    cursor = IncrementalCursor(log, "posts", incremental=False)
    assert cursor.since is None
    cursor.observe("8")
    assert not cursor.commit(failed=False)
    assert log.cursor("posts") == "3"


def test_a_forced_full_read_ignores_the_saved_cursor_and_commits_the_latest_met(
    log: CheckpointLog,
) -> None:
    log.set_cursor("posts", "5")
    cursor = IncrementalCursor(log, "posts", incremental=True, full_read=True)
    assert cursor.since is None
    for value in ("2", "4"):
        cursor.observe(value)
    assert cursor.commit(failed=False)
    assert log.cursor("posts") == "4"  # the source's latest, even below the old saved value
