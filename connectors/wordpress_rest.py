"""A WordPress site read through its REST API (``/wp-json/wp/v2/...``).

One source reads one resource (posts, pages, media, categories, tags, users, or the ``rest_base``
of a custom post type or taxonomy) into the shapes of :mod:`flowport.connectors.wordpress_common`.

- Pages of ``per_page`` items (100, WordPress's maximum) ordered by id, so pages do not shift
  between requests; ``X-WP-TotalPages`` says how many. Up to ``max_pages_in_flight`` pages are
  fetched at once, a window at a time, and yielded in order: memory holds one window.
- ``_embed`` brings authors, terms and featured images in the same answer.
- Credentials: an application password (Basic auth) from the env vars the config names. With
  them, the read uses ``context=edit`` so content is the raw stored HTML (as in a WXR export),
  and ``status=any`` can reach drafts and private posts. WordPress 6.1 answers a *wrong*
  application password as if no credentials were sent, so the source checks ``users/me`` first
  and stops with a clear error instead of quietly reading only public content.
- Incremental reads (post types only) ask for ``modified_after`` with a margin (WordPress compares
  it with the site-local ``post_modified``, whose zone the client does not know) and keep the
  records whose ``modified_gmt`` is at or past ``since`` (whole seconds: see ``is_at_or_after``).
- ``/wp-json/`` or, when pretty permalinks are off, ``/?rest_route=/`` (detected on a 404).
- 5xx, 429 and timeouts are retried with exponential backoff and jitter, honouring Retry-After.

The HTTP side (discovery, auth, paging headers, error bodies, retries) is
:class:`flowport.connectors.wordpress_api.WordPressApi`, which ``flowport init`` uses too.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, aclosing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import anyio
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flowport.base.errors import ConfigError, SourceError
from flowport.connectors import RecordError, SourceItem, SourceRecord
from flowport.connectors.wordpress_api import (
    ApplicationPassword,
    NoApiHere,
    Page,
    WordPressApi,
    application_password_from_env,
)
from flowport.connectors.wordpress_common import (
    AuthorRef,
    CommentRecord,
    FeaturedImage,
    MediaRecord,
    PostRecord,
    RecordShape,
    TermRecord,
    TermRef,
    UserRecord,
    comment_on,
    decode_slug,
    decode_text,
    gmt_iso,
    is_at_or_after,
    local_iso,
    parse_since,
    post_key,
    since_for_read,
    term_key,
)

__all__ = ["WordPressRestConfig", "WordPressRestSource"]

log = logging.getLogger("flowport.connectors.wordpress_rest")

_KNOWN_RESOURCES: dict[str, tuple[RecordShape, str | None]] = {
    "posts": ("post", None),
    "pages": ("post", None),
    "media": ("media", None),
    "categories": ("term", "category"),
    "tags": ("term", "post_tag"),
    "users": ("user", None),
    "comments": ("comment", None),
}
# WordPress filters modified_after on the site-local column; zones run from UTC-12 to UTC+14.
_ZONE_MARGIN = timedelta(hours=15)
_EMBED = "author,wp:term,wp:featuredmedia"


class WordPressRestConfig(BaseModel):
    """A live WordPress site, read through its REST API."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["wordpress"] = "wordpress"
    base_url: str = Field(description="The site's address, e.g. https://example.com (no /wp-json).")
    resource: str = Field(
        default="posts",
        pattern=r"^[a-z0-9_-]+$",
        description=(
            "posts, pages, media, categories, tags, users, comments, or the rest_base of a "
            "custom post type or taxonomy."
        ),
    )
    status: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9_,-]+$",
        description="Post status filter, e.g. 'any' or 'publish,draft'; needs credentials.",
    )
    user_env: str | None = Field(
        default=None, description="Env var holding the WordPress user name."
    )
    password_env: str | None = Field(
        default=None, description="Env var holding that user's application password."
    )
    api_style: Literal["auto", "pretty", "query"] = Field(
        default="auto",
        description="'pretty' = /wp-json/, 'query' = /?rest_route= (plain permalinks), or detect.",
    )
    context: Literal["auto", "view", "edit"] = Field(
        default="auto",
        description="'edit' reads raw content (needs credentials); 'auto' = edit when logged in.",
    )
    per_page: int = Field(default=100, ge=1, le=100, description="Items per request (max 100).")
    max_pages_in_flight: int = Field(
        default=4, ge=1, le=16, description="Pages requested at once; be polite to the site."
    )
    timeout_seconds: float = Field(default=30.0, gt=0, description="Per request.")
    max_attempts: int = Field(
        default=5, ge=1, le=20, description="Tries per request on 5xx, 429 and timeouts."
    )
    backoff_seconds: float = Field(
        default=0.5, ge=0, le=60, description="First retry delay; doubles each try, with jitter."
    )

    @field_validator("base_url")
    @classmethod
    def _plain_http_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http(s) URL, not {value!r}")
        if parts.username or parts.password:
            raise ValueError(
                "base_url must not hold credentials; name env vars in user_env/password_env"
            )
        if parts.query or parts.fragment:
            raise ValueError("base_url takes no query or fragment (no ?rest_route=, no /wp-json)")
        return value.strip().rstrip("/")

    @model_validator(mode="after")
    def _credentials_pair(self) -> WordPressRestConfig:
        if (self.user_env is None) != (self.password_env is None):
            raise ValueError("user_env and password_env go together (application password auth)")
        if self.context == "edit" and self.user_env is None:
            raise ValueError("context 'edit' needs credentials (user_env and password_env)")
        return self

    def open(self, *, base_dir: Path, env: Mapping[str, str]) -> WordPressRestSource:
        return WordPressRestSource(
            self, application_password_from_env(self.user_env, self.password_env, env)
        )


