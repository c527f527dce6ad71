"""Collection fields and the value each field type accepts, as Webflow documents them.

A value that a field refuses raises :class:`InvalidValue` with the reason Webflow would give; the
core turns it into one ``details`` entry naming the field (and the item index in a bulk request).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

from flowport.pipeline.sandbox._config import SandboxConfig
from flowport.pipeline.sandbox._remote import FetchedFile, FetchFailure, FileKind, Wanted

__all__ = [
    "CREATABLE_TYPES",
    "FIELD_TYPES",
    "FILE_FIELD_KINDS",
    "FieldDef",
    "InvalidValue",
    "ValueChecker",
    "file_kind",
    "format_timestamp",
    "is_object_id",
    "slugify_field_name",
    "wanted_files",
]

FIELD_TYPES = frozenset(
    {
        "Color", "DateTime", "Email", "ExtFileRef", "File", "Image", "Link", "MultiImage",
        "MultiReference", "Number", "Option", "Phone", "PlainText", "Reference", "RichText",
        "Switch", "VideoLink",
    }
)  # fmt: skip
#: The types the create-field endpoints accept (ExtFileRef is read-only in the spec).
CREATABLE_TYPES = FIELD_TYPES - {"ExtFileRef"}

_OBJECT_ID = re.compile(r"[0-9a-f]{24}")
_ITEM_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE = re.compile(r"\+?[0-9 ()./-]{3,40}")
_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")
_RGB = re.compile(r"rgba?\(\s*\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}\s*(?:,\s*(?:0|1|0?\.\d+)\s*)?\)")
_ALPHA = r"(?:0|1|0?\.\d+|1\.0+|\d{1,3}(?:\.\d+)?%)"
_HSL = re.compile(
    r"hsla?\(\s*-?\d{1,3}(?:\.\d+)?(?:deg)?\s*,\s*\d{1,3}(?:\.\d+)?%\s*,"
    r"\s*\d{1,3}(?:\.\d+)?%\s*(?:,\s*" + _ALPHA + r"\s*)?\)"
)
#: CSS Color Module Level 4's 148 named colours; Webflow accepts "orchid, aqua, black, etc."
_NAMED_COLOR_TEXT = """
    aliceblue antiquewhite aqua aquamarine azure beige bisque black blanchedalmond blue
    blueviolet brown burlywood cadetblue chartreuse chocolate coral cornflowerblue cornsilk
    crimson cyan darkblue darkcyan darkgoldenrod darkgray darkgreen darkgrey darkkhaki
    darkmagenta darkolivegreen darkorange darkorchid darkred darksalmon darkseagreen
    darkslateblue darkslategray darkslategrey darkturquoise darkviolet deeppink deepskyblue
    dimgray dimgrey dodgerblue firebrick floralwhite forestgreen fuchsia gainsboro
    ghostwhite gold goldenrod gray green greenyellow grey honeydew hotpink indianred indigo
    ivory khaki lavender lavenderblush lawngreen lemonchiffon lightblue lightcoral lightcyan
    lightgoldenrodyellow lightgray lightgreen lightgrey lightpink lightsalmon lightseagreen
    lightskyblue lightslategray lightslategrey lightsteelblue lightyellow lime limegreen
    linen magenta maroon mediumaquamarine mediumblue mediumorchid mediumpurple
    mediumseagreen mediumslateblue mediumspringgreen mediumturquoise mediumvioletred
    midnightblue mintcream mistyrose moccasin navajowhite navy oldlace olive olivedrab
    orange orangered orchid palegoldenrod palegreen paleturquoise palevioletred papayawhip
    peachpuff peru pink plum powderblue purple rebeccapurple red rosybrown royalblue
    saddlebrown salmon sandybrown seagreen seashell sienna silver skyblue slateblue
    slategray slategrey snow springgreen steelblue tan teal thistle tomato turquoise violet
    wheat white whitesmoke yellow yellowgreen transparent
