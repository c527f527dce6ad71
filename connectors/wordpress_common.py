"""The one WordPress record shape, shared by the WXR reader and the REST API reader.

Both :mod:`flowport.connectors.wxr` and :mod:`flowport.connectors.wordpress_rest` yield these
shapes, so one WordPress→Webflow mapping works on either source.

Keys (``SourceRecord.key``) are the same for both sources wherever WordPress keeps the identity:

- posts, pages, attachments, menu items, custom post types: the post id, as text (``"1241"``).
  WordPress's importer keeps post ids, so a WXR file and the site it was imported into agree.
  A hand-written WXR item with no ``wp:post_id`` is keyed ``"guid:<guid>"`` and has ``id`` None.
- terms: ``"<taxonomy>:<slug>"`` with the slug percent-decoded (``"category:child-1"``,
  ``"post_tag:αβγ"``); term ids change on import, slugs do not.
- users: the user's slug (``user_nicename``), which WordPress derives from the login
  (:func:`user_slug`); anonymous REST readers never see the login, and user ids change on import.

Fields of a **post** (any post type but attachments)::

    id: int | None          type: str (post type)       title: str (entities decoded, tags kept)
    slug: str (decoded)     status: str                 date: str | None (site-local ISO 8601)
    date_gmt, modified_gmt: str | None  ("2023-01-16T07:16:52Z"; None for unsaved drafts)
    content: str            excerpt: str                (HTML as WordPress stores it, see below)
    content_format: "raw" | "rendered"
    author: {id, login, slug, name, email} | None
    categories, tags: [{id, slug, name}]                terms: {taxonomy: [{id, slug, name}]}
    parent: int | None      menu_order: int             link: str | None     guid: str | None
    featured_image: {id, url, alt} | None               meta: {key: str | list[str] | ...}
    sticky: bool            password_protected: bool    format: str ("standard", "image", ...)
    comment_status: str | None                          ping_status: str | None

``content_format`` is "raw" for WXR and for REST reads with credentials (``context=edit``): block
comments and shortcodes are still there, exactly as exported. Anonymous REST reads only see the
"rendered" HTML (shortcodes expanded, paragraphs added). Content is never entity-decoded or
sanitized here; the mapping does that. Titles and names are ``html.unescape``-d.

In ``author``, ``id`` is the source site's user id (not stable across sites), ``login`` and
``email`` are None when the source does not show them (anonymous REST). In term references
``id`` is None for WXR (export term ids mean nothing on another site); ``slug`` and ``name`` are
None only when a REST answer lacks ``_embedded`` terms (the reader always asks for them).
``featured_image.url`` is None when the attachment it points to is not in the source.

Fields of a **media** item (post type ``attachment``; REST resource ``media``)::

    id, type ("attachment"), title, slug, status, date, date_gmt, modified_gmt, link, guid,
    url: str | None, alt: str, caption: str, description: str, mime_type: str | None,
    parent: int | None, author, meta

WXR files carry no MIME type: it is guessed from the URL's extension (None if unknown).

Fields of a **term** (category, tag, any taxonomy)::

    id: int | None (source id)   taxonomy: str ("category", "post_tag", ...)   slug (decoded)
    name (decoded)   description: str   parent: str | None (the parent's decoded slug)
    link: str | None   meta: {key: str | list[str] | ...}

Fields of a **user**::

    id: int | None   login: str | None   slug: str   name: str   email: str | None
    first_name, last_name: str | None    description: str    link: str | None

Meta values are kept as text (serialized PHP stays serialized); a key repeated on one post
becomes a list of its values in order.

Cursors: records of post types carry ``modified_gmt`` as their cursor (WXR files older than 1.2
have none: their ``post_date_gmt`` stands in); ``since`` keeps the ones modified strictly after
it, and a record with no date at all only comes with full reads. Terms and users have no
modification date: they read in full and refuse ``since``.
"""

from __future__ import annotations

import html
import re
import unicodedata
from datetime import UTC, datetime
from typing import Any, Literal, NotRequired, TypedDict
from urllib.parse import unquote

from flowport.base.errors import ConfigError

__all__ = [
    "AuthorRef",
    "CommentRecord",
    "FeaturedImage",
    "MediaRecord",
    "PostRecord",
    "RecordShape",
    "TermRecord",
    "TermRef",
    "UserRecord",
    "add_meta",
    "comment_on",
    "decode_slug",
    "decode_text",
    "gmt_iso",
    "is_at_or_after",
    "local_iso",
    "parse_since",
    "post_key",
    "since_for_read",
    "taxonomy_of",
    "term_key",
    "user_slug",
]

RecordShape = Literal["post", "media", "term", "user", "comment"]


class AuthorRef(TypedDict):
    id: int | None
    login: str | None
    slug: str | None
    name: str | None
    email: str | None


class TermRef(TypedDict):
    id: int | None
    slug: str | None
    name: str | None


class FeaturedImage(TypedDict):
    id: int
    url: str | None
    alt: str | None


class PostRecord(TypedDict):
    id: int | None
    type: str
    title: str
    slug: str
    status: str
    date: str | None
    date_gmt: str | None
    modified_gmt: str | None
    content: str
    excerpt: str
    content_format: Literal["raw", "rendered"]
    author: AuthorRef | None
    categories: list[TermRef]
    tags: list[TermRef]
    terms: dict[str, list[TermRef]]
    parent: int | None
    menu_order: int
    link: str | None
    guid: str | None
    featured_image: FeaturedImage | None
    meta: dict[str, Any]
    sticky: bool
    password_protected: bool
    format: str
    comment_status: str | None
    ping_status: str | None
    #: The post's language, when a multilingual plugin gives it over REST (Polylang's ``lang``,
    #: WPML's ``wpml_current_locale``); absent otherwise, so other records' hashes stay as
    #: they were. In a WXR export it stays where the plugin keeps it (terms or meta).
    language: NotRequired[str]


