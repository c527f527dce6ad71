"""The sandbox's synchronous, in-memory emulation of Webflow's CMS Data API v2.

Every public method takes and returns JSON-ready values and raises :class:`ApiError` for an answer
Webflow gives as an error, so the HTTP layer only routes. A request is validated completely before
anything changes; then the changes go through a handful of primitives (``_put_*``/``_drop_*``) that
keep the indexes right and record the change, and :meth:`SandboxCore._commit` journals the request
as one line. Replaying the journal calls the same primitives.

Each item is kept per locale (a "variant"); a variant holds its staged version and, separately, the
version that is live (``live``), so a staged edit of a published item never reaches the live set
until it is published.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from flowport.pipeline.sandbox._assets import AssetHooks, AssetStore
from flowport.pipeline.sandbox._config import SandboxConfig
from flowport.pipeline.sandbox._errors import ApiError, bad_request, not_found, validation_error
from flowport.pipeline.sandbox._fields import (
    CREATABLE_TYPES,
    FieldDef,
    InvalidValue,
    ValueChecker,
    format_timestamp,
    is_object_id,
    slugify_field_name,
    wanted_files,
)
from flowport.pipeline.sandbox._journal import Journal
from flowport.pipeline.sandbox._remote import FetchedFile, FetchFailure, Wanted

#: What the server fetched for a request's file URLs.
FetchedFiles = Mapping[Wanted, FetchedFile | FetchFailure]

__all__ = ["ItemVariant", "SandboxCore"]

_ITEM_KEYS = frozenset(
    {"id", "cmsLocaleId", "cmsLocaleIds", "lastPublished", "lastUpdated", "createdOn",
     "isArchived", "isDraft", "fieldData"}
)  # fmt: skip
_FIELD_CREATE_KEYS = frozenset(
    {"id", "isEditable", "isRequired", "type", "displayName", "helpText", "metadata"}
)
_FIELD_UPDATE_KEYS = frozenset({"isRequired", "displayName", "helpText"})
_SORT_KEYS = ("createdOn", "lastPublished", "lastUpdated", "name", "slug")
_LOCALE_NAMES = {"en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian"}


@dataclass(slots=True)
class ItemVariant:
    id: str
    locale: str
    created_on: str
    last_updated: str
    last_published: str | None
    is_archived: bool
    is_draft: bool
    field_data: dict[str, Any]
    live: dict[str, Any] | None = None
    # the slug under which the collection's slug index holds this variant (edits happen in place)
    indexed_slug: str | None = field(default=None, compare=False, repr=False)

    @property
    def slug(self) -> str:
        return str(self.field_data.get("slug", ""))

    def staged(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "cmsLocaleId": self.locale,
            "lastPublished": self.last_published,
            "lastUpdated": self.last_updated,
            "createdOn": self.created_on,
            "isArchived": self.is_archived,
            "isDraft": self.is_draft,
            "fieldData": self.field_data,
        }

    def publish(self, now: str) -> None:
        self.is_draft = False
        self.last_published = now
        self.live = self.staged()

    def to_record(self, collection_id: str) -> dict[str, Any]:
        return {
            "op": "item",
            "c": collection_id,
            "id": self.id,
            "l": self.locale,
            "co": self.created_on,
            "u": self.last_updated,
            "p": self.last_published,
            "a": self.is_archived,
            "d": self.is_draft,
            "f": self.field_data,
            "live": self.live,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ItemVariant:
        return cls(
            id=record["id"],
            locale=record["l"],
            created_on=record["co"],
            last_updated=record["u"],
            last_published=record["p"],
            is_archived=record["a"],
            is_draft=record["d"],
            field_data=record["f"],
            live=record["live"],
        )


@dataclass(slots=True)
class _Collection:
    id: str
    site_id: str
    display_name: str
    singular_name: str
    slug: str
    created_on: str
    last_updated: str
    fields: dict[str, FieldDef] = field(default_factory=dict)  # by field slug, in order
    items: dict[str, dict[str, ItemVariant]] = field(default_factory=dict)  # id -> locale ->
    slugs: dict[tuple[str, str], str] = field(default_factory=dict)  # (locale, slug) -> id
    #: slugs of deleted items, still taken until the next site publish (user reports)
    retired: dict[tuple[str, str], str] = field(default_factory=dict)
    #: fields were added or removed since the site was last published while items were live
    schema_changed: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "displayName": self.display_name,
            "singularName": self.singular_name,
            "slug": self.slug,
            "createdOn": self.created_on,
            "lastUpdated": self.last_updated,
        }

    def to_json(self) -> dict[str, Any]:
        body = self.summary()
        body["fields"] = [definition.to_json() for definition in self.fields.values()]
        return body

    def to_record(self) -> dict[str, Any]:
        record = {"op": "collection", "site": self.site_id, **self.to_json()}
        record["schemaChanged"] = self.schema_changed
        # Deleted items leave no record of their own: a snapshot keeps their slugs taken here.
        record["retiredSlugs"] = [[loc, slug, item] for (loc, slug), item in self.retired.items()]
        return record

    @property
    def has_live_items(self) -> bool:
        return any(v.live is not None for vs in self.items.values() for v in vs.values())

    def field_by_id(self, field_id: str) -> FieldDef | None:
        for definition in self.fields.values():
            if definition.id == field_id:
                return definition
        return None


@dataclass(slots=True)
class _Site:
    id: str
    workspace_id: str
    display_name: str
    short_name: str
    created_on: str
    last_updated: str
    last_published: str | None
    locales: list[dict[str, Any]]
    item_count: int = 0

    def to_json(self) -> dict[str, Any]:
        primary, *secondary = self.locales
        return {
            "id": self.id,
            "workspaceId": self.workspace_id,
            "createdOn": self.created_on,
            "displayName": self.display_name,
            "shortName": self.short_name,
            "lastPublished": self.last_published,
            "lastUpdated": self.last_updated,
            "previewUrl": f"https://sandbox.invalid/{self.short_name}/preview.png",
            "timeZone": "UTC",
            "parentFolderId": None,
            "customDomains": [],
            "locales": {"primary": primary, "secondary": secondary},
            "dataCollectionEnabled": False,
            "dataCollectionType": "disabled",
        }

    def to_record(self) -> dict[str, Any]:
        record = self.to_json()
        record["op"] = "site"
        return record

    @property
    def cms_locale_ids(self) -> list[str]:
        return [str(locale["cmsLocaleId"]) for locale in self.locales]


@dataclass(slots=True)
class _Draft:
    """One item of a create request, validated and ready to be written."""

    index: int
    field_data: dict[str, Any]
    locales: list[str]
    is_draft: bool
    is_archived: bool


class SandboxCore:
    """Sites, collections, fields and items; no I/O except the optional journal."""

    def __init__(self, config: SandboxConfig, journal: Journal | None = None) -> None:
        self.config = config
        self._journal = journal
        self._pending: list[dict[str, Any]] = []
        self._recording = True
        self._counter = 0
        self._id_middle = hashlib.blake2b(str(self.config.seed).encode(), digest_size=5).hexdigest()
        self._last_site_publish: dict[str, float] = {}
        self.sites: dict[str, _Site] = {}
        self.collections: dict[str, _Collection] = {}
        self.assets = AssetStore(
            config,
            AssetHooks(
                new_id=self.new_id,
                now=self._now,
                record=self._record,
                commit=self._commit,
                check_site=self._site,
            ),
        )
        entries = journal.load() if journal is not None else []
        if entries:
            self._replay(entries)
        else:
            self._create_site()
            self._pending.clear()
        if journal is not None:
            journal.rewrite(self.snapshot())

    # ---- ids, time, journal ---------------------------------------------------------------

    def new_id(self) -> str:
        """A MongoDB ObjectId, as Webflow's ids are (``562ac0395358780a1f5e6fbc``): seconds
        since the epoch, five bytes fixed per sandbox (from its seed), then a counter. So ids
        made later sort later, as Webflow's do, which is what an index over them meets."""
        self._counter += 1
        seconds = int(self.config.wall_clock().timestamp()) & 0xFFFFFFFF
        return f"{seconds:08x}{self._id_middle}{self._counter & 0xFFFFFF:06x}"

    def _now(self) -> str:
        return format_timestamp(self.config.wall_clock())

    def _record(self, op: dict[str, Any]) -> None:
        if self._recording:
            self._pending.append(op)

    def _commit(self) -> None:
        if not self._pending:
            return
        ops, self._pending = self._pending, []
        if self._journal is not None:
            self._journal.append({"n": self._counter, "ops": ops})

    def snapshot(self) -> Iterator[dict[str, Any]]:
        """The whole state as journal lines (used to compact the journal)."""
        yield {"n": self._counter, "ops": [{"op": "reset"}]}
        yield {"n": self._counter, "ops": [site.to_record() for site in self.sites.values()]}
        for collection in self.collections.values():
            yield {"n": self._counter, "ops": [collection.to_record()]}
        for collection in self.collections.values():
            batch: list[dict[str, Any]] = []
            for variants in collection.items.values():
                batch.extend(v.to_record(collection.id) for v in variants.values())
                if len(batch) >= 1000:
                    yield {"n": self._counter, "ops": batch}
                    batch = []
            if batch:
                yield {"n": self._counter, "ops": batch}
        assets = list(self.assets.records())
        if assets:
            yield {"n": self._counter, "ops": assets}

    def close(self) -> None:
        if self._journal is not None:
            self._journal.rewrite(self.snapshot())
            self._journal.close()

    def _replay(self, entries: Iterable[dict[str, Any]]) -> None:
        self._recording = False
        try:
            for entry in entries:
                self._counter = max(self._counter, int(entry.get("n", 0)))
                for op in entry.get("ops", []):
                    self._apply(op)
        finally:
            self._recording = True

    def _apply(self, op: Mapping[str, Any]) -> None:
        kind = op.get("op")
        if kind == "reset":
            self.sites.clear()
            self.collections.clear()
            self.assets.forget()
        elif kind == "site":
            self._put_site(
                _Site(
                    id=op["id"],
                    workspace_id=op["workspaceId"],
                    display_name=op["displayName"],
                    short_name=op["shortName"],
                    created_on=op["createdOn"],
                    last_updated=op["lastUpdated"],
                    last_published=op["lastPublished"],
                    locales=[op["locales"]["primary"], *op["locales"]["secondary"]],
                )
            )
        elif kind == "collection":
            existing = self.collections.get(op["id"])
            collection = _Collection(
                id=op["id"],
                site_id=op["site"],
                display_name=op["displayName"],
                singular_name=op["singularName"],
                slug=op["slug"],
                created_on=op["createdOn"],
                last_updated=op["lastUpdated"],
                fields={f["slug"]: FieldDef.from_json(f) for f in op["fields"]},
                schema_changed=bool(op.get("schemaChanged", False)),
                retired={(loc, slug): item for loc, slug, item in op.get("retiredSlugs", [])},
            )
            if existing is not None:
                collection.items, collection.slugs = existing.items, existing.slugs
                collection.retired = existing.retired
            self._put_collection(collection)
        elif kind == "drop_collection":
            self._drop_collection(op["id"])
        elif kind == "item":
            self._put_variant(self.collections[op["c"]], ItemVariant.from_record(op))
        elif kind == "drop_item":
            self._drop_variant(self.collections[op["c"]], op["id"], op["l"])
        elif kind == "release_slugs":
            self._release_slugs(self.collections[op["c"]])
        elif kind in ("asset", "drop_asset"):
            self.assets.apply(op)

    # ---- primitives: the only code that changes state --------------------------------------

    def _put_site(self, site: _Site) -> None:
        old = self.sites.get(site.id)
        if old is not None:
            site.item_count = old.item_count
        self.sites[site.id] = site
        self._record(site.to_record())

    def _put_collection(self, collection: _Collection) -> None:
        self.collections[collection.id] = collection
        self._record(collection.to_record())

    def _drop_collection(self, collection_id: str) -> None:
        collection = self.collections.pop(collection_id)
        self.sites[collection.site_id].item_count -= len(collection.items)
        self._record({"op": "drop_collection", "id": collection_id})

    def _put_variant(self, collection: _Collection, variant: ItemVariant) -> None:
        variants = collection.items.get(variant.id)
        if variants is None:
            variants = collection.items[variant.id] = {}
            self.sites[collection.site_id].item_count += 1
        old = variants.get(variant.locale)
        previous = old.indexed_slug if old is not None else None
        if previous is not None and previous != variant.slug:
            stale = (variant.locale, previous)
            if collection.slugs.get(stale) == variant.id:
                del collection.slugs[stale]
        variants[variant.locale] = variant
        collection.slugs[(variant.locale, variant.slug)] = variant.id
        variant.indexed_slug = variant.slug
        self._record(variant.to_record(collection.id))

    def _drop_variant(self, collection: _Collection, item_id: str, locale: str) -> None:
        variants = collection.items[item_id]
        variant = variants.pop(locale)
        slug_key = (locale, variant.indexed_slug or variant.slug)
        if collection.slugs.get(slug_key) == item_id:
            del collection.slugs[slug_key]
            collection.retired[slug_key] = item_id
        if not variants:
            del collection.items[item_id]
            self.sites[collection.site_id].item_count -= 1
        self._record({"op": "drop_item", "c": collection.id, "id": item_id, "l": locale})

    def _release_slugs(self, collection: _Collection) -> None:
        collection.retired.clear()
        self._record({"op": "release_slugs", "c": collection.id})

    # ---- sites ----------------------------------------------------------------------------

    def _create_site(self) -> None:
        now = self._now()
        locales = []
        for position, tag in enumerate(self.config.locales):
            locales.append(
                {
                    "id": self.new_id(),
                    "cmsLocaleId": self.new_id(),
                    "enabled": True,
                    "displayName": _LOCALE_NAMES.get(tag.split("-")[0].lower(), tag),
                    "displayImageId": None,
                    "redirect": position > 0,
                    "subdirectory": "" if position == 0 else tag.lower(),
                    "tag": tag,
                }
            )
        self._put_site(
            _Site(
                id=self.new_id(),
                workspace_id=self.new_id(),
                display_name="Flowport Sandbox",
                short_name="flowport-sandbox",
                created_on=now,
                last_updated=now,
                last_published=None,
                locales=locales,
            )
        )

    @property
    def site_id(self) -> str:
        return next(iter(self.sites))

    def _site(self, site_id: str) -> _Site:
        _check_id("site_id", site_id)
        site = self.sites.get(site_id)
        if site is None:
            raise not_found("Site", site_id)
        return site

    def list_sites(self) -> dict[str, Any]:
        return {"sites": [site.to_json() for site in self.sites.values()]}

    def get_site(self, site_id: str) -> dict[str, Any]:
        return self._site(site_id).to_json()

    def publish_site(self, site_id: str, body: object) -> dict[str, Any]:
        site = self._site(site_id)
        to_subdomain = _site_publish_target(_object(body))
        self._claim_site_publish(site_id)
        now = self._now()
        self._publish_staged_items(site_id, now)
        site.last_published = now
        site.last_updated = now
        self._put_site(site)
        self._commit()
        return {
            "customDomains": [],
            "publishToWebflowSubdomain": to_subdomain,
            "publishScope": "site",
        }

    def _claim_site_publish(self, site_id: str) -> None:
        """One successful site publish per interval, or a 429 saying when the next may come."""
        now_clock = self.config.clock()
        last = self._last_site_publish.get(site_id)
        interval = self.config.site_publish_interval
        if last is not None and now_clock - last < interval:
            wait = interval - (now_clock - last)
            raise ApiError(
                429,
                "too_many_requests",
                "Site publish is limited to one successful publish per "
                f"{interval:g} seconds; retry in {wait:.3f} s",
                headers={
                    "Retry-After": format_seconds(wait, compressed_time=self.config.compressed_time)
                },
            )
        self._last_site_publish[site_id] = now_clock

    def _publish_staged_items(self, site_id: str, now: str) -> None:
        # A site publish takes every staged item that is not a draft live; drafts of live items
        # stay live unchanged (Webflow's July 2025 rule) and archived items leave the live site.
        for collection in self.collections.values():
            if collection.site_id != site_id:
                continue
            if collection.retired:
                self._release_slugs(collection)
            if collection.schema_changed:
                collection.schema_changed = False
                self._put_collection(collection)
            for variants in collection.items.values():
                for variant in variants.values():
                    if variant.is_archived:
                        if variant.live is not None:
                            variant.live = None
                            self._put_variant(collection, variant)
                    elif not variant.is_draft:
                        variant.publish(now)
                        self._put_variant(collection, variant)

    # ---- collections and fields -----------------------------------------------------------

    def _collection(self, collection_id: str) -> _Collection:
        _check_id("collection_id", collection_id)
        collection = self.collections.get(collection_id)
        if collection is None:
            raise not_found("Collection", collection_id, code="collection_not_found")
        return collection

    def list_collections(self, site_id: str) -> dict[str, Any]:
        self._site(site_id)
        return {
            "collections": [c.summary() for c in self.collections.values() if c.site_id == site_id]
        }

    def get_collection(self, collection_id: str) -> dict[str, Any]:
        return self._collection(collection_id).to_json()

    def create_collection(self, site_id: str, body: object) -> dict[str, Any]:
        site = self._site(site_id)
        body = _object(body)
        _reject_unknown(body, {"displayName", "singularName", "slug", "fields"})
        display_name = _required_text(body, "displayName")
        singular_name = _required_text(body, "singularName")
        slug = body.get("slug")
        if slug is None:
            slug = slugify_field_name(display_name)
        if not isinstance(slug, str) or slugify_field_name(slug) != slug or not slug:
            raise validation_error(
                "Collection slug must be lowercase letters, digits and hyphens",
                [{"param": "slug", "description": f"invalid slug: {slug!r}"}],
            )
        for other in self.collections.values():
            if other.site_id != site.id:
                continue
            if other.display_name.lower() == display_name.lower() or other.slug == slug:
                raise ApiError(
                    409,
                    "duplicate_collection",
                    f"Collection already exists: '{other.display_name}' (slug '{other.slug}')",
                )
        now = self._now()
        collection = _Collection(
            id=self.new_id(),
            site_id=site.id,
            display_name=display_name,
            singular_name=singular_name,
            slug=slug,
            created_on=now,
            last_updated=now,
        )
        for definition in (
            FieldDef(self.new_id(), "name", "Name", "PlainText", True, True, None,
                     {"maxLength": self.config.name_max_length}),
            FieldDef(self.new_id(), "slug", "Slug", "PlainText", True, True, None,
                     {"maxLength": self.config.slug_max_length, "alphaNumericOnly": True}),
        ):  # fmt: skip
            collection.fields[definition.slug] = definition
        raw_fields = body.get("fields", [])
        if not isinstance(raw_fields, list):
            raise validation_error(
                "fields must be an array", [{"param": "fields", "description": "not an array"}]
            )
        for index, raw in enumerate(raw_fields):
            definition = self._build_field(collection, raw, index=index)
            collection.fields[definition.slug] = definition
        self._put_collection(collection)
        self._commit()
        return collection.to_json()

    def delete_collection(self, collection_id: str) -> None:
        self._collection(collection_id)
        self._drop_collection(collection_id)
        self._commit()

    def _build_field(
        self, collection: _Collection, raw: object, *, index: int | None = None
    ) -> FieldDef:
        def fail(param: str, description: str) -> ApiError:
            detail: dict[str, Any] = {"param": param, "description": description}
            if index is not None:
                detail["index"] = index
            return validation_error(f"Invalid field: {description}", [detail])

        if not isinstance(raw, dict):
            raise fail("fields", "a field must be an object")
        unknown = sorted(set(raw) - _FIELD_CREATE_KEYS)
        if unknown:
            raise fail(unknown[0], f"unknown key(s) for a field: {', '.join(unknown)}")
        field_type = raw.get("type")
        if not isinstance(field_type, str) or field_type not in CREATABLE_TYPES:
            raise fail("type", f"unsupported field type {field_type!r}")
        display_name = raw.get("displayName")
        if not isinstance(display_name, str) or not display_name.strip():
            raise fail("displayName", "displayName is required")
        slug = slugify_field_name(display_name)
        if not slug:
            raise fail("displayName", f"cannot make a slug from {display_name!r}")
        if slug in collection.fields:
            raise fail("displayName", f"a field with slug '{slug}' already exists")
        is_required = raw.get("isRequired", False)
        if not isinstance(is_required, bool):
            raise fail("isRequired", "isRequired must be a boolean")
        help_text = raw.get("helpText")
        if help_text is not None and not isinstance(help_text, str):
            raise fail("helpText", "helpText must be a string")
        return FieldDef(
            id=self.new_id(),
            slug=slug,
            display_name=display_name,
            type=str(field_type),
            is_required=is_required,
            help_text=help_text,
            validations=self._field_validations(
                collection, str(field_type), raw.get("metadata"), fail
            ),
        )

    def _field_validations(
        self,
        collection: _Collection,
        field_type: str,
        metadata: object,
        fail: Callable[[str, str], ApiError],
    ) -> dict[str, Any] | None:
        """What a field's metadata sets: an Option field's options, a reference's target."""
        if field_type == "Option":
            names = _option_names(metadata, fail)
            return {"options": [{"id": self.new_id(), "name": n} for n in names]}
        if field_type in ("Reference", "MultiReference"):
            target = metadata.get("collectionId") if isinstance(metadata, dict) else None
            if not isinstance(target, str):
                raise fail("metadata.collectionId", f"a {field_type} field needs a collectionId")
            referenced = self.collections.get(target)
            if referenced is None or referenced.site_id != collection.site_id:
                raise fail("metadata.collectionId", f"no collection '{target}' in this site")
            return {"collectionId": target}
        if metadata is not None:
            raise fail("metadata", "metadata is only for Option, Reference and MultiReference")
        return None

    def create_field(self, collection_id: str, body: object) -> dict[str, Any]:
        collection = self._collection(collection_id)
        definition = self._build_field(collection, _object(body))
        if definition.is_required and collection.items:
            raise validation_error(
                f"Field '{definition.slug}' cannot be created as required: the collection "
                f"already has {len(collection.items)} items without a value for it",
                [{"param": "isRequired", "description": "collection has items"}],
            )
        collection.fields[definition.slug] = definition
        collection.last_updated = self._now()
        collection.schema_changed = collection.schema_changed or collection.has_live_items
        self._put_collection(collection)
        self._commit()
        return definition.to_json()

    def _field(self, collection: _Collection, field_id: str) -> FieldDef:
        _check_id("field_id", field_id)
        definition = collection.field_by_id(field_id)
        if definition is None:
            raise not_found("Field", field_id)
        return definition

    def update_field(self, collection_id: str, field_id: str, body: object) -> dict[str, Any]:
        collection = self._collection(collection_id)
        definition = self._field(collection, field_id)
        body = _object(body)
        _reject_unknown(body, _FIELD_UPDATE_KEYS)
        if "displayName" in body:
            _required_text(body, "displayName")
        if "helpText" in body and body["helpText"] is not None:
            _required_text(body, "helpText")
        if "isRequired" in body:
            required = body["isRequired"]
            if not isinstance(required, bool):
                raise validation_error(
                    "isRequired must be a boolean",
                    [{"param": "isRequired", "description": "must be a boolean"}],
                )
            if definition.slug in ("name", "slug") and not required:
                raise validation_error(f"Field '{definition.slug}' is always required")
            if required and not definition.is_required:
                missing = sum(
                    1
                    for variants in collection.items.values()
                    for v in variants.values()
                    if v.field_data.get(definition.slug) in (None, "", [])
                )
                if missing:
                    raise validation_error(
                        f"Field '{definition.slug}' cannot become required: {missing} items "
                        "have no value for it",
                        [{"param": "isRequired", "description": "items lack a value"}],
                    )
            definition.is_required = required
        if "displayName" in body:
            definition.display_name = body["displayName"]
        if "helpText" in body:
            definition.help_text = body["helpText"]
        collection.last_updated = self._now()
        self._put_collection(collection)
        self._commit()
        return definition.to_json()

    def delete_field(self, collection_id: str, field_id: str) -> None:
        collection = self._collection(collection_id)
        definition = self._field(collection, field_id)
        if definition.slug in ("name", "slug"):
            raise validation_error(f"Field '{definition.slug}' cannot be deleted")
        del collection.fields[definition.slug]
        collection.last_updated = self._now()
        collection.schema_changed = collection.schema_changed or collection.has_live_items
        self._put_collection(collection)
        for variants in collection.items.values():
            for variant in variants.values():
                touched = False
                if definition.slug in variant.field_data:
                    variant.field_data = {
                        k: v for k, v in variant.field_data.items() if k != definition.slug
                    }
                    touched = True
                if variant.live is not None and definition.slug in variant.live["fieldData"]:
                    live_data = variant.live["fieldData"]
                    variant.live = {
                        **variant.live,
                        "fieldData": {k: v for k, v in live_data.items() if k != definition.slug},
                    }
                    touched = True
                if touched:
                    self._put_variant(collection, variant)
        self._commit()

    # ---- items: reading -------------------------------------------------------------------

    def _locales_param(self, collection: _Collection, raw: str | None) -> list[str]:
        site = self.sites[collection.site_id]
        if not raw:
            return [site.cms_locale_ids[0]]
        wanted = [part.strip() for part in raw.split(",") if part.strip()]
        unknown = [w for w in wanted if w not in site.cms_locale_ids]
        if unknown:
            raise validation_error(
                f"Unknown cmsLocaleId: {', '.join(unknown)}",
                [{"param": "cmsLocaleId", "description": f"unknown: {', '.join(unknown)}"}],
            )
        return wanted

    def list_items(
        self, collection_id: str, query: Mapping[str, str], *, live: bool = False
    ) -> dict[str, Any]:
        collection = self._collection(collection_id)
        offset = _int_param(query, "offset", 0, minimum=0)
        limit = _int_param(query, "limit", 100, minimum=1, maximum=100)
        locales = self._locales_param(collection, query.get("cmsLocaleId"))
        sort_by, sort_order = _sort_params(query)
        name = query.get("name")
        slug = query.get("slug")
        ranges = _date_ranges(query)
        rendered: list[dict[str, Any]] = []
        if slug is None and name is None and not ranges and sort_by is None and not live:
            return _staged_page(collection, locales, offset, limit, descending=sort_order == "desc")
        if slug is None and name is None and not live:
            return _sorted_staged_page(
                collection, locales, offset, limit, ranges, sort_by, sort_order == "desc"
            )
        if slug is not None and not ranges and sort_by is None:
            # The slug index answers the common "does this slug exist" lookup without a scan.
            candidates: Iterable[ItemVariant] = (
                collection.items[item_id][locale]
                for locale in locales
                if (item_id := collection.slugs.get((locale, slug))) is not None
            )
        else:
            candidates = (
                variants[locale]
                for variants in collection.items.values()
                for locale in locales
                if locale in variants
            )
        for variant in candidates:
            view = variant.live if live else variant.staged()
            if view is None:
                continue
            data = view["fieldData"]
            if name is not None and data.get("name") != name:
                continue
            if slug is not None and data.get("slug") != slug:
                continue
            if ranges and not _in_ranges(view, ranges):
                continue
            rendered.append(view)
        if sort_by is not None:
            rendered.sort(key=lambda view: _sort_key(view, sort_by))
        if sort_order == "desc":
            rendered.reverse()
        return {
            "items": rendered[offset : offset + limit],
            "pagination": {"limit": limit, "offset": offset, "total": len(rendered)},
        }

    def _variant(self, collection: _Collection, item_id: str, locale: object) -> ItemVariant:
        _check_id("item_id", item_id)
        if locale is not None and not isinstance(locale, str):
            raise validation_error(
                "cmsLocaleId must be a string",
                [{"param": "cmsLocaleId", "description": f"must be a string, not {locale!r}"}],
            )
        variants = collection.items.get(item_id)
        if variants is None:
            # A single item that is not there (or was deleted) is resource_not_found, as Webflow
            # words it (issue 17); bulk requests name their missing ids as item_not_found.
            raise not_found("Item", item_id)
        if locale:
            self._locales_param(collection, locale)
            variant = variants.get(locale)
        else:
            primary = self.sites[collection.site_id].cms_locale_ids[0]
            variant = variants.get(primary) or next(iter(variants.values()))
        if variant is None:
            raise not_found("Item", f"{item_id} in locale {locale}")
        return variant

    def get_item(
        self, collection_id: str, item_id: str, locale: str | None = None, *, live: bool = False
    ) -> dict[str, Any]:
        variant = self._variant(self._collection(collection_id), item_id, locale)
        if not live:
            return variant.staged()
        if variant.live is None:
            raise not_found("Live item", item_id)
        return variant.live

    # ---- items: creating ------------------------------------------------------------------

    def _checker(
        self, site_id: str, skip_invalid_files: bool | None, files: FetchedFiles | None
    ) -> ValueChecker:
        assets = self.assets
        return ValueChecker(
            config=self.config,
            new_id=self.new_id,
            reference_exists=self._reference_exists,
            skip_invalid_files=(
                self.config.skip_invalid_files if skip_invalid_files is None else skip_invalid_files
            ),
            files=files or {},
            file_url=lambda file_id, name: assets.file_url(site_id, file_id, name),
            existing_file_url=lambda file_id: assets.existing_file_url(site_id, file_id),
        )

    def wanted_files(self, collection_id: str, body: object) -> list[Wanted]:
        """The file URLs a create or update body gives, which Webflow fetches before it writes
        (the server fetches them, then calls the core with ``files``). A body the core will
        refuse anyway wants none."""
        collection = self.collections.get(collection_id)
        if collection is None or not isinstance(body, dict):
            return []
        datas: list[object] = []
        field_data = body.get("fieldData")
        datas.extend(field_data if isinstance(field_data, list) else [field_data])
        items = body.get("items")
        if isinstance(items, list):
            datas.extend(item.get("fieldData") for item in items if isinstance(item, dict))
        return [want for data in datas for want in wanted_files(collection.fields, data)]

    def _reference_exists(self, collection_id: str, item_id: str) -> bool:
        collection = self.collections.get(collection_id)
        return collection is not None and item_id in collection.items

    def _check_field_data(
        self,
        collection: _Collection,
        data: object,
        checker: ValueChecker,
        *,
        partial: bool,
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        if not isinstance(data, dict):
            return {}, [("fieldData", "fieldData must be an object")]
        clean: dict[str, Any] = {}
        errors: list[tuple[str, str]] = []
        for key, value in data.items():
            definition = collection.fields.get(key)
            try:
                if definition is None:
                    raise InvalidValue(f"Unknown field '{key}': the collection has no such field")
                if key == "name":
                    clean[key] = checker.name(value)
                elif key == "slug":
                    clean[key] = checker.slug(value)
                else:
                    clean[key] = checker.check(definition, value)
            except InvalidValue as problem:
                errors.append((key, str(problem)))
        if not partial:
            for slug, definition in collection.fields.items():
                if definition.is_required and slug not in data:
                    errors.append((slug, f"Field '{slug}' is required"))
        return clean, errors

    def _check_flags(self, raw: Mapping[str, Any]) -> list[tuple[str, str]]:
        errors = [(key, f"Unknown key '{key}' in item") for key in raw if key not in _ITEM_KEYS]
        for flag in ("isDraft", "isArchived"):
            if flag in raw and not isinstance(raw[flag], bool):
                errors.append((flag, f"{flag} must be a boolean"))
        return errors

    def _free_slug(
        self,
        collection: _Collection,
        slug: str,
        locales: list[str],
        taken: set[tuple[str, str]],
        owner: str | None = None,
    ) -> bool:
        for locale in locales:
            holder = collection.slugs.get((locale, slug)) or collection.retired.get((locale, slug))
            if (holder is not None and holder != owner) or (locale, slug) in taken:
                return False
        return True

    def _claim_slug(
        self,
        collection: _Collection,
        slug: str,
        locales: list[str],
        taken: set[tuple[str, str]],
        owner: str | None = None,
    ) -> str:
        if not self._free_slug(collection, slug, locales, taken, owner):
            if self.config.duplicate_slug == "reject":
                raise InvalidValue(f"Unique value is already in database: '{slug}'")
            number = 2
            while not self._free_slug(collection, f"{slug}-{number}", locales, taken, owner):
                number += 1
            slug = f"{slug}-{number}"
        taken.update((locale, slug) for locale in locales)
        return slug

    def create_items(
        self,
        collection_id: str,
        body: object,
        *,
        live: bool = False,
        skip_invalid_files: bool | None = None,
        files: FetchedFiles | None = None,
    ) -> dict[str, Any]:
        """POST /items and /items/live: a single item body or ``{items: [...]}``."""
        collection = self._collection(collection_id)
        body = _object(body)
        many = "items" in body
        if many:
            _reject_unknown(body, {"items"})
            raws = _item_list(body["items"], self.config.max_items_per_request)
        else:
            raws = [body]
        site = self.sites[collection.site_id]
        checker = self._checker(site.id, skip_invalid_files, files)
        drafts: list[_Draft] = []
        details: list[dict[str, Any]] = []
        taken: set[tuple[str, str]] = set()
        for index, raw in enumerate(raws):
            position = index if many else None
            if not isinstance(raw, dict):
                details.append(_detail("items", "an item must be an object", position))
                continue
            problems = self._check_flags(raw)
            if "cmsLocaleIds" in raw:
                problems.append(("cmsLocaleIds", "use /items/bulk to create items in locales"))
            locale = raw.get("cmsLocaleId") or site.cms_locale_ids[0]
            if locale not in site.cms_locale_ids:
                problems.append(("cmsLocaleId", f"unknown cmsLocaleId '{locale}'"))
            draft = self._draft(collection, raw, index, [str(locale)], checker, taken, problems,
                                live=live)  # fmt: skip
            if problems:
                details.extend(_detail(p, d, position) for p, d in problems)
            elif draft is not None:
                drafts.append(draft)
        self._settle(site, details, drafts)
        self.assets.host_files(site.id, checker.hosted)
        variants = self._write_drafts(collection, drafts, live=live)
        if not many:
            return variants[0].staged()
        return _items_answer([v.staged() for v in variants], details)

    def create_items_bulk(
        self,
        collection_id: str,
        body: object,
        *,
        skip_invalid_files: bool | None = None,
        files: FetchedFiles | None = None,
    ) -> dict[str, Any]:
        """POST /items/bulk: ``fieldData`` object or array, created in each of ``cmsLocaleIds``."""
        collection = self._collection(collection_id)
        body = _object(body)
        site = self.sites[collection.site_id]
        problems = self._check_flags(body)
        locales = body.get("cmsLocaleIds") or [site.cms_locale_ids[0]]
        if not isinstance(locales, list) or not all(isinstance(x, str) for x in locales):
            raise validation_error(
                "cmsLocaleIds must be an array of ids",
                [{"param": "cmsLocaleIds", "description": "must be an array of strings"}],
            )
        unknown = [x for x in locales if x not in site.cms_locale_ids]
        if unknown or len(set(locales)) != len(locales):
            raise validation_error(
                "cmsLocaleIds names unknown or repeated locales",
                [{"param": "cmsLocaleIds", "description": f"invalid: {locales}"}],
            )
        if problems:
            raise validation_error("Validation Failure", [_detail(p, d, None) for p, d in problems])
        field_data = body.get("fieldData")
        many = isinstance(field_data, list)
        entries = (
            _item_list(field_data, self.config.max_items_per_request) if many else [field_data]
        )
        checker = self._checker(site.id, skip_invalid_files, files)
        drafts: list[_Draft] = []
        details: list[dict[str, Any]] = []
        taken: set[tuple[str, str]] = set()
        for index, data in enumerate(entries):
            raw: dict[str, Any] = {k: body[k] for k in ("isDraft", "isArchived") if k in body}
            raw["fieldData"] = data
            item_problems: list[tuple[str, str]] = []
            draft = self._draft(collection, raw, index, list(locales), checker, taken,
                                item_problems, live=False)  # fmt: skip
            if item_problems:
                details.extend(_detail(p, d, index if many else None) for p, d in item_problems)
            elif draft is not None:
                drafts.append(draft)
        self._settle(site, details, drafts)
        self.assets.host_files(site.id, checker.hosted)
        variants = self._write_drafts(collection, drafts, live=False)
        return _items_answer([v.staged() for v in variants], details)

    def _draft(
        self,
        collection: _Collection,
        raw: Mapping[str, Any],
        index: int,
        locales: list[str],
        checker: ValueChecker,
        taken: set[tuple[str, str]],
        problems: list[tuple[str, str]],
        *,
        live: bool,
    ) -> _Draft | None:
        clean, errors = self._check_field_data(collection, raw.get("fieldData"), checker,
                                               partial=False)  # fmt: skip
        problems.extend(errors)
        if problems:
            return None
        try:
            clean["slug"] = self._claim_slug(collection, clean["slug"], locales, taken)
        except InvalidValue as problem:
            problems.append(("slug", str(problem)))
            return None
        return _Draft(
            index=index,
            field_data={k: v for k, v in clean.items() if v is not None},
            locales=locales,
            is_draft=False if live else bool(raw.get("isDraft", True)),
            is_archived=bool(raw.get("isArchived", False)),
        )

    def _settle(self, site: _Site, details: list[dict[str, Any]], drafts: list[_Draft]) -> None:
        """Refuse the request if it must be refused; afterwards nothing can fail."""
        if details and (self.config.bulk_invalid == "reject_all" or not drafts):
            raise validation_error("Validation Failure", details)
        site_items = site.item_count
        allowed = self.config.items_allowed
        if site_items + len(drafts) > allowed:
            # Webflow's answer at the limit is not documented: a 400 naming the limit is the
            # sandbox's choice (README lists it as unconfirmed).
            raise validation_error(
                f"Item limit reached: the site's {self.config.plan} plan allows {allowed} CMS "
                f"items; it has {site_items} and this request adds {len(drafts)}",
                [{"param": "items", "description": f"plan limit {allowed} items"}],
            )

    def _write_drafts(
        self, collection: _Collection, drafts: list[_Draft], *, live: bool
    ) -> list[ItemVariant]:
        now = self._now()
        written: list[ItemVariant] = []
        for draft in drafts:
            item_id = self.new_id()
            for locale in draft.locales:
                variant = ItemVariant(
                    id=item_id,
                    locale=locale,
                    created_on=now,
                    last_updated=now,
                    last_published=None,
                    is_archived=draft.is_archived,
                    is_draft=draft.is_draft,
                    field_data=draft.field_data,
                )
                if live and not draft.is_archived:
                    variant.publish(now)
                self._put_variant(collection, variant)
                written.append(variant)
        self._commit()
        return written

    # ---- items: updating, deleting, publishing --------------------------------------------

    def update_items(
        self,
        collection_id: str,
        body: object,
        *,
        live: bool = False,
        skip_invalid_files: bool | None = None,
        files: FetchedFiles | None = None,
    ) -> dict[str, Any]:
        """PATCH /items and /items/live: ``{items: [{id, fieldData, ...}]}``."""
        collection = self._collection(collection_id)
        body = _object(body)
        _reject_unknown(body, {"items"})
        raws = _item_list(body.get("items"), self.config.max_items_per_request)
        return self._update(collection, raws, live=live, many=True,
                            skip_invalid_files=skip_invalid_files, files=files)  # fmt: skip

    def update_item(
        self,
        collection_id: str,
        item_id: str,
        body: object,
        *,
        live: bool = False,
        skip_invalid_files: bool | None = None,
        files: FetchedFiles | None = None,
    ) -> dict[str, Any]:
        collection = self._collection(collection_id)
        _check_id("item_id", item_id)
        raw = dict(_object(body))
        if raw.get("id", item_id) != item_id:
            raise validation_error(
                "The body's id differs from the item id in the path",
                [{"param": "id", "description": "does not match the path"}],
            )
        raw["id"] = item_id
        return self._update(collection, [raw], live=live, many=False,
                            skip_invalid_files=skip_invalid_files, files=files)  # fmt: skip

    def _update(
        self,
        collection: _Collection,
        raws: list[Any],
        *,
        live: bool,
        many: bool,
        skip_invalid_files: bool | None,
        files: FetchedFiles | None = None,
    ) -> dict[str, Any]:
        if live:
            self._refuse_live_write_after_schema_change(collection)
        checker = self._checker(collection.site_id, skip_invalid_files, files)
        taken: set[tuple[str, str]] = set()
        details: list[dict[str, Any]] = []
        kinds: set[str] = set()
        changes: list[tuple[ItemVariant, dict[str, Any], Mapping[str, Any]]] = []
        for index, raw in enumerate(raws):
            checked = self._check_update(
                collection, raw, index if many else None, live=live, checker=checker, taken=taken
            )
            if isinstance(checked, _Refusal):
                details.extend(checked.details)
                kinds.add(checked.kind)
            else:
                changes.append((*checked, raw))
        if details and (self.config.bulk_invalid == "reject_all" or not changes):
            raise _update_refused(kinds, details, single=not many)
        self.assets.host_files(collection.site_id, checker.hosted)
        now = self._now()
        for variant, clean, raw in changes:
            self._apply_update(collection, variant, clean, raw, live=live, now=now)
        self._commit()
        rendered = [variant.staged() for variant, _, _ in changes]
        if not many:
            return rendered[0]
        return _items_answer(rendered, details)

    def _check_update(
        self,
        collection: _Collection,
        raw: object,
        position: int | None,
        *,
        live: bool,
        checker: ValueChecker,
        taken: set[tuple[str, str]],
    ) -> tuple[ItemVariant, dict[str, Any]] | _Refusal:
        """One entry of an update: the variant it changes and its checked fieldData, or why not.
        A slug it asks for is claimed in ``taken``, so two entries cannot take the same one."""
        if not isinstance(raw, dict):
            return _Refusal("invalid", [_detail("items", "an item must be an object", position)])
        item_id = raw.get("id")
        try:
            variant = self._variant(collection, str(item_id), raw.get("cmsLocaleId"))
        except ApiError as missing:
            kind: Literal["missing", "invalid"] = "missing" if missing.status == 404 else "invalid"
            return _Refusal(kind, [_detail("id", missing.message, position)])
        if live and variant.live is None:
            details = [_detail("id", f"Item not published: '{item_id}'", position)]
            return _Refusal("conflict", details)
        problems = self._check_flags(raw)
        clean, errors = self._check_field_data(collection, raw.get("fieldData", {}), checker,
                                               partial=True)  # fmt: skip
        problems.extend(errors)
        if not problems and "slug" in clean:
            try:
                clean["slug"] = self._claim_slug(collection, clean["slug"], [variant.locale],
                                                 taken, owner=variant.id)  # fmt: skip
            except InvalidValue as problem:
                problems.append(("slug", str(problem)))
        if problems:
            return _Refusal("invalid", [_detail(p, d, position) for p, d in problems])
        return variant, clean

    def _apply_update(
        self,
        collection: _Collection,
        variant: ItemVariant,
        clean: Mapping[str, Any],
        raw: Mapping[str, Any],
        *,
        live: bool,
        now: str,
    ) -> None:
        data = dict(variant.field_data)
        for key, value in clean.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        variant.field_data = data
        variant.last_updated = now
        if "isArchived" in raw:
            variant.is_archived = raw["isArchived"]
        if "isDraft" in raw:
            variant.is_draft = raw["isDraft"]
        if variant.is_archived:
            # Webflow's docs: an archived item leaves the live site at the next site publish
            # (or when unpublished); until then its live version stays as it was.
            pass
        elif live and not raw.get("isDraft", False):
            variant.publish(now)
        self._put_variant(collection, variant)

    def delete_item(
        self, collection_id: str, item_id: str, locale: str | None = None, *, live: bool = False
    ) -> None:
        collection = self._collection(collection_id)
        variant = self._variant(collection, item_id, locale)
        if live:
            self._unpublish(collection, variant)
        else:
            self._drop_variant(collection, variant.id, variant.locale)
        self._commit()

    def delete_items(self, collection_id: str, body: object, *, live: bool = False) -> None:
        """DELETE /items (delete) and /items/live (unpublish): ``{items: [{id, cmsLocaleIds}]}``."""
        collection = self._collection(collection_id)
        body = _object(body)
        _reject_unknown(body, {"items"})
        targets = self._targets(collection, body.get("items"), "items")
        missing = [
            _detail("id", f"Item not found: '{item_id}' in locale {locale}", index)
            for index, item_id, locale in targets
            if locale not in collection.items.get(item_id, {})
        ]
        if missing:
            raise ApiError(404, "item_not_found", "Item not found", missing)
        for _, item_id, locale in targets:
            if live:
                self._unpublish(collection, collection.items[item_id][locale])
            elif locale in collection.items.get(item_id, {}):
                self._drop_variant(collection, item_id, locale)
        self._commit()

    def _unpublish(self, collection: _Collection, variant: ItemVariant) -> None:
        variant.live = None
        variant.is_draft = True
        variant.last_published = None
        self._put_variant(collection, variant)

    def _targets(
        self, collection: _Collection, raw_items: object, param: str
    ) -> list[tuple[int, str, str]]:
        entries = _item_list(raw_items, self.config.max_items_per_request)
        site = self.sites[collection.site_id]
        targets: list[tuple[int, str, str]] = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict) or not is_object_id(entry.get("id")):
                raise validation_error(
                    "Each entry needs a valid item id",
                    [_detail(param, "needs an 'id' of 24 hex characters", index)],
                )
            locales = entry.get("cmsLocaleIds") or [site.cms_locale_ids[0]]
            if not isinstance(locales, list) or any(x not in site.cms_locale_ids for x in locales):
                raise validation_error(
                    "Unknown cmsLocaleIds", [_detail("cmsLocaleIds", f"invalid: {locales}", index)]
                )
            targets.extend((index, str(entry["id"]), str(locale)) for locale in locales)
        return targets

    def publish_items(
        self, collection_id: str, body: object, *, refused_slugs: Sequence[str] = ()
    ) -> dict[str, Any]:
        """``refused_slugs``: a fault, items whose publish is refused as an archived one's."""
        collection = self._collection(collection_id)
        body = _object(body)
        site = self.sites[collection.site_id]
        if "itemIds" in body:
            _reject_unknown(body, {"itemIds"})
            ids = _item_list(body["itemIds"], self.config.max_items_per_request)
            if not all(isinstance(x, str) for x in ids):
                raise validation_error(
                    "itemIds must be strings", [{"param": "itemIds", "description": "not strings"}]
                )
            targets = [(str(item_id), site.cms_locale_ids[0]) for item_id in ids]
        elif "items" in body:
            _reject_unknown(body, {"items"})
            targets = [(i, loc) for _, i, loc in self._targets(collection, body["items"], "items")]
        else:
            raise validation_error(
                "Give itemIds or items to publish",
                [{"param": "itemIds", "description": "required"}],
            )
        now = self._now()
        published: list[str] = []
        errors: list[str] = []
        publishing = {item_id for item_id, _ in targets}
        for item_id, locale in targets:
            variant = collection.items.get(item_id, {}).get(locale)
            if variant is None:
                # The spec's example of a per-item publish error.
                errors.append(f"Staging item ID {item_id} not found.")
            elif variant.is_archived or variant.field_data.get("slug") in refused_slugs:
                errors.append(f"Item is archived and cannot be published: '{item_id}'")
            elif blocked := self._unpublished_references(collection, variant, publishing):
                errors.extend(blocked)
            else:
                variant.publish(now)
                self._put_variant(collection, variant)
                if item_id not in published:
                    published.append(item_id)
        self._commit()
        return {"publishedItemIds": published, "errors": errors}

    def _unpublished_references(
        self, collection: _Collection, variant: ItemVariant, publishing: set[str]
    ) -> list[str]:
        """Why the item cannot be published: each item it references that is not live (users of
        the real API report the publish failing; the wording is the sandbox's)."""
        problems: list[str] = []
        for definition in collection.fields.values():
            if definition.type not in ("Reference", "MultiReference"):
                continue
            value = variant.field_data.get(definition.slug)
            referenced = value if isinstance(value, list) else [value] if value else []
            target = self.collections.get(str((definition.validations or {}).get("collectionId")))
            for ref in referenced:
                if target is collection and ref in publishing:
                    continue  # published by the same request
                versions = target.items.get(ref, {}) if target is not None else {}
                if not any(version.live is not None for version in versions.values()):
                    problems.append(
                        f"Item '{variant.id}' references an unpublished item '{ref}' in field "
                        f"'{definition.slug}'; publish the referenced item first."
                    )
        return problems

    def _refuse_live_write_after_schema_change(self, collection: _Collection) -> None:
        if collection.schema_changed:
            # Users of the real API report a 409 here until the site is published again; only
            # live PATCHes answer it, the live writes for which the spec documents a 409.
            raise ApiError(
                409,
                "conflict",
                "Conflict: the collection's fields changed since the site was last published; "
                "publish the site before writing live items",
            )

    # ---- inspection -----------------------------------------------------------------------

    def dump_state(self) -> dict[str, Any]:
        return {
            "sites": [site.to_json() for site in self.sites.values()],
            "collections": [
                {
                    **collection.to_json(),
                    "siteId": collection.site_id,
                    "items": [
                        v.staged() for variants in collection.items.values()
                        for v in variants.values()
                    ],
                    "liveItems": [
                        v.live for variants in collection.items.values()
                        for v in variants.values() if v.live is not None
                    ],
                }
                for collection in self.collections.values()
            ],
            "itemCount": {site.id: site.item_count for site in self.sites.values()},
            "assets": self.assets.dump(),
        }  # fmt: skip

    def reset(self) -> None:
        self._pending.clear()
        self._record({"op": "reset"})
        self.sites.clear()
        self.collections.clear()
        self.assets.clear()
        self._last_site_publish.clear()
        self._create_site()
        self._commit()


