"""Webflow's clock, as seen through the ``createdOn`` of the items it creates.

A lost create (a 500, a dropped answer) is read back by the ``createdOn`` filters of the list
endpoint, so the read must be told *Webflow's* time of the lost request, not the client's. The
client's clock may be off by any amount; what is certain is causality: an item a request created
was created after the request left and before its answer came back. So for every acknowledged
create, sent at client time ``s`` and answered at ``r`` with items created at Webflow time ``c``,

    s + offset <= c <= r + offset        (offset = Webflow's time - the client's)

which bounds the offset to ``[c_last - r, c_first - s]``. The bounds of recent creates are
intersected, and a lost request sent at ``s`` and given up at ``r`` created its items (if any)
within ``[s + low, r + high]`` of Webflow's time: a span as wide as one round trip plus the
uncertainty, which holds the lost batch and the few creates in flight beside it; one page.

The client's times are ``time.monotonic()``: a step of the wall clock (NTP, a suspended laptop)
between two requests would otherwise move the span. Until a create has been acknowledged there
is no bound: the caller falls back on its wall clock with a wide margin.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

__all__ = ["READBACK_MARGIN", "ServerClock"]

#: Added on each side of a span: Webflow's ``createdOn`` is in whole milliseconds (truncated),
#: and a filter's bound may be exclusive. Kept this small on purpose: at the rate ceiling 2,000
#: items are created a second, and 50 ms of margin would add a page to every read-back.
READBACK_MARGIN = timedelta(milliseconds=2)
#: How many recent creates bound the offset: enough to narrow it to the shortest round trip,
#: few enough that a slow drift of either clock (NTP slewing, at most 0.5 ms a second) is
#: followed.
_RECENT = 32


class ServerClock:
    def __init__(self) -> None:
        #: (low, high) bounds of Webflow's time minus the client's, in seconds, newest last.
        self._bounds: deque[tuple[float, float]] = deque(maxlen=_RECENT)

    def observe(self, sent: float, answered: float, created_on: Iterable[str | None]) -> None:
        """An acknowledged create: sent and answered at these monotonic times, its items
        created at these ``createdOn`` (Webflow's time)."""
        # Each distinct time parsed once: a batch's items mostly share their createdOn.
        moments = [m for m in map(_epoch, set(created_on)) if m is not None]
        if not moments:
            return
        # The first bound loses nothing to truncation; the second gains its millisecond back.
        self._bounds.append((max(moments) - answered, min(moments) + 0.001 - sent))

    def span(self, sent: float, lost: float) -> tuple[datetime, datetime] | None:
        """Webflow's time span in which a request sent at ``sent`` and given up at ``lost``
        (monotonic) created its items, if it did; None before any create was acknowledged."""
        if not self._bounds:
            return None
        low = max(bound[0] for bound in self._bounds)
        high = min(bound[1] for bound in self._bounds)
        if low > high:
            # The bounds disagree: a clock stepped between two creates. Only the newest
            # create's bounds are trusted, and the older ones are dropped.
            low, high = self._bounds[-1]
            self._bounds.clear()
            self._bounds.append((low, high))
        start = datetime.fromtimestamp(sent + low, UTC) - READBACK_MARGIN
        end = datetime.fromtimestamp(lost + high, UTC) + READBACK_MARGIN
        return start, end


def _epoch(created_on: str | None) -> float | None:
    if not created_on:
        return None
    try:
        moment = datetime.fromisoformat(created_on.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
