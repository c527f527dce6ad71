"""The transforms a job file can chain on a field: ``transforms = ["trim", {truncate = 120}]``.

Each entry is built once, when the mapping is compiled, into a plain function of the value; a
transform that cannot apply to the field's Webflow type (``markdown`` on a Number) is refused
then, not on every record. Text transforms apply to each element of a list.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import nh3

from flowport.base.models import FieldType
from flowport.mappings.links import LinkMap
from flowport.mappings.paths import is_missing
from flowport.mappings.results import MappingWarning
from flowport.mappings.richtext import (
    TABLE_MODES,
    RichTextOptions,
    markdown_to_html,
    wordpress_to_html,
)
from flowport.mappings.slugs import webflow_slug
from flowport.mappings.values import (
    FieldValueError,
    load_zone,
    parse_boolean,
    parse_number,
    parse_url,
    webflow_datetime,
)

__all__ = [
    "TRANSFORMS",
    "AttachmentLookup",
    "Transform",
    "TransformConfigError",
    "TransformEnv",
    "TransformRun",
    "build_transform",
]

AttachmentLookup = Callable[[str], str | None]


class TransformRun:
    """Per-record scratch space: the field being mapped and the warnings gathered so far."""

    __slots__ = ("field", "warnings")

    def __init__(self) -> None:
        self.field = ""
        self.warnings: list[MappingWarning] = []

    def warn(self, kind: str, message: str) -> None:
        self.warnings.append(MappingWarning(self.field, kind, message))


Transform = Callable[[Any, TransformRun], Any]


class TransformConfigError(ValueError):
    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


@dataclass(frozen=True)
class TransformEnv:
    field_type: FieldType
    base_url: str | None = None
    attachment_url: AttachmentLookup | None = None
    #: The old site's pages -> their Webflow paths, when the run built one (``[run] old_site``).
    link_map: LinkMap | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


_TEXT_TYPES: Final[frozenset[FieldType]] = frozenset(
    {"PlainText", "RichText", "Email", "Phone", "Link", "VideoLink", "Color", "Option"}
)
_URL_TYPES: Final[frozenset[FieldType]] = frozenset(
    {"PlainText", "Link", "VideoLink", "Image", "File", "MultiImage", "ExtFileRef"}
)
_ANY: Final[frozenset[FieldType] | None] = None


def _each_noting(function: Callable[[str, TransformRun], Any]) -> Transform:
    """As :func:`_each`, for a function that names what it changes in the record's run."""

    def apply(value: Any, run: TransformRun) -> Any:
        if isinstance(value, str):
            return function(value, run)
        if isinstance(value, list | tuple):
            return [function(v, run) if isinstance(v, str) else v for v in value]
        return value

    return apply


def _each(function: Callable[[str], Any]) -> Transform:
    def apply(value: Any, run: TransformRun) -> Any:
        if isinstance(value, str):
            return function(value)
        if isinstance(value, list | tuple):
            return [function(v) if isinstance(v, str) else v for v in value]
        return value

    return apply


def _no_arg(name: str, arg: Any) -> None:
    if arg is not None:
        raise TransformConfigError(
            f"transform {name!r} takes no argument", fix=f'write it as the bare string "{name}"'
        )


def _trim(arg: Any, env: TransformEnv) -> Transform:
    _no_arg("trim", arg)
    return _each(str.strip)


def _lower(arg: Any, env: TransformEnv) -> Transform:
    _no_arg("lower", arg)
    return _each(str.lower)


def _upper(arg: Any, env: TransformEnv) -> Transform:
    _no_arg("upper", arg)
    return _each(str.upper)


def _default(arg: Any, env: TransformEnv) -> Transform:
    if arg is None:
        raise TransformConfigError("transform 'default' needs a value", fix='{default = "..."}')
    return lambda value, run: arg if is_missing(value) else value


def _constant(arg: Any, env: TransformEnv) -> Transform:
    if arg is None:
        raise TransformConfigError("transform 'constant' needs a value", fix='{constant = "..."}')
    return lambda value, run: arg


def _truncate(arg: Any, env: TransformEnv) -> Transform:
    if not isinstance(arg, int) or isinstance(arg, bool) or arg < 1:
        raise TransformConfigError(
            f"transform 'truncate' needs a positive length, got {arg!r}", fix="{truncate = 256}"
        )

    def cut(text: str, run: TransformRun) -> str:
        if len(text) <= arg:
            return text
        # Asked for, but a loss all the same: named per item like the field limit's cut.
        run.warn("truncated", f"cut from {len(text)} to {arg} characters (transform truncate)")
        return text[:arg].rstrip()

    return _each_noting(cut)