# ---- helpers ----------------------------------------------------------------------------------


def format_seconds(seconds: float, *, compressed_time: bool = False) -> str:
    """A Retry-After value: whole seconds, rounded up, at least 1, as RFC 9110 defines
    delay-seconds and Webflow sends; milliseconds only in compressed time (a rate window shorter
    than Webflow's minute, which tests use so a wait is not rounded up to a second)."""
    seconds = max(seconds, 0.001)
    if compressed_time and seconds < 10:
        return f"{seconds:.3f}".rstrip("0").rstrip(".")
    return str(max(1, math.ceil(seconds)))


def _items_answer(rendered: list[dict[str, Any]], details: list[dict[str, Any]]) -> dict[str, Any]:
    # ``errors`` only appears in bulk_invalid="partial" mode, listing the items left out.
    answer: dict[str, Any] = {"items": rendered}
    if details:
        answer["errors"] = details
    return answer


def _detail(param: str, description: str, index: int | None) -> dict[str, Any]:
    detail: dict[str, Any] = {"param": param, "description": description}
    if index is not None:
        detail["index"] = index
    return detail


def _check_id(param: str, value: str) -> None:
    if not is_object_id(value):
        raise validation_error(
            f"Provided ID is invalid: {param} must be 24 hexadecimal characters",
            [{"param": param, "description": f"invalid id {value!r}"}],
        )


