"""What the mappers ask the checkpoint log while mapping: references and slug claims."""

from __future__ import annotations

from collections.abc import Mapping

from flowport.mappings.slugs import slug_with_suffix
from flowport.pipeline.checkpoint import CheckpointLog, ItemState

__all__ = [
    "LOOKUP_CHUNK",
    "PLANNED_ID",
    "CheckpointReferences",
    "CheckpointSlugs",
    "PlannedReferences",
    "PrimarySlugs",
]

#: Records looked up in the checkpoint log in one query.
LOOKUP_CHUNK = 500
#: A plan's stand-in id for an item this run would create (ids are 24 hex characters).
PLANNED_ID = "f" * 24


class CheckpointReferences:
    """Source key -> Webflow id, from the checkpoint log.

    References into ``deferred`` collections (a cycle, or the collection itself) are never
    resolved in the first pass, even when the target happens to exist already: the item's hash
    then depends only on its source, and the second pass sets them the same way every run.
    """

    def __init__(self, checkpoint: CheckpointLog, deferred: frozenset[str] = frozenset()) -> None:
        self.checkpoint = checkpoint
        self.deferred = deferred

    def webflow_id(self, collection: str, source_key: str) -> str | None:
        if collection in self.deferred:
            return None
        state = self.checkpoint.lookup(collection, [source_key]).get(source_key)
        if state is not None and state.state in ("done", "staged") and state.webflow_id:
            return state.webflow_id
        return None


class PlannedReferences(CheckpointReferences):
    """In a plan, keys that this run would create resolve to a stand-in id as well."""

    def webflow_id(self, collection: str, source_key: str) -> str | None:
        found = super().webflow_id(collection, source_key)
        if found is not None or collection in self.deferred:
            return found
        return PLANNED_ID if self.checkpoint.is_planned(collection, source_key) else None


class CheckpointSlugs:
    """Slug claims kept in the checkpoint log: the same key keeps its slug across runs.

    A slug held by an item someone else made is free to claim: the runner adopts that item.

    Claims are settled a chunk at a time: between :meth:`tentative` and :meth:`settle`, a claim
    takes the slug it wants and is noted; ``settle`` then asks the log about all of them in one
    query and returns the keys whose slug turned out to be held, to be mapped again one claim
    at a time (the rare case). Outside that window each claim asks the log itself.
    """

    def __init__(self, checkpoint: CheckpointLog, collection: str) -> None:
        self.checkpoint = checkpoint
        self.collection = collection
        self.known: dict[str, str] = {}
        #: Claims of the chunk being mapped, written to the scratch together by :meth:`flush`.
        self.pending: dict[str, str] = {}
        #: (key, slug) claimed in the tentative window, in claim order.
        self.provisional: list[tuple[str, str]] | None = None

    def remember(self, states: Mapping[str, ItemState]) -> None:
        self.known = {key: s.slug for key, s in states.items() if s.slug}

    def tentative(self) -> None:
        self.provisional = []

    def claim(self, source_key: str, wanted: str) -> str:
        kept = self.known.get(source_key)
        if kept is not None:
            return kept
        if self.provisional is not None:
            self.provisional.append((source_key, wanted))
            return wanted
        candidate, number = wanted, 1
        while not self._free(candidate, source_key):
            number += 1
            candidate = slug_with_suffix(wanted, number)
        self._hold(candidate, source_key)
        return candidate

    def settle(self) -> set[str]:
        """End the tentative window: keep every claim whose slug is free, in claim order, and
        return the keys whose slug is held by another key (in the log, in this run, or by an
        earlier claim of the same chunk)."""
        claims, self.provisional = self.provisional or [], None
        if not claims:
            return set()
        self.flush()  # claims made one at a time must be seen by this one
        accepted = self.checkpoint.claim_free_slugs(self.collection, claims)
        return {key for key, _ in claims if key not in accepted}

    def _hold(self, slug: str, key: str) -> None:
        self.pending[slug] = key
        if len(self.pending) >= LOOKUP_CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.checkpoint.claim_slugs(
                self.collection, [(key, slug) for slug, key in self.pending.items()]
            )
            self.pending = {}

    def _free(self, slug: str, key: str) -> bool:
        # Claimed in this run by another record, or held by an item of an earlier run.
        pending = self.pending.get(slug)
        if pending is not None:
            return pending == key
        return all(
            holder is None or holder == key
            for holder in self.checkpoint.slug_holders(self.collection, slug)
        )


class PrimarySlugs:
    """Locale variants take the slug their primary item got in this run."""

    def __init__(self, primary: Mapping[str, str]) -> None:
        self.primary = primary

    def claim(self, source_key: str, wanted: str) -> str:
        return self.primary.get(source_key, wanted)
