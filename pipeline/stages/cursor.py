"""The incremental cursor of one collection, as an object with named steps.

As airbyte-cdk's concurrent ``Cursor`` does (``observe`` a record, then emit state when it is
safe), instead of a variable threaded through the read loop: the read stage calls
:meth:`IncrementalCursor.observe` for every record it passes on, and the finish stage calls
:meth:`IncrementalCursor.commit` once, which saves the latest value only when the collection had
no failure, so a failed record is read again by the next incremental run.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from flowport.pipeline.checkpoint import CheckpointLog

__all__ = ["IncrementalCursor", "later_cursor"]


class IncrementalCursor:
    """Where an incremental read starts (``since``) and the latest value met since then."""

    def __init__(
        self,
        checkpoint: CheckpointLog,
        collection: str,
        *,
        incremental: bool,
        full_read: bool = False,
    ) -> None:
        self._checkpoint = checkpoint
        self._collection = collection
        self.incremental = incremental
        #: The value saved by the last successful run; ``None`` reads the whole source. A full
        #: read (``flowport run --full``) ignores the saved value but still commits the latest
        #: one met, so the next run goes on incrementally from there.
        saved = checkpoint.cursor(collection) if incremental and not full_read else None
        self.since: str | None = saved
        self.latest: str | None = self.since

    def observe(self, value: str | None) -> None:
        """A record with this cursor value was read (and is not a repeat)."""
        self.latest = later_cursor(self.latest, value)

    def commit(self, *, failed: bool) -> bool:
        """Save the latest value for the next run, unless a record failed; say whether saved."""
        if not self.incremental or self.latest is None or failed:
            return False
        self._checkpoint.set_cursor(self._collection, self.latest)
        return True


def later_cursor(current: str | None, candidate: str | None) -> str | None:
    """The later of two cursor values: as dates, as numbers, or as text, whichever they are."""
    if candidate is None:
        return current
    if current is None:
        return candidate
    for parse in (_as_time, _as_number):
        left, right = parse(current), parse(candidate)
        if left is not None and right is not None:
            return candidate if right > left else current
    return max(current, candidate)


def _as_time(value: str) -> float | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _as_number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
