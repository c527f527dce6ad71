"""Publishing what a run left staged in a collection."""

from __future__ import annotations

from collections.abc import Sequence

from flowport.pipeline.logging import NullSink, ProgressSink
from flowport.pipeline.writer import BatchOutcome, Writer

__all__ = ["publish_staged"]


async def publish_staged(
    writer: Writer,
    name: str,
    collection_id: str,
    locale_ids: Sequence[str] = (),
    sink: ProgressSink | None = None,
) -> BatchOutcome:
    """Publish every item the log holds as staged; the outcome counts what was published.
    ``sink`` is told of the publish phase and its progress, item by item published."""
    staged = [
        (s.key, s.webflow_id) for s in writer.checkpoint.in_state(name, "staged") if s.webflow_id
    ]
    if not staged:
        return BatchOutcome()
    progress = sink if sink is not None else NullSink()
    published = 0

    def step(count: int) -> None:
        nonlocal published
        published += count
        progress.phase(name, "publish", done=published, total=len(staged))

    progress.phase(name, "publish", done=0, total=len(staged))
    return await writer.publish(
        name, collection_id, [(k, i) for k, i in staged if i], locale_ids=locale_ids, on_chunk=step
    )