@dataclass(frozen=True, slots=True)
class _Refusal:
    """Why one entry of an update cannot apply; ``kind`` picks the status of a refused request."""

    kind: Literal["invalid", "missing", "conflict"]
    details: list[dict[str, Any]]


def _update_refused(
    kinds: set[str], details: list[dict[str, Any]], *, single: bool = False
) -> ApiError:
    # Only when every entry failed the same way does the answer name that way (404, 409).
    if kinds == {"missing"}:
        if single:
            return ApiError(404, "resource_not_found", str(details[0]["description"]), details)
        return ApiError(404, "item_not_found", "Item not found", details)
    if kinds == {"conflict"}:
        return ApiError(409, "conflict", "Conflict with server data: item not published", details)
    return validation_error("Validation Failure", details)


def _site_publish_target(body: Mapping[str, Any]) -> bool:
    """Whether a site publish body asks for the webflow.io subdomain; refuses what the sandbox
    site cannot do (custom domains, single pages) and a body that asks for nothing."""
    _reject_unknown(body, {"customDomains", "publishToWebflowSubdomain", "pageId"})
    domains = body.get("customDomains")
    to_subdomain = body.get("publishToWebflowSubdomain", False)
    if not isinstance(to_subdomain, bool):
        raise validation_error(
            "publishToWebflowSubdomain must be a boolean",
            [{"param": "publishToWebflowSubdomain", "description": "must be a boolean"}],
        )
    if domains is not None and not isinstance(domains, list):
        raise validation_error(
            "customDomains must be an array",
            [{"param": "customDomains", "description": "must be an array"}],
        )
    if domains:
        # The spec's 400 examples for site-publish: invalid_domain / "Please send a valid custom
        # domain ID", and no_domains / "No domain IDs provided".
        raise ApiError(
            400,
            "invalid_domain",
            "Please send a valid custom domain ID",
            [{"param": "customDomains", "description": f"unknown domain ids: {domains}"}],
        )
    if not domains and not to_subdomain:
        # An empty customDomains list publishes to nothing, as an absent one does.
        raise ApiError(
            400,
            "no_domains",
            "No domain IDs provided",
            [{"param": "customDomains", "description": "no domain to publish to"}],
        )
    if "pageId" in body:
        raise validation_error(
            "The sandbox site has no pages; publish the whole site (omit pageId)",
            [{"param": "pageId", "description": "no page with this id"}],
        )
    return to_subdomain