# ----------------------------------------------------------------------------------------------
# REST items → the common shapes


def _text_of(value: object, *, raw: bool) -> tuple[str, bool]:
    """(text, was_raw) of a ``{raw, rendered}`` field or a plain string."""
    if isinstance(value, Mapping):
        if raw and isinstance(value.get("raw"), str):
            return value["raw"], True
        rendered = value.get("rendered")
        return (rendered if isinstance(rendered, str) else ""), False
    return (value if isinstance(value, str) else ""), False


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _embedded(item: Mapping[str, Any], rel: str) -> list[Any]:
    embedded = item.get("_embedded")
    if not isinstance(embedded, Mapping):
        return []
    value = embedded.get(rel)
    return value if isinstance(value, list) else []


def _author(item: Mapping[str, Any]) -> AuthorRef | None:
    author_id = _as_int(item.get("author"))
    if not author_id:
        return None
    for entry in _embedded(item, "author"):
        if isinstance(entry, Mapping) and _as_int(entry.get("id")) == author_id:
            slug = entry.get("slug")
            return AuthorRef(
                id=author_id,
                login=None,
                slug=decode_slug(slug) if isinstance(slug, str) else None,
                name=decode_text(entry.get("name")) or None,
                email=None,
            )
    return AuthorRef(id=author_id, login=None, slug=None, name=None, email=None)


_TERM_ID_FIELDS = (("categories", "category", "categories"), ("tags", "post_tag", "tags"))


def _embedded_terms(item: Mapping[str, Any]) -> dict[str, list[TermRef]]:
    terms: dict[str, list[TermRef]] = {}
    for group in _embedded(item, "wp:term"):
        if not isinstance(group, list):
            continue
        for entry in group:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("taxonomy"), str):
                continue
            slug = entry.get("slug")
            terms.setdefault(entry["taxonomy"], []).append(
                TermRef(
                    id=_as_int(entry.get("id")),
                    slug=decode_slug(slug) if isinstance(slug, str) else None,
                    name=decode_text(entry.get("name")) or None,
                )
            )
    return terms


