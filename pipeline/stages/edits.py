"""Edits made in Webflow by someone else since flowport last wrote an item (README, "Editors'
changes").

Before a collection's records are decided, one listing finds them: the collection's items last
updated at or after where the previous check left off, most recently updated first
(``GET /collections/{id}/items?lastUpdated[gte]=…&sortBy=lastUpdated&sortOrder=desc``). An item
whose ``lastUpdated`` is later than the one in the answer to flowport's own last write of it was
changed by someone else (an editor, another tool). Only Webflow's timestamps are compared with
Webflow's, so the clocks of this machine and Webflow's never meet.

A publish does not move ``lastUpdated`` (Webflow's item status table: "queued to publish" is
``lastPublished`` earlier than ``lastUpdated``; developers.webflow.com/data/changelog/06232025),
so the items a staged run publishes are not taken for edits; every write does, whoever makes it.

Where the next check starts is the newest ``lastUpdated`` this one met: anything changed after
it is later. Every item flowport wrote since is listed again by the next check (compared and
passed over), so a nightly run that wrote a few items reads a page or two; the run after a full
import reads the items it wrote once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flowport.base.models import Item
from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.stages.decide import WebflowEdit, field_hash, field_hashes_of
from flowport.pipeline.webflow.reliable import WebflowApi

__all__ = ["EditCheck", "find_webflow_edits"]

#: Item states whose content in Webflow flowport vouches for (archived or unpublished items were
#: taken off by the job and come back through staging).
_WRITTEN = ("done", "staged")


@dataclass(slots=True)
class EditCheck:
    """What one check found: the edits (by source key) and where the next check starts."""

    found: dict[str, WebflowEdit] = field(default_factory=dict)
    #: The newest ``lastUpdated`` met (where the next check starts), if any.
    horizon: str | None = None
    #: What an item written before this check existed is compared with (the first check's
    #: newest ``lastUpdated``): its own write's time is not in the log.
    baseline: str | None = None
    #: List requests made.
    reads: int = 0


async def find_webflow_edits(
    api: WebflowApi, checkpoint: CheckpointLog, name: str, collection_id: str
) -> EditCheck:
    known = checkpoint.edits.horizon(name)
    since, baseline = known if known is not None else (checkpoint.edits.oldest_write(name),) * 2
    check = EditCheck(horizon=since, baseline=baseline)
    offset = 0
    while True:
        # A first look with nothing to compare (a log older than this check) only says where
        # the next one starts: one item, the most recently updated.
        page = await api.list_updated_items(
            collection_id, since=since, offset=offset, limit=1 if since is None else 100,
            collection=name,
        )  # fmt: skip
        check.reads += 1
        if since is None:
            check.horizon = check.baseline = page.items[0].last_updated if page.items else None
            return check
        _note_edits(checkpoint, name, page.items, check)
        offset += len(page.items)
        if not page.items or offset >= page.pagination.total:
            return check


def _note_edits(
    checkpoint: CheckpointLog, name: str, items: Sequence[Item], check: EditCheck
) -> None:
    states = checkpoint.by_webflow_ids(name, [item.id for item in items])
    for item in items:
        if not item.last_updated:
            continue
        if check.horizon is None or _later(item.last_updated, check.horizon):
            check.horizon = item.last_updated
        state = states.get(item.id)
        if state is None or state.state not in _WRITTEN:
            continue  # not ours (adoption looks at those), or taken off by the job
        ours = state.webflow_updated or check.baseline
        if ours is None or not _later(item.last_updated, ours):
            continue
        holds = field_hashes_of(item.field_data)
        fields = _edited_fields(item, holds, state.field_hashes)
        check.found[state.key] = WebflowEdit(item.last_updated, fields, holds)


def _edited_fields(
    item: Item, holds: dict[str, str], field_hashes: str | None
) -> tuple[str, ...] | None:
    """The fields flowport writes whose value in Webflow differs from its last write's (primary
    locale), and ``isArchived`` if someone archived the item (a write would bring it back);
    None when the log has no record of the last write's fields."""
    if not field_hashes:
        return None
    written: dict[str, str] = json.loads(field_hashes)
    missing = field_hash(None)  # a field the item no longer has
    changed = [
        slug
        for slug, digest in written.items()
        if "/" not in slug and holds.get(slug, missing) != digest
    ]
    if item.is_archived:
        changed.append("isArchived")
    return tuple(sorted(changed))


def _later(left: str, right: str) -> bool:
    """Whether Webflow timestamp ``left`` is after ``right``."""
    parsed = _moment(left), _moment(right)
    if parsed[0] is None or parsed[1] is None:
        return left > right
    return parsed[0] > parsed[1]


def _moment(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
