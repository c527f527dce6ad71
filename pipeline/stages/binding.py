"""Before the first write: is the checkpoint log still about the collections it finds?

The log counts an item ``done`` because it exists in one Webflow collection of one site. When
that collection was deleted or recreated, or the job now points at another site (staging, then
production, with the same job file), those items are not where the log says: a run that trusted
it would leave the new collection empty and say all is done. So a mismatch stops the run before
it writes anything, naming both ids and the fix; with ``rehome`` the log forgets those items'
Webflow side instead, and the run creates or adopts each of them in the collection it finds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flowport.base.errors import FatalError
from flowport.base.models import CollectionSchema
from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.jobfile import Job
from flowport.pipeline.logging import ProgressSink
from flowport.pipeline.stages.schema import find_collection

__all__ = ["Moved", "check_bindings", "moved_collections"]


@dataclass(frozen=True, slots=True)
class Moved:
    """A job collection whose log entries belong to another Webflow collection or site."""

    name: str
    logged_collection: str
    logged_site: str | None
    found_collection: str | None
    site_id: str

    def describe(self) -> str:
        found = self.found_collection or "none (it would be created)"
        if self.logged_site is not None and self.logged_site != self.site_id:
            return (
                f"{self.name}: the checkpoint log was written to site {self.logged_site} "
                f"(collection {self.logged_collection}); the job now targets site {self.site_id} "
                f"(collection {found})"
            )
        return (
            f"{self.name}: the checkpoint log was written to collection {self.logged_collection}; "
            f"site {self.site_id} now has collection {found}"
        )


def moved_collections(
    job: Job, checkpoint: CheckpointLog, site_id: str, existing: Sequence[CollectionSchema]
) -> list[Moved]:
    """The job's collections whose logged items are not bound to the collection found now."""
    moved: list[Moved] = []
    for name, collection in job.collections.items():
        binding = checkpoint.bindings.binding(name)
        if binding is None or not _holds_items(checkpoint, name):
            continue
        logged_collection, logged_site = binding
        found = find_collection(existing, collection.target)
        found_id = found.id if found is not None else None
        same_site = logged_site is None or logged_site == site_id
        if same_site and found_id == logged_collection:
            continue
        moved.append(Moved(name, logged_collection, logged_site, found_id, site_id))
    return moved


def check_bindings(
    job: Job,
    checkpoint: CheckpointLog,
    site_id: str,
    existing: Sequence[CollectionSchema],
    sink: ProgressSink,
    *,
    rehome: bool,
) -> None:
    """Stop on a log bound elsewhere, or (``rehome``) re-home it; before any write."""
    moved = moved_collections(job, checkpoint, site_id, existing)
    if not moved:
        return
    if not rehome:
        raise FatalError(
            "the checkpoint log does not match the Webflow site: "
            + "; ".join(m.describe() for m in moved)
            + ". Nothing was written. If the job is meant to write there, run "
            "`flowport run JOB --rehome`: those items are then created or adopted (by slug or "
            "external key) in the collection found now; otherwise point the job back at "
            f"site {moved[0].logged_site or site_id}"
        )
    for entry in moved:
        sink.message("warning", f"re-homing the checkpoint log: {entry.describe()}")
        checkpoint.rehome(entry.name)


def _holds_items(checkpoint: CheckpointLog, name: str) -> bool:
    return checkpoint.has_items(name) or name in checkpoint.intents.collections()
