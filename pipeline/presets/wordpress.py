"""The WordPress → Webflow preset: learn a site, write a ready job file and a redirects CSV.

    profile = scan_wxr(Path("export.xml"))            # or: await scan_rest("https://blog.example")
    Path("wordpress.toml").write_text(job_toml(profile, job_dir=Path(".")))
    rows = await redirect_rows(load_job(Path("wordpress.toml")))
    write_redirects_csv(Path("redirects.csv"), rows)

Scanning reads only what the job needs to know: the site's address, the post types present, the
permalink pattern (learned from item links) and whether there are attachments. A WXR file is
read by the WXR connector's first pass (:func:`flowport.connectors.wxr.scan_export`: streamed,
a hostile prolog refused, bare ``&`` repaired, as in the run); a live site answers through its
REST index, types and one page of posts. Credentials are
only ever env var NAMES, written into the job file; their values are read by the connector.

Redirect rows come from the job itself: each collection's records are read through the same
connector and mapped by the same compiled mapping the run uses, so a row's new slug is the slug
the run will claim (on a fresh target; a target that already holds items with those slugs makes
the run pick ``-2`` suffixes the CSV cannot know about).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import quote, urlsplit

from flowport.base.errors import ConfigError, SourceError
from flowport.connectors.wordpress_api import (
    NoApiHere,
    WordPressApi,
    WordPressRefused,
    application_password_from_env,
)
from flowport.connectors.wxr import ExportItem, ExportScan, scan_export
from flowport.mappings import webflow_slug
from flowport.pipeline.jobfile import Job
from flowport.pipeline.links import collect_links
from flowport.pipeline.links import write_redirects_csv as write_csv

__all__ = [
    "BUILTIN_POST_TYPES",
    "PostType",
    "Redirect",
    "RedirectReport",
    "SiteProfile",
    "job_toml",
    "redirect_rows",
    "scan_rest",
    "scan_wxr",
    "write_redirects_csv",
]

log = logging.getLogger("flowport.presets.wordpress")

#: Post types WordPress itself keeps for its own machinery: never content to migrate.
BUILTIN_POST_TYPES: Final = frozenset(
    {
        "attachment",
        "nav_menu_item",
        "revision",
        "custom_css",
        "customize_changeset",
        "oembed_cache",
        "user_request",
        "wp_block",
        "wp_template",
        "wp_template_part",
        "wp_global_styles",
        "wp_navigation",
        "wp_font_family",
        "wp_font_face",
        "feedback",
        "jp_pay_order",
        "jp_pay_product",
    }
)
#: Job collections the preset always names this way; a custom post type never takes one.
_RESERVED: Final = ("posts", "pages", "categories", "tags", "authors")
_USER_AGENT: Final = "flowport-init"


@dataclass(frozen=True, slots=True)
class PostType:
    """A post type present on the site, and the job collection it becomes."""

    name: str  # the WordPress post type ("post", "page", "book")
    resource: str  # its REST base ("posts", "pages", "books")
    collection: str  # the job collection name, also the Webflow collection slug
    label: str  # the Webflow collection's display name
    singular: str
    count: int | None = None  # items seen in a WXR file; None from REST


@dataclass(frozen=True, slots=True)
class Multilingual:
    """Where a multilingual plugin keeps each post's language, and its translation group."""

    plugin: Literal["polylang", "wpml"]
    language: str  # a record path: terms.language[0].slug, meta._wpml_import_language_code...
    group: str | None  # the path of the id its translations share, when the source has one


#: Polylang keeps languages as terms of its taxonomy ``language`` and each set of translations
#: as a term of ``post_translations`` (pll_<uniqid>); both reach the WXR export as an item's
#: ``<category domain="language" nicename="en">`` and ``<category domain="post_translations"
#: nicename="pll_...">`` (Polylang's model, polylang.pro/doc; seen in public exports).
POLYLANG_WXR: Final = Multilingual(
    "polylang", "terms.language[0].slug", "terms.post_translations[0].slug"
)
#: WPML keeps languages in its own table, which WordPress's exporter does not write; its
#: "Export and Import" add-on writes them as post meta: _wpml_import_language_code and
#: _wpml_import_translation_group (the meta keys a public importer of such exports reads).
WPML_WXR: Final = Multilingual(
    "wpml", "meta._wpml_import_language_code", "meta._wpml_import_translation_group"
)
#: Over REST, Polylang Pro adds ``lang`` to each post (polylang.pro's REST API doc); the WPML
#: REST API plugin adds ``wpml_current_locale`` (github shawnhooper/wpml-rest-api). The REST
#: connector passes either on as the record's ``language``.
REST_LANGUAGE: Final = "language"
_WPML_META: Final = (b"_wpml_import_language_code",)


