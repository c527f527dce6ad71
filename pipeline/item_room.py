"""Room left under the site's CMS item limit, so that creates running side by side waste at most
one request at the limit.

Without it, every create request in flight when the first refusal at the limit comes back was
sent for nothing (4 with the default concurrency). The room is the limit the job declares
(``item_limit``, or the one its ``plan`` implies) less the items the site holds, the creates
acknowledged since and the items in create requests now in flight. A request takes what fits:
all its items, or as many as the room has left (the rest waits for another request); when the
room is spent, one create request at a time goes, so that a refusal can only come from one.
The declared limit may be lower than the site's real one (a job that leaves ``plan`` at its
default on a bigger site): once a lone request past it succeeds, the limit is known to be wrong
and the real one unknown, so creates go on at full speed (at the real limit, the requests in
flight are refused, as without a declared limit), and the run is told (``on_passed``) so that it
can say so. Going on one request at a time instead would waste no more than one request, but
would slow every later create of the run for the sake of a few requests at its end.

The site's count is read once, just before the run's first create request (a rerun with nothing
to create pays nothing): one read per collection of the site, as ``plan`` reads it to warn.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import anyio

from flowport.pipeline.webflow.reliable import WebflowApi

__all__ = ["ItemRoom", "items_held"]


async def items_held(api: WebflowApi, collection_ids: Iterable[str]) -> int:
    """How many items the site holds: one read of one item per collection, for its total."""
    held = 0
    for collection_id in collection_ids:
        page = await api.list_items(collection_id, limit=1)
        held += page.pagination.total
    return held


class ItemRoom:
    """The room left under the limit, shared by every create request of the run."""

    def __init__(
        self,
        limit: int,
        count_held: Callable[[], Awaitable[int]],
        *,
        on_passed: Callable[[int], None] | None = None,
    ) -> None:
        self.limit = limit
        self._count_held = count_held
        #: Told once, with the items held, when the site took creates past the limit.
        self._on_passed = on_passed
        #: Items the site holds: counted once, then grown by each acknowledged create.
        self._held: int | None = None
        self._counting = anyio.Lock()
        #: Items in create requests sent and not answered yet, and those requests.
        self._in_flight = 0
        self._requests = 0
        #: Set (and replaced) whenever a request gives its room back: waiters look again.
        self._given_back: anyio.Event | None = None
        #: The site took creates past the limit: it allows more, how many is unknown.
        self.passed = False

    async def take(self, wanted: int) -> int:
        """Wait until a create request may go; return how many of ``wanted`` items it sends."""
        await self._count_once()
        while True:
            granted = self._grant(wanted)
            if granted:
                self._in_flight += granted
                self._requests += 1
                return granted
            if self._given_back is None:
                self._given_back = anyio.Event()
            await self._given_back.wait()

    def give_back(self, taken: int, *, created: int) -> None:
        """A request answered (or read back): ``created`` of its ``taken`` items now exist."""
        self._in_flight -= taken
        self._requests -= 1
        self._held = (self._held or 0) + created
        if created and self._held > self.limit and not self.passed:
            self.passed = True
            if self._on_passed is not None:
                self._on_passed(self._held)
        if self._given_back is not None:
            self._given_back.set()
            self._given_back = None

    def _grant(self, wanted: int) -> int:
        if self.passed:
            return wanted
        left = self.limit - (self._held or 0) - self._in_flight
        if left > 0:
            return min(wanted, left)
        # Spent: one request at a time, whose refusal stops creating (or whose success shows
        # the site allows more).
        return wanted if self._requests == 0 else 0

    async def _count_once(self) -> None:
        if self._held is not None:
            return
        async with self._counting:
            if self._held is None:
                self._held = await self._count_held()
