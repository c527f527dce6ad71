"""The async Webflow Data API v2 client the pipeline uses.

One attempt per call: every failure comes out as a member of :mod:`flowport.base.errors`, and
:mod:`flowport.pipeline.retry` decides what to send again. The token lives in a ``SecretStr``
and is put on the wire only; it is in no repr, log line or exception.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import aiohttp
import orjson
from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError

from flowport.base.errors import (
    Classified,
    ErrorBody,
    FlowportError,
    MalformedAnswer,
    OutcomeUnknown,
    RateHeaders,
    RequestRejected,
    ServerError,
    TransportError,
    classify,
    parse_retry_after,
)
from flowport.base.models import (
    Asset,
    AssetList,
    AssetUpload,
    CollectionList,
    CollectionSchema,
    FieldSchema,
    Item,
    ItemList,
    Pagination,
    PublishResult,
    Site,
    SiteList,
)
from flowport.pipeline import __version__
from flowport.pipeline.ratebudget import RequestBudget

__all__ = [
    "AssetPage", "ItemPage", "Response", "WebflowClient", "classify_storage", "last_request_sent",
    "paged_items",
]  # fmt: skip

MAX_ITEMS_PER_REQUEST = 100

#: ``time.monotonic()`` when this task's latest request left (after its wait for the budget).
#: A context variable, not an attribute: eight workers share one client, and each reads the
#: time of its own request after the call returns or raises (no task is spawned in between).
last_request_sent: ContextVar[float | None] = ContextVar("last_request_sent", default=None)

ResponseObserver = Callable[["Response"], None]


@dataclass(frozen=True, slots=True)
class Response:
    method: str
    path: str
    status: int
    body: Any
    rate: RateHeaders


@dataclass(frozen=True, slots=True)
class ItemPage:
    items: tuple[Item, ...]
    pagination: Pagination


async def paged_items(read_page: Callable[[int], Awaitable[ItemPage]]) -> AsyncIterator[Item]:
    """Every item of a listing, read a page at a time: ``read_page(offset)`` is the page at
    ``offset``; the listing ends at an empty page or at the total the pagination gives."""
    offset = 0
    while True:
        page = await read_page(offset)
        for item in page.items:
            yield item
        offset += len(page.items)
        if not page.items or offset >= page.pagination.total:
            return


@dataclass(frozen=True, slots=True)
class AssetPage:
    assets: tuple[Asset, ...]
    pagination: Pagination


#: Item creates and updates: a file Webflow cannot fetch (an Image/File value's URL that is
#: dead, not an image, over 4 MB, not public) is left out and the item written
#: (``skipInvalidFiles``, v2.yml ~19102; true is also the spec's default, said here so a changed
#: default cannot turn one dead image into a refused post). Webflow says nothing of it: the
#: writer compares each answer with what it sent and records every dropped file as the item's
#: error (field and URL), and marks the item to be sent again by the next run.
ITEM_WRITE_PARAMS: Mapping[str, str | int] = {"skipInvalidFiles": "true"}


def _plain_dict(value: Mapping[str, Any]) -> dict[str, Any]:
    # Copied only when it is not a dict already (orjson writes dicts, not other mappings).
    return value if type(value) is dict else dict(value)


#: A whole answer's items validated in one call rather than one model_validate per item.
_ITEM_LIST: TypeAdapter[list[Item]] = TypeAdapter(list[Item])


M = TypeVar("M", bound=BaseModel)


def _malformed(response: Response, problem: str) -> MalformedAnswer:
    return MalformedAnswer(
        status=response.status,
        message=(
            f"the answer to {response.method} {response.path} is not what the Webflow API "
            f"promises ({problem}); nothing was read from it"
        ),
    )


def _iso_millis(moment: datetime) -> str:
    """A date as Webflow writes its own: UTC, milliseconds, ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _answer(model: type[M], response: Response) -> M:
    """The answer's body as ``model``; any other shape is a :class:`MalformedAnswer`."""
    try:
        return model.model_validate(response.body)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the body"
        raise _malformed(response, f"{where}: {first['msg']}") from None


def _items_of(body: Any) -> list[dict[str, Any]] | None:
    """Bulk endpoints answer ``{items: [...]}``; single ones answer the item itself; None for
    any other shape."""
    if isinstance(body, Mapping):
        items = body.get("items")
        if isinstance(items, list) and all(isinstance(i, Mapping) for i in items):
            return [_plain_dict(i) for i in items]
        if "id" in body:
            return [dict(body)]
    if isinstance(body, list) and all(isinstance(i, Mapping) for i in body):
        return [dict(i) for i in body]
    return None


