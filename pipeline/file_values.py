"""Whether an item in Webflow already holds the file a record names: media compared by source
identity, not by the URL Webflow stores.

Webflow fetches an Image/MultiImage/File value given by URL and stores its own copy:
``{fileId, url: <hosted url>, alt}``, the hosted url ending in ``<fileId>_<original file name>``
(the spec's item examples, v2.yml ~18656: ``url: /files/62b720ef280c7a7a3be8cabe_image.png``;
the Assets API's ``hostedUrl`` likewise). So the source URL is gone from the item; what is left
of the source is the file name (and the alt text, kept as given).

The rule (used when a lost checkpoint makes a run adopt items already in Webflow):

* the same ``fileId`` on both sides, or the same url: the same file;
* otherwise, when Webflow's url is a hosted one (``<fileId>_`` or another 24-hex id prefix), the
  file names are compared (case, spaces and punctuation aside): the source URL's last path
  segment, or the name after the ``<fileId>_`` of a hosted url flowport's assets stage wrote;
  a match is "the same file, by name", and the adoption names each such field in a warning
  (``media_compared_by_name``) since the bytes were not compared;
* alt texts must match in every case.

Why names and not bytes: comparing content means fetching every source file and every hosted
file again (two downloads per image per item), on exactly the run that follows a lost
checkpoint, when the collection may hold thousands of items; the hosted file's hash is not in
the item (a HEAD's ETag is a CDN's, not documented as the MD5). A WordPress upload that changes
gets a new file name (``cat-1.jpg``, ``cat-300x200.jpg``), so the name is exact enough there;
what it misses, a file replaced in place under the same name, is what the warning says.
Runs with their checkpoint compare content hashes of the mapped record, not Webflow's values, so
a re-hosted image never looks changed to them.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = [
    "Sameness",
    "compare_values",
    "dropped_files",
    "fetches_files",
    "file_name_of",
    "is_file_value",
]

_FILE_KEYS = frozenset({"url", "alt", "fileId"})
_ID_PREFIX = re.compile(r"[0-9a-f]{24}_")
_NAME_JUNK = re.compile(r"[^a-z0-9.]+")


class Sameness(enum.IntEnum):
    """Ordered: a list is as different as its most different entry."""

    SAME = 0
    SAME_BY_NAME = 1
    DIFFERENT = 2


def is_file_value(value: Any) -> bool:
    """An Image/File value as the mapping, the assets stage or Webflow writes it."""
    return (
        isinstance(value, Mapping)
        and bool(value)
        and set(value) <= _FILE_KEYS
        and ("url" in value or "fileId" in value)
    )


def compare_values(ours: Any, theirs: Any) -> Sameness:
    if is_file_value(ours):
        return _compare_file(ours, theirs)
    if isinstance(ours, list) and ours and all(is_file_value(entry) for entry in ours):
        if not isinstance(theirs, list) or len(theirs) != len(ours):
            return Sameness.DIFFERENT
        return max(_compare_file(a, b) for a, b in zip(ours, theirs, strict=True))
    return Sameness.SAME if _plain(ours) == _plain(theirs) else Sameness.DIFFERENT


def _plain(value: Any) -> Any:
    """A value without the file ids Webflow adds (the rule before files were re-hosted)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items() if k != "fileId"}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _compare_file(ours: Mapping[str, Any], theirs: Any) -> Sameness:
    if not is_file_value(theirs):
        return Sameness.DIFFERENT
    if (ours.get("alt") or None) != (theirs.get("alt") or None):
        return Sameness.DIFFERENT
    our_id, their_id = ours.get("fileId"), theirs.get("fileId")
    if our_id and our_id == their_id:
        return Sameness.SAME
    our_url, their_url = ours.get("url"), theirs.get("url")
    if not isinstance(our_url, str) or not isinstance(their_url, str):
        return Sameness.DIFFERENT
    if our_url == their_url:
        return Sameness.SAME
    their_name = _hosted_name(their_url, their_id)
    if their_name is None:
        return Sameness.DIFFERENT  # not Webflow's copy, and another URL: another file
    our_name = (_hosted_name(our_url, our_id) if our_id else None) or file_name_of(our_url)
    # The assets stage names each file with a marker of its content's hash
    # (``photo-3f9a1c27be04.png``): the source's ``photo.png`` is that file.
    their_name = _ASSET_MARKER.sub("", their_name)
    if our_name and _normal(our_name) == _normal(their_name):
        return Sameness.SAME_BY_NAME
    return Sameness.DIFFERENT


#: ``-<12 hex digits of the SHA-256>`` before the extension: :data:`flowport.pipeline.media.
#: MARKER_DIGITS`, in the name of every asset the assets stage creates.
_ASSET_MARKER = re.compile(r"-[0-9a-f]{12}(?=\.[A-Za-z0-9]+$)")


def file_name_of(url: str) -> str:
    """The last segment of a URL's path, decoded (no query, no fragment)."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return ""
    return PurePosixPath(unquote(path)).name


def _hosted_name(url: str, file_id: Any) -> str | None:
    """The original file name in a Webflow-hosted url, or None if the url is not one."""
    name = file_name_of(url)
    if isinstance(file_id, str) and name.startswith(f"{file_id}_"):
        return name[len(file_id) + 1 :]
    if _ID_PREFIX.match(name):
        return name[25:]
    return None


def _normal(name: str) -> str:
    return _NAME_JUNK.sub("-", name.lower()).strip("-")


#: Values that are never a file: passed over at once (this runs for every field written).
_PLAIN = (str, int, float, bool, type(None))


def dropped_files(sent: Mapping[str, Any], stored: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The files Webflow left out of a written item (``skipInvalidFiles``): (field, what).
    An answer without the item's values (no ``slug``) tells nothing, so names nothing."""
    dropped: list[tuple[str, str]] = []
    if "slug" not in stored:
        return dropped
    for slug, value in sent.items():
        if isinstance(value, _PLAIN):
            continue
        kept = stored.get(slug)
        if is_file_value(value) and not is_file_value(kept):
            dropped.append((slug, str(value.get("url") or value.get("fileId"))))
        elif isinstance(value, list) and value and all(is_file_value(v) for v in value):
            count = len(kept) if isinstance(kept, list) else 0
            if count < len(value):
                kept_names = {file_name_of(str(k.get("url", ""))) for k in kept or []}
                missing = [
                    str(v.get("url") or v.get("fileId")) for v in value if not _kept(v, kept_names)
                ]
                dropped.append((slug, ", ".join(missing) or f"{len(value) - count} files"))
    return dropped


def _kept(value: Mapping[str, Any], kept_names: set[str]) -> bool:
    name = file_name_of(str(value.get("url", "")))
    return any(kept.endswith(f"_{name}") or kept == name for kept in kept_names if name)


def fetches_files(sent: Mapping[str, Any]) -> bool:
    """Whether Webflow must fetch a file by URL to write these values, and so may leave it out.
    A ``fileId`` names an asset already in the site: nothing to fetch."""
    for value in sent.values():
        if isinstance(value, _PLAIN):
            continue
        entries = value if isinstance(value, list) else [value]
        if any(is_file_value(entry) and not entry.get("fileId") for entry in entries):
            return True
    return False