def _name_ties_by_id(refs: list[TermRef]) -> list[TermRef]:
    """WordPress lists a post's terms by name, and MySQL orders terms of the same name (the
    theme unit test has two "Foo A") as it happens to: two reads of an unchanged post differed,
    so its content hash did, and a nightly run would rewrite it. Equal names go by id."""
    ordered: list[TermRef] = []
    for _, group in itertools.groupby(refs, key=lambda ref: ref["name"]):
        ordered.extend(sorted(group, key=lambda ref: ref["id"] or 0))
    return ordered


def _term_ids(item: Mapping[str, Any], field: str) -> list[int]:
    ids = item.get(field)
    if not isinstance(ids, list):
        return []
    return [term_id for term_id in (_as_int(value) for value in ids) if term_id is not None]


def _terms(item: Mapping[str, Any], known: Mapping[int, TermRef]) -> dict[str, list[TermRef]]:
    terms = _embedded_terms(item)
    # _embedded lists at most 10 terms per taxonomy (its links use the default per_page), so
    # the id lists are the truth; ``known`` fills what the embedding left out.
    for field, taxonomy, _ in _TERM_ID_FIELDS:
        ids = _term_ids(item, field)
        if not ids:
            continue
        embedded = {ref["id"]: ref for ref in terms.get(taxonomy, []) if ref["id"] is not None}
        terms[taxonomy] = _name_ties_by_id(
            [
                embedded.get(term_id)
                or known.get(term_id)
                or TermRef(id=term_id, slug=None, name=None)
                for term_id in ids
            ]
        )
    return terms


def _featured(item: Mapping[str, Any]) -> FeaturedImage | None:
    media_id = _as_int(item.get("featured_media"))
    if not media_id:
        return None
    for entry in _embedded(item, "wp:featuredmedia"):
        if isinstance(entry, Mapping) and _as_int(entry.get("id")) == media_id:
            url = entry.get("source_url")
            alt = entry.get("alt_text")
            return FeaturedImage(
                id=media_id,
                url=url if isinstance(url, str) else None,
                alt=alt if isinstance(alt, str) else None,
            )
    fallback = item.get("jetpack_featured_media_url")  # Jetpack sites, when embedding failed
    return FeaturedImage(
        id=media_id, url=fallback if isinstance(fallback, str) and fallback else None, alt=None
    )


def _meta(item: Mapping[str, Any]) -> dict[str, Any]:
    meta = item.get("meta")
    return dict(meta) if isinstance(meta, Mapping) else {}  # WordPress sends [] when empty


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _post(
    item: Mapping[str, Any], *, raw: bool, known_terms: Mapping[int, TermRef] | None = None
) -> PostRecord:
    content, content_raw = _text_of(item.get("content"), raw=raw)
    excerpt, _ = _text_of(item.get("excerpt"), raw=raw)
    title, _ = _text_of(item.get("title"), raw=raw)
    guid, _ = _text_of(item.get("guid"), raw=raw)
    terms = _terms(item, known_terms or {})
    content_field = item.get("content")
    protected = isinstance(content_field, Mapping) and bool(content_field.get("protected"))
    post = PostRecord(
        id=_as_int(item.get("id")),
        type=str(item.get("type") or ""),
        title=decode_text(title),
        slug=decode_slug(str(item.get("slug") or "")),
        status=str(item.get("status") or ""),
        date=local_iso(_str_or_none(item.get("date"))),
        date_gmt=gmt_iso(_str_or_none(item.get("date_gmt"))),
        modified_gmt=gmt_iso(_str_or_none(item.get("modified_gmt"))),
        content=content,
        excerpt=excerpt,
        content_format="raw" if content_raw else "rendered",
        author=_author(item),
        categories=terms.pop("category", []),
        tags=terms.pop("post_tag", []),
        terms=terms,
        parent=_as_int(item.get("parent")) or None,
        menu_order=_as_int(item.get("menu_order")) or 0,
        link=_str_or_none(item.get("link")),
        guid=guid or None,
        featured_image=_featured(item),
        meta=_meta(item),
        sticky=bool(item.get("sticky", False)),
        password_protected=protected,
        format=str(item.get("format") or "standard"),
        comment_status=_str_or_none(item.get("comment_status")),
        ping_status=_str_or_none(item.get("ping_status")),
    )
    language = _str_or_none(item.get("lang")) or _str_or_none(item.get("wpml_current_locale"))
    if language is not None:
        post["language"] = language
    return post


