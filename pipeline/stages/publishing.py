"""Publishing what a run left staged in a collection."""

from __future__ import annotations

from collections.abc import Sequence

from flowport.pipeline.writer import BatchOutcome, Writer

__all__ = ["publish_staged"]


async def publish_staged(
    writer: Writer, name: str, collection_id: str, locale_ids: Sequence[str] = ()
) -> BatchOutcome:
    """Publish every item the log holds as staged; the outcome counts what was published."""
    staged = [
        (s.key, s.webflow_id) for s in writer.checkpoint.in_state(name, "staged") if s.webflow_id
    ]
    return await writer.publish(
        name, collection_id, [(k, i) for k, i in staged if i], locale_ids=locale_ids
    )
