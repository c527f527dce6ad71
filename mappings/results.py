"""What mapping one record gives: an item to write, a per-item failure, or a deliberate skip."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["MappedItem", "MappingFailure", "MappingWarning", "SkippedRecord"]


@dataclass(frozen=True, slots=True)
class MappingWarning:
    """Something changed or dropped on the way (a truncated title, an unknown shortcode).

    ``kind`` is a stable word for counting: ``truncated``, ``shortcode_unknown``,
    ``gallery_unresolved``, ``code_block``, ``too_many_images``...
    """

    field: str
    kind: str
    message: str


# Not frozen: one is built per record of every run, and frozen doubles what that costs.
@dataclass(slots=True)
class MappedItem:
    """``field_data`` is exactly what Webflow accepts; ``status`` None follows the job's mode.

    ``deferred_references`` names, per field, the source keys that could not be resolved yet
    because their items are written in the same pass (a self-reference or a cycle); the engine
    patches them in afterwards. For a MultiReference field, ``field_data`` holds the ids resolved
    now, and the patch must send those plus the deferred ones.
    """

    key: str
    field_data: dict[str, Any]
    status: Literal["live", "draft"] | None = None
    warnings: tuple[MappingWarning, ...] = ()
    deferred_references: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MappingFailure:
    """The record cannot become a valid item; ``reason`` starts with ``field <slug>:``."""

    key: str
    field: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class SkippedRecord:
    """Left out on purpose (a status mapped to skip), not an error."""

    key: str
    reason: str