def _replace(arg: Any, env: TransformEnv) -> Transform:
    if not isinstance(arg, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in arg.items()
    ):
        raise TransformConfigError(
            "transform 'replace' needs a table of old text -> new text",
            fix='{replace = {"&nbsp;" = " "}}',
        )
    pairs = tuple(arg.items())

    def replace(text: str) -> str:
        for old, new in pairs:
            text = text.replace(old, new)
        return text

    return _each(replace)


def _split(arg: Any, env: TransformEnv) -> Transform:
    if not isinstance(arg, str) or not arg:
        raise TransformConfigError("transform 'split' needs a separator", fix='{split = ","}')

    def split(value: Any, run: TransformRun) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(arg) if part.strip()]
        return value

    return split


def _join(arg: Any, env: TransformEnv) -> Transform:
    if not isinstance(arg, str):
        raise TransformConfigError("transform 'join' needs a separator", fix='{join = ", "}')

    def join(value: Any, run: TransformRun) -> Any:
        if isinstance(value, list | tuple):
            return arg.join(str(v) for v in value if not is_missing(v))
        return value

    return join


def _map(arg: Any, env: TransformEnv) -> Transform:
    if not isinstance(arg, Mapping) or not arg:
        raise TransformConfigError(
            "transform 'map' needs a table of source value -> new value",
            fix='{map = {"publish" = "Published", "draft" = "Draft"}}',
        )
    table = {str(k): v for k, v in arg.items()}

    def lookup(value: Any) -> Any:
        key = ("true" if value else "false") if isinstance(value, bool) else str(value)
        return table.get(key, value)

    def apply(value: Any, run: TransformRun) -> Any:
        if isinstance(value, list | tuple):
            return [lookup(v) for v in value]
        return None if value is None else lookup(value)

    return apply


def _html_unescape(arg: Any, env: TransformEnv) -> Transform:
    _no_arg("html_unescape", arg)
    return _each(html.unescape)


def _strip_html(arg: Any, env: TransformEnv) -> Transform:
    _no_arg("strip_html", arg)

    def strip(text: str, run: TransformRun) -> str:
        dropped = [m.group(1).lower() for m in _CONTENT_TAG.finditer(text) if m.group(2).strip()]
        if dropped:
            tags = ", ".join(f"<{tag}>" for tag in sorted(set(dropped)))
            run.warn(
                "content_dropped",
                f"{len(dropped)} {tags} element(s) dropped with their content (transform "
                "strip_html)",
            )
        cleaned = nh3.clean(text, tags=set(), clean_content_tags={"script", "style"})
        return " ".join(html.unescape(cleaned).split())

    return _each_noting(strip)


#: A script or style element with its content, which strip_html drops whole.
_CONTENT_TAG = re.compile(r"<(script|style)\b[^>]*>(.*?)</\1\s*>", re.IGNORECASE | re.DOTALL)


def _markdown(arg: Any, env: TransformEnv) -> Transform:
    _no_arg("markdown", arg)
    base_url = env.base_url
    return _each(lambda text: markdown_to_html(text, base_url=base_url))


