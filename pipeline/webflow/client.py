"""The async Webflow Data API v2 client the pipeline uses.

One attempt per call: every failure comes out as a member of :mod:`flowport.base.errors`, and
:mod:`flowport.pipeline.retry` decides what to send again. The token lives in a ``SecretStr``
and is put on the wire only; it is in no repr, log line or exception.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

import aiohttp
import orjson
from pydantic import SecretStr, TypeAdapter

from flowport.base.errors import (
    Classified,
    ErrorBody,
    FlowportError,
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
    AssetUpload,
    CollectionSchema,
    FieldSchema,
    Item,
    Pagination,
    PublishResult,
    Site,
)
from flowport.pipeline import __version__
from flowport.pipeline.ratebudget import RateBudget

__all__ = ["AssetPage", "ItemPage", "Response", "WebflowClient", "classify_storage"]

MAX_ITEMS_PER_REQUEST = 100

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


@dataclass(frozen=True, slots=True)
class AssetPage:
    assets: tuple[Asset, ...]
    pagination: Pagination


def _plain_dict(value: Mapping[str, Any]) -> dict[str, Any]:
    # Copied only when it is not a dict already (orjson writes dicts, not other mappings).
    return value if type(value) is dict else dict(value)


#: A whole answer's items validated in one call rather than one model_validate per item.
_ITEM_LIST: TypeAdapter[list[Item]] = TypeAdapter(list[Item])


def _items_of(body: Any) -> list[dict[str, Any]]:
    """Bulk endpoints answer ``{items: [...]}``; single ones answer the item itself."""
    if isinstance(body, Mapping):
        items = body.get("items")
        if isinstance(items, list):
            return [_plain_dict(i) for i in items if isinstance(i, Mapping)]
        if "id" in body:
            return [dict(body)]
    if isinstance(body, list):
        return [dict(i) for i in body if isinstance(i, Mapping)]
    return []


class WebflowClient:
    """``async with WebflowClient(base_url, token, budget=...) as client: ...``"""

    def __init__(
        self,
        base_url: str,
        token: SecretStr,
        *,
        budget: RateBudget | None = None,
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
        parsed = _parse_json(raw)
        outcome: Classified = classify(status, headers, parsed)
        if self.budget is not None:
            self.budget.observe(outcome.rate)
        response = Response(method, path, status, parsed, outcome.rate)
        if self._observer is not None:
            self._observer(response)
        if outcome.error is not None:
            raise outcome.error
        return response

    # -- sites ---------------------------------------------------------------------------------

    async def list_sites(self) -> list[Site]:
        response = await self.send("GET", "/sites")
        sites = response.body.get("sites", []) if isinstance(response.body, Mapping) else []
        return [Site.model_validate(s) for s in sites]

    async def get_site(self, site_id: str) -> Site:
        response = await self.send("GET", f"/sites/{site_id}")
        return Site.model_validate(response.body)

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
        listed = response.body.get("collections", []) if isinstance(response.body, Mapping) else []
        # The list answer omits fields; the full schema comes from GET /collections/{id}.
        return [CollectionSchema.model_validate(c) for c in listed]

    async def get_collection(self, collection_id: str) -> CollectionSchema:
        response = await self.send("GET", f"/collections/{collection_id}")
        return CollectionSchema.model_validate(response.body)

    async def create_collection(
        self, site_id: str, *, display_name: str, singular_name: str, slug: str | None = None
    ) -> CollectionSchema:
        body: dict[str, Any] = {"displayName": display_name, "singularName": singular_name}
        if slug:
            body["slug"] = slug
        response = await self.send("POST", f"/sites/{site_id}/collections", body=body)
        return CollectionSchema.model_validate(response.body)

    async def create_field(self, collection_id: str, field: Mapping[str, Any]) -> FieldSchema:
        response = await self.send("POST", f"/collections/{collection_id}/fields", body=field)
        return FieldSchema.model_validate(response.body)

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
    ) -> ItemPage:
        params: dict[str, str | int] = {"offset": offset, "limit": limit}
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
        body = response.body if isinstance(response.body, Mapping) else {}
        return ItemPage(
            items=tuple(_ITEM_LIST.validate_python(_items_of(body))),
            pagination=Pagination.model_validate(body.get("pagination") or {}),
        )

    async def get_item(self, collection_id: str, item_id: str, *, live: bool = False) -> Item:
        suffix = "/live" if live else ""
        response = await self.send("GET", f"/collections/{collection_id}/items/{item_id}{suffix}")
        return Item.model_validate(response.body)

    async def iter_items(
        self,
        collection_id: str,
        *,
        live: bool = False,
        sort_by: Literal["createdOn", "lastPublished", "lastUpdated", "name", "slug"] | None = None,
        sort_order: Literal["asc", "desc"] | None = None,
    ) -> AsyncIterator[Item]:
        offset = 0
        while True:
            page = await self.list_items(
                collection_id, offset=offset, live=live, sort_by=sort_by, sort_order=sort_order
            )
            for item in page.items:
                yield item
            offset += len(page.items)
            if not page.items or offset >= page.pagination.total:
                return

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
            "POST", f"/collections/{collection_id}/items{suffix}", body={"items": items}
        )
        return _ITEM_LIST.validate_python(_items_of(response.body))

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
        )
        return _ITEM_LIST.validate_python(_items_of(response.body))

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
        )
        return _ITEM_LIST.validate_python(_items_of(response.body))

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
        return PublishResult.model_validate(response.body or {})

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
        return AssetUpload.model_validate(response.body)

    async def get_asset(self, asset_id: str) -> Asset:
        response = await self.send("GET", f"/assets/{asset_id}")
        return Asset.model_validate(response.body)

    async def list_assets(
        self, site_id: str, *, offset: int = 0, limit: int = MAX_ITEMS_PER_REQUEST
    ) -> AssetPage:
        params: dict[str, str | int] = {"offset": offset, "limit": limit}
        response = await self.send("GET", f"/sites/{site_id}/assets", params=params)
        body = response.body if isinstance(response.body, Mapping) else {}
        listed = body.get("assets")
        return AssetPage(
            assets=tuple(Asset.model_validate(a) for a in listed or () if isinstance(a, Mapping)),
            pagination=Pagination.model_validate(body.get("pagination") or {}),
        )

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
        return Asset.model_validate(response.body)

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


def _parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        # What orjson refuses and the standard library reads (NaN, integers past 64 bits).
        return json.loads(raw)
    except ValueError:
        return {"code": "unknown", "message": raw[:200].decode("utf-8", "replace")}
