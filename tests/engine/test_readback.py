"""Reading back a lost create costs one page, not the collection's recent history (issue 16)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.sandbox import FaultConfig, Sandbox
from flowport.pipeline.webflow.client import WebflowClient
from flowport.pipeline.webflow.reliable import WebflowApi
from flowport.pipeline.writer import Batch, PendingItem, Writer
from tests.conftest import UNLIMITED_RATE
from tests.engine.conftest import make_collection, sandbox_stats, set_faults


def pending(start: int, n: int) -> tuple[PendingItem, ...]:
    return tuple(
        PendingItem(
            key=str(i),
            field_data={"name": f"Item {i}", "slug": f"item-{i}"},
            slug=f"item-{i}",
            content_hash=f"h{i}",
            target="live",
        )
        for i in range(start, start + n)
    )


async def item_reads(sandbox: Sandbox) -> int:
    """Successful list reads of a collection's items (retried ones are the faults' cost)."""
    stats = await sandbox_stats(sandbox)
    return sum(
        row["count"]
        for row in stats["endpoints"]
        if row["method"] == "GET" and row["route"].endswith("/items") and row["status"] == 200
    )


def _hours_off(hours: float) -> Any:
    return lambda: datetime.now(UTC) + timedelta(hours=hours)


@pytest.mark.parametrize(
    "sandbox_settings",
    [
        {"rate_limit": UNLIMITED_RATE, "window_seconds": 60.0, "seed": 3},
        # Webflow's clock three hours ahead of the client's, then two behind: the read-back
        # spans Webflow's time, learnt from its answers, not the client's.
        {"rate_limit": UNLIMITED_RATE, "window_seconds": 60.0, "seed": 3,
         "wall_clock": _hours_off(3)},
        {"rate_limit": UNLIMITED_RATE, "window_seconds": 60.0, "seed": 3,
         "wall_clock": _hours_off(-2)},
    ],
    ids=["same-clock", "webflow-ahead", "webflow-behind"],
)  # fmt: skip
async def test_each_lost_create_is_read_back_in_one_page(
    sandbox: Sandbox, client: WebflowClient, checkpoint: CheckpointLog
) -> None:
    collection_id = await make_collection(client, sandbox.site_id)
    writer = Writer(WebflowApi(client), checkpoint, checkpoint.begin_run())
    # 1,500 items already there, created moments ago: what a read of "the last five minutes"
    # went through, page after page, for every lost answer.
    for start in range(0, 1500, 100):
        await writer.write(Batch("posts", collection_id, "create", "live", pending(start, 100)))
    reads_before = await item_reads(sandbox)
    await set_faults(sandbox, FaultConfig(commit_then_drop_rate=0.15, error_rate=0.15))
    for start in range(1500, 3500, 100):
        await writer.write(Batch("posts", collection_id, "create", "live", pending(start, 100)))
    await set_faults(sandbox, FaultConfig())
    reads = await item_reads(sandbox) - reads_before

    lost = writer.stats.lost_answers
    assert lost >= 4, "the seed must lose some answers for this test to mean anything"
    print(f"{lost} lost answers read back in {reads} reads")
    # One page for each lost batch: what landed is the newest in its span, found on the first
    # page; what did not leaves at most the creates beside it (none here: one writer).
    assert writer.stats.read_back_pages <= lost
    # The sandbox's count also holds reads sent again after their own answer was dropped.
    assert reads <= 2 * lost
    stored = [item async for item in client.iter_items(collection_id)]
    slugs = Counter(item.field_data["slug"] for item in stored)
    assert len(stored) == 3500, "nothing lost"
    assert max(slugs.values()) == 1, "nothing duplicated"
    assert checkpoint.counts()["posts"] == {"done": 3500}
    assert writer.stats.reconciled > 0