def _written_items(response: Response) -> list[Item]:
    """The items a write answered with; an answer of any other shape leaves its outcome
    unknown (:class:`MalformedAnswer`), so the caller reads back before sending again."""
    items = _items_of(response.body)
    if items is None:
        raise _malformed(response, "no items in it")
    try:
        return _ITEM_LIST.validate_python(items)
    except ValidationError as error:
        raise _malformed(response, f"{error.error_count()} invalid item(s)") from None


class WebflowClient:
    """``async with WebflowClient(base_url, token, budget=...) as client: ...``"""

    def __init__(
        self,
        base_url: str,
        token: SecretStr,
        *,
        budget: RequestBudget | None = None,
        timeout_seconds: float = 60.0,
        max_connections: int = 8,
        observer: ResponseObserver | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.budget = budget
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._max_connections = max_connections
        self._observer = observer
        self._session: aiohttp.ClientSession | None = None
        # Presigned uploads go to storage, not to Webflow: a session without the token, opened
        # on the first upload (most runs never upload).
        self._storage_session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"WebflowClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._max_connections),
            timeout=self._timeout,
            headers={
                "Authorization": f"Bearer {self._token.get_secret_value()}",
                "Accept": "application/json",
                "User-Agent": f"flowport/{__version__}",
            },
            raise_for_status=False,
            # orjson: a bulk body of 100 items is encoded for every request.
            json_serialize=_json_text,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._storage_session is not None:
            await self._storage_session.close()
            self._storage_session = None

    # -- one attempt -------------------------------------------------------------------------

    async def send(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str | int] | None = None,
    ) -> Response:
        """Send once. Raises a taxonomy error for anything but a 2xx answer."""
        if self._session is None:
            raise RuntimeError("WebflowClient is used outside its 'async with' block")
        if self.budget is not None:
            await self.budget.acquire()
        # When it left, after any wait for the budget: what bounds Webflow's time of a lost
        # create (flowport.pipeline.server_clock).
        last_request_sent.set(time.monotonic())
        url = f"{self.base_url}{path}"
        try:
            async with self._session.request(
                method, url, json=body, params=params
            ) as http_response:
                raw = await http_response.read()
                status = http_response.status
                headers = dict(http_response.headers.items())
        except aiohttp.ClientConnectorError as error:
            # Refused before anything was sent: safe to send again.
            raise TransportError(message=f"cannot connect: {error.os_error}") from None
        except (TimeoutError, aiohttp.ClientError) as error:
            # The request may have reached the server: a write may have landed.
            raise OutcomeUnknown(message=f"no answer ({type(error).__name__})") from None
        try:
            parsed, is_json = _decode_json(raw), True
        except ValueError:
            parsed, is_json = _not_json_body(raw), False
        outcome: Classified = classify(status, headers, parsed)
        if self.budget is not None:
            self.budget.observe(outcome.rate)
        response = Response(method, path, status, parsed, outcome.rate)
        if self._observer is not None:
            self._observer(response)
        if outcome.error is not None:
            raise outcome.error
        if not is_json:
            # A 2xx that is no JSON at all (a proxy's maintenance page): never "nothing".
            kind = headers.get("Content-Type") or headers.get("content-type") or "no type"
            raise _malformed(response, f"not JSON but {kind}: {raw[:60]!r}")
        return response

    # -- sites ---------------------------------------------------------------------------------

    async def list_sites(self) -> list[Site]:
        response = await self.send("GET", "/sites")
        return list(_answer(SiteList, response).sites)

    async def get_site(self, site_id: str) -> Site:
        response = await self.send("GET", f"/sites/{site_id}")
        return _answer(Site, response)

    async def publish_site(
        self, site_id: str, *, custom_domains: Sequence[str] = (), webflow_subdomain: bool = True
    ) -> Response:
        return await self.send(
            "POST",
            f"/sites/{site_id}/publish",
            body={
                "customDomains": list(custom_domains),
                "publishToWebflowSubdomain": webflow_subdomain,
            },
        )

    # -- collections and fields ----------------------------------------------------------------

    async def list_collections(self, site_id: str) -> list[CollectionSchema]:
        response = await self.send("GET", f"/sites/{site_id}/collections")
        # The list answer omits fields; the full schema comes from GET /collections/{id}.
        return list(_answer(CollectionList, response).collections)

    async def get_collection(self, collection_id: str) -> CollectionSchema:
        response = await self.send("GET", f"/collections/{collection_id}")
        return _answer(CollectionSchema, response)

    async def create_collection(
        self,
        site_id: str,
        *,
        display_name: str,
        singular_name: str,
        slug: str | None = None,
        fields: Sequence[Mapping[str, Any]] = (),
    ) -> CollectionSchema:
        """Create a collection, with its fields in the same request (the spec's create body
        takes ``fields``, each as the create-field endpoint's body)."""
        body: dict[str, Any] = {"displayName": display_name, "singularName": singular_name}
        if slug:
            body["slug"] = slug
        if fields:
            body["fields"] = [dict(f) for f in fields]
        response = await self.send("POST", f"/sites/{site_id}/collections", body=body)
        return _answer(CollectionSchema, response)

    async def create_field(self, collection_id: str, field: Mapping[str, Any]) -> FieldSchema:
        response = await self.send("POST", f"/collections/{collection_id}/fields", body=field)
        return _answer(FieldSchema, response)

    # -- items ---------------------------------------------------------------------------------

    async def list_items(
        self,
        collection_id: str,
        *,
        offset: int = 0,
        limit: int = MAX_ITEMS_PER_REQUEST,
        slug: str | None = None,
        name: str | None = None,
        sort_by: Literal["createdOn", "lastPublished", "lastUpdated", "name", "slug"] | None = None,
        sort_order: Literal["asc", "desc"] | None = None,
        live: bool = False,
        updated_since: str | None = None,
        updated_until: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
    ) -> ItemPage:
        """One page of items; ``created_from``/``created_to`` are the spec's ``createdOn[gte]``
        and ``createdOn[lte]`` filters (deepObject style, ISO 8601 dates)."""
        params: dict[str, str | int] = {"offset": offset, "limit": limit}
        if updated_since is not None:
            # The spec's `lastUpdated` filter is an object in deepObject style (v2.yml, list
            # items): `lastUpdated[gte]=<date-time>`, items last updated at or after it.
            params["lastUpdated[gte]"] = updated_since
        if updated_until is not None:
            params["lastUpdated[lte]"] = updated_until  # at or before it (the same object)
        if created_from is not None:
            params["createdOn[gte]"] = _iso_millis(created_from)
        if created_to is not None:
            params["createdOn[lte]"] = _iso_millis(created_to)
        if slug is not None:
            params["slug"] = slug
        if name is not None:
            params["name"] = name
        if sort_by is not None:
            params["sortBy"] = sort_by
        if sort_order is not None:
            params["sortOrder"] = sort_order
        suffix = "/live" if live else ""
        response = await self.send(
            "GET", f"/collections/{collection_id}/items{suffix}", params=params
        )
        listed = _answer(ItemList, response)
        return ItemPage(items=listed.items, pagination=listed.pagination)

    async def get_item(self, collection_id: str, item_id: str, *, live: bool = False) -> Item:
        suffix = "/live" if live else ""
        response = await self.send("GET", f"/collections/{collection_id}/items/{item_id}{suffix}")
        return _answer(Item, response)

    def iter_items(
        self,
        collection_id: str,
        *,
        live: bool = False,
        sort_by: Literal["createdOn", "lastPublished", "lastUpdated", "name", "slug"] | None = None,
        sort_order: Literal["asc", "desc"] | None = None,
    ) -> AsyncIterator[Item]:
        return paged_items(
            lambda offset: self.list_items(
                collection_id, offset=offset, live=live, sort_by=sort_by, sort_order=sort_order
            )
        )

    async def create_items(
        self,
        collection_id: str,
        field_data: Sequence[Mapping[str, Any]],
        *,
        live: bool,
        is_draft: bool = False,
    ) -> list[Item]:
        """Bulk create: ``/items/live`` creates and publishes; ``/items`` stages them."""
        _check_batch(field_data)
        items = [
            {"isArchived": False, "isDraft": is_draft, "fieldData": _plain_dict(fd)}
            for fd in field_data
        ]
        suffix = "/live" if live else ""
        response = await self.send(
            "POST",
            f"/collections/{collection_id}/items{suffix}",
            body={"items": items},
            params=ITEM_WRITE_PARAMS,
        )
        return _written_items(response)

    async def create_items_in_locales(
        self,
        collection_id: str,
        field_data: Sequence[Mapping[str, Any]],
        *,
        cms_locale_ids: Sequence[str],
        is_draft: bool = False,
    ) -> list[Item]:
        """``/items/bulk``: each item created in every locale, one answer entry per variant."""
        if len(field_data) * max(len(cms_locale_ids), 1) > MAX_ITEMS_PER_REQUEST:
            raise ValueError("items times locales exceeds the 100 a request may hold")
        _check_batch(field_data)
        response = await self.send(
            "POST",
            f"/collections/{collection_id}/items/bulk",
            body={
                "cmsLocaleIds": list(cms_locale_ids),
                "isArchived": False,
                "isDraft": is_draft,
                "fieldData": [dict(fd) for fd in field_data],
            },
            params=ITEM_WRITE_PARAMS,
        )
        return _written_items(response)

    async def update_items(
        self,
        collection_id: str,
        updates: Sequence[Mapping[str, Any]],
        *,
        live: bool,
    ) -> list[Item]:
        """Bulk PATCH; each update is ``{id, fieldData, isDraft?, isArchived?}``."""
        _check_batch(updates)
        suffix = "/live" if live else ""
        response = await self.send(
            "PATCH",
            f"/collections/{collection_id}/items{suffix}",
            body={"items": [dict(u) for u in updates]},
            params=ITEM_WRITE_PARAMS,
        )
        return _written_items(response)

    async def delete_items(
        self, collection_id: str, item_ids: Sequence[str], *, live: bool
    ) -> None:
        """Staged delete removes the items; live delete unpublishes them."""
        _check_batch(item_ids)
        suffix = "/live" if live else ""
        await self.send(
            "DELETE",
            f"/collections/{collection_id}/items{suffix}",
            body={"items": [{"id": i} for i in item_ids]},
        )

    async def publish_items(
        self,
        collection_id: str,
        item_ids: Sequence[str],
        *,
        cms_locale_ids: Sequence[str] = (),
    ) -> PublishResult:
        _check_batch(item_ids)
        body: dict[str, Any] = (
            {"items": [{"id": i, "cmsLocaleIds": list(cms_locale_ids)} for i in item_ids]}
            if cms_locale_ids
            else {"itemIds": list(item_ids)}
        )
        response = await self.send("POST", f"/collections/{collection_id}/items/publish", body=body)
        if response.body is None:
            return PublishResult()
        return _answer(PublishResult, response)

    # -- assets ----------------------------------------------------------------------------------

    async def create_asset(
        self, site_id: str, *, file_name: str, file_hash: str, parent_folder: str | None = None
    ) -> AssetUpload:
        """The first half of an upload: the asset's record and the presigned POST for its
        bytes. ``file_hash`` is the file's MD5 (hex); storage refuses bytes that do not match."""
        body: dict[str, Any] = {"fileName": file_name, "fileHash": file_hash}
        if parent_folder is not None:
            body["parentFolder"] = parent_folder
        response = await self.send("POST", f"/sites/{site_id}/assets", body=body)
        return _answer(AssetUpload, response)

    async def get_asset(self, asset_id: str) -> Asset:
        response = await self.send("GET", f"/assets/{asset_id}")
        return _answer(Asset, response)

    async def list_assets(
        self, site_id: str, *, offset: int = 0, limit: int = MAX_ITEMS_PER_REQUEST
    ) -> AssetPage:
        params: dict[str, str | int] = {"offset": offset, "limit": limit}
        response = await self.send("GET", f"/sites/{site_id}/assets", params=params)
        listed = _answer(AssetList, response)
        return AssetPage(assets=listed.assets, pagination=listed.pagination)

    async def iter_assets(self, site_id: str) -> AsyncIterator[Asset]:
        offset = 0
        while True:
            page = await self.list_assets(site_id, offset=offset)
            for asset in page.assets:
                yield asset
            offset += len(page.assets)
            if not page.assets or offset >= page.pagination.total:
                return

    async def update_asset(
        self, asset_id: str, *, display_name: str | None = None, alt_text: str | None = None
    ) -> Asset:
        body: dict[str, Any] = {}
        if display_name is not None:
            body["displayName"] = display_name
        if alt_text is not None:
            body["altText"] = alt_text
        response = await self.send("PATCH", f"/assets/{asset_id}", body=body)
        return _answer(Asset, response)

    async def delete_asset(self, asset_id: str) -> None:
        await self.send("DELETE", f"/assets/{asset_id}")

    async def upload_asset(self, upload: AssetUpload, data: bytes) -> None:
        """The second half: the presigned multipart POST of ``data`` to ``upload.upload_url``.

        It goes to storage, not to Webflow, so it carries no token and takes nothing from the
        rate budget. The fields go first, in the order given, and the file last, as S3 requires
        (https://docs.aws.amazon.com/AmazonS3/latest/API/RESTObjectPOST.html: fields after the
        file are ignored). Sending it again is safe: it writes the same bytes to the same key.
        Raises ``RequestRejected`` (its ``code`` is storage's: ``BadDigest``, ``EntityTooLarge``,
        ``AccessDenied``...), ``ServerError``, ``TransportError`` or ``OutcomeUnknown``."""
        if self._session is None:
            raise RuntimeError("WebflowClient is used outside its 'async with' block")
        if self._storage_session is None:
            self._storage_session = aiohttp.ClientSession(
                timeout=self._timeout,
                headers={"User-Agent": f"flowport/{__version__}"},
                raise_for_status=False,
            )
        form = aiohttp.FormData()
        for name, value in upload.upload_details.items():
            form.add_field(name, value)
        form.add_field(
            "file",
            data,
            filename=upload.original_file_name or "file",
            content_type=upload.content_type or "application/octet-stream",
        )
        try:
            async with self._storage_session.post(upload.upload_url, data=form) as answer:
                raw = await answer.read()
                status = answer.status
                headers = dict(answer.headers.items())
        except aiohttp.ClientConnectorError as error:
            raise TransportError(message=f"cannot connect to storage: {error.os_error}") from None
        except (TimeoutError, aiohttp.ClientError) as error:
            raise OutcomeUnknown(
                message=f"no answer from storage ({type(error).__name__})"
            ) from None
        problem = classify_storage(status, headers, raw)
        if problem is not None:
            raise problem


