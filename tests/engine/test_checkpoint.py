from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import anyio
import pytest

from flowport.base.errors import FatalError
from flowport.pipeline.checkpoint import (
    EXCERPT_CHARS,
    LOOKUP_CHUNK,
    SCHEMA_VERSION,
    Acknowledged,
    CheckpointLog,
    DeferredReferences,
    ItemFailure,
    ItemWarning,
)
from flowport.pipeline.logging import clear_secrets, register_secret
from tests.conftest import REPO
from tests.state_backends import StateBackend


@pytest.fixture
def log(tmp_path: Path, state_backend: StateBackend) -> Iterator[CheckpointLog]:
    """A new log on each backend: the tests that take it hold for SQLite and PostgreSQL."""
    if state_backend.url is None:
        opened = CheckpointLog.open(tmp_path / "state" / "checkpoint.db")
    else:
        found = CheckpointLog.open_postgres(state_backend.url, state_backend.schema)
        assert found is not None
        opened = found
    with opened:
        yield opened


def ack(key: str, n: int, state: Literal["staged", "done"] = "done") -> Acknowledged:
    return Acknowledged(
        key=key, webflow_id=f"wf{n}", slug=f"slug-{n}", content_hash=f"h{n}", state=state
    )


def test_open_creates_private_wal_database(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "job" / "checkpoint.db"
    with CheckpointLog.open(path) as log:
        run = log.begin_run()
        log.batches.open(run, "posts", "create", 1)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        for suffix in ("-wal", "-shm"):
            sidecar = path.with_name(path.name + suffix)
            assert sidecar.exists()
            assert stat.S_IMODE(sidecar.stat().st_mode) == 0o600
        raw = sqlite3.connect(path)
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        version = raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        assert version == (str(SCHEMA_VERSION),)
        raw.close()


def test_open_tightens_an_existing_loose_file(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    CheckpointLog.open(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_reopen_keeps_rows_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.db"
    with CheckpointLog.open(path) as log:
        run = log.begin_run()
        batch = log.batches.open(run, "posts", "create", 1)
        log.items.record_acknowledged("posts", batch, [ack("a", 1)])
    with CheckpointLog.open(path) as log:
        assert log.lookup("posts", ["a"])["a"].webflow_id == "wf1"


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.db"
    CheckpointLog.open(path).close()
    raw = sqlite3.connect(path)
    raw.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    raw.commit()
    raw.close()
    with pytest.raises(FatalError, match="schema version 99"):
        CheckpointLog.open(path)


def test_garbage_file_is_a_clear_fatal_error(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.db"
    path.write_bytes(b"this is not a database, it is a text file" * 100)
    with pytest.raises(FatalError, match="unreadable"):
        CheckpointLog.open(path)


def test_runs_summary_and_last_run(log: CheckpointLog) -> None:
    assert log.last_run() is None
    first = log.begin_run()
    log.finish_run(first, "ok", {"done": 3})
    second = log.begin_run()
    assert second > first
    last = log.last_run()
    assert last is not None
    assert last["id"] == second
    assert last["finished_at"] is None
    log.finish_run(second, "partial", {"done": 2, "failed": 1, "collections": ["a", "b"]})
    last = log.last_run()
    assert last is not None
    assert last["outcome"] == "partial"
    assert last["summary"] == {"done": 2, "failed": 1, "collections": ["a", "b"]}
    assert last["finished_at"] >= last["started_at"]


def test_collection_ids_and_cursors(log: CheckpointLog) -> None:
    assert log.bindings.collection_id("posts") is None
    log.set_collection_id("posts", "c1")
    log.set_collection_id("posts", "c2")
    assert log.bindings.collection_id("posts") == "c2"
    assert log.cursor("posts") is None
    log.set_cursor("posts", "2024-01-01T00:00:00Z")
    log.set_cursor("posts", "2024-02-01T00:00:00Z")
    assert log.cursor("posts") == "2024-02-01T00:00:00Z"
    assert log.cursor("authors") is None


def test_batches_are_an_append_only_log(log: CheckpointLog) -> None:
    run1 = log.begin_run()
    b1 = log.batches.open(run1, "posts", "create", 100)
    log.batches.close(b1, "ok", http_status=202)
    run2 = log.begin_run()
    b2 = log.batches.open(run2, "posts", "update", 3)
    log.batches.close(b2, "failed", http_status=400, detail="validation_error: name")
    everything = list(log.batches.list())
    assert [b["id"] for b in everything] == [b1, b2]
    only_second = list(log.batches.list(run2))
    assert len(only_second) == 1
    assert only_second[0]["kind"] == "update"
    assert only_second[0]["http_status"] == 400
    assert only_second[0]["detail"] == "validation_error: name"
    assert only_second[0]["finished_at"] is not None


def test_batches_stream_past_one_page(log: CheckpointLog) -> None:
    run = log.begin_run()
    ids = [log.batches.open(run, "posts", "create", 1) for _ in range(1234)]
    assert [b["id"] for b in log.batches.list(run)] == ids


def sending(log: CheckpointLog, collection: str = "posts") -> dict[str, tuple[str | None, int]]:
    return {s.key: (s.slug, s.batch_id or 0) for s in log.in_state(collection, "sending")}


def test_intent_then_acknowledged(log: CheckpointLog) -> None:
    run = log.begin_run()
    batch = log.batches.open(run, "posts", "create", 2)
    log.intents.record("posts", batch, [("a", "slug-a", "h-a"), ("b", "slug-b", "h-b")])
    # In flight: sending, and no item row yet.
    assert sending(log) == {"a": ("slug-a", batch), "b": ("slug-b", batch)}
    assert log.counts() == {"posts": {"sending": 2}}
    assert log.lookup("posts", ["a", "b"]) == {}

    log.items.record_acknowledged(
        "posts", batch, [Acknowledged("a", "wf-a", "slug-a", "h-a", "staged")]
    )
    after = log.lookup("posts", ["a", "b"])
    assert after["a"].state == "staged"
    assert after["a"].webflow_id == "wf-a"
    assert after["a"].content_hash == "h-a"
    assert after["a"].attempts == 1
    assert sending(log) == {"b": ("slug-b", batch)}
    assert log.counts() == {"posts": {"sending": 1, "staged": 1}}
    assert log.by_webflow_ids("posts", ["wf-a", "nope"]).keys() == {"wf-a"}

    log.settle_intent(batch, [("b", "slug-b", "h-b")])
    assert sending(log) == {"b": ("slug-b", batch)}
    log.settle_intent(batch)
    assert sending(log) == {}
    assert log.counts() == {"posts": {"staged": 1}}


def test_a_crash_between_acknowledgement_and_settling_leaves_nothing_sending(
    log: CheckpointLog,
) -> None:
    run = log.begin_run()
    batch = log.batches.open(run, "posts", "create", 2)
    log.intents.record("posts", batch, [("a", "slug-a", "h"), ("b", "slug-b", "h")])
    log.items.record_acknowledged("posts", batch, [ack("a", 1), ack("b", 2)])
    assert sending(log) == {}
    assert log.counts() == {"posts": {"done": 2}}


def test_attempts_count_sends_that_resolved(log: CheckpointLog) -> None:
    run = log.begin_run()
    batch = log.batches.open(run, "posts", "create", 1)
    log.record_failures("posts", None, [ItemFailure("a", "name", "mapping", "mapping")])
    assert log.lookup("posts", ["a"])["a"].attempts == 0
    log.record_failures("posts", batch, [ItemFailure("a", "name", "too long", "validation")])
    log.record_failures("posts", batch, [ItemFailure("a", "name", "too long", "validation")])
    log.record_failures("posts", batch, [ItemFailure("a", None, "bad row", "source")])
    assert log.lookup("posts", ["a"])["a"].attempts == 2
    log.items.record_acknowledged("posts", batch, [ack("a", 1)])
    assert log.lookup("posts", ["a"])["a"].attempts == 3


def test_schema_2_sending_rows_become_intents(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO meta VALUES ('schema_version', '2');
            CREATE TABLE items (
                collection TEXT NOT NULL, key TEXT NOT NULL, webflow_id TEXT, slug TEXT,
                content_hash TEXT, state TEXT NOT NULL, last_error TEXT, error_field TEXT,
                error_kind TEXT, attempts INTEGER NOT NULL DEFAULT 0, batch_id INTEGER,
                first_seen TEXT NOT NULL, updated_at TEXT NOT NULL, source_hash TEXT,
                PRIMARY KEY (collection, key)) WITHOUT ROWID;
            CREATE INDEX items_slug ON items (collection, slug);
            CREATE INDEX items_state ON items (collection, state);
            CREATE INDEX items_webflow_id ON items (collection, webflow_id);
            INSERT INTO items VALUES
                ('posts', 'a', NULL, 'slug-a', 'h-a', 'sending', NULL, NULL, NULL, 1, 7,
                 't1', '2026-01-01T00:00:00+00:00', NULL),
                ('posts', 'b', NULL, 'slug-b', 'h-b', 'sending', NULL, NULL, NULL, 1, 7,
                 't1', '2026-01-01T00:00:01+00:00', NULL),
                ('posts', 'c', 'wf-c', 'slug-c', 'h-c', 'done', NULL, NULL, NULL, 1, 6,
                 't1', 't1', 'f');
            """
        )
    with CheckpointLog.open(path) as log:
        assert sending(log) == {"a": ("slug-a", 7), "b": ("slug-b", 7)}
        assert log.counts() == {"posts": {"done": 1, "sending": 2}}
        assert log.lookup("posts", ["a", "b", "c"]).keys() == {"c"}
        assert log.count_in_webflow("posts") == 1
        (leftover,) = [s for s in log.in_state("posts", "sending") if s.key == "a"]
        assert leftover.content_hash == "h-a"
        assert leftover.updated_at == "2026-01-01T00:00:00+00:00"


def test_schema_3_log_keeps_every_row_and_its_rules(tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite"
    with CheckpointLog.open(path) as log:
        run = log.begin_run()
        batch = log.batches.open(run, "posts", "create", 3)
        log.items.record_acknowledged("posts", batch, [ack("a", 1), ack("b", 2, "staged")])
        log.record_failures("posts", batch, [ItemFailure("c", "name", "too long", "validation")])
        log.intents.record("posts", batch, [("d", "slug-d", "h-d")])
    raw = sqlite3.connect(path)
    # The items table exactly as schema 3 made it.
    raw.executescript(
        """
        CREATE TABLE items_v3 (
            collection TEXT NOT NULL, key TEXT NOT NULL, webflow_id TEXT, slug TEXT,
            content_hash TEXT, state TEXT NOT NULL CHECK (
                state IN ('sending', 'staged', 'done', 'failed', 'archived', 'unpublished')
            ), last_error TEXT, error_field TEXT, error_kind TEXT,
            attempts INTEGER NOT NULL DEFAULT 0, batch_id INTEGER, first_seen TEXT NOT NULL,
            updated_at TEXT NOT NULL, source_hash TEXT, PRIMARY KEY (collection, key)
        ) WITHOUT ROWID;
        INSERT INTO items_v3 SELECT collection, key, webflow_id, slug, content_hash, state,
            last_error, error_field, error_kind, attempts, batch_id, first_seen, updated_at,
            source_hash FROM items;
        DROP TABLE items;
        ALTER TABLE items_v3 RENAME TO items;
        CREATE INDEX items_slug ON items (collection, slug);
        CREATE INDEX items_state ON items (collection, state) WHERE state <> 'done';
        CREATE INDEX items_webflow_id ON items (collection, webflow_id)
            WHERE webflow_id IS NOT NULL;
        UPDATE meta SET value = '3' WHERE key = 'schema_version';
        """
    )
    raw.close()

    with CheckpointLog.open(path) as log:
        found = log.lookup("posts", ["a", "b", "c"])
        assert (found["a"].state, found["a"].webflow_id, found["a"].slug) == (
            "done",
            "wf1",
            "slug-1",
        )
        assert (found["b"].state, found["c"].state) == ("staged", "failed")
        assert found["c"].last_error == "too long"
        assert log.counts() == {"posts": {"done": 1, "staged": 1, "failed": 1, "sending": 1}}
        log.start_scratch()
        assert log.slug_holders("posts", "slug-2") == (None, "b")
        assert log.count_in_webflow("posts") == 2
    raw = sqlite3.connect(path)
    indexes = {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"items_slug", "items_state", "items_webflow_id"} <= indexes
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        raw.execute(
            "INSERT INTO items (collection, key, state, first_seen, updated_at) "
            "VALUES ('posts', 'e', 'lost', 't', 't')"
        )
    raw.close()


def test_failures_of_new_items(log: CheckpointLog) -> None:
    run = log.begin_run()
    batch = log.batches.open(run, "posts", "create", 2)
    log.intents.record("posts", batch, [("a", "slug-a", "h")])
    log.record_failures(
        "posts",
        batch,
        [
            ItemFailure("a", "name", "Field 'name' is required", "validation"),
            ItemFailure("never-sent", None, "no title", "mapping"),
        ],
    )
    items = log.lookup("posts", ["a", "never-sent"])
    assert items["a"].state == "failed"
    assert items["a"].error_field == "name"
    assert items["a"].error_kind == "validation"
    assert items["a"].last_error == "Field 'name' is required"
    assert items["never-sent"].state == "failed"
    assert items["never-sent"].attempts == 0
    assert items["never-sent"].batch_id == batch


def test_failure_without_a_batch(log: CheckpointLog) -> None:
    log.record_failures("posts", None, [ItemFailure("x", None, "line 4: bad quote", "source")])
    item = log.lookup("posts", ["x"])["x"]
    assert item.state == "failed"
    assert item.batch_id is None
    assert item.error_kind == "source"


def test_failed_update_keeps_state_and_records_error(log: CheckpointLog) -> None:
    run = log.begin_run()
    batch = log.batches.open(run, "posts", "create", 2)
    log.items.record_acknowledged("posts", batch, [ack("a", 1, "done"), ack("b", 2, "staged")])
    log.record_failures(
        "posts",
        batch,
        [
            ItemFailure("a", "slug", "slug already used", "conflict"),
            ItemFailure("b", None, "bad value", "validation"),
        ],
    )
    items = log.lookup("posts", ["a", "b"])
    assert items["a"].state == "done"
    assert items["a"].webflow_id == "wf1"
    assert items["a"].error_kind == "conflict"
    assert items["b"].state == "staged"
    assert items["b"].last_error == "bad value"


def test_publish_failure_leaves_item_staged(log: CheckpointLog) -> None:
    run = log.begin_run()
    batch = log.batches.open(run, "posts", "create", 1)
    log.items.record_acknowledged("posts", batch, [ack("a", 1, "done")])
    log.record_failures("posts", batch, [ItemFailure("a", None, "publish refused", "publish")])
    item = log.lookup("posts", ["a"])["a"]
    assert item.state == "staged"
    assert item.webflow_id == "wf1"
    assert item.error_kind == "publish"
    assert [s.key for s in log.in_state("posts", "staged")] == ["a"]


def test_acknowledgement_clears_a_previous_error(log: CheckpointLog) -> None:
    run = log.begin_run()
    batch = log.batches.open(run, "posts", "create", 1)
    log.record_failures("posts", batch, [ItemFailure("a", "name", "missing", "validation")])
    log.items.record_acknowledged("posts", batch, [ack("a", 1)])
    item = log.lookup("posts", ["a"])["a"]
    assert (item.state, item.last_error, item.error_field, item.error_kind) == (
        "done",
        None,
        None,
        None,
    )
    assert list(log.errors()) == []


def test_clear_error_keeps_state(log: CheckpointLog) -> None:
    run = log.begin_run()
    batch = log.batches.open(run, "posts", "create", 1)
    log.items.record_acknowledged("posts", batch, [ack("a", 1, "staged")])
    log.record_failures("posts", batch, [ItemFailure("a", None, "publish refused", "publish")])
    log.items.clear_error("posts", ["a", "absent"])
    item = log.lookup("posts", ["a"])["a"]
    assert item.last_error is None
    assert item.error_kind is None
    assert item.state == "staged"
    assert log.lookup("posts", ["absent"]) == {}


def test_errors_are_ordered_and_complete(log: CheckpointLog) -> None:
    log.record_failures(
        "posts",
        None,
        [ItemFailure(f"p{i:04d}", None, f"bad {i}", "mapping") for i in range(700)],
    )
    log.record_failures("authors", None, [ItemFailure("z", "email", "not an email", "validation")])
    errors = list(log.errors())
    assert len(errors) == 701
    assert errors[0].collection == "authors"
    assert [e.key for e in errors[1:]] == [f"p{i:04d}" for i in range(700)]


def test_forget_drops_rows(log: CheckpointLog) -> None:
    run = log.begin_run()
    batch = log.batches.open(run, "posts", "create", 2)
    log.items.record_acknowledged("posts", batch, [ack("a", 1), ack("b", 2)])
    log.items.forget("posts", ["a"])
    assert log.lookup("posts", ["a", "b"]).keys() == {"b"}
    log.start_scratch()
    assert log.slug_holders("posts", "slug-1") == (None, None)


def test_slug_holder_prefers_the_item_in_webflow(log: CheckpointLog) -> None:
    run = log.begin_run()
    batch = log.batches.open(run, "posts", "create", 1)
    log.items.record_acknowledged("posts", batch, [Acknowledged("old", "wf", "hello", "h", "done")])
    log.intents.record("posts", batch, [("new", "hello", "h2")])
    log.start_scratch()
    assert log.slug_holders("posts", "hello")[1] == "old"
    assert log.slug_holders("authors", "hello")[1] is None
    assert log.slug_holders("posts", "other") == (None, None)


def test_counts_by_collection_and_state(log: CheckpointLog) -> None:
    run = log.begin_run()
    batch = log.batches.open(run, "posts", "create", 4)
    log.items.record_acknowledged("posts", batch, [ack("a", 1), ack("b", 2), ack("c", 3, "staged")])
    log.intents.record("posts", batch, [("d", "d", "h")])
    log.record_failures("authors", None, [ItemFailure("x", None, "bad", "source")])
    assert log.counts() == {
        "authors": {"failed": 1},
        "posts": {"done": 2, "sending": 1, "staged": 1},
    }


def test_in_state_streams_while_the_caller_writes(log: CheckpointLog) -> None:
    run = log.begin_run()
    batch = log.batches.open(run, "posts", "create", 1)
    log.intents.record("posts", batch, [(f"k{i:05d}", f"s{i}", "h") for i in range(1600)])
    seen = []
    for item in log.in_state("posts", "sending"):
        seen.append(item.key)
        # What reconcile does: settle each item as it goes.
        log.items.record_acknowledged(
            "posts", batch, [Acknowledged(item.key, "w" + item.key, item.slug or "", "h", "done")]
        )
    assert seen == [f"k{i:05d}" for i in range(1600)]
    assert log.counts() == {"posts": {"done": 1600}}


def test_in_state_rejects_an_unknown_state(log: CheckpointLog) -> None:
    with pytest.raises(ValueError, match="unknown item state"):
        list(log.in_state("posts", "published"))


def test_lookup_chunks_past_sqlite_variable_limit(log: CheckpointLog) -> None:
    run = log.begin_run()
    batch = log.batches.open(run, "posts", "create", 2500)
    log.items.record_acknowledged("posts", batch, [ack(f"k{i}", i) for i in range(2500)])
    asked = [f"k{i}" for i in range(2500)] + [f"missing{i}" for i in range(500)]
    assert len(asked) > 999
    assert len(asked) > 2 * LOOKUP_CHUNK
    found = log.lookup("posts", asked)
    assert len(found) == 2500
    assert found["k2499"].webflow_id == "wf2499"
    by_id = log.by_webflow_ids("posts", [f"wf{i}" for i in range(2500)])
    assert len(by_id) == 2500
    assert by_id["wf7"].key == "k7"


def test_registered_secrets_never_reach_the_file(tmp_path: Path) -> None:
    secret = "tok_0123456789abcdef"
    register_secret(secret)
    try:
        path = tmp_path / "checkpoint.db"
        with CheckpointLog.open(path) as log:
            run = log.begin_run()
            batch = log.batches.open(run, "posts", "create", 1)
            log.record_failures(
                "posts", batch, [ItemFailure("a", None, f"401 for Bearer {secret}", "auth")]
            )
            log.batches.close(batch, "failed", detail=f"Authorization: Bearer {secret}")
            log.finish_run(run, "aborted", {"error": f"token {secret} refused"})
            assert log.lookup("posts", ["a"])["a"].last_error == "401 for Bearer ***"
        raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
        assert secret.encode() not in raw
    finally:
        clear_secrets()


def test_a_second_connection_reads_while_one_writes(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.db"
    with CheckpointLog.open(path) as writer, CheckpointLog.open(path) as reader:
        run = writer.begin_run()
        batch = writer.batches.open(run, "posts", "create", 1)
        writer.items.record_acknowledged("posts", batch, [ack("a", 1)])
        assert reader.counts() == {"posts": {"done": 1}}


_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from flowport.pipeline.checkpoint import Acknowledged, CheckpointLog

    log = CheckpointLog.open(Path(sys.argv[1]))
    run = log.begin_run()
    n = 0
    while True:
        batch = log.batches.open(run, "posts", "create", 50)
        log.items.record_acknowledged("posts", batch, [
            Acknowledged(f"k{n + i}", f"wf{n + i}", f"s{n + i}", "h", "done") for i in range(50)
        ])
        n += 50
        print(n, flush=True)
    """
)


@pytest.mark.slow
def test_sigkill_loses_no_committed_row(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    committed = 0
    try:
        for line in proc.stdout:
            committed = int(line)
            if committed >= 5000:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert committed >= 5000

    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    raw.close()
    with CheckpointLog.open(path) as log:
        total = log.counts()["posts"]["done"]
        assert total >= committed
        assert total % 50 == 0  # a batch is all or nothing
        found = log.lookup("posts", [f"k{i}" for i in range(committed)])
        assert len(found) == committed
        assert json.dumps(log.last_run())  # the killed run is still readable


def test_a_version_1_log_gains_source_hashes_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "state" / "checkpoint.sqlite"
    with CheckpointLog.open(path) as log:
        log.items.record_acknowledged("posts", 1, [Acknowledged("k", "a" * 24, "s", "h", "done")])
    raw = sqlite3.connect(path)
    raw.execute("ALTER TABLE items DROP COLUMN source_hash")
    raw.execute("DROP TABLE intents")
    raw.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    raw.commit()
    raw.close()

    with CheckpointLog.open(path) as log:
        (state,) = log.lookup("posts", ["k"]).values()
        assert state.webflow_id == "a" * 24
        assert state.source_hash is None
        log.items.record_acknowledged(
            "posts", 2, [Acknowledged("k", "a" * 24, "s", "h", "done", source_hash="src")]
        )
        assert log.lookup("posts", ["k"])["k"].source_hash == "src"


def fingerprint(n: int) -> str:
    return f"{n:032x}"


def test_check_chunk_sorts_repeated_keys_and_records_to_map_again(log: CheckpointLog) -> None:
    run = log.begin_run()
    batch = log.batches.open(run, "posts", "create", 4)
    written = [
        Acknowledged("same", "wf1", "s1", "h1", "done", source_hash=fingerprint(1)),
        Acknowledged("edited", "wf2", "s2", "h2", "done", source_hash=fingerprint(2)),
        Acknowledged("owed", "wf3", "s3", "h3~references-pending", "staged", fingerprint(3)),
        Acknowledged("older", "wf4", "s4", "h4", "done", source_hash=None),
    ]
    log.items.record_acknowledged("posts", batch, written)
    log.intents.record("posts", batch, [("unsent", "s5", "h5")])
    log.start_scratch()

    check = log.check_chunk(
        "posts",
        [
            ("same", fingerprint(1)),
            ("edited", fingerprint(99)),
            ("owed", fingerprint(3)),
            ("older", fingerprint(4)),
            ("unsent", fingerprint(5)),
            ("new", fingerprint(6)),
            ("same", fingerprint(1)),
        ],
        pending_marks=("~references-pending",),
    )
    # Within one chunk the caller tells repeats apart; only earlier chunks count here.
    assert check.repeated == set()
    assert check.changed == {
        "edited": True,
        "owed": True,
        "older": True,
        "unsent": False,  # in flight only: no row until acknowledged
        "new": False,
    }
    again = log.check_chunk("posts", [("new", fingerprint(6)), ("other", fingerprint(7))])
    assert again.repeated == {"new"}
    assert again.changed == {"new": False, "other": False}
    assert log.check_chunk("authors", [("new", fingerprint(6))]).repeated == set()
    with pytest.raises(ValueError, match="32 characters"):
        log.check_chunk("posts", [("x", "short")])


def test_check_chunk_takes_keys_of_any_text(log: CheckpointLog) -> None:
    log.start_scratch()
    keys = ['quote"key', "back\\slash", "ünïcödé", "tab\tkey", "line\nbreak", "e" * 300]
    check = log.check_chunk("posts", [(k, fingerprint(i)) for i, k in enumerate(keys)])
    assert set(check.changed) == set(keys)
    assert log.check_chunk("posts", [(keys[3], fingerprint(0))]).repeated == {keys[3]}


def test_claim_free_slugs_takes_free_ones_in_order(log: CheckpointLog) -> None:
    run = log.begin_run()
    batch = log.batches.open(run, "posts", "create", 1)
    log.items.record_acknowledged("posts", batch, [Acknowledged("old", "wf", "hello", "h", "done")])
    log.start_scratch()
    log.claim_slugs("posts", [("a", "claimed")])
    accepted = log.claim_free_slugs(
        "posts",
        [
            ("x", "hello"),  # held in the log by another key
            ("old", "hello"),  # its own slug
            ("y", "claimed"),  # claimed in this run by another key
            ("a", "claimed"),  # its own claim again
            ("p", "free"),
            ("q", "free"),  # an earlier claim of this same call has it
        ],
    )
    assert accepted == {"old", "a", "p"}
    assert log.slug_holders("posts", "free") == ("p", None)
    assert log.claim_free_slugs("authors", [("x", "hello")]) == {"x"}
    assert log.claim_free_slugs("posts", []) == set()


def test_check_chunk_of_a_collection_new_to_the_log(log: CheckpointLog) -> None:
    assert not log.has_items("posts")
    log.start_scratch()
    first = log.check_chunk("posts", [("a", fingerprint(1)), ("b", fingerprint(2))], all_new=True)
    assert first.changed == {"a": False, "b": False}
    again = log.check_chunk("posts", [("b", fingerprint(2)), ("c", fingerprint(3))], all_new=True)
    assert again.repeated == {"b"}
    assert again.changed == {"c": False}
    run = log.begin_run()
    batch = log.batches.open(run, "posts", "create", 1)
    log.record_failures("posts", batch, [ItemFailure("a", None, "bad", "validation")])
    assert log.has_items("posts")
    assert not log.has_items("authors")


@pytest.mark.parametrize(
    ("chunks", "unseen"),
    [
        pytest.param([["a", "b", "c", "d"]], [], id="all-read"),
        pytest.param([["a", "b"], ["c"]], ["d"], id="one-unread"),
        pytest.param([["a", "b", "c"], ["b"]], ["d"], id="a-repeat-in-a-later-chunk"),
        pytest.param([["a", "a", "b", "c"]], ["d"], id="a-repeat-in-the-same-chunk"),
        pytest.param([["a", "b", "c", "new"]], ["d"], id="a-new-key-read"),
        pytest.param([["a", "b", "c", "failed"]], ["d"], id="a-failed-item-read"),
        pytest.param([["a", "b", "c", "sending"]], ["d"], id="an-unknown-create-read"),
        pytest.param([["a", "b", "c", "d"], ["failed"]], [], id="all-written-read"),
        pytest.param([], ["a", "b", "c", "d"], id="nothing-read"),
    ],
)
def test_count_unseen_agrees_with_the_items_it_lists(
    log: CheckpointLog, chunks: list[list[str]], unseen: list[str]
) -> None:
    # count_unseen answers 0 without a query when the read met every written item: a repeat
    # or a key without an item counted as met would hide an item gone from the source.
    run = log.begin_run()
    with log.batch(run, "posts", "create", 4) as batch:
        batch.acknowledge([ack(key, n) for n, key in enumerate("abcd")])
    with log.batch(run, "posts", "create", 1) as failed:
        failed.fail([ItemFailure("failed", None, "bad", "validation")])
    with log.batch(run, "posts", "create-live", 1, intent=[("sending", "s", "h")]) as lost:
        lost.unknown("no answer", http_status=None)
    log.start_scratch()
    for chunk in chunks:
        log.check_chunk("posts", [(key, fingerprint(99)) for key in chunk])
    assert [item.key for item in log.unseen("posts")] == unseen
    assert log.count_unseen("posts") == len(unseen)


def batch_row(log: CheckpointLog, batch_id: int) -> dict[str, object]:
    (row,) = [b for b in log.batches.list() if b["id"] == batch_id]
    return row


def test_a_batch_closes_itself_from_what_was_recorded(log: CheckpointLog) -> None:
    run = log.begin_run()
    with log.batch(run, "posts", "create", 1) as ok:
        ok.acknowledge([ack("a", 1)])
    with log.batch(run, "posts", "publish", 2) as partial:
        partial.acknowledge([ack("b", 2)])
        partial.fail([ItemFailure("c", None, "not published", "publish")])
    with log.batch(run, "posts", "reject", 1) as failed:
        failed.fail([ItemFailure("d", "name", "name: required", "validation")])
        failed.detail = "name: required"
    with log.batch(run, "posts", "update-live", 1) as rejected:
        rejected.rejected("validation_error: name", http_status=400)
    with log.batch(run, "posts", "create-live", 1, intent=[("e", "s", "h")]) as unknown:
        unknown.unknown("no answer", http_status=None)
    assert batch_row(log, ok.id)["outcome"] == "ok"
    assert batch_row(log, partial.id)["outcome"] == "partial"
    assert batch_row(log, failed.id)["outcome"] == "failed"
    assert batch_row(log, failed.id)["detail"] == "name: required"
    assert batch_row(log, rejected.id)["outcome"] == "rejected"
    assert batch_row(log, rejected.id)["http_status"] == 400
    assert batch_row(log, unknown.id)["outcome"] == "unknown"
    # The intent was committed when the batch opened, and nothing settled it.
    assert [s.key for s in log.in_state("posts", "sending")] == ["e"]
    assert all(batch_row(log, b.id)["finished_at"] for b in (ok, partial, failed, rejected))


def test_a_batch_commits_what_was_recorded_once_at_its_close(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.db"
    with CheckpointLog.open(path) as log, CheckpointLog.open(path) as reader:
        run = log.begin_run()
        with log.batch(run, "posts", "create-live", 2, intent=[("a", "s1", "h1")]) as batch:
            # The intent is on disk before the request would leave.
            assert [s.key for s in reader.in_state("posts", "sending")] == ["a"]
            batch.acknowledge([ack("a", 1)])
            batch.settle_intent()
            assert reader.lookup("posts", ["a"]) == {}
            assert batch_row(reader, batch.id)["finished_at"] is None
        assert reader.lookup("posts", ["a"])["a"].webflow_id == "wf1"
        assert list(reader.in_state("posts", "sending")) == []
        assert batch_row(reader, batch.id)["outcome"] == "ok"


def test_a_batch_ended_by_an_exception_is_aborted_and_keeps_its_acknowledgements(
    log: CheckpointLog,
) -> None:
    run = log.begin_run()
    opened: list[int] = []

    def interrupted_batch() -> None:
        with log.batch(run, "posts", "update-live", 2) as batch:
            opened.append(batch.id)
            batch.acknowledge([ack("a", 1)])
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_batch()
    row = batch_row(log, opened[0])
    assert row["outcome"] == "aborted"
    assert row["finished_at"] is not None
    assert log.lookup("posts", ["a"])["a"].state == "done"


async def test_a_cancelled_batch_is_aborted(log: CheckpointLog) -> None:
    run = log.begin_run()
    opened: list[int] = []
    with anyio.CancelScope() as scope:
        with log.batch(run, "posts", "publish", 1) as batch:
            opened.append(batch.id)
            scope.cancel()
            await anyio.sleep(1)
    assert batch_row(log, opened[0])["outcome"] == "aborted"


def test_deferred_references_stream_back_in_order_and_in_chunks(log: CheckpointLog) -> None:
    log.start_scratch()
    items = [
        DeferredReferences(
            "pages",
            f"p{n}",
            "staged" if n % 2 else "live",
            f"digest-{n}",
            {"parent": (f"p{n - 1}",), "related": ("a", 'quote"key')} if n else {},
            source_hash=fingerprint(n) if n % 3 else None,
        )
        for n in range(7)
    ]
    log.defer_references(items[:4])
    chunks = log.deferred_references(chunk=3)
    assert next(chunks) == items[:3]
    # Rows kept after the reading began are met too: the read is by position, a chunk at a time.
    log.defer_references(items[4:])
    assert next(chunks) == items[3:6]
    assert list(chunks) == [items[6:]]
    log.start_scratch()  # a new run starts with none
    assert list(log.deferred_references()) == []


def test_warnings_are_replaced_per_record_and_kept_for_the_others(log: CheckpointLog) -> None:
    log.warnings.replace(
        "posts",
        ["p1", "p2"],
        [
            ItemWarning("p1", "body", "shortcode_unknown", "[gallery] dropped"),
            ItemWarning("p1", "name", "truncated", "x" * 1000),
            ItemWarning("p2", None, "encoding_fallback", "line 3 read as cp1252"),
        ],
    )
    log.warnings.replace("posts", ["p1", "p3"], [ItemWarning("p3", "body", "code_block", "c")])

    listed = [(c, w.key, w.kind) for c, w, _ in log.warnings.all()]
    assert listed == [("posts", "p2", "encoding_fallback"), ("posts", "p3", "code_block")]
    assert log.warnings.counts() == {"posts": {"code_block": 1, "encoding_fallback": 1}}
    assert [w.key for w in log.warnings.of_keys("posts", ["p2", "p9"])] == ["p2"]


def test_a_warning_excerpt_is_short_and_redacted(log: CheckpointLog) -> None:
    register_secret("s3cr3t-token-value")
    try:
        long = "see https://x.test/?token=s3cr3t-token-value " + "y" * 1000
        log.warnings.replace("posts", ["p1"], [ItemWarning("p1", "body", "kind", long)])
    finally:
        clear_secrets()
    [(_, warning, _)] = log.warnings.all()
    assert "s3cr3t-token-value" not in warning.excerpt
    assert len(warning.excerpt) == EXCERPT_CHARS


def test_a_key_acknowledged_twice_in_one_call_counts_twice_and_keeps_the_last(
    log: CheckpointLog,
) -> None:
    run = log.begin_run()
    batch = log.batches.open(run, "posts", "update", 3)
    log.items.record_acknowledged("posts", batch, [ack("a", 1), ack("b", 3), ack("a", 2)])
    found = log.lookup("posts", ["a", "b"])
    assert (found["a"].webflow_id, found["a"].attempts) == ("wf2", 2)
    assert found["b"].attempts == 1