def _media(item: Mapping[str, Any], *, raw: bool) -> MediaRecord:
    title, _ = _text_of(item.get("title"), raw=raw)
    caption, _ = _text_of(item.get("caption"), raw=raw)
    description, _ = _text_of(item.get("description"), raw=raw)
    guid, _ = _text_of(item.get("guid"), raw=raw)
    alt = item.get("alt_text")
    return MediaRecord(
        id=_as_int(item.get("id")),
        type=str(item.get("type") or "attachment"),
        title=decode_text(title),
        slug=decode_slug(str(item.get("slug") or "")),
        status=str(item.get("status") or ""),
        date=local_iso(_str_or_none(item.get("date"))),
        date_gmt=gmt_iso(_str_or_none(item.get("date_gmt"))),
        modified_gmt=gmt_iso(_str_or_none(item.get("modified_gmt"))),
        link=_str_or_none(item.get("link")),
        guid=guid or None,
        url=_str_or_none(item.get("source_url")),
        alt=alt if isinstance(alt, str) else "",
        caption=caption,
        description=description,
        mime_type=_str_or_none(item.get("mime_type")),
        parent=_as_int(item.get("post")) or None,
        author=_author(item),
        meta=_meta(item),
    )


def _term(item: Mapping[str, Any], taxonomy: str, slugs: Mapping[int, str]) -> TermRecord:
    parent_id = _as_int(item.get("parent"))
    return TermRecord(
        id=_as_int(item.get("id")),
        taxonomy=str(item.get("taxonomy") or taxonomy),
        slug=decode_slug(str(item.get("slug") or "")),
        name=decode_text(item.get("name")),
        description=str(item.get("description") or ""),
        parent=slugs.get(parent_id) if parent_id else None,
        link=_str_or_none(item.get("link")),
        meta=_meta(item),
    )


def _user(item: Mapping[str, Any]) -> UserRecord:
    return UserRecord(
        id=_as_int(item.get("id")),
        login=_str_or_none(item.get("username")),
        slug=decode_slug(str(item.get("slug") or "")),
        name=decode_text(item.get("name")),
        email=_str_or_none(item.get("email")),
        first_name=_str_or_none(item.get("first_name")),
        last_name=_str_or_none(item.get("last_name")),
        description=str(item.get("description") or ""),
        link=_str_or_none(item.get("link")),
    )


def _comment(item: Mapping[str, Any]) -> CommentRecord:
    """A comment; its writer's e-mail (edit context) is never read, nor its avatar URLs."""
    content, _ = _text_of(item.get("content"), raw=False)
    post_id = _as_int(item.get("post")) or None
    # The commented post's type, when the answer embeds it (_embed=up); posts otherwise.
    post_type = next(
        (
            str(entry["type"])
            for entry in _embedded(item, "up")
            if isinstance(entry, Mapping) and isinstance(entry.get("type"), str)
        ),
        None,
    )
    return CommentRecord(
        id=_as_int(item.get("id")),
        post=post_id,
        post_type=post_type,
        on=comment_on(post_id, post_type),
        parent=_as_int(item.get("parent")) or None,
        author_name=decode_text(item.get("author_name")),
        author_url=_str_or_none(item.get("author_url")),
        date=local_iso(_str_or_none(item.get("date"))),
        date_gmt=gmt_iso(_str_or_none(item.get("date_gmt"))),
        content=content,
        status=str(item.get("status") or "approved"),
        type=str(item.get("type") or "comment"),
        link=_str_or_none(item.get("link")),
    )


