"""A job's per-item errors and warnings as typed rows: what ``flowport errors`` and ``flowport
warnings`` print, and what :func:`flowport.item_errors` and :func:`flowport.item_warnings`
return. Both read the job's checkpoint log (no network); rows stream, as a log may hold many.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.logging import redact

__all__ = [
    "REMOVED_KIND",
    "ItemError",
    "StandingWarning",
    "iter_item_errors",
    "iter_item_warnings",
]

#: The kind of an error row naming a record gone from the source whose item the job keeps.
REMOVED_KIND: Final = "removed-from-source"


@dataclass(frozen=True, slots=True)
class ItemError:
    """A record that could not be read, mapped or written (or, kind ``removed-from-source``,
    that vanished from the source while the job keeps its item)."""

    collection: str
    #: The record's source key.
    key: str
    #: The Webflow field at fault, when one is.
    field: str | None
    #: A stable word: ``validation``, ``conflict``, ``item_limit``, ``file``, …
    kind: str | None
    reason: str
    #: The item's state in the log: ``failed``, ``done`` (a file left out), ``kept``, …
    state: str
    attempts: int
    updated_at: str | None


@dataclass(frozen=True, slots=True)
class StandingWarning:
    """Something reading or mapping a record changed or dropped (a cut title, a line read as
    cp1252), standing until the record maps without it."""

    collection: str
    key: str
    field: str | None
    kind: str
    excerpt: str
    updated_at: str


def iter_item_errors(log: CheckpointLog) -> Iterator[ItemError]:
    """Every per-item error in the log, then the last run's records kept though gone from the
    source (not errors, but nobody would hear of them otherwise)."""
    for item in log.errors():
        yield ItemError(
            collection=item.collection,
            key=item.key,
            field=item.error_field,
            kind=item.error_kind,
            reason=redact(item.last_error or ""),
            state=item.state,
            attempts=item.attempts,
            updated_at=item.updated_at,
        )
    yield from _kept_removals(log.last_run())


def iter_item_warnings(log: CheckpointLog) -> Iterator[StandingWarning]:
    for collection, warning, updated_at in log.warnings.all():
        yield StandingWarning(
            collection=collection,
            key=warning.key,
            field=warning.field,
            kind=warning.kind,
            excerpt=redact(warning.excerpt),
            updated_at=updated_at,
        )


def _kept_removals(last: dict[str, Any] | None) -> Iterator[ItemError]:
    summary = (last or {}).get("summary") or {}
    for collection, keys in (summary.get("removals") or {}).items():
        for key in keys:
            yield ItemError(
                collection=collection,
                key=key,
                field=None,
                kind=REMOVED_KIND,
                reason='gone from the source; the item is kept (deletions = "keep")',
                state="kept",
                attempts=0,
                updated_at=last["finished_at"] if last else None,
            )