@dataclass(frozen=True, slots=True)
class SiteProfile:
    origin: Literal["wxr", "rest"]
    location: str  # the WXR file (absolute) or the site's base URL
    site_url: str  # where the old permalinks live, e.g. https://blog.example.com
    title: str
    post_types: tuple[PostType, ...]
    has_attachments: bool
    permalink_structure: str | None  # "/%year%/%monthnum%/%day%/%postname%/", None if unknown
    category_base: str = "category"
    tag_base: str = "tag"
    user_env: str | None = None
    password_env: str | None = None
    notes: tuple[str, ...] = ()
    #: The multilingual plugin whose languages the export or the API carries, if any.
    multilingual: Multilingual | None = None
    #: Hosts the site's uploads are served from besides its own (wordpress.com's files host).
    media_hosts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Redirect:
    old_path: str
    new_path: str
    collection: str
    key: str


@dataclass(slots=True)
class RedirectReport:
    rows: list[Redirect] = field(default_factory=list)
    #: collection -> records without a row, by reason ("draft", "skipped", "mapping failed").
    left_out: dict[str, Counter[str]] = field(default_factory=dict)

    def leave_out(self, collection: str, reason: str) -> None:
        self.left_out.setdefault(collection, Counter())[reason] += 1


# ---- naming ---------------------------------------------------------------------------------


def _builtin_type(name: str) -> PostType | None:
    if name == "post":
        return PostType("post", "posts", "posts", "Posts", "Post")
    if name == "page":
        return PostType("page", "pages", "pages", "Pages", "Page")
    return None


def _custom_type(name: str, resource: str, label: str | None, taken: set[str]) -> PostType:
    collection = webflow_slug(resource or name) or "type"
    if collection in taken:
        collection = f"{collection}-{webflow_slug(name) or 'type'}"
    taken.add(collection)
    shown = (label or name.replace("_", " ").replace("-", " ").title()).strip() or collection
    singular = shown[:-1] if shown.endswith("s") and len(shown) > 1 else shown
    return PostType(name, resource or name, collection, shown, singular)


def _post_types(found: Mapping[str, tuple[str, str | None, int | None]]) -> tuple[PostType, ...]:
    """``found``: post type -> (rest base, label, count); built-ins first, then custom types."""
    types: list[PostType] = []
    taken = set(_RESERVED)
    for name in ("post", "page"):
        builtin = _builtin_type(name)
        if builtin is not None and name in found:
            types.append(_with_count(builtin, found[name][2]))
    for name, (resource, label, count) in sorted(found.items()):
        if name in ("post", "page") or name in BUILTIN_POST_TYPES:
            continue
        types.append(_with_count(_custom_type(name, resource, label, taken), count))
    return tuple(types)


def _with_count(post_type: PostType, count: int | None) -> PostType:
    return PostType(
        post_type.name,
        post_type.resource,
        post_type.collection,
        post_type.label,
        post_type.singular,
        count,
    )


# ---- permalinks -----------------------------------------------------------------------------


def _site_path(site_url: str) -> str:
    return urlsplit(site_url).path.rstrip("/")


def _permalink_pattern(link: str, site_url: str, date: str | None, slug: str, post_id: str) -> str:
    parts = urlsplit(link)
    if parts.query and parts.path.rstrip("/") == _site_path(site_url):
        return "/?p=%post_id%" if re.search(r"(^|&)p=\d+", parts.query) else "/?" + parts.query
    path = parts.path
    prefix = _site_path(site_url)
    if prefix and path.startswith(prefix):
        path = path[len(prefix) :]
    year, month, day = (date[0:4], date[5:7], date[8:10]) if date else ("", "", "")
    encoded = {slug, quote(slug, safe="-_.~").lower(), quote(slug, safe="-_.~")}
    segments: list[str] = []
    for segment in path.split("/"):
        if segment and segment in encoded:
            segments.append("%postname%")
        elif segment and segment == post_id:
            segments.append("%post_id%")
        elif segment and segment == year:
            segments.append("%year%")
        elif segment and segment == month and "%year%" in segments:
            segments.append("%monthnum%")
        elif segment and segment == day and "%monthnum%" in segments:
            segments.append("%day%")
        else:
            segments.append(segment)
    return "/".join(segments) or "/"


def _most_common(patterns: Counter[str]) -> str | None:
    return patterns.most_common(1)[0][0] if patterns else None