def _option_names(metadata: object, fail: Callable[[str, str], ApiError]) -> list[str]:
    """An Option field's option names: at least one, each a non-blank string, none repeated."""
    options = metadata.get("options") if isinstance(metadata, dict) else None
    if not isinstance(options, list) or not options:
        raise fail("metadata.options", "an Option field needs metadata.options")
    names: list[str] = []
    for option in options:
        name = option.get("name") if isinstance(option, dict) else None
        if not isinstance(name, str) or not name.strip() or name in names:
            raise fail("metadata.options", f"invalid or repeated option name {name!r}")
        names.append(name)
    return names


def _object(body: object) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise bad_request("Request body must be a JSON object")
    return body


def _reject_unknown(body: Mapping[str, Any], allowed: Iterable[str]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise validation_error(
            f"Unknown key(s) in request body: {', '.join(unknown)}",
            [{"param": key, "description": "unknown key"} for key in unknown],
        )


def _required_text(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise validation_error(
            f"{key} is required and must be a non-empty string",
            [{"param": key, "description": "required"}],
        )
    return value


def _item_list(value: object, maximum: int) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise validation_error(
            "items must be a non-empty array", [{"param": "items", "description": "empty"}]
        )
    if len(value) > maximum:
        raise validation_error(
            f"Too many items: at most {maximum} per request, got {len(value)}",
            [{"param": "items", "description": f"{len(value)} > {maximum}"}],
        )
    return value


def _int_param(
    query: Mapping[str, str], key: str, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    raw = query.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise validation_error(
            f"{key} must be an integer {bounds}",
            [{"param": key, "description": f"invalid value {raw!r}"}],
        )
    return value


_DATE_KEYS = ("createdOn", "lastPublished", "lastUpdated")


_BOUNDS: tuple[Literal["lte", "gte"], ...] = ("lte", "gte")


def _date_ranges(query: Mapping[str, str]) -> list[tuple[str, Literal["lte", "gte"], str]]:
    ranges: list[tuple[str, Literal["lte", "gte"], str]] = []
    for key in _DATE_KEYS:
        for bound in _BOUNDS:
            raw = query.get(f"{key}[{bound}]")
            if raw is None:
                continue
            try:
                moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            except ValueError:
                raise validation_error(
                    f"{key}[{bound}] must be an ISO 8601 date",
                    [{"param": f"{key}[{bound}]", "description": f"invalid {raw!r}"}],
                ) from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            ranges.append((key, bound, format_timestamp(moment)))
    return ranges


def _in_ranges(
    view: Mapping[str, Any], ranges: list[tuple[str, Literal["lte", "gte"], str]]
) -> bool:
    for key, bound, limit in ranges:
        value = view.get(key)
        if value is None:
            return False
        if (bound == "lte" and value > limit) or (bound == "gte" and value < limit):
            return False
    return True


def _staged_page(
    collection: _Collection, locales: Sequence[str], offset: int, limit: int, *, descending: bool
) -> dict[str, Any]:
    """An unfiltered, unsorted page of the staged items: only the page's items are rendered.

    Rendering every item to answer ``limit=1`` (a client's count read) cost ~0.7 s at 100,000
    items, mostly the garbage collector walking the collection each time 100,000 views were
    made; Webflow answers such a read in the same time whatever the collection's size.
    """
    variants = [
        variants[locale]
        for variants in collection.items.values()
        for locale in locales
        if locale in variants
    ]
    if descending:
        variants.reverse()
    return {
        "items": [variant.staged() for variant in variants[offset : offset + limit]],
        "pagination": {"limit": limit, "offset": offset, "total": len(variants)},
    }


#: The staged view's keys a filter or a sort reads, as an item variant holds them.
_VARIANT_DATES: dict[str, Callable[[ItemVariant], str | None]] = {
    "createdOn": lambda variant: variant.created_on,
    "lastUpdated": lambda variant: variant.last_updated,
    "lastPublished": lambda variant: variant.last_published,
}


def _sorted_staged_page(
    collection: _Collection,
    locales: Sequence[str],
    offset: int,
    limit: int,
    ranges: list[tuple[str, Literal["lte", "gte"], str]],
    sort_by: str | None,
    descending: bool,
) -> dict[str, Any]:
    """A page of staged items filtered by dates and sorted, read from the variants: only the
    page's items are rendered. (Rendering every item for every page made a client paging
    through a 100,000-item listing by lastUpdated wait minutes on each run.)"""
    variants = [
        variants[locale]
        for variants in collection.items.values()
        for locale in locales
        if locale in variants
    ]
    for key, bound, value in ranges:
        date_of = _VARIANT_DATES[key]
        variants = [
            variant
            for variant in variants
            if (date := date_of(variant)) is not None
            and (date <= value if bound == "lte" else date >= value)
        ]
    if sort_by is not None:
        variants.sort(key=lambda variant: _variant_sort_key(variant, sort_by))
    if descending:
        variants.reverse()
    return {
        "items": [variant.staged() for variant in variants[offset : offset + limit]],
        "pagination": {"limit": limit, "offset": offset, "total": len(variants)},
    }


def _variant_sort_key(variant: ItemVariant, sort_by: str) -> tuple[int, str]:
    # As _sort_key reads a rendered view.
    date_of = _VARIANT_DATES.get(sort_by)
    value = date_of(variant) if date_of is not None else variant.field_data.get(sort_by)
    return (0, "") if value is None else (1, str(value))


def _sort_params(query: Mapping[str, str]) -> tuple[str | None, str]:
    sort_by = query.get("sortBy")
    if sort_by is not None and sort_by not in _SORT_KEYS:
        raise validation_error(
            f"sortBy must be one of {', '.join(_SORT_KEYS)}",
            [{"param": "sortBy", "description": f"invalid value {sort_by!r}"}],
        )
    sort_order = query.get("sortOrder", "asc")
    if sort_order not in ("asc", "desc"):
        raise validation_error(
            "sortOrder must be asc or desc",
            [{"param": "sortOrder", "description": f"invalid value {sort_order!r}"}],
        )
    return sort_by, sort_order


def _sort_key(view: Mapping[str, Any], sort_by: str) -> tuple[int, str]:
    source = view["fieldData"] if sort_by in ("name", "slug") else view
    value = source.get(sort_by)
    # Items without a value (never published) sort first, as nulls do.
    return (0, "") if value is None else (1, str(value))