_S3_CODE = re.compile(rb"<Code>([^<]*)</Code>")
_S3_MESSAGE = re.compile(rb"<Message>([^<]*)</Message>")


def classify_storage(status: int, headers: Mapping[str, str], body: bytes) -> FlowportError | None:
    """An S3-style storage answer on the taxonomy: None for a 2xx; 5xx (S3's ``SlowDown`` is a
    503) and 408 are retriable; any other refusal is about this upload and fails the same way
    again (an expired policy or a 403 needs a new asset, not the token checked)."""
    if 200 <= status < 300:
        return None
    code = _S3_CODE.search(body)
    message = _S3_MESSAGE.search(body)
    error_body = ErrorBody(
        code=code.group(1).decode("utf-8", "replace") if code else f"http_{status}",
        message=message.group(1).decode("utf-8", "replace") if message else f"HTTP {status}",
    )
    if status == 408 or status >= 500:
        retry_after = parse_retry_after(
            next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        )
        return ServerError(status=status, body=error_body, retry_after=retry_after)
    return RequestRejected(status=status, body=error_body)


def _check_batch(batch: Sequence[Any]) -> None:
    if not batch:
        raise ValueError("an empty batch is never sent")
    if len(batch) > MAX_ITEMS_PER_REQUEST:
        raise ValueError(f"a batch holds at most {MAX_ITEMS_PER_REQUEST} items, not {len(batch)}")


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


def _decode_json(raw: bytes) -> Any:
    """The body as JSON (None when empty); ValueError when it is not JSON."""
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    # What orjson refuses and the standard library reads (NaN, integers past 64 bits).
    return json.loads(raw)


def _not_json_body(raw: bytes) -> dict[str, str]:
    """An error answer that is not JSON, as an error body naming it in one line: an HTML page
    (a wrong ``api`` URL, a proxy) by its title, anything else by its first words."""
    text = raw[:4096].decode("utf-8", "replace")
    if re.match(r"\s*<(!doctype|html)", text, re.IGNORECASE):
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        named = f" titled {' '.join(title[1].split())[:80]!r}" if title else ""
        message = f"an HTML page{named}, not the API's JSON (is destination.api the API's URL?)"
    else:
        message = " ".join(text.split())[:200]
    return {"code": "unknown", "message": message}