def _old_path(url: str, site_url: str) -> str | None:
    """The path (and query, for plain permalinks) of an old URL on the old site's host."""
    parts = urlsplit(url.strip())
    if parts.scheme and parts.netloc:
        site = urlsplit(site_url)
        if parts.hostname and site.hostname and parts.hostname.lower() != site.hostname.lower():
            return None
    # Some exports double a slash ("https://site.example//greek/..."); WordPress serves the
    # single-slash path, which is what visitors and search engines hold.
    path = re.sub(r"/{2,}", "/", "/" + (parts.path or ""))
    # Webflow matches the path as typed; keep WordPress's percent-encoding, encode anything raw.
    path = quote(path, safe="/%-_.~!$&'()*+,;=:@")
    if parts.query:
        path += "?" + quote(parts.query, safe="=&%-_.~")
    return path


# ---- scanning a WXR file --------------------------------------------------------------------


def scan_wxr(path: Path) -> SiteProfile:
    """Learn a WXR export's site address, post types, permalinks and attachments.

    The export is read by the connector's own first pass (:func:`scan_export`): a hostile
    prolog is refused and a bare ``&`` repaired exactly as the run will, streaming.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise ConfigError(f"no such file: {path}", key="source", fix="check the WXR file's path")
    patterns: Counter[str] = Counter()

    def learn_permalink(item: ExportItem, channel: Mapping[str, str]) -> None:
        if item.post_type == "post" and item.link and item.status == "publish":
            site = channel.get("link") or channel.get("base_blog_url") or ""
            site = site or channel.get("base_site_url", "")
            pattern = _permalink_pattern(
                item.link, site, item.post_date or None, item.post_name, item.post_id
            )
            patterns[pattern] += 1

    scan = scan_export(path, each_item=learn_permalink)
    channel = scan.channel
    # The channel <link> and base_blog_url are the blog; base_site_url can be the network's
    # root (wordpress.com exports say https://wordpress.com/ there).
    address = channel.get("link") or channel.get("base_blog_url") or ""
    address = (address or channel.get("base_site_url", "")).rstrip("/")
    if not re.match(r"^https?://[^/\s]+", address):
        raise SourceError(f"{path}: the export names no site address (<link>, base_blog_url)")
    repaired = scan.repair_note(path.name)
    notes = [*_undeclared_term_notes(scan), *([repaired] if repaired else [])]
    multilingual = _wxr_multilingual(path, scan)
    if multilingual is not None:
        notes.append(_language_note(multilingual))
    found = {name: (_rest_base(name), None, n) for name, n in scan.post_types.items()}
    return SiteProfile(
        origin="wxr",
        location=str(path),
        site_url=address,
        title=channel.get("title", ""),
        post_types=_post_types(found),
        has_attachments=scan.post_types.get("attachment", 0) > 0,
        permalink_structure=_most_common(patterns),
        notes=tuple(notes),
        multilingual=multilingual,
        media_hosts=tuple(
            sorted({urlsplit(url).netloc.lower() for url, _alt in scan.attachments.values() if url})
        ),
    )


def _wxr_multilingual(path: Path, scan: ExportScan) -> Multilingual | None:
    if any(taxonomy == "language" for taxonomy, _ in scan.item_terms):
        return POLYLANG_WXR
    return WPML_WXR if _file_mentions(path, _WPML_META) else None


def _file_mentions(path: Path, needles: Sequence[bytes]) -> bool:
    """Whether the file holds any of ``needles``, read a megabyte at a time."""
    longest = max(len(n) for n in needles)
    tail = b""
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            window = tail + chunk
            if any(n in window for n in needles):
                return True
            tail = window[-longest:]
    return False


def _language_note(multilingual: Multilingual) -> str:
    return (
        f"{multilingual.plugin} languages found: each post's language goes to its 'language' "
        "field (and its translation group to 'translation-group'); translations stay items of "
        "their own, not Webflow locales of one item"
    )


def _undeclared_term_notes(scan: ExportScan) -> list[str]:
    notes: list[str] = []
    for taxonomy in ("category", "post_tag"):
        used = {slug for term_taxonomy, slug in scan.item_terms if term_taxonomy == taxonomy}
        declared = {
            slug for term_taxonomy, slug in scan.declared_terms if term_taxonomy == taxonomy
        }
        undeclared = sorted(used - declared)
        if undeclared:
            shown = ", ".join(undeclared[:10]) + (" ..." if len(undeclared) > 10 else "")
            notes.append(
                f"items use {len(undeclared)} {taxonomy} term(s) the export does not declare "
                f"({shown}); they are migrated as terms of their own, as WordPress's importer "
                "creates them"
            )
    return notes


def _rest_base(post_type: str) -> str:
    builtin = _builtin_type(post_type)
    return builtin.resource if builtin is not None else post_type


# ---- scanning a live site -------------------------------------------------------------------


async def scan_rest(
    base_url: str,
    *,
    user_env: str | None = None,
    password_env: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout_seconds: float = 30.0,
) -> SiteProfile:
    """Learn a live site's address, post types, permalinks and attachments from its REST API,
    through the connector's own client (:class:`WordPressApi`): one discovery, the same
    application-password auth, retries and error bodies as the run."""
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        raise ConfigError(
            f"not a site address: {base_url!r}",
            key="source",
            fix="pass the site's http(s) address, e.g. https://blog.example.com (no credentials)",
        )
    base = base_url.strip().rstrip("/").removesuffix("/wp-json")
    credentials = application_password_from_env(user_env, password_env, env or {}, key="source")
    async with WordPressApi.open(
        base, timeout_seconds=timeout_seconds, user_agent=_USER_AGENT, credentials=credentials
    ) as api:
        # The whole index: its name, home and routes are what the scan is after.
        index = await api.discover(fields=None)
        if "wp/v2" not in (index.get("namespaces") or ()):
            raise SourceError(f"{base}: the REST index has no wp/v2 namespace; is this WordPress?")
        await api.check_credentials()  # a wrong password would scan only what the public sees
        types = await _rest_types(api, index)
        media = await _total(api, "/wp/v2/media")
        posts = await api.page(
            "/wp/v2/posts",
            {"per_page": "20", "_fields": "id,link,slug,date,lang,wpml_current_locale"},
            1,
        )
    site_url = str(index.get("home") or index.get("url") or base).rstrip("/")
    return SiteProfile(
        origin="rest",
        location=base,
        site_url=site_url,
        title=str(index.get("name") or ""),
        post_types=types,
        has_attachments=bool(media),
        permalink_structure=_rest_permalinks(posts.items, site_url),
        user_env=user_env,
        password_env=password_env,
        multilingual=_rest_multilingual(posts.items),
    )


def _rest_multilingual(posts: Sequence[object]) -> Multilingual | None:
    for post in posts:
        if isinstance(post, Mapping):
            if isinstance(post.get("lang"), str) and post["lang"]:
                return Multilingual("polylang", REST_LANGUAGE, None)
            if isinstance(post.get("wpml_current_locale"), str) and post["wpml_current_locale"]:
                return Multilingual("wpml", REST_LANGUAGE, None)
    return None


def _rest_permalinks(posts: Sequence[object], site_url: str) -> str | None:
    patterns: Counter[str] = Counter()
    for post in posts:
        if isinstance(post, Mapping) and isinstance(post.get("link"), str):
            patterns[
                _permalink_pattern(
                    str(post["link"]),
                    site_url,
                    str(post.get("date") or ""),
                    str(post.get("slug") or ""),
                    str(post.get("id") or ""),
                )
            ] += 1
    return _most_common(patterns)


async def _rest_types(api: WordPressApi, index: Mapping[str, Any]) -> tuple[PostType, ...]:
    routes = index.get("routes") or {}
    found: dict[str, tuple[str, str | None, int | None]] = {}
    if isinstance(routes, Mapping) and "/wp/v2/types" not in routes:
        found = {"post": ("posts", None, None), "page": ("pages", None, None)}
        return _post_types(found)
    try:
        answer = await api.listing("/wp/v2/types")
    except NoApiHere as exc:
        raise SourceError(f"{api.site} /wp/v2/types: {exc}") from None
    for name, info in answer.items() if isinstance(answer, Mapping) else ():
        if not isinstance(info, Mapping) or not info.get("rest_base"):
            continue
        namespace = info.get("rest_namespace") or "wp/v2"
        if namespace != "wp/v2":
            continue  # the wordpress connector reads /wp/v2/<rest_base> only
        found[str(name)] = (str(info["rest_base"]), str(info.get("name") or "") or None, None)
    return _post_types(found)


async def _total(api: WordPressApi, route: str) -> int:
    # A site that hides the route, or refuses it to this reader, has none to migrate.
    try:
        _, headers = await api.get(route, {"per_page": "1", "_fields": "id"})
    except (NoApiHere, WordPressRefused):
        return 0
    try:
        return int(headers.get("X-WP-Total", "0"))
    except ValueError:
        return 0


# ---- the job file ---------------------------------------------------------------------------


def _toml(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes), non-ASCII kept readable.
    return json.dumps(value, ensure_ascii=False)


def _source_table(profile: SiteProfile, job_dir: Path, *, kind: str, resource: str) -> str:
    if profile.origin == "wxr":
        wxr = Path(profile.location)
        try:
            shown = str(wxr.relative_to(job_dir.resolve()))
        except ValueError:
            shown = str(wxr)
        return f'{{ type = "wxr", path = {_toml(shown)}, kind = {_toml(kind)} }}'
    parts = ['type = "wordpress"', f"base_url = {_toml(profile.location)}"]
    parts.append(f"resource = {_toml(resource)}")
    if profile.user_env and profile.password_env:
        if resource not in ("categories", "tags", "users", "comments"):
            parts.append('status = "any"')
        parts.append(f"user_env = {_toml(profile.user_env)}")
        parts.append(f"password_env = {_toml(profile.password_env)}")
    return "{ " + ", ".join(parts) + " }"


_STATUS_BLOCK = """\
# WordPress status -> Webflow: publish is live, draft/pending/future are drafts, the rest
# (private, trash, inherit, auto-draft) is left out and counted as skipped.
[collections.{name}.status]
source = "status"
values = {{ publish = "live", draft = "draft", pending = "draft", future = "draft", \
private = "skip", trash = "skip", inherit = "skip", auto-draft = "skip" }}
default = "skip"
"""


def _post_collection(
    profile: SiteProfile, post_type: PostType, job_dir: Path, *, with_terms: bool
) -> str:
    name = post_type.collection
    lines = [
        *_post_table(profile, post_type, job_dir),
        "",
        *_post_fields(profile, post_type, with_terms=with_terms),
        "",
        _STATUS_BLOCK.format(name=name).rstrip("\n"),
        "",
        *_post_schema(profile, post_type, with_terms=with_terms),
    ]
    return "\n".join(lines) + "\n"


#: What becomes of an item whose record left WordPress, written into every collection of the
#: job as a choice to make, so that nobody meets the policy for the first time after a loss.
_DELETIONS = (
    "# Records gone from WordPress (seen on full reads): keep | archive | unpublish | delete.",
    "#   keep      leave the item as it is; run, plan, status and `flowport errors` name it",
    "#   archive   archive the item (off the live site, kept in the CMS); it comes back with",
    "#             its record",
    "#   unpublish take the item off the live site, keep it in the CMS; it comes back with",
    "#             its record",
    "#   delete    delete the item from Webflow",
    "# A run never removes more than max_delete_share (default 0.1) of a collection's items.",
    'deletions = "keep"',
)


def _post_table(profile: SiteProfile, post_type: PostType, job_dir: Path) -> list[str]:
    name = post_type.collection
    source = _source_table(profile, job_dir, kind=post_type.name, resource=post_type.resource)
    count = f" ({post_type.count} in the export)" if post_type.count is not None else ""
    return [
        f"# WordPress post type '{post_type.name}'{count} -> Webflow collection '{name}'.",
        f"[collections.{name}]",
        f"target = {_toml(post_type.label)}",
        "create_missing = true",
        "# The WordPress key (the post id) is kept in a field so a lost answer can be matched.",
        'external_key_field = "wordpress-id"',
        f"source = {source}",
        *_DELETIONS,
        "# WordPress slugs (percent-encoded Greek included) become Webflow slugs; an empty one",
        "# (drafts have none) is made from the name.",
        'slug_from = "name"',
        "# Relative links and images in the content are made absolute against the old site.",
        f"base_url = {_toml(profile.site_url + '/')}",
    ]


def _post_fields(profile: SiteProfile, post_type: PostType, *, with_terms: bool) -> list[str]:
    lines = [
        f"[collections.{post_type.collection}.fields]",
        'name = { source = "title", transforms = ["strip_html", "html_unescape", '
        '{ default = "(no title)" }] }',
        'slug = "slug"',
        'wordpress-id = { template = "{id}" }',
        'old-url = "link"',
        "# Gutenberg comments and known shortcodes are converted, scripts and on* handlers",
        "# removed; what cannot be converted is dropped with a warning.",
        'body = { source = "content", transforms = ["richtext_wordpress"] }',
        'excerpt = { source = "excerpt", transforms = ["strip_html", "html_unescape"] }',
        "# GMT dates; WordPress's zero dates (unsaved drafts) are left empty.",
        'published-on = { source = "date_gmt", transforms = ["datetime"] }',
        'updated-on = { source = "modified_gmt", transforms = ["datetime"] }',
        'author = { source = "author.slug", reference = "authors" }',
    ]
    if with_terms:
        lines += [
            "# Term keys are '<taxonomy>:<slug>': prefix each slug (slugs never hold a comma).",
            'categories = { template = "category:{categories[].slug}", transforms = '
            '[{ replace = { ", " = ",category:" } }, { split = "," }], reference = "categories" }',
            'tags = { template = "post_tag:{tags[].slug}", transforms = '
            '[{ replace = { ", " = ",post_tag:" } }, { split = "," }], reference = "tags" }',
        ]
    lines += _language_fields(profile)
    if post_type.name == "page":
        lines += [
            "# A page's parent page, set in a second pass (pages reference pages).",
            f'parent-page = {{ source = "parent", reference = "{post_type.collection}" }}',
        ]
    if profile.has_attachments:
        lines += [
            "# The featured image's URL as the connector resolved it from the attachments.",
            'featured-image = "featured_image.url"',
            'featured-image-alt = "featured_image.alt"',
        ]
    return lines


def _language_fields(profile: SiteProfile) -> list[str]:
    found = profile.multilingual
    if found is None:
        return []
    lines = [
        f"# {found.plugin}: the post's language code. Translations are items of their own, linked",
        "# by their translation group; a site with Webflow locales can be fed per locale instead",
        "# (README: Locales).",
        f"language = {_toml(found.language)}",
    ]
    if found.group is not None:
        lines.append(f"translation-group = {_toml(found.group)}")
    return lines


def _post_schema(profile: SiteProfile, post_type: PostType, *, with_terms: bool) -> list[str]:
    name = post_type.collection
    lines = [
        f"[collections.{name}.schema]",
        f"singular_name = {_toml(post_type.singular)}",
        f"slug = {_toml(name)}",
        "",
        f"[collections.{name}.schema.fields]",
        'wordpress-id = { type = "PlainText", name = "WordPress ID" }',
        'old-url = { type = "PlainText", name = "Old URL", help_text = "The WordPress permalink" }',
        'body = "RichText"',
        'excerpt = "PlainText"',
        'published-on = { type = "DateTime", name = "Published On" }',
        'updated-on = { type = "DateTime", name = "Updated On" }',
        'author = { type = "Reference", collection = "authors" }',
    ]
    if with_terms:
        lines += [
            'categories = { type = "MultiReference", collection = "categories" }',
            'tags = { type = "MultiReference", collection = "tags" }',
        ]
    if profile.multilingual is not None:
        lines.append('language = { type = "PlainText", name = "Language" }')
        if profile.multilingual.group is not None:
            lines.append('translation-group = { type = "PlainText", name = "Translation Group" }')
    if post_type.name == "page":
        lines.append(
            f'parent-page = {{ type = "Reference", collection = "{name}", name = "Parent Page" }}'
        )
    if profile.has_attachments:
        lines += [
            'featured-image = { type = "Image", name = "Featured Image" }',
            'featured-image-alt = { type = "PlainText", name = "Featured Image Alt" }',
        ]
    return lines


@dataclass(frozen=True, slots=True)
class _Taxonomy:
    """How a WordPress taxonomy is named in the job: collection, labels, WXR kind, REST base."""

    name: str
    label: str
    singular: str
    kind: str
    resource: str


_TAXONOMIES: Final = {
    "category": _Taxonomy("categories", "Categories", "Category", "category", "categories"),
    "post_tag": _Taxonomy("tags", "Tags", "Tag", "tag", "tags"),
}


def _term_collection(
    profile: SiteProfile, job_dir: Path, *, taxonomy: Literal["category", "post_tag"]
) -> str:
    names = _TAXONOMIES[taxonomy]
    name = names.name
    base = profile.category_base if taxonomy == "category" else profile.tag_base
    source = _source_table(profile, job_dir, kind=names.kind, resource=names.resource)
    old_url = (
        'old-url = "link"'
        if profile.origin == "rest"
        else f"old-url = {{ template = {_toml(f'{profile.site_url}/{base}/{{slug}}/')} }}"
    )
    lines = [
        f"# WordPress {names.name} -> '{name}'.",
        f"[collections.{name}]",
        f"target = {_toml(names.label)}",
        "create_missing = true",
        'external_key_field = "wordpress-id"',
        f"source = {source}",
        *_DELETIONS,
        'slug_from = "name"',
        "",
        f"[collections.{name}.fields]",
        'name = { source = "name", transforms = ["strip_html", "html_unescape", '
        '{ default = "(no name)" }] }',
        'slug = "slug"',
        f'wordpress-id = {{ template = "{taxonomy}:{{slug}}" }}',
        old_url,
        'description = { source = "description", transforms = ["strip_html", "html_unescape"] }',
    ]
    if taxonomy == "category":
        lines += [
            "# The parent category: a reference into this same collection, set in a second pass.",
            'parent = { template = "category:{parent}", reference = "categories" }',
        ]
    lines += _term_schema(names)
    return "\n".join(lines) + "\n"


def _term_schema(names: _Taxonomy) -> list[str]:
    lines = [
        "",
        f"[collections.{names.name}.schema]",
        f"singular_name = {_toml(names.singular)}",
        f"slug = {_toml(names.name)}",
        "",
        f"[collections.{names.name}.schema.fields]",
        'wordpress-id = { type = "PlainText", name = "WordPress ID" }',
        'old-url = { type = "PlainText", name = "Old URL" }',
        'description = "PlainText"',
    ]
    if names.kind == "category":
        lines.append('parent = { type = "Reference", collection = "categories" }')
    return lines


def _author_collection(profile: SiteProfile, job_dir: Path) -> str:
    source = _source_table(profile, job_dir, kind="author", resource="users")
    old_url = (
        'old-url = "link"'
        if profile.origin == "rest"
        else f"old-url = {{ template = {_toml(profile.site_url + '/author/{slug}/')} }}"
    )
    lines = [
        "# WordPress users -> 'authors'. E-mail addresses are not copied: the CMS is public.",
        "[collections.authors]",
        'target = "Authors"',
        "create_missing = true",
        'external_key_field = "wordpress-id"',
        f"source = {source}",
        *_DELETIONS,
        'slug_from = "name"',
        "",
        "[collections.authors.fields]",
        'name = { source = "name", transforms = ["strip_html", "html_unescape", '
        '{ default = "(no name)" }] }',
        'slug = "slug"',
        'wordpress-id = { template = "{slug}" }',
        old_url,
        'bio = { source = "description", transforms = ["strip_html", "html_unescape"] }',
        "",
        "[collections.authors.schema]",
        'singular_name = "Author"',
        'slug = "authors"',
        "",
        "[collections.authors.schema.fields]",
        'wordpress-id = { type = "PlainText", name = "WordPress ID" }',
        'old-url = { type = "PlainText", name = "Old URL" }',
        'bio = "PlainText"',
    ]
    return "\n".join(lines) + "\n"


def _comment_collection(profile: SiteProfile, job_dir: Path) -> str:
    source = _source_table(profile, job_dir, kind="comment", resource="comments")
    references = [
        f"{webflow_slug(t.singular) or t.collection} = "
        f'{{ source = "on.{t.name}", reference = "{t.collection}" }}'
        for t in profile.post_types
    ]
    reference_schema = [
        f"{webflow_slug(t.singular) or t.collection} = "
        f'{{ type = "Reference", collection = "{t.collection}", name = {_toml(t.singular)} }}'
        for t in profile.post_types
    ]
    lines = [
        "# WordPress comments -> 'comments', approved ones only, each with a Reference to its",
        "# post (or page). Commenters' e-mail and IP addresses are never read: a CMS is public.",
        "[collections.comments]",
        'target = "Comments"',
        "create_missing = true",
        'external_key_field = "wordpress-id"',
        f"source = {source}",
        *_DELETIONS,
        'slug_from = "name"',
        f"base_url = {_toml(profile.site_url + '/')}",
        "",
        "[collections.comments.fields]",
        'name = { template = "Comment {id} by {author_name}", transforms = ["strip_html", '
        '"html_unescape", { truncate = 256 }] }',
        'wordpress-id = { template = "comment:{id}" }',
        'author = { source = "author_name", transforms = ["strip_html", "html_unescape"] }',
        'author-url = "author_url"',
        'posted-on = { source = "date_gmt", transforms = ["datetime"] }',
        'content = { source = "content", transforms = ["richtext_wordpress"] }',
        "# comment, pingback or trackback.",
        'comment-type = "type"',
        *references,
        "",
        "[collections.comments.status]",
        'source = "status"',
        'values = { approved = "live" }',
        'default = "skip"  # held for moderation, spam, trash',
        "",
        "[collections.comments.schema]",
        'singular_name = "Comment"',
        'slug = "comments"',
        "",
        "[collections.comments.schema.fields]",
        'wordpress-id = { type = "PlainText", name = "WordPress ID" }',
        'author = "PlainText"',
        'author-url = { type = "PlainText", name = "Author URL" }',
        'posted-on = { type = "DateTime", name = "Posted On" }',
        'content = "RichText"',
        'comment-type = { type = "PlainText", name = "Comment Type" }',
        *reference_schema,
    ]
    return "\n".join(lines) + "\n"


def _destination(target_api: str, site_id: str | None, token_env: str) -> str:
    if target_api == "sandbox":
        return "\n".join(
            [
                "[destination]",
                'api = "sandbox"          # the embedded sandbox: try the migration safely first.',
                '# For Webflow: api = "https://api.webflow.com/v2", site_id = "...",',
                '# token_env = "WEBFLOW_TOKEN" (the NAME of the variable holding the token).',
                'plan = "cms"',
                "concurrency = 4",
            ]
        )
    lines = ["[destination]", f"api = {_toml(target_api)}"]
    lines.append(
        f"site_id = {_toml(site_id)}"
        if site_id
        else '# site_id = "<your site id>"   # required: Site settings > General'
    )
    lines += [
        f"token_env = {_toml(token_env)}     # the NAME of the variable holding the token",
        'plan = "cms"',
        "concurrency = 4",
    ]
    return "\n".join(lines)


def _assets_table(profile: SiteProfile) -> list[str]:
    """Media on the old site moves into Webflow's assets (README, "Media")."""
    site = urlsplit(profile.site_url).netloc.lower()
    hosts = [site, *(h for h in profile.media_hosts if h and h != site)]
    return [
        "[assets]",
        "# Images and files on the old site (featured images, images and links to files in the",
        "# content, galleries) move into the Webflow site's assets; items point at them there.",
        "# The hosts are the site's own and those its attachments are served from.",
        "enabled = true",
        f"hosts = [{', '.join(_toml(h) for h in hosts)}]",
        "# A file that cannot move (missing, over 4 MB, not an image) keeps its old URL and is",
        '# named in `flowport warnings`; "fail" retries the item next run, "skip" drops it.',
        'on_failure = "keep_url"',
    ]


