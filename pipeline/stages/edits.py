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
passed over), so a nightly run that wrote a few items reads a page or two.

After a big import, though, nearly everything between that start and flowport's newest write
of its own is flowport's own writes: 100,000 of them made the next check read 1,000 pages,
though a rerun with nothing to write has nothing an edit could be overwritten by. So when the
log holds writes newer than where the check starts, the check lists at once only what was
updated at or after the newest of them (every edit made since flowport last wrote), and leaves
the window before it (edits made during the earlier runs, mixed with their writes) unlisted
until a record would update an item flowport wrote (:class:`UnlistedWindow`). Such a record's
item, unless the listing already met it (an item has one ``lastUpdated``: met after flowport's
newest write, it is not in the window), is read on its own (``GET`` the item) before the record
is decided, as long as those reads cost fewer requests than listing the window would; past that,
the window is listed whole, once. Until it is listed the next check starts where this one did,
so the window stays covered: an edit in it that no update met is counted and remembered by the
run that lists it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flowport.base.errors import RequestRejected
from flowport.base.models import Item
from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.stages.decide import WebflowEdit, field_hash, field_hashes_of
from flowport.pipeline.webflow.reliable import WebflowApi

__all__ = ["EditCheck", "UnlistedWindow", "find_webflow_edits"]

#: Item states whose content in Webflow flowport vouches for (archived or unpublished items were
#: taken off by the job and come back through staging).
_WRITTEN = ("done", "staged")


@dataclass(slots=True)
class EditCheck:
    """What one check found: the edits (by source key) and where the next check starts."""

    found: dict[str, WebflowEdit] = field(default_factory=dict)
    #: Where this check's listing started (the log's horizon), if anywhere.
    since: str | None = None
    #: What an item written before this check existed is compared with (the first check's
    #: newest ``lastUpdated``): its own write's time is not in the log.
    baseline: str | None = None
    #: The newest ``lastUpdated`` met, if any.
    newest: str | None = None
    #: ``[from, to]`` of ``lastUpdated`` not listed yet (see the module's docstring).
    unlisted: tuple[str, str] | None = None
    #: Webflow ids of the items listed or read, while a window is unlisted.
    met: set[str] = field(default_factory=set)
    #: List requests made.
    reads: int = 0

    @property
    def horizon(self) -> str | None:
        """Where the next check starts: past everything this one listed, unless it left a
        window unlisted, which the next check must cover."""
        if self.unlisted is not None or self.newest is None:
            return self.since
        return self.newest


async def find_webflow_edits(
    api: WebflowApi, checkpoint: CheckpointLog, name: str, collection_id: str
) -> EditCheck:
    known = checkpoint.edits.horizon(name)
    since, baseline = known if known is not None else (checkpoint.edits.oldest_write(name),) * 2
    check = EditCheck(since=since, baseline=baseline)
    if since is None:
        # A first look with nothing to compare (a log older than this check) only says where
        # the next one starts: one item, the most recently updated.
        page = await api.list_updated_items(collection_id, since=None, limit=1, collection=name)
        check.reads += 1
        check.since = check.baseline = page.items[0].last_updated if page.items else None
        return check
    newest_own = checkpoint.edits.newest_write(name)
    if newest_own is not None and _later(newest_own, since):
        check.unlisted = (since, newest_own)
        await _list(api, checkpoint, name, collection_id, check, since=newest_own)
    else:
        await _list(api, checkpoint, name, collection_id, check, since=since)
    return check


@dataclass(slots=True)
class UnlistedWindow:
    """The window a check left unlisted, looked into before records that would update items
    flowport wrote are decided (see the module's docstring)."""

    api: WebflowApi
    checkpoint: CheckpointLog
    name: str
    collection_id: str
    check: EditCheck
    #: Single reads left before listing the window is cheaper (None: not counted yet).
    reads_left: int | None = None

    async def before_updates(self, item_ids: Sequence[str]) -> None:
        """Make ``check.found`` hold any edit of these items (Webflow ids) in the window."""
        check = self.check
        if check.unlisted is None:
            return
        unmet = [item_id for item_id in dict.fromkeys(item_ids) if item_id not in check.met]
        if not unmet:
            return
        if self.reads_left is None:
            # What listing the window costs: a page per 100 of flowport's writes in it.
            writes = self.checkpoint.edits.writes_since(self.name, check.unlisted[0])
            self.reads_left = -(-writes // 100)
        if len(unmet) > self.reads_left:
            start, end = check.unlisted
            await _list(
                self.api, self.checkpoint, self.name, self.collection_id, check,
                since=start, until=end,
            )  # fmt: skip
            check.unlisted = None
            check.met.clear()
            return
        self.reads_left -= len(unmet)
        for item_id in unmet:
            try:
                item = await self.api.get_item(self.collection_id, item_id, collection=self.name)
            except RequestRejected:
                continue  # deleted in Webflow: the update itself says so, per item
            check.reads += 1
            check.met.add(item_id)
            _note_edits(self.checkpoint, self.name, [item], check)


async def _list(
    api: WebflowApi,
    checkpoint: CheckpointLog,
    name: str,
    collection_id: str,
    check: EditCheck,
    *,
    since: str,
    until: str | None = None,
) -> None:
    offset = 0
    while True:
        page = await api.list_updated_items(
            collection_id, since=since, until=until, offset=offset, limit=100, collection=name
        )
        check.reads += 1
        _note_edits(checkpoint, name, page.items, check)
        if check.unlisted is not None:
            check.met.update(item.id for item in page.items)
        offset += len(page.items)
        if not page.items or offset >= page.pagination.total:
            return


def _note_edits(
    checkpoint: CheckpointLog, name: str, items: Sequence[Item], check: EditCheck
) -> None:
    states = checkpoint.by_webflow_ids(name, [item.id for item in items])
    for item in items:
        if not item.last_updated:
            continue
        if check.newest is None or _later(item.last_updated, check.newest):
            check.newest = item.last_updated
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
