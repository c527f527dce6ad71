"""Webflow, called reliably: every API call the engine makes, with retries, the shared rate
budget, retry and 429 notices, and the request counters, in one place.

:class:`~flowport.pipeline.webflow.client.WebflowClient` sends once; :class:`WebflowApi` wraps
each of its calls in :func:`~flowport.pipeline.retry.call_with_retries` and says, per method,
whether sending it again after a lost answer is safe (``idempotent``). A call that is not (a
create) raises :class:`~flowport.base.errors.OutcomeUnknown` or
:class:`~flowport.base.errors.ServerError` instead, and its caller reads back before sending
again. Every method takes ``collection``: the job's collection the call is for, named in retry
notices ("" for the site's own calls).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from flowport.base.errors import FatalError, MalformedAnswer, RetriableError
from flowport.base.models import CollectionSchema, FieldSchema, Item, PublishResult, Site
from flowport.pipeline.retry import RetryPolicy, WaitLedger, call_with_retries
from flowport.pipeline.webflow.client import (
    MAX_ITEMS_PER_REQUEST,
    ItemPage,
    Response,
    WebflowClient,
    paged_items,
)

__all__ = ["ApiStats", "RetryHook", "WebflowApi"]

T = TypeVar("T")

#: Told of every retry: the collection the call was for, and the error that caused it.
RetryHook = Callable[[str, RetriableError], None]


@dataclass(slots=True)
class ApiStats:
    #: Calls made (each counted once, however many attempts it took).
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    #: ``requests`` by the collection each call was for (the progress display's count).
    by_collection: dict[str, int] = field(default_factory=dict)


class WebflowApi:
    def __init__(
        self,
        client: WebflowClient,
        *,
        policy: RetryPolicy | None = None,
        on_retry: RetryHook | None = None,
        waits: WaitLedger | None = None,
    ) -> None:
        self.client = client
        self.policy = policy or RetryPolicy()
        self.stats = ApiStats()
        self._on_retry = on_retry
        #: The run's waits, counted and capped (``[run] max_total_wait_seconds``).
        self.waits = waits

    async def _call(
        self, collection: str, operation: Callable[[], Awaitable[T]], *, idempotent: bool
    ) -> T:
        def note(error: RetriableError, _attempt: int) -> None:
            self.stats.retries += 1
            if error.status == 429:
                self.stats.rate_limited += 1
            if self._on_retry is not None:
                self._on_retry(collection, error)

        self.stats.requests += 1
        self.stats.by_collection[collection] = self.stats.by_collection.get(collection, 0) + 1
        try:
            return await call_with_retries(
                operation,
                policy=self.policy,
                budget=self.client.budget,
                idempotent=idempotent,
                on_retry=note,
                waits=self.waits,
                context=collection,
            )
        except MalformedAnswer as error:
            if not idempotent:
                raise  # a write's outcome is unknown: its caller reads back first
            # A read that kept getting answers nothing can be read from: going on would mean
            # guessing what Webflow holds, so the run stops here.
            raise FatalError(
                f"{error}, {self.policy.max_attempts} times in a row; Webflow (or a proxy in "
                "front of it) is not answering as its API promises: try again later"
            ) from None

    # -- the site --------------------------------------------------------------------------------

    async def get_site(self, site_id: str, *, collection: str = "") -> Site:
        read = functools.partial(self.client.get_site, site_id)
        return await self._call(collection, read, idempotent=True)

    async def publish_site(self, site_id: str, *, collection: str = "") -> Response:
        # Publishing twice publishes the same site: safe to send again.
        publish = functools.partial(self.client.publish_site, site_id)
        return await self._call(collection, publish, idempotent=True)

    # -- collections and fields ------------------------------------------------------------------

    async def list_collections(
        self, site_id: str, *, collection: str = ""
    ) -> list[CollectionSchema]:
        read = functools.partial(self.client.list_collections, site_id)
        return await self._call(collection, read, idempotent=True)

    async def get_collection(self, collection_id: str, *, collection: str = "") -> CollectionSchema:
        read = functools.partial(self.client.get_collection, collection_id)
        return await self._call(collection, read, idempotent=True)

    async def create_collection(
        self,
        site_id: str,
        *,
        display_name: str,
        singular_name: str,
        slug: str | None = None,
        fields: Sequence[Mapping[str, Any]] = (),
        collection: str = "",
    ) -> CollectionSchema:
        """Not sent again after a lost answer: the caller looks for it before creating again."""
        create = functools.partial(
            self.client.create_collection,
            site_id,
            display_name=display_name,
            singular_name=singular_name,
            slug=slug,
            fields=fields,
        )
        return await self._call(collection, create, idempotent=False)

    async def create_field(
        self, collection_id: str, field: Mapping[str, Any], *, collection: str = ""
    ) -> FieldSchema:
        """Not sent again after a lost answer: the caller re-reads the schema first."""
        create = functools.partial(self.client.create_field, collection_id, field)
        return await self._call(collection, create, idempotent=False)

    # -- items -----------------------------------------------------------------------------------

    async def list_items(
        self,
        collection_id: str,
        *,
        offset: int = 0,
        limit: int = MAX_ITEMS_PER_REQUEST,
        newest_first: bool = False,
        collection: str = "",
    ) -> ItemPage:
        read = functools.partial(
            self.client.list_items,
            collection_id,
            offset=offset,
            limit=limit,
            sort_by="createdOn" if newest_first else None,
            sort_order="desc" if newest_first else None,
        )
        return await self._call(collection, read, idempotent=True)

    async def list_updated_items(
        self,
        collection_id: str,
        *,
        since: str | None,
        until: str | None = None,
        offset: int = 0,
        limit: int = MAX_ITEMS_PER_REQUEST,
        collection: str = "",
    ) -> ItemPage:
        """Items last updated at or after ``since`` (all when None) and, given ``until``, at or
        before it, most recently updated first."""
        read = functools.partial(
            self.client.list_items,
            collection_id,
            offset=offset,
            limit=limit,
            sort_by="lastUpdated",
            sort_order="desc",
            updated_since=since,
            updated_until=until,
        )
        return await self._call(collection, read, idempotent=True)

    def iter_items(
        self, collection_id: str, *, newest_first: bool = False, collection: str = ""
    ) -> AsyncIterator[Item]:
        """Every item of the collection, a page (each retried on its own) at a time."""
        return paged_items(
            lambda offset: self.list_items(
                collection_id, offset=offset, newest_first=newest_first, collection=collection
            )
        )

    async def iter_created_between(
        self,
        collection_id: str,
        created_from: datetime | None,
        created_to: datetime | None,
        *,
        collection: str = "",
    ) -> AsyncIterator[Sequence[Item]]:
        """The items Webflow created in a span of its own time, newest first, page by page
        (each retried on its own). Newest first: a lost create is most often the newest in its
        span, found on the first page; an item created while the pages are read comes first and
        pushes the others down, so paging by offset may see one twice but never skips one."""
        offset = 0
        while True:
            read = functools.partial(
                self.client.list_items,
                collection_id,
                offset=offset,
                sort_by="createdOn",
                sort_order="desc",
                created_from=created_from,
                created_to=created_to,
            )
            page = await self._call(collection, read, idempotent=True)
            yield page.items
            offset += len(page.items)
            if not page.items or offset >= page.pagination.total:
                return

    async def get_item(self, collection_id: str, item_id: str, *, collection: str = "") -> Item:
        read = functools.partial(self.client.get_item, collection_id, item_id)
        return await self._call(collection, read, idempotent=True)

    async def create_items(
        self,
        collection_id: str,
        field_data: Sequence[Mapping[str, Any]],
        *,
        live: bool,
        is_draft: bool = False,
        collection: str = "",
    ) -> list[Item]:
        """Not sent again after a lost answer: the caller reads back what landed first."""
        create = functools.partial(
            self.client.create_items, collection_id, field_data, live=live, is_draft=is_draft
        )
        return await self._call(collection, create, idempotent=False)

    async def create_items_in_locales(
        self,
        collection_id: str,
        field_data: Sequence[Mapping[str, Any]],
        *,
        cms_locale_ids: Sequence[str],
        is_draft: bool = False,
        collection: str = "",
    ) -> list[Item]:
        """Not sent again after a lost answer: the caller reads back what landed first."""
        create = functools.partial(
            self.client.create_items_in_locales,
            collection_id,
            field_data,
            cms_locale_ids=cms_locale_ids,
            is_draft=is_draft,
        )
        return await self._call(collection, create, idempotent=False)

    async def update_items(
        self,
        collection_id: str,
        updates: Sequence[Mapping[str, Any]],
        *,
        live: bool,
        collection: str = "",
    ) -> list[Item]:
        # A PATCH sets values: sending it twice leaves the items as sending it once.
        update = functools.partial(self.client.update_items, collection_id, updates, live=live)
        return await self._call(collection, update, idempotent=True)

    async def delete_items(
        self, collection_id: str, item_ids: Sequence[str], *, live: bool, collection: str = ""
    ) -> None:
        # Sent again, a delete that landed answers item_not_found, which its caller expects.
        delete = functools.partial(self.client.delete_items, collection_id, item_ids, live=live)
        await self._call(collection, delete, idempotent=True)

    async def publish_items(
        self,
        collection_id: str,
        item_ids: Sequence[str],
        *,
        cms_locale_ids: Sequence[str] = (),
        collection: str = "",
    ) -> PublishResult:
        publish = functools.partial(
            self.client.publish_items, collection_id, item_ids, cms_locale_ids=cms_locale_ids
        )
        return await self._call(collection, publish, idempotent=True)