def job_toml(
    profile: SiteProfile,
    *,
    job_dir: Path,
    target_api: str = "sandbox",
    site_id: str | None = None,
    token_env: str = "WEBFLOW_TOKEN",  # noqa: S107 (a variable name, not a token)
    redirects_csv: str = "redirects.csv",
    comments: bool = False,
) -> str:
    """The job file's text for ``profile``; relative source paths start at ``job_dir``."""
    kinds = {t.name for t in profile.post_types}
    header = [
        f"# WordPress -> Webflow, written by `flowport init wordpress` from {profile.location}",
        f"# Site: {profile.site_url}" + (f" ({profile.title})" if profile.title else ""),
        "# Permalinks: " + (profile.permalink_structure or "unknown (no published post seen)"),
        "# Post types: " + (", ".join(sorted(kinds)) or "none"),
        "# Attachments: "
        + ("present (featured images are mapped)" if profile.has_attachments else "none"),
        *(f"# Note: {note}" for note in profile.notes),
        "#",
        "#   flowport validate JOB --offline && flowport run JOB",
        "#",
        "# Write order: authors, tags and categories first; then the post types pointing at them.",
        "# Category parents and page parents point into their own collection: the runner sets",
        "# them in a second pass.",
        "",
        _destination(target_api, site_id, token_env),
        "",
        "[run]",
        'mode = "live"',
        "publish_site = false",
        "batch_size = 100",
        "# Links in the content to the old site's own posts, pages, terms and authors point at",
        "# their Webflow items; a link to an old page that is no item is kept, with a warning.",
        f"old_site = {_toml(profile.site_url)}",
        "# Webflow's 301 import file (Site settings > Publishing), rewritten after every run",
        "# from the items written live: a new post gets its row.",
        f"redirects_csv = {_toml(redirects_csv)}",
        "",
        *_assets_table(profile),
        "",
    ]
    parts = [
        "\n".join(header),
        _author_collection(profile, job_dir),
        _term_collection(profile, job_dir, taxonomy="category"),
        _term_collection(profile, job_dir, taxonomy="post_tag"),
    ]
    for post_type in profile.post_types:
        parts.append(
            _post_collection(profile, post_type, job_dir, with_terms=post_type.name != "page")
        )
    if comments:
        parts.append(_comment_collection(profile, job_dir))
    return "\n".join(parts)


# ---- redirects ------------------------------------------------------------------------------


async def redirect_rows(job: Job, profile: SiteProfile) -> RedirectReport:
    """One row per item the run writes live: old permalink path -> /<collection slug>/<slug>,
    from the map the run rewrites links with (:func:`flowport.pipeline.links.collect_links`)."""
    links = await collect_links(job, profile.site_url)
    report = RedirectReport(left_out=links.left_out)
    rows = links.redirect_rows()
    for entry in links.entries:
        if not entry.live:
            report.leave_out(entry.collection, "draft")
    chosen = {(row.collection, row.key) for row in rows}
    for entry in links.entries:
        if entry.live and (entry.collection, entry.key) not in chosen:
            report.leave_out(entry.collection, "same or repeated old path")
    report.rows = [Redirect(r.old_path, r.new_path, r.collection, r.key) for r in rows]
    return report


def write_redirects_csv(path: Path, rows: Sequence[Redirect]) -> None:
    """Webflow's 301 import: a ``source,target`` header, then old path, new path per row."""
    write_csv(path, [(row.old_path, row.new_path) for row in rows])