# ----------------------------------------------------------------------------------------------
# The source


class WordPressRestSource:
    """One REST resource of one site; see the module docstring."""

    def __init__(
        self, config: WordPressRestConfig, credentials: ApplicationPassword | None
    ) -> None:
        self._config = config
        self._credentials = credentials
        known = _KNOWN_RESOURCES.get(config.resource)
        self._shape: RecordShape | None = known[0] if known else None
        self._taxonomy: str | None = known[1] if known else None
        parts = urlsplit(config.base_url)
        self._name = f"wordpress:{parts.netloc}{parts.path}/{config.resource}"
        #: X-WP-Total of the last read, as WordPress reported it.
        self.reported_total: int | None = None
        #: X-WP-Total of each read this source made, by its query (see ``estimated_total``).
        self._totals: dict[frozenset[tuple[str, str]], int] = {}

    def __repr__(self) -> str:
        return f"WordPressRestSource({self._name!r})"

    @property
    def name(self) -> str:
        return self._name

    @property
    def incremental(self) -> bool:
        return self._shape in (None, "post", "media")

    @property
    def _edit_context(self) -> bool:
        return self._credentials is not None and self._config.context != "view"

    def _api(self, *, connections: int = 100) -> AbstractAsyncContextManager[WordPressApi]:
        config = self._config
        return WordPressApi.open(
            config.base_url,
            timeout_seconds=config.timeout_seconds,
            connections=connections,
            credentials=self._credentials,
            api_style=config.api_style,
            max_attempts=config.max_attempts,
            backoff_seconds=config.backoff_seconds,
        )

    async def records(self, since: str | None = None) -> AsyncIterator[SourceItem]:
        since_at = since_for_read(
            self.name, since, incremental=self.incremental, read_in_full="terms and users"
        )
        config = self._config
        async with self._api(connections=config.max_pages_in_flight) as api:
            await api.discover()
            await api.check_credentials()
            shape, taxonomy = await self._resolve(api)
            if since_at is not None and shape in ("term", "user", "comment"):
                raise ConfigError(
                    f"{self.name} is not incremental: {shape}s have no modification dates",
                    key="since",
                )
            route = f"/wp/v2/{config.resource}"
            slugs: dict[int, str] = {}
            if shape == "term" and taxonomy != "post_tag":
                slugs = await self._term_slugs(api, route)
            params = self._params(shape, since_at)
            seen: set[str] = set()
            known_terms: dict[int, TermRef] = {}
            pages = self._pages(api, route, params)
            async with aclosing(pages):
                async for page_number, items in pages:
                    if shape == "post":
                        await self._learn_terms(api, items, known_terms)
                    for index, item in enumerate(items, start=1):
                        position = f"page {page_number} item {index}"
                        record = self._record(
                            item, shape, taxonomy or "", slugs, position, known_terms
                        )
                        if isinstance(record, SourceRecord):
                            if record.key in seen:
                                log.info(
                                    "%s: %s read twice (the site changed during the read)",
                                    self.name,
                                    record.key,
                                )
                                continue
                            seen.add(record.key)
                            if since_at is not None and not is_at_or_after(record.cursor, since_at):
                                continue
                        yield record

    async def estimated_total(self, since: str | None = None) -> int | None:
        """What WordPress reports in ``X-WP-Total`` for the same read: from a read this source
        already made of it (the check before the first write reads its first page), else
        from a one-item page."""
        since_at = parse_since(since) if since is not None else None
        if self._shape is not None:
            if since_at is not None and self._shape in ("term", "user", "comment"):
                return None
            known = self._totals.get(_count_query(self._params(self._shape, since_at)))
            if known is not None:
                return known
        config = self._config
        async with self._api() as api:
            await api.discover()
            shape, _taxonomy = await self._resolve(api)
            if since_at is not None and shape in ("term", "user", "comment"):
                return None
            params = self._params(shape, since_at)
            known = self._totals.get(_count_query(params))
            if known is not None:
                return known
            params = {**params, "per_page": "1"}
            params.pop("_embed", None)
            page = await api.page(f"/wp/v2/{config.resource}", params, 1)
            return page.total

    def _params(self, shape: RecordShape, since_at: datetime | None) -> dict[str, str]:
        config = self._config
        params = {"per_page": str(config.per_page), "orderby": "id", "order": "asc"}
        params["context"] = "edit" if self._edit_context else "view"
        if shape in ("post", "media"):
            params["_embed"] = _EMBED
            if config.status is not None:
                params["status"] = config.status
            if since_at is not None:
                after = (since_at - _ZONE_MARGIN).replace(tzinfo=None)
                params["modified_after"] = after.strftime("%Y-%m-%dT%H:%M:%S")
        elif shape == "comment":
            params["_embed"] = "up"  # the commented post, for its type
            if config.status is not None:
                params["status"] = config.status
        elif config.status is not None:
            raise ConfigError(
                f"{self.name}: 'status' applies to posts, pages and media, not {shape}s",
                key="status",
            )
        return params

    async def _learn_terms(
        self, api: WordPressApi, items: list[Any], known: dict[int, TermRef]
    ) -> None:
        """Look up the categories and tags a page's posts have beyond what _embed listed."""
        for field, _, rest_base in _TERM_ID_FIELDS:
            missing: set[int] = set()
            for item in items:
                if not isinstance(item, Mapping):
                    continue
                for taxonomy_refs in _embedded_terms(item).values():
                    for ref in taxonomy_refs:
                        if ref["id"] is not None:
                            known.setdefault(ref["id"], ref)
                missing.update(
                    term_id for term_id in _term_ids(item, field) if term_id not in known
                )
            ordered = sorted(missing)
            for start in range(0, len(ordered), 100):
                chunk = ordered[start : start + 100]
                params = {
                    "include": ",".join(map(str, chunk)),
                    "per_page": "100",
                    "_fields": "id,slug,name",
                }
                try:
                    body, _ = await api.get(f"/wp/v2/{rest_base}", params)
                except NoApiHere:
                    return
                for entry in body if isinstance(body, list) else []:
                    if isinstance(entry, Mapping) and _as_int(entry.get("id")) is not None:
                        slug = entry.get("slug")
                        known[int(entry["id"])] = TermRef(
                            id=int(entry["id"]),
                            slug=decode_slug(slug) if isinstance(slug, str) else None,
                            name=decode_text(entry.get("name")) or None,
                        )

    async def _resolve(self, api: WordPressApi) -> tuple[RecordShape, str | None]:
        if self._shape is not None:
            return self._shape, self._taxonomy
        resource = self._config.resource
        types = await self._get_listing(api, "/wp/v2/types")
        for slug, info in types.items():
            if isinstance(info, Mapping) and info.get("rest_base") == resource:
                self._shape = "media" if slug == "attachment" else "post"
                return self._shape, None
        taxonomies = await self._get_listing(api, "/wp/v2/taxonomies")
        for slug, info in taxonomies.items():
            if isinstance(info, Mapping) and info.get("rest_base") == resource:
                self._shape, self._taxonomy = "term", str(slug)
                return self._shape, self._taxonomy
        known = sorted(
            str(info.get("rest_base"))
            for info in (*types.values(), *taxonomies.values())
            if isinstance(info, Mapping) and info.get("rest_base")
        )
        raise SourceError(
            f"{self._config.base_url}: no REST resource {resource!r}; "
            f"this site has: {', '.join(known)}"
        )

    @staticmethod
    async def _get_listing(api: WordPressApi, route: str) -> Mapping[str, Any]:
        try:
            return await api.listing(route)
        except NoApiHere as exc:
            raise SourceError(f"{api.site} {route}: {exc}") from None

    async def _term_slugs(self, api: WordPressApi, route: str) -> dict[int, str]:
        # Terms name their parent by id, which means nothing on another site: map it to a slug.
        params = {"per_page": "100", "orderby": "id", "order": "asc", "_fields": "id,slug"}
        slugs: dict[int, str] = {}
        pages = self._pages(api, route, params, record_total=False)
        async with aclosing(pages):
            async for _, items in pages:
                for item in items:
                    if isinstance(item, Mapping):
                        term_id = _as_int(item.get("id"))
                        if term_id is not None and isinstance(item.get("slug"), str):
                            slugs[term_id] = decode_slug(item["slug"])
        return slugs

    async def _pages(
        self, api: WordPressApi, route: str, params: Mapping[str, str], *, record_total: bool = True
    ) -> AsyncGenerator[tuple[int, list[Any]], None]:
        first = await api.page(route, params, 1)
        if record_total:
            self.reported_total = first.total
            if first.total is not None:
                self._totals[_count_query(params)] = first.total
        yield 1, first.items
        per_page = int(params.get("per_page", "10"))
        if first.total_pages is None:
            # No paging headers (a proxy stripped them): read on until a short page.
            page, last = 2, first
            while len(last.items) >= per_page:
                last = await api.page(route, params, page)
                yield page, last.items
                page += 1
            return
        window = self._config.max_pages_in_flight
        for start in range(2, first.total_pages + 1, window):
            numbers = range(start, min(start + window, first.total_pages + 1))
            fetched: dict[int, Page] = {}

            async def fetch_into(number: int, into: dict[int, Page] = fetched) -> None:
                into[number] = await api.page(route, params, number)

            try:
                async with anyio.create_task_group() as group:
                    for number in numbers:
                        group.start_soon(fetch_into, number)
            except BaseExceptionGroup as failures:
                raise _first_leaf(failures) from None
            for number in numbers:
                yield number, fetched[number].items

    def _record(
        self,
        item: object,
        shape: RecordShape,
        taxonomy: str,
        slugs: Mapping[int, str],
        position: str,
        known_terms: Mapping[int, TermRef],
    ) -> SourceItem:
        if not isinstance(item, Mapping):
            return RecordError(f"{position}", f"not a JSON object: {str(item)[:80]!r}", position)
        raw = self._edit_context
        try:
            if shape == "post":
                post = _post(item, raw=raw, known_terms=known_terms)
                if post["id"] is None:
                    return RecordError(position, "item without an id", position)
                return SourceRecord(post_key(post["id"]), post, post["modified_gmt"], position)
            if shape == "media":
                media = _media(item, raw=raw)
                if media["id"] is None:
                    return RecordError(position, "media item without an id", position)
                return SourceRecord(post_key(media["id"]), media, media["modified_gmt"], position)
            if shape == "term":
                term = _term(item, taxonomy, slugs)
                if not term["slug"]:
                    return RecordError(position, "term without a slug", position)
                return SourceRecord(term_key(term["taxonomy"], term["slug"]), term, None, position)
            if shape == "comment":
                comment = _comment(item)
                if comment["id"] is None:
                    return RecordError(position, "comment without an id", position)
                return SourceRecord(str(comment["id"]), comment, None, position)
            user = _user(item)
            if not user["slug"]:
                return RecordError(position, "user without a slug", position)
            return SourceRecord(user["slug"], user, None, position)
        except (TypeError, ValueError, KeyError) as exc:
            return RecordError(position, f"unreadable item: {type(exc).__name__}: {exc}", position)


def _count_query(params: Mapping[str, str]) -> frozenset[tuple[str, str]]:
    """What decides a read's X-WP-Total: its filters, not its page size or embedding."""
    return frozenset((k, v) for k, v in params.items() if k not in ("per_page", "_embed"))


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    for failure in group.exceptions:
        if isinstance(failure, BaseExceptionGroup):
            return _first_leaf(failure)
        return failure
    return group
