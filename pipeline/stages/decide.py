"""The rules: what becomes of one mapped record, as one pure function.

:func:`decide` sees what the map stage made of a record (a :class:`Proposal`), what the
checkpoint log holds for its key, and the item someone else put in the collection that the
record would adopt, if any; it answers with one :class:`Decision`. It reads and writes nothing:
the decide stage (:mod:`.route`) gathers its inputs and an executor carries the decision out,
writing to Webflow and the log (a run) or only counting (a plan). Its table test is
``tests/engine/test_decide.py``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from flowport.base.models import Item
from flowport.mappings import MappedItem, MappingFailure, SkippedRecord
from flowport.pipeline.checkpoint import ItemState
from flowport.pipeline.file_values import Sameness, compare_values
from flowport.pipeline.writer import Target

__all__ = [
    "REFERENCES_PENDING",
    "Action",
    "Decision",
    "Proposal",
    "comparable",
    "content_match",
    "decide",
    "same_content",
    "wants_foreign",
]

#: Marks the stored hash of an item whose deferred references are not set yet.
REFERENCES_PENDING = "~references-pending"
#: States of an item that the job removed from the site (it may come back).
_REMOVED = ("archived", "unpublished")
#: States of an item that exists in Webflow with the content its hash says.
_WRITTEN = ("done", "staged")


class Action(enum.StrEnum):
    #: The item holds this content already: nothing to send.
    UNCHANGED = "unchanged"
    #: Someone else's item holds this content already: record it as ours, send nothing.
    ADOPT = "adopt"
    #: Someone else's item, with other content: record it as ours by PATCHing it.
    ADOPT_UPDATE = "adopt-update"
    CREATE = "create"
    UPDATE = "update"
    #: Written already, only its deferred references are owed: the second pass sets them.
    DEFER = "defer"
    #: The record could not be mapped: a per-item error.
    FAIL = "fail"
    #: The mapping chose to leave the record out.
    SKIP = "skip"


#: A record without secondary locales (shared: nothing writes to it).
_NO_LOCALES: Mapping[str, Mapping[str, Any]] = MappingProxyType({})


# Not frozen (nor Decision): one of each is built per record mapped, and frozen doubles what
# building one costs. Neither is changed after it is made.
@dataclass(slots=True)
class Proposal:
    """What the map stage made of one record."""

    key: str
    source_hash: str
    result: MappedItem | MappingFailure | SkippedRecord
    #: Where the item would go (the run's mode, the record's status, localization).
    target: Target = "live"
    #: The content hash of the item, its locales and deferred references included.
    digest: str = ""
    #: Secondary locales' own values: cmsLocaleId -> fieldData.
    locales: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: _NO_LOCALES)
    #: Why a secondary locale of a mapped record could not be mapped.
    locale_failure: MappingFailure | None = None

    @property
    def slug(self) -> str:
        result = self.result
        return str(result.field_data.get("slug", "")) if isinstance(result, MappedItem) else ""


@dataclass(slots=True)
class Decision:
    action: Action
    #: Where the write goes (for a create or an update), or where the adopted item is.
    target: Target = "live"
    #: The item the decision is about, when it exists in Webflow.
    webflow_id: str | None = None
    #: The content hash to record once written (marked while references are owed).
    stored_hash: str = ""
    #: For an adoption without a write: the adopted item's slug and the state it is in.
    slug: str = ""
    state: Literal["done", "staged"] = "done"
    #: Whether the item's deferred references go to the second pass.
    second_pass: bool = False
    #: For an adoption: the media fields found the same by file name only (see file_values).
    media_by_name: tuple[str, ...] = ()


def wants_foreign(proposal: Proposal, stored: ItemState | None) -> bool:
    """Whether the record may adopt an item someone else made: a mapped record whose key has
    no item in Webflow yet. (Looking one up takes it, so it is asked only then.)"""
    if not isinstance(proposal.result, MappedItem) or proposal.locale_failure is not None:
        return False
    return stored is None or not stored.webflow_id


def decide(proposal: Proposal, stored: ItemState | None, foreign: Item | None) -> Decision:
    """One record's fate; ``foreign`` is only looked at when :func:`wants_foreign` says so."""
    result = proposal.result
    if isinstance(result, MappingFailure) or proposal.locale_failure is not None:
        return Decision(Action.FAIL)
    if isinstance(result, SkippedRecord):
        return Decision(Action.SKIP)
    deferred = bool(result.deferred_references)
    digest = proposal.digest
    stored_hash = digest + REFERENCES_PENDING if deferred else digest
    webflow_id = stored.webflow_id if stored is not None else None
    if stored is not None and webflow_id and stored.state in _WRITTEN:
        if stored.content_hash == digest:
            return Decision(Action.UNCHANGED, proposal.target, webflow_id, digest)
        if deferred and stored.content_hash == stored_hash:
            # Written, but the run stopped before its references were set.
            return Decision(Action.DEFER, proposal.target, webflow_id, digest, second_pass=True)
    target = proposal.target
    if stored is not None and stored.state in _REMOVED:
        # Back in the source: bring it back through staging and publishing.
        target = "draft" if target == "draft" else "staged"
    if not webflow_id and foreign is not None:
        same, by_name = content_match(result.field_data, foreign.field_data)
        if not deferred and same:
            published = bool(foreign.last_published) or target == "draft"
            return Decision(
                Action.ADOPT,
                target,
                foreign.id,
                stored_hash,
                slug=foreign.slug or proposal.slug,
                state="done" if published else "staged",
                media_by_name=by_name,
            )
        return Decision(Action.ADOPT_UPDATE, target, foreign.id, stored_hash, second_pass=deferred)
    action = Action.UPDATE if webflow_id else Action.CREATE
    return Decision(action, target, webflow_id, stored_hash, second_pass=deferred)


def same_content(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> bool:
    """Whether an item already holds every value we would send (Webflow adds file ids)."""
    return content_match(ours, theirs)[0]


def content_match(
    ours: Mapping[str, Any], theirs: Mapping[str, Any]
) -> tuple[bool, tuple[str, ...]]:
    """Whether an item already holds every value we would send, media compared by source
    identity (:mod:`flowport.pipeline.file_values`), and which media fields matched by file
    name only."""
    by_name: list[str] = []
    for slug, value in ours.items():
        sameness = compare_values(value, theirs.get(slug))
        if sameness is Sameness.DIFFERENT:
            return False, ()
        if sameness is Sameness.SAME_BY_NAME:
            by_name.append(slug)
    return True, tuple(by_name)


def comparable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: comparable(v) for k, v in value.items() if k != "fileId"}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value