"""
_NAMED_COLORS = frozenset(_NAMED_COLOR_TEXT.split())
_FIELD_SLUG_JUNK = re.compile(r"[^a-z0-9-]+")


class InvalidValue(ValueError):
    """A field refuses a value; the message is the ``description`` of the error detail."""


def is_object_id(value: object) -> bool:
    return isinstance(value, str) and _OBJECT_ID.fullmatch(value) is not None


def format_timestamp(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def slugify_field_name(name: str) -> str:
    # Webflow lowercases field slugs and turns spaces into hyphens.
    slug = _FIELD_SLUG_JUNK.sub("-", name.strip().lower()).strip("-")
    return re.sub(r"-{2,}", "-", slug)


@dataclass(slots=True)
class FieldDef:
    id: str
    slug: str
    display_name: str
    type: str
    is_required: bool = False
    is_editable: bool = True
    help_text: str | None = None
    validations: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "isEditable": self.is_editable,
            "isRequired": self.is_required,
            "type": self.type,
            "slug": self.slug,
            "displayName": self.display_name,
            "helpText": self.help_text,
            "validations": self.validations,
        }
        if self.type == "Option" and self.validations:
            body["metadata"] = {"options": self.validations.get("options", [])}
        elif self.type in ("Reference", "MultiReference") and self.validations:
            body["metadata"] = {"collectionId": self.validations.get("collectionId")}
        return body

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FieldDef:
        return cls(
            id=data["id"],
            slug=data["slug"],
            display_name=data["displayName"],
            type=data["type"],
            is_required=bool(data.get("isRequired")),
            is_editable=bool(data.get("isEditable", True)),
            help_text=data.get("helpText"),
            validations=data.get("validations"),
        )

    @property
    def option_ids(self) -> frozenset[str]:
        options = (self.validations or {}).get("options") or []
        return frozenset(str(option["id"]) for option in options)


def _is_web_url(value: str, schemes: tuple[str, ...] = ("http", "https")) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in schemes and bool(parts.netloc) and " " not in value


@dataclass(slots=True)
class ValueChecker:
    """Checks and normalizes one field value; file values get a ``fileId`` as Webflow gives."""

    config: SandboxConfig
    new_id: Callable[[], str]
    reference_exists: Callable[[str, str], bool]
    skip_invalid_files: bool = True
    skipped_files: list[str] = field(default_factory=list)
    #: What the server fetched for this request's file URLs (see ``_remote``).
    files: Mapping[Wanted, FetchedFile | FetchFailure] = field(default_factory=dict)
    #: The hosted url of a new file (id, name), and of an existing file by id (None: no such).
    file_url: Callable[[str, str], str] = lambda file_id, name: f"/{file_id}_{name}"
    existing_file_url: Callable[[str], str | None] = lambda file_id: None
    #: Files fetched for this request, to host once the request is sure to be written.
    hosted: list[tuple[str, FetchedFile]] = field(default_factory=list)

    def check(self, definition: FieldDef, value: Any) -> Any:
        if value is None:
            if definition.is_required:
                raise InvalidValue(f"Field '{definition.slug}' is required")
            return None
        result = _CHECKS[definition.type](self, definition, value)
        if definition.is_required and result in ("", [], None):
            raise InvalidValue(f"Field '{definition.slug}' is required")
        return result

    def name(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise InvalidValue("Field 'name' is required and must be a non-empty string")
        if len(value) > self.config.name_max_length:
            raise InvalidValue(
                f"Field 'name' is longer than {self.config.name_max_length} characters"
            )
        return value

    def slug(self, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise InvalidValue("Field 'slug' is required and must be a non-empty string")
        if len(value) > self.config.slug_max_length:
            raise InvalidValue(
                f"Field 'slug' is longer than {self.config.slug_max_length} characters"
            )
        if _ITEM_SLUG.fullmatch(value) is None:
            raise InvalidValue(
                f"Field 'slug' must contain only lowercase letters, digits and single hyphens "
                f"between them: '{value}'"
            )
        return value

    def _text(self, definition: FieldDef, value: Any, limit: int) -> str:
        if not isinstance(value, str):
            raise InvalidValue(f"Field '{definition.slug}' must be a string")
        if len(value) > limit:
            raise InvalidValue(f"Field '{definition.slug}' is longer than {limit} characters")
        return value

    def _plain_text(self, definition: FieldDef, value: Any) -> str:
        return self._text(definition, value, self.config.plain_text_max_length)

    def _rich_text(self, definition: FieldDef, value: Any) -> str:
        return empty_code_blocks(self._text(definition, value, self.config.rich_text_max_length))

    def _file(self, definition: FieldDef, value: Any) -> dict[str, Any] | None:
        alt: Any = None
        file_id: Any = None
        if isinstance(value, str):
            url: Any = value
        elif isinstance(value, dict):
            unknown = set(value) - {"url", "alt", "fileId"}
            if unknown:
                raise InvalidValue(
                    f"Field '{definition.slug}' has unknown keys: {', '.join(sorted(unknown))}"
                )
            url, alt, file_id = value.get("url"), value.get("alt"), value.get("fileId")
            if alt is not None and not isinstance(alt, str):
                raise InvalidValue(f"Field '{definition.slug}': 'alt' must be a string")
        else:
            raise InvalidValue(f"Field '{definition.slug}' must be a URL or an object {{url, alt}}")
        if file_id is not None:
            return self._existing_file(definition, file_id, alt)
        if not isinstance(url, str) or not _is_web_url(url):
            self._invalid_file(definition, f"invalid file URL: {url!r}")
            return None
        fetched = self.files.get((file_kind(definition.type), url))
        if fetched is None:
            # Not fetched (the core driven without its server): kept as given.
            return {"fileId": self.new_id(), "url": url, "alt": alt}
        if isinstance(fetched, FetchFailure):
            self._invalid_file(definition, f"{fetched.reason}: {url}")
            return None
        file_id = self.new_id()
        self.hosted.append((file_id, fetched))
        return {"fileId": file_id, "url": self.file_url(file_id, fetched.file_name), "alt": alt}

    def _existing_file(self, definition: FieldDef, file_id: Any, alt: Any) -> dict[str, Any] | None:
        """Webflow: "You can also add an image that already exists in the CMS by referencing its
        fileId"; the stored url is the file's own, whatever url came with it."""
        if not is_object_id(file_id):
            raise InvalidValue(f"Field '{definition.slug}': invalid fileId {file_id!r}")
        url = self.existing_file_url(file_id)
        if url is None:
            self._invalid_file(definition, f"no file with fileId {file_id!r}")
            return None
        return {"fileId": file_id, "url": url, "alt": alt}

    def _invalid_file(self, definition: FieldDef, reason: str) -> None:
        if not self.skip_invalid_files:
            raise InvalidValue(f"Field '{definition.slug}': {reason}")
        self.skipped_files.append(definition.slug)

    def _image(self, definition: FieldDef, value: Any) -> dict[str, Any] | None:
        return self._file(definition, value)

    def _multi_image(self, definition: FieldDef, value: Any) -> list[dict[str, Any]]:
        if not isinstance(value, list):
            raise InvalidValue(f"Field '{definition.slug}' must be a list of images")
        if len(value) > self.config.multi_image_max:
            raise InvalidValue(
                f"Field '{definition.slug}' holds at most {self.config.multi_image_max} images"
            )
        images = [self._file(definition, entry) for entry in value]
        return [image for image in images if image is not None]

    def _video_link(self, definition: FieldDef, value: Any) -> str:
        if not isinstance(value, str) or not _is_web_url(value):
            raise InvalidValue(f"Field '{definition.slug}' must be an http(s) video URL")
        return value

    def _link(self, definition: FieldDef, value: Any) -> str:
        if not isinstance(value, str) or not _is_link(value):
            raise InvalidValue(f"Field '{definition.slug}' must be a URL: {value!r}")
        return value

    def _email(self, definition: FieldDef, value: Any) -> str:
        if not isinstance(value, str) or _EMAIL.fullmatch(value) is None:
            raise InvalidValue(f"Field '{definition.slug}' must be an email address: {value!r}")
        return value

    def _phone(self, definition: FieldDef, value: Any) -> str:
        if (
            not isinstance(value, str)
            or _PHONE.fullmatch(value) is None
            or sum(ch.isdigit() for ch in value) < 3
        ):
            raise InvalidValue(f"Field '{definition.slug}' must be a phone number: {value!r}")
        return value

    def _number(self, definition: FieldDef, value: Any) -> int | float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidValue(f"Field '{definition.slug}' must be a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidValue(f"Field '{definition.slug}' must be a finite number")
        return value

    def _date_time(self, definition: FieldDef, value: Any) -> str:
        if not isinstance(value, str):
            raise InvalidValue(f"Field '{definition.slug}' must be an ISO 8601 date string")
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidValue(
                f"Field '{definition.slug}' must be an ISO 8601 date: {value!r}"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return format_timestamp(moment)

    def _switch(self, definition: FieldDef, value: Any) -> bool:
        if not isinstance(value, bool):
            raise InvalidValue(f"Field '{definition.slug}' must be true or false")
        return value

    def _color(self, definition: FieldDef, value: Any) -> str:
        # Webflow's "Field Types & Item Values" (Color): "#RGB, #RGBA, #RRGGBB, #RRGGBBAA,
        # rgb(), rgba(), hsl(), hsla(), orchid, aqua, black, etc., transparent".
        if not isinstance(value, str) or not (
            _COLOR.fullmatch(value)
            or _RGB.fullmatch(value)
            or _HSL.fullmatch(value)
            or value.lower() in _NAMED_COLORS
        ):
            raise InvalidValue(
                f"Field '{definition.slug}' must be a hex, rgb(), hsl() or named color: {value!r}"
            )
        return value

    def _option(self, definition: FieldDef, value: Any) -> str:
        if not isinstance(value, str) or value not in definition.option_ids:
            raise InvalidValue(
                f"Field '{definition.slug}' must be the id of one of its options: {value!r}"
            )
        return value

    def _reference(self, definition: FieldDef, value: Any) -> str:
        target = str((definition.validations or {}).get("collectionId", ""))
        if not is_object_id(value) or not self.reference_exists(target, value):
            raise InvalidValue(
                f"Field '{definition.slug}' references an item that does not exist in "
                f"collection '{target}': {value!r}"
            )
        return str(value)

    def _reference_one(self, definition: FieldDef, value: Any) -> str:
        return self._reference(definition, value)

    def _multi_reference(self, definition: FieldDef, value: Any) -> list[str]:
        if not isinstance(value, list):
            raise InvalidValue(f"Field '{definition.slug}' must be a list of item ids")
        if len(value) > self.config.multi_reference_max:
            raise InvalidValue(
                f"Field '{definition.slug}' holds at most "
                f"{self.config.multi_reference_max} references"
            )
        return [self._reference(definition, entry) for entry in value]


class _CodeBlockFinder(HTMLParser):
    """Finds where the content of each ``<pre>`` starts and ends in the text, skipping those
    inside a custom-code embed (``<div data-rt-embed-type='true'>``): Webflow keeps that code."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=False)
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self._divs: list[bool] = []  # for each open <div>: is it an embed?
        self._pre_depth = 0
        self._content_start = 0
        self.spans: list[tuple[int, int]] = []

    def _offset(self) -> int:
        line, column = self.getpos()
        return self._line_starts[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "div":
            self._divs.append(("data-rt-embed-type", "true") in attrs)
        elif tag == "pre" and not any(self._divs):
            self._pre_depth += 1
            if self._pre_depth == 1:
                self._content_start = self._offset() + len(self.get_starttag_text() or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._divs:
            self._divs.pop()
        elif tag == "pre" and self._pre_depth > 0:
            self._pre_depth -= 1
            if self._pre_depth == 0:
                self.spans.append((self._content_start, self._offset()))

    @property
    def unclosed_start(self) -> int | None:
        return self._content_start if self._pre_depth > 0 else None


def empty_code_blocks(html: str) -> str:
    """Webflow's "Field Types & Item Values" reference (developers.webflow.com/reference/
    field-types-item-values, Rich Text): "Currently, code blocks in Rich Text fields aren't
    supported. Passing any code blocks will result in an empty string between the opening and
    closing tags." A code block is the editor's ``<pre>`` (with or without ``<code>`` inside);
    inline ``<code>`` in a paragraph is not a block and stays."""
    if "<pre" not in html.lower():
        return html
    finder = _CodeBlockFinder(html)
    finder.feed(html)
    finder.close()
    if finder.unclosed_start is not None:  # browsers close a <pre> at the end of the document
        finder.spans.append((finder.unclosed_start, len(html)))
    for start, end in reversed(finder.spans):
        html = html[:start] + html[end:]
    return html


#: The field types whose values are files, and what each takes.
FILE_FIELD_KINDS: dict[str, FileKind] = {
    "Image": "image",
    "MultiImage": "image",
    "File": "file",
    "ExtFileRef": "file",
}


def file_kind(field_type: str) -> FileKind:
    return FILE_FIELD_KINDS.get(field_type, "file")


def wanted_files(fields: Mapping[str, FieldDef], field_data: object) -> list[Wanted]:
    """The URLs of one fieldData's file values that Webflow would fetch (no fileId given)."""
    if not isinstance(field_data, dict):
        return []
    wanted: list[Wanted] = []
    for slug, value in field_data.items():
        definition = fields.get(slug)
        if definition is None or definition.type not in FILE_FIELD_KINDS:
            continue
        kind = FILE_FIELD_KINDS[definition.type]
        for entry in value if isinstance(value, list) else [value]:
            url = entry.get("url") if isinstance(entry, dict) and not entry.get("fileId") else entry
            if isinstance(url, str) and _is_web_url(url):
                wanted.append((kind, url))
    return wanted


def _is_link(value: str) -> bool:
    if value.startswith(("mailto:", "tel:")):
        return len(value) > len("tel:") and " " not in value
    return _is_web_url(value)


_CHECKS: dict[str, Callable[[ValueChecker, FieldDef, Any], Any]] = {
    "PlainText": ValueChecker._plain_text,
    "RichText": ValueChecker._rich_text,
    "Image": ValueChecker._image,
    "MultiImage": ValueChecker._multi_image,
    "VideoLink": ValueChecker._video_link,
    "Link": ValueChecker._link,
    "Email": ValueChecker._email,
    "Phone": ValueChecker._phone,
    "Number": ValueChecker._number,
    "DateTime": ValueChecker._date_time,
    "Switch": ValueChecker._switch,
    "Color": ValueChecker._color,
    "Option": ValueChecker._option,
    "Reference": ValueChecker._reference_one,
    "MultiReference": ValueChecker._multi_reference,
    "File": ValueChecker._image,
    "ExtFileRef": ValueChecker._image,
}
