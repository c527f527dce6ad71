"""The old site's own links, and where each now lives on Webflow: one map for two uses.

    links = LinkMap("https://blog.example.com")
    links.add("https://blog.example.com/2013/01/11/hello/", "/posts/hello", ids=[("p", "12")])
    links.resolve("http://www.blog.example.com/?p=12#comments")   # -> "/posts/hello#comments"

The runner builds the map from the job's own records before anything is mapped (see
:mod:`flowport.pipeline.links`); ``richtext_wordpress`` rewrites each ``<a href>`` through it, and
the redirects CSV is written from the same entries. A URL is the old site's when its host is the
site's host (``http`` or ``https``, with or without ``www.``) and its path lies under the site's
path; relative URLs are taken against the site. Besides permalinks, WordPress answers its
shortlinks ``?p=<id>`` and ``?page_id=<id>`` (any post), ``?cat=<term id>``, ``?tag=<slug>`` and
``?author=<user id>``: those are looked up by id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, unquote, urljoin, urlsplit

__all__ = ["LinkMap", "Resolved"]

#: Query parameters WordPress resolves to one object, and the id space each one names.
_ID_PARAMETERS: Final = {
    "p": "post",
    "page_id": "post",
    "attachment_id": "post",
    "cat": "category",
    "tag": "post_tag",
    "author": "author",
}


#: Where WordPress keeps files (uploads, themes, plugins), not pages.
_FILES: Final = ("/wp-content/", "/wp-includes/")


@dataclass(frozen=True, slots=True)
class Resolved:
    """What an href to the old site became: a Webflow path, or None with the path it named."""

    href: str | None
    old: str


def _host(host: str | None) -> str:
    host = (host or "").lower().rstrip(".")
    return host.removeprefix("www.")


class LinkMap:
    """Old-site paths (and shortlink ids) -> ``/<collection slug>/<item slug>``."""

    def __init__(self, site_url: str) -> None:
        parts = urlsplit(site_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) site address: {site_url!r}")
        self.site_url = site_url.strip().rstrip("/")
        self.host = _host(parts.hostname)
        self.port = parts.port
        self.prefix = _path_key(parts.path)
        self._paths: dict[str, str] = {}
        self._ids: dict[tuple[str, str], str] = {}
        #: Every Webflow path the map hands out.
        self._targets: set[str] = set()
        #: (segments, last segment) -> the new paths of the old paths of that shape.
        self._guesses: dict[tuple[int, str], set[str]] = {}

    def __len__(self) -> int:
        return len(self._paths)

    def add(self, old_url: str, new_path: str, ids: Iterable[tuple[str, str]] = ()) -> None:
        """Map ``old_url`` (absolute or site-relative) and the item's shortlink ids, given as
        (id space, id): ``("post", "12")``, ``("category", "5")``, ``("post_tag", "news")``.
        The first item to claim a path keeps it, as WordPress serves only one."""
        self._targets.add(new_path)
        located = self._locate(old_url)
        if located is not None:
            path, named = located
            if named:  # a plain-permalink site's links are "/?p=12": the id names the item
                ids = [*named, *ids]
            else:
                self._paths.setdefault(path, new_path)
                self._guesses.setdefault(_shape(path), set()).add(new_path)
        for space, value in ids:
            self._ids.setdefault((space, str(value).strip().lower()), new_path)

    def is_new_path(self, href: str) -> bool:
        """``href`` is a Webflow path this map handed out (``#fragment`` aside)."""
        return href.partition("#")[0] in self._targets

    def is_old_site(self, url: str) -> bool:
        return self._locate(url) is not None

    def _locate(self, url: str) -> tuple[str, list[tuple[str, str]]] | None:
        """The site-relative path key and shortlink ids of ``url`` if it is on the old site."""
        parts = urlsplit(urljoin(self.site_url + "/", url.strip()))
        if parts.scheme not in ("http", "https") or _host(parts.hostname) != self.host:
            return None
        try:
            if parts.port not in (None, self.port, 80, 443):
                return None
        except ValueError:
            return None
        path = _path_key(parts.path)
        if self.prefix and path != self.prefix and not path.startswith(self.prefix + "/"):
            return None
        return path[len(self.prefix) :], _ids_in(parts.query)

    def resolve(self, href: str) -> Resolved | None:
        """None for a link elsewhere; else the item's Webflow path (``#fragment`` kept), or
        ``href=None`` when the old site's page maps to no item of this job."""
        if href.strip().startswith("#"):
            return None  # a place on the same page
        located = self._locate(href)
        if located is None:
            return None
        path, named = located
        if path.startswith(_FILES):
            return None  # an upload, not a page: the media stage's, or left as it is
        found = next((self._ids[i] for i in named if i in self._ids), None)
        if found is None and not named:
            found = self._paths.get(path) or self._guess(path)
        if found is None:
            return Resolved(None, href.strip())
        fragment = urlsplit(href.strip()).fragment
        return Resolved(found + (f"#{fragment}" if fragment else ""), href.strip())

    def _guess(self, path: str) -> str | None:
        # A dated permalink with another day (posts link "/2018/11/03/x/" to a post WordPress
        # dates 11/02, by time zone): WordPress answers it by the slug alone when one post has
        # it (redirect_guess_404_permalink in wp-includes/canonical.php); so does the map, for
        # a path of the same depth whose last segment one item alone ends with.
        found = self._guesses.get(_shape(path), set())
        return next(iter(found)) if len(found) == 1 else None


def _shape(path: str) -> tuple[int, str]:
    segments = path.strip("/").split("/")
    return len(segments), segments[-1]


def _path_key(path: str) -> str:
    """A path as WordPress matches it: decoded, single slashes, no trailing slash, lowercase
    (WordPress stores slugs in lowercase and percent-encodes non-ASCII ones either way)."""
    decoded = unquote(path or "")
    return re.sub(r"/{2,}", "/", "/" + decoded).rstrip("/").lower()


def _ids_in(query: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for name, value in parse_qsl(query, keep_blank_values=False):
        space = _ID_PARAMETERS.get(name.lower())
        if space is not None and value.strip():
            found.append((space, value.strip().lower()))
    return found
