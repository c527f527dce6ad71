"""Webflow item slugs: ASCII, lowercase ``a-z0-9`` and single hyphens, at most 256 characters,
unique within a collection.

WordPress stores non-Latin slugs percent-encoded (``%ce%b1%cf%81``...); they are decoded before
transliteration so a Greek title becomes a readable Latin slug rather than ``ce-b1-cf-81``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol
from urllib.parse import unquote

from slugify import slugify

__all__ = [
    "MAX_SLUG_LENGTH",
    "InMemorySlugClaims",
    "SlugClaims",
    "is_webflow_slug",
    "slug_with_suffix",
    "webflow_slug",
]

#: Webflow refuses longer slugs; the same cap as the Name field.
MAX_SLUG_LENGTH = 256

_VALID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
#: Printable ASCII that python-slugify only lowercases and turns into hyphens: everything but
#: the apostrophe (dropped), "&" (entities), "," (dropped between digits) and "%" (decoded).
_PLAIN = re.compile(r"[A-Za-z0-9 !\"#$()*+./:;<=>?@\[\\\]^_`{|}~-]*")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def is_webflow_slug(value: str) -> bool:
    return len(value) <= MAX_SLUG_LENGTH and _VALID.match(value) is not None


def webflow_slug(text: str, *, max_length: int = MAX_SLUG_LENGTH) -> str:
    """The Webflow form of ``text``; empty when nothing sluggable is left."""
    if _VALID.match(text) and len(text) <= max_length:
        return text
    if _PLAIN.fullmatch(text):
        # What slugify would make of it, without its transliteration and entity passes (most
        # titles are plain ASCII, and this runs for every new record).
        return _NOT_ALNUM.sub("-", text.lower()).strip("-")[:max_length].strip("-")
    if _PERCENT.search(text):
        text = unquote(text)
    slug = slugify(text, max_length=max_length, word_boundary=False, lowercase=True)
    return slug.strip("-")


class SlugClaims(Protocol):
    def claim(self, source_key: str, wanted: str) -> str:
        """The slug for ``source_key``: the one it already holds, else ``wanted`` or, when that
        is taken by another key, ``wanted-2``, ``wanted-3``..."""
        ...


def slug_with_suffix(base: str, number: int) -> str:
    suffix = f"-{number}"
    return base[: MAX_SLUG_LENGTH - len(suffix)].rstrip("-") + suffix


class InMemorySlugClaims:
    """Slug claims held in memory, for tests and dry runs; the engine keeps a persistent one."""

    def __init__(self, taken: Iterable[str] = ()) -> None:
        self._by_key: dict[str, str] = {}
        self._taken: set[str] = set(taken)

    def claim(self, source_key: str, wanted: str) -> str:
        held = self._by_key.get(source_key)
        if held is not None:
            return held
        slug = wanted
        number = 1
        while slug in self._taken:
            number += 1
            slug = slug_with_suffix(wanted, number)
        self._taken.add(slug)
        self._by_key[source_key] = slug
        return slug

    def __len__(self) -> int:
        return len(self._by_key)