class MediaRecord(TypedDict):
    id: int | None
    type: str
    title: str
    slug: str
    status: str
    date: str | None
    date_gmt: str | None
    modified_gmt: str | None
    link: str | None
    guid: str | None
    url: str | None
    alt: str
    caption: str
    description: str
    mime_type: str | None
    parent: int | None
    author: AuthorRef | None
    meta: dict[str, Any]


class TermRecord(TypedDict):
    id: int | None
    taxonomy: str
    slug: str
    name: str
    description: str
    parent: str | None
    link: str | None
    meta: dict[str, Any]


class UserRecord(TypedDict):
    id: int | None
    login: str | None
    slug: str
    name: str
    email: str | None
    first_name: str | None
    last_name: str | None
    description: str
    link: str | None


class CommentRecord(TypedDict):
    """A comment, without what identifies its writer privately: no e-mail address, no IP
    address, no user agent are read (a CMS is public; WordPress never shows them either)."""

    id: int | None
    #: The commented post's id, and its post type when known.
    post: int | None
    post_type: str | None
    #: ``{post type: post id}``: a job maps ``on.post`` to a Reference into posts, ``on.page``
    #: into pages, so a comment references the collection its post is in.
    on: dict[str, str]
    parent: int | None
    author_name: str
    author_url: str | None
    date: str | None
    date_gmt: str | None
    content: str
    #: approved, hold, spam or trash (REST's words; WXR's 1/0 are translated).
    status: str
    #: comment, pingback or trackback.
    type: str
    link: str | None


def comment_on(post_id: int | None, post_type: str | None) -> dict[str, str]:
    return {post_type or "post": post_key(post_id)} if post_id else {}


# WXR calls tags "tag" in 1.0 exports and "post_tag" later; REST calls the resource "tags".
_TAXONOMY_ALIASES = {"tag": "post_tag", "tags": "post_tag", "categories": "category"}


def taxonomy_of(name: str) -> str:
    return _TAXONOMY_ALIASES.get(name, name)


def decode_slug(slug: str) -> str:
    # WordPress stores non-ASCII slugs percent-encoded ("%ce%b5..."); decode once, keep the rest.
    return unquote(slug, errors="strict") if "%" in slug else slug


def decode_text(text: str | None) -> str:
    return html.unescape(text) if text else ""


def post_key(post_id: int) -> str:
    return str(post_id)


def term_key(taxonomy: str, slug: str) -> str:
    return f"{taxonomy_of(taxonomy)}:{slug}"


_NOT_SLUG = re.compile(r"[^a-z0-9 _-]")
_DASHES = re.compile(r"[\s-]+")


def user_slug(login: str) -> str:
    """The ``user_nicename`` WordPress derives from a login (``sanitize_title`` of it)."""
    folded = unicodedata.normalize("NFKD", login)
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch)).lower()
    folded = folded.replace(".", "-").replace("@", "")
    folded = _NOT_SLUG.sub("", folded)
    return _DASHES.sub("-", folded).strip("-")[:50]


_ZERO_DATE = re.compile(r"^0000-00-00")


def _parse_datetime(value: str) -> datetime | None:
    text = value.strip()
    if not text or _ZERO_DATE.match(text):
        return None
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        return None


def gmt_iso(value: str | None) -> str | None:
    """``2023-01-16 07:16:52`` (a GMT column) → ``2023-01-16T07:16:52Z``; empty or zero → None."""
    if not value:
        return None
    parsed = _parse_datetime(value)
    if parsed is None:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ")


def local_iso(value: str | None) -> str | None:
    """A site-local date as ISO 8601 without a zone (WordPress does not say which zone)."""
    if not value:
        return None
    parsed = _parse_datetime(value)
    if parsed is None:
        return None
    return parsed.replace(tzinfo=None).strftime("%Y-%m-%dT%H:%M:%S")


def parse_since(since: str) -> datetime:
    """A ``since`` cursor as an aware UTC datetime; naive values are taken as UTC."""
    parsed = _parse_datetime(since)
    if parsed is None:
        raise ConfigError(
            f"not an ISO 8601 date-time: {since!r}",
            key="since",
            fix="pass a modified_gmt value such as 2023-01-16T07:16:52Z",
        )
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def since_for_read(
    source: str, since: str | None, *, incremental: bool, read_in_full: str
) -> datetime | None:
    """A read's ``since`` cursor as a moment (None: read everything); :class:`ConfigError` when
    the source has no modification dates to read changes by (``read_in_full`` names the kinds
    that are read in full)."""
    since_at = parse_since(since) if since is not None else None
    if since_at is not None and not incremental:
        raise ConfigError(
            f"{source} is not incremental: it has no modification dates to read changes by",
            key="since",
            fix=f"run it without --since ({read_in_full} are read in full)",
        )
    return since_at


def is_at_or_after(cursor: str | None, since: datetime) -> bool:
    # WordPress keeps whole seconds: a post saved in the same second as the saved cursor
    # compares equal to it, and ``>`` would skip it until it changes again. The posts at the
    # cursor that did not change are read again; the runner skips them by their fingerprint.
    parsed = _cursor_time(cursor)
    return parsed is not None and parsed >= since


def _cursor_time(cursor: str | None) -> datetime | None:
    if cursor is None:
        return None
    parsed = _parse_datetime(cursor)
    if parsed is None:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def add_meta(meta: dict[str, Any], key: str, value: str) -> None:
    if key not in meta:
        meta[key] = value
        return
    existing = meta[key]
    if isinstance(existing, list):
        existing.append(value)
    else:
        meta[key] = [existing, value]
