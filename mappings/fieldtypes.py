"""The last step for every field: the value exactly as Webflow accepts it for the field's type,
checked against the field's validations, or a :class:`FieldValueError` saying why not.

Formats (Webflow Data API v2, "Field Types & Item Values"): PlainText, RichText, Email, Phone,
Link, VideoLink, Color and Option are strings (Option the option's id); Number a JSON number;
Switch a boolean; DateTime an ISO 8601 string (written as ``2024-01-02T03:04:05.000Z``); Image and
File ``{"url", "alt"?}`` (or ``{"fileId"}`` for an asset already on Webflow); MultiImage a list of
those, at most 25. References are resolved by the mapper, not here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from flowport.base.models import FieldSchema
from flowport.mappings.richtext import sanitize_html
from flowport.mappings.transforms import TransformRun
from flowport.mappings.values import (
    FieldValueError,
    parse_boolean,
    parse_color,
    parse_email,
    parse_number,
    parse_phone,
    parse_url,
    webflow_datetime,
)

__all__ = ["MAX_IMAGES", "NAME_MAX_LENGTH", "Coercer", "build_coercer"]

Coercer = Callable[[Any, TransformRun], Any]

#: Webflow's limit on the Name field and on a MultiImage field's images.
NAME_MAX_LENGTH: Final = 256
MAX_IMAGES: Final = 25

_HTTP: Final = frozenset({"http", "https"})
_LINK_SCHEMES: Final = frozenset({"http", "https", "mailto", "tel"})
_FILE_ID: Final = re.compile(r"^[0-9a-f]{24}$")
_NEWLINES: Final = re.compile(r"\s*[\r\n]+\s*")


def _validations(field: FieldSchema) -> Mapping[str, Any]:
    return field.validations or {}


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    kind = "a list" if isinstance(value, list | tuple) else type(value).__name__
    raise FieldValueError(f"expected text, got {kind} (add a transform such as join or first)")


def _plain_text(field: FieldSchema, overflow: str) -> Coercer:
    rules = _validations(field)
    max_length = rules.get("maxLength")
    if max_length is None and field.slug == "name":
        max_length = NAME_MAX_LENGTH
    min_length = rules.get("minLength")
    single_line = bool(rules.get("singleLine", False))

    def coerce(value: Any, run: TransformRun) -> Any:
        text = _as_text(value).strip()
        if "\x00" in text:
            # A NUL is never text (a binary column, a C string's end): dropped, and said so.
            run.warn("nul_dropped", f"{text.count(chr(0))} NUL character(s) removed")
            text = text.replace("\x00", "").strip()
        if single_line and ("\n" in text or "\r" in text):
            text = _NEWLINES.sub(" ", text)
        if not text:
            return None
        if max_length is not None and len(text) > max_length:
            if overflow == "error":
                raise FieldValueError(
                    f"text is {len(text)} characters, over the field's limit of {max_length}"
                )
            run.warn("truncated", f"cut from {len(text)} to {max_length} characters (field limit)")
            text = text[:max_length].rstrip()
        if min_length is not None and len(text) < min_length:
            raise FieldValueError(
                f"text is {len(text)} characters, under the field's minimum of {min_length}"
            )
        return text

    return coerce


def _rich_text(
    field: FieldSchema, base_url: str | None, new_paths: Callable[[str], bool] | None
) -> Coercer:
    rules = _validations(field)
    max_length = rules.get("maxLength")

    def coerce(value: Any, run: TransformRun) -> Any:
        relative: list[str] = []
        # Links already pointed at their Webflow items stay relative to the new site.
        html = sanitize_html(
            _as_text(value), base_url=base_url, relative=relative, keep_relative=new_paths
        )
        if not html:
            return None
        if relative:
            run.warn(
                "relative_url",
                f"{len(relative)} relative link(s) or image(s) such as {relative[0][:60]!r} "
                "will not resolve on Webflow; set base_url",
            )
        if "<pre" in html:
            # Webflow documents code blocks as stored empty; inline <code> is not a block.
            run.warn("code_block", "holds a <pre> code block; Webflow's API stores it as empty")
        if max_length is not None and len(html) > max_length:
            raise FieldValueError(
                f"HTML is {len(html)} characters, over the field's limit of {max_length}"
            )
        return html

    return coerce


def _asset(value: Any, base_url: str | None) -> dict[str, str]:
    alt: Any = None
    if isinstance(value, str):
        url: Any = value
    elif isinstance(value, Mapping):
        url = value.get("url") or value.get("src") or value.get("source_url")
        alt = value.get("alt") or value.get("alt_text")
        file_id = value.get("fileId")
        if not url and isinstance(file_id, str):
            if not _FILE_ID.match(file_id):
                raise FieldValueError(f"fileId {file_id!r} is not a Webflow asset id")
            return {"fileId": file_id} | ({"alt": str(alt)} if alt else {})
    else:
        raise FieldValueError(f"expected a URL or a {{url, alt}} table, got {type(value).__name__}")
    if not isinstance(url, str) or not url.strip():
        raise FieldValueError("the image or file has no URL")
    try:
        absolute = parse_url(url, base_url=base_url, schemes=_HTTP)
    except FieldValueError as exc:
        if "relative" in str(exc):
            raise
        raise FieldValueError(f"not an http(s) URL: {url.strip()[:80]!r}") from None
    asset = {"url": absolute}
    if alt is not None and str(alt).strip():
        asset["alt"] = str(alt).strip()
    return asset


def _single_asset(base_url: str | None) -> Coercer:
    def coerce(value: Any, run: TransformRun) -> Any:
        if isinstance(value, list | tuple):
            if len(value) != 1:
                raise FieldValueError(
                    f'expected one image or file, got a list of {len(value)} (add "first")'
                )
            value = value[0]
        return _asset(value, base_url)

    return coerce


def _multi_image(base_url: str | None) -> Coercer:
    def coerce(value: Any, run: TransformRun) -> Any:
        values = list(value) if isinstance(value, list | tuple) else [value]
        images = [_asset(v, base_url) for v in values if v not in (None, "")]
        if len(images) > MAX_IMAGES:
            run.warn(
                "too_many_images",
                f"kept the first {MAX_IMAGES} of {len(images)} images (Webflow's limit)",
            )
            images = images[:MAX_IMAGES]
        return images or None

    return coerce


def _url(schemes: frozenset[str], base_url: str | None) -> Coercer:
    def coerce(value: Any, run: TransformRun) -> Any:
        return parse_url(value, base_url=base_url, schemes=schemes)

    return coerce


def _number(field: FieldSchema) -> Coercer:
    rules = _validations(field)
    integer = rules.get("format") == "integer"
    precision = rules.get("precision")
    allow_negative = rules.get("allowNegative", True)
    allow_zero = rules.get("allowZero", True)
    minimum = rules.get("minValue")
    maximum = rules.get("maxValue")

    def coerce(value: Any, run: TransformRun) -> Any:
        number = parse_number(value)
        if integer and not isinstance(number, int):
            raise FieldValueError(f"{number} is not a whole number (the field takes integers)")
        if isinstance(precision, int) and isinstance(number, float):
            number = round(number, precision)
            if number.is_integer():
                number = int(number)
        if allow_negative is False and number < 0:
            raise FieldValueError(f"{number} is negative (the field refuses negative numbers)")
        if allow_zero is False and number == 0:
            raise FieldValueError("0 is refused by the field")
        if isinstance(minimum, int | float) and number < minimum:
            raise FieldValueError(f"{number} is under the field's minimum of {minimum}")
        if isinstance(maximum, int | float) and number > maximum:
            raise FieldValueError(f"{number} is over the field's maximum of {maximum}")
        return number

    return coerce


def _datetime(value: Any, run: TransformRun) -> Any:
    # A date already in Webflow's form (a datetime transform's result) is checked by
    # webflow_datetime's UTC shortcut, not parsed again.
    return webflow_datetime(value)


def _switch(value: Any, run: TransformRun) -> Any:
    return parse_boolean(value)


def _color(value: Any, run: TransformRun) -> Any:
    return parse_color(value)


def _email(value: Any, run: TransformRun) -> Any:
    return parse_email(value)


def _phone(value: Any, run: TransformRun) -> Any:
    return parse_phone(value)


def _option(field: FieldSchema) -> Coercer:
    by_name = {name.strip().casefold(): option_id for name, option_id in field.options.items()}
    ids = frozenset(field.options.values())
    names = ", ".join(repr(name) for name in field.options)

    def coerce(value: Any, run: TransformRun) -> Any:
        text = _as_text(value).strip()
        if text in ids:
            return text
        option_id = by_name.get(text.casefold())
        if option_id is None:
            raise FieldValueError(f"{text!r} is not one of the options ({names or 'none defined'})")
        return option_id

    return coerce


def keeps_unchanged(field: FieldSchema, kind: str) -> bool:
    """Whether the field's check returns every value of ``kind`` (a transform's result kind,
    ``transforms.RESULT_KINDS``) unchanged: then the mapper skips it."""
    if kind == "number":
        return field.type == "Number" and not _has_number_rules(field)
    if kind == "boolean":
        return field.type == "Switch"
    if kind == "webflow_datetime":
        return field.type == "DateTime"
    return False


def blank_text_is_missing(field: FieldSchema) -> bool:
    """Whether the field's check answers None (missing) for blank text, as the mapper's own
    missing-value test would: then the mapper hands text straight to it."""
    return field.type == "PlainText"


def _has_number_rules(field: FieldSchema) -> bool:
    # The same conditions as _number's checks: any one of them can change or refuse a number.
    rules = _validations(field)
    return (
        rules.get("format") == "integer"
        or isinstance(rules.get("precision"), int)
        or rules.get("allowNegative", True) is False
        or rules.get("allowZero", True) is False
        or isinstance(rules.get("minValue"), int | float)
        or isinstance(rules.get("maxValue"), int | float)
    )


def build_coercer(
    field: FieldSchema,
    *,
    base_url: str | None,
    overflow: str,
    new_paths: Callable[[str], bool] | None = None,
) -> Coercer:
    kind = field.type
    if kind == "PlainText":
        return _plain_text(field, overflow)
    if kind == "RichText":
        return _rich_text(field, base_url, new_paths)
    if kind in ("Image", "File", "ExtFileRef"):
        return _single_asset(base_url)
    if kind == "MultiImage":
        return _multi_image(base_url)
    if kind == "VideoLink":
        return _url(_HTTP, base_url)
    if kind == "Link":
        return _url(_LINK_SCHEMES, base_url)
    if kind == "Number":
        return _number(field)
    if kind == "DateTime":
        return _datetime
    if kind == "Switch":
        return _switch
    if kind == "Color":
        return _color
    if kind == "Email":
        return _email
    if kind == "Phone":
        return _phone
    if kind == "Option":
        return _option(field)
    raise ValueError(f"{kind} fields are resolved by the mapper, not coerced")
