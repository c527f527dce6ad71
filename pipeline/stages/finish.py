"""The finish stage of a collection, once every record went through: items whose source
record vanished, then what the executor leaves for the end (publishing what was staged, the
writer's counts, the incremental cursor)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.jobfile import CollectionJob
from flowport.pipeline.logging import ProgressSink
from flowport.pipeline.stages.cursor import IncrementalCursor
from flowport.pipeline.stages.executors import Executor
from flowport.pipeline.stages.summary import RunSummary

__all__ = ["finish_collection"]


async def finish_collection(
    executor: Executor,
    checkpoint: CheckpointLog,
    summary: RunSummary,
    sink: ProgressSink,
    name: str,
    collection: CollectionJob,
    collection_id: str,
    *,
    locale_ids: Sequence[str],
    cursor: IncrementalCursor,
    unreadable: int,
    partial: bool = False,
) -> None:
    if cursor.since is None and not partial:
        # Only a read of the whole source says which records are gone (a partial source's
        # reads never are whole: a dlt load holds the rows it brought).
        await _remove_vanished(
            executor, checkpoint, summary, sink, name, collection, collection_id, unreadable
        )
    await executor.finish_collection(name, collection_id, locale_ids, cursor)
    # The standing warnings, unchanged records' included: a rerun that maps nothing again
    # still says what is left to look at.
    standing = executor.standing_warnings(name)
    summary.add(name, {f"warning:{kind}": n for kind, n in standing.items()})
    sink.collection_finished(name, summary.collections.get(name, {}))


async def _remove_vanished(
    executor: Executor,
    checkpoint: CheckpointLog,
    summary: RunSummary,
    sink: ProgressSink,
    name: str,
    collection: CollectionJob,
    collection_id: str,
    unreadable: int,
) -> None:
    """Items whose source record is gone, handled as the job says, within the safety cap."""
    policy = collection.deletions
    vanished = checkpoint.count_unseen(name)
    if not vanished:
        return
    if unreadable:
        summary.notes.append(
            f"{name}: {unreadable} source records could not be read, so {vanished} "
            "missing records were not treated as deleted"
        )
        return
    if policy == "keep":
        # Kept, but named: a record gone from the source is news even when nothing is done.
        keys = [item.key for item in checkpoint.unseen(name)]
        summary.count(name, "removed_kept", len(keys))
        summary.removals[name] = keys
        sink.message(
            "warning",
            f"{name}: {len(keys)} records are gone from the source; their items are kept "
            '(deletions = "keep"; `flowport errors JOB` names them)',
        )
        return
    counts = checkpoint.counts().get(name, {})
    known = counts.get("done", 0) + counts.get("staged", 0)
    limit = math.floor(collection.max_delete_share * known)
    if vanished > limit:
        summary.count(name, "deletions_refused", vanished)
        message = (
            f"{name}: {vanished} of {known} items are gone from the source, more than "
            f"max_delete_share = {collection.max_delete_share} allows ({limit}); nothing was "
            "removed. If the source is right, raise max_delete_share for one run."
        )
        summary.notes.append(message)
        sink.message("error", message)
        return
    await executor.remove(name, collection_id, checkpoint.unseen(name), policy)