def _richtext_options(arg: Any) -> RichTextOptions:
    fix = '{richtext_wordpress = {tables = "rows", shortcodes = ["my_box"]}}'
    options = {} if arg is None else arg
    if not isinstance(options, Mapping) or set(options) - {"tables", "shortcodes"}:
        raise TransformConfigError(
            f"transform 'richtext_wordpress' takes a table with tables, shortcodes; got {arg!r}",
            fix=fix,
        )
    tables = options.get("tables", "rows")
    if tables not in TABLE_MODES:
        raise TransformConfigError(
            f"richtext_wordpress: tables must be one of {', '.join(TABLE_MODES)}; got {tables!r}",
            fix=fix,
        )
    names = options.get("shortcodes", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise TransformConfigError(
            f"richtext_wordpress: shortcodes must be a list of names; got {names!r}", fix=fix
        )
    return RichTextOptions(tables=tables, shortcodes=frozenset(n.lower() for n in names))


def _richtext_wordpress(arg: Any, env: TransformEnv) -> Transform:
    options = _richtext_options(arg)
    base_url = env.base_url
    lookup = env.attachment_url
    links = env.link_map

    def convert(value: Any, run: TransformRun) -> Any:
        if not isinstance(value, str):
            return value
        result = wordpress_to_html(
            value, base_url=base_url, attachment_url=lookup, options=options, links=links
        )
        for kind, message in result.warnings:
            run.warn(kind, message)
        return result.html

    return convert


def _slugify(arg: Any, env: TransformEnv) -> Transform:
    _no_arg("slugify", arg)
    return _each(webflow_slug)


def _datetime(arg: Any, env: TransformEnv) -> Transform:
    options = {} if arg is None else arg
    if not isinstance(options, Mapping) or set(options) - {"tz", "format", "dayfirst"}:
        raise TransformConfigError(
            f"transform 'datetime' takes a table with tz, format, dayfirst; got {arg!r}",
            fix='{datetime = {tz = "Europe/Paris", format = "%d/%m/%Y %H:%M"}}',
        )
    try:
        zone = load_zone(str(options.get("tz", "UTC")))
    except FieldValueError as exc:
        raise TransformConfigError(str(exc), fix='{datetime = {tz = "Europe/Paris"}}') from None
    input_format = options.get("format")
    dayfirst = bool(options.get("dayfirst", False))

    def convert(value: Any, run: TransformRun) -> Any:
        if is_missing(value):
            return None
        return webflow_datetime(value, zone=zone, input_format=input_format, dayfirst=dayfirst)

    return convert


def _number(arg: Any, env: TransformEnv) -> Transform:
    options = {} if arg is None else arg
    if not isinstance(options, Mapping) or options.get("decimal", ".") not in (".", ","):
        raise TransformConfigError(
            f'transform \'number\' takes {{decimal = "."}} or {{decimal = ","}}; got {arg!r}',
            fix='{number = {decimal = ","}}',
        )
    decimal = str(options.get("decimal", "."))

    def convert(value: Any, run: TransformRun) -> Any:
        return None if is_missing(value) else parse_number(value, decimal=decimal)

    return convert


def _boolean(arg: Any, env: TransformEnv) -> Transform:
    _no_arg("boolean", arg)
    return lambda value, run: None if is_missing(value) else parse_boolean(value)


def _url(arg: Any, env: TransformEnv) -> Transform:
    if arg not in (None, "absolute"):
        raise TransformConfigError(
            f"transform 'url' takes no argument or \"absolute\", got {arg!r}", fix='"url"'
        )
    base_url = env.base_url
    schemes = frozenset({"http", "https", "mailto", "tel"})
    return _each(lambda text: parse_url(text, base_url=base_url, schemes=schemes))


def _first(arg: Any, env: TransformEnv) -> Transform:
    _no_arg("first", arg)

    def first(value: Any, run: TransformRun) -> Any:
        if isinstance(value, list | tuple):
            return next((v for v in value if not is_missing(v)), None)
        return value

    return first


_Builder = Callable[[Any, TransformEnv], Transform]

#: name -> (builder, Webflow field types it may feed; None for any).
TRANSFORMS: Final[dict[str, tuple[_Builder, frozenset[FieldType] | None]]] = {
    "trim": (_trim, _ANY),
    "lower": (_lower, _ANY),
    "upper": (_upper, _ANY),
    "default": (_default, _ANY),
    "constant": (_constant, _ANY),
    "truncate": (_truncate, _TEXT_TYPES),
    "replace": (_replace, _ANY),
    "split": (_split, _ANY),
    "join": (_join, _ANY),
    "map": (_map, _ANY),
    "html_unescape": (_html_unescape, _ANY),
    "strip_html": (_strip_html, _ANY),
    "markdown": (_markdown, frozenset({"RichText"})),
    "richtext_wordpress": (_richtext_wordpress, frozenset({"RichText"})),
    "slugify": (_slugify, frozenset({"PlainText", "Option"})),
    "datetime": (_datetime, frozenset({"DateTime", "PlainText"})),
    "number": (_number, frozenset({"Number", "PlainText"})),
    "boolean": (_boolean, frozenset({"Switch"})),
    "url": (_url, _URL_TYPES),
    "first": (_first, _ANY),
}


#: What a transform returns besides None, for the transforms whose every result is of one kind:
#: a field type's check that keeps such values unchanged (``fieldtypes.keeps_unchanged``) need
#: not run after them.
RESULT_KINDS: Final[Mapping[str, str]] = {
    "number": "number",
    "boolean": "boolean",
    "datetime": "webflow_datetime",
}


def transform_name(spec: str | Mapping[str, Any]) -> str:
    """``"number"`` for both ``"number"`` and ``{number = {decimal = ","}}``."""
    return _name_and_argument(spec)[0]


def _name_and_argument(spec: str | Mapping[str, Any]) -> tuple[str, Any]:
    if isinstance(spec, str):
        return spec, None
    ((name, arg),) = spec.items()
    return str(name), arg


def build_transform(spec: str | Mapping[str, Any], env: TransformEnv) -> Transform:
    name, arg = _name_and_argument(spec)
    entry = TRANSFORMS.get(name)
    if entry is None:
        raise TransformConfigError(
            f"unknown transform {name!r}",
            fix="use one of " + ", ".join(sorted(TRANSFORMS)),
        )
    builder, fits = entry
    if fits is not None and env.field_type not in fits:
        raise TransformConfigError(
            f"transform {name!r} does not fit a {env.field_type} field",
            fix=f"{name!r} feeds only " + ", ".join(sorted(fits)) + " fields; remove it here",
        )
    return builder(arg, env)
