"""Parsers from loose source values to the exact values Webflow accepts.

Each raises :class:`FieldValueError` with a reason a person can act on; the mapper turns it into a
per-item failure naming the field.

Decisions worth knowing:

* Numbers: ``.`` is the decimal mark and ``,`` may only group thousands (``1,234.5``); ``1,5`` is
  refused as ambiguous unless the job says ``{number = {decimal = ","}}`` (then ``1.234,5``).
  Spaces (including no-break and thin spaces) group thousands in both. NaN and infinities are
  refused, and so are integers beyond 2**53, which a JSON number cannot hold exactly.
* Dates: ISO 8601, RFC 2822, ``YYYY-MM-DD[ HH:MM[:SS]]``, ``YYYY/MM/DD``, unix epoch seconds (a
  number, or 9 to 10 digits) and, last, dateutil's parser; a value without a zone is read in the
  configured zone (UTC unless told). WordPress's ``0000-00-00 00:00:00`` means "no date".
* Phones are not reformatted (a country cannot be guessed): kept as written, with 7 to 15 digits
  (E.164's bounds) and only ``+ - . ( ) /`` and spaces; an extension is refused with a reason.
"""

from __future__ import annotations

import colorsys
import email.utils
import math
import re
from datetime import UTC, date, datetime, tzinfo
from typing import Any
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil import parser as dateutil_parser

__all__ = [
    "CSS_COLOR_NAMES",
    "FieldValueError",
    "format_webflow_datetime",
    "load_zone",
    "parse_boolean",
    "parse_color",
    "parse_datetime",
    "parse_email",
    "parse_number",
    "parse_phone",
    "parse_url",
    "webflow_datetime",
]

MAX_EXACT_INTEGER = 2**53


class FieldValueError(ValueError):
    """A value that cannot become what the field needs; ``str()`` is the reason."""


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- numbers -----------------------------------------------------------------------------------

_PLAIN_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_GROUPED_DOT = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_GROUPED_COMMA = re.compile(r"^[+-]?\d{1,3}(?:\.\d{3})+(?:,\d+)?$")
_SPACES = re.compile(r"[\s\u00a0\u202f\u2009]+")
_INTEGER = re.compile(r"[+-]?\d+")


def _finish_number(number: float, original: Any) -> int | float:
    if math.isnan(number) or math.isinf(number):
        raise FieldValueError(f"{_describe(original)} is not a finite number")
    if number.is_integer() and abs(number) < MAX_EXACT_INTEGER:
        return int(number)
    return number


def parse_number(value: Any, *, decimal: str = ".") -> int | float:
    if isinstance(value, bool):
        raise FieldValueError(f"{value!r} is a boolean, not a number")
    if isinstance(value, int):
        if abs(value) > MAX_EXACT_INTEGER:
            raise FieldValueError(
                f"{value} is too large to store exactly as a number (over 2**53); "
                "map it to a PlainText field"
            )
        return value
    if isinstance(value, float):
        return _finish_number(value, value)
    if not isinstance(value, str):
        raise FieldValueError(f"{_describe(value)} is not a number")
    text = value.strip()
    if decimal == "." and _PLAIN_NUMBER.match(text):
        # The usual case, with nothing to take out first.
        if _INTEGER.fullmatch(text):
            return parse_number(int(text))
        return _finish_number(float(text), value)
    text = _SPACES.sub("", text)
    if decimal == ",":
        if _GROUPED_COMMA.match(text):
            text = text.replace(".", "")
        elif "." in text:
            raise FieldValueError(f"{_describe(value)} is not a number with ',' as decimal mark")
        text = text.replace(",", ".")
    elif "," in text:
        if not _GROUPED_DOT.match(text):
            raise FieldValueError(
                f"{_describe(value)} is ambiguous: ',' is read only as a thousands separator; "
                'for a decimal comma use transforms = [{number = {decimal = ","}}]'
            )
        text = text.replace(",", "")
    if not _PLAIN_NUMBER.match(text):
        raise FieldValueError(f"{_describe(value)} is not a number")
    if _INTEGER.fullmatch(text):
        return parse_number(int(text))
    return _finish_number(float(text), value)


# --- booleans ----------------------------------------------------------------------------------

_TRUE = frozenset({"true", "yes", "y", "1", "on", "t"})
_FALSE = frozenset({"false", "no", "n", "0", "off", "f"})


def parse_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise FieldValueError(
        f"{_describe(value)} is not a yes/no value (true/false, yes/no, 1/0, on/off)"
    )


# --- dates -------------------------------------------------------------------------------------

_EPOCH = re.compile(r"^\d{9,10}(?:\.\d+)?$")
_WORDPRESS_ZERO = re.compile(r"^0000-00-00(?:[ T]00:00:00)?$")
_SLASHED = re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})$")


def load_zone(name: str) -> tzinfo:
    if name.upper() in ("UTC", "Z", "GMT"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise FieldValueError(
            f"unknown time zone {name!r} (use an IANA name like Europe/Paris)"
        ) from exc


def format_webflow_datetime(moment: datetime) -> str:
    if moment.tzinfo is not UTC:
        try:
            moment = moment.astimezone(UTC)
        except OverflowError:
            raise FieldValueError(
                f"{moment.isoformat()} is out of range once converted to UTC"
            ) from None
    # isoformat rather than strftime: a third of the cost, and it pads years below 1000.
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


#: An ISO 8601 date and time that is already UTC (or has no offset, in a UTC job): Webflow's form
#: is then this very text with milliseconds, so it need not be parsed and written again.
_ISO_UTC = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?([Zz]|[+-]00:?00)?")


def webflow_datetime(
    value: Any,
    *,
    zone: tzinfo = UTC,
    input_format: str | None = None,
    dayfirst: bool = False,
) -> str | None:
    """``value`` as Webflow writes dates (``parse_datetime`` then ``format_webflow_datetime``),
    or None for WordPress's "no date"."""
    if type(value) is str and input_format is None:
        text = value.strip()
        iso = _ISO_UTC.fullmatch(text)
        if iso is not None and (iso.group(3) is not None or zone is UTC):
            whole_seconds, fraction, _offset = iso.groups()
            try:
                # Checks the calendar and the clock (no February 30th, no hour 24).
                datetime.fromisoformat(whole_seconds)
            except ValueError:
                pass
            else:
                return f"{whole_seconds}.{(fraction or '').ljust(3, '0')[:3]}Z"
    moment = parse_datetime(value, zone=zone, input_format=input_format, dayfirst=dayfirst)
    return None if moment is None else format_webflow_datetime(moment)


def _from_epoch(seconds: float, original: Any) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise FieldValueError(f"{_describe(original)} is out of range as epoch seconds") from exc


def parse_datetime(
    value: Any,
    *,
    zone: tzinfo = UTC,
    input_format: str | None = None,
    dayfirst: bool = False,
) -> datetime | None:
    """An aware datetime, or None for WordPress's "no date"."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, bool):
        raise FieldValueError(f"{value!r} is not a date")
    elif isinstance(value, int | float):
        return _from_epoch(float(value), value)
    elif isinstance(value, str):
        text = value.strip()
        if _WORDPRESS_ZERO.match(text):
            return None
        if input_format is not None:
            try:
                moment = datetime.strptime(text, input_format)
            except ValueError as exc:
                raise FieldValueError(
                    f"{_describe(value)} does not match the format {input_format!r}"
                ) from exc
        elif _EPOCH.match(text):
            return _from_epoch(float(text), value)
        else:
            moment = _parse_text_datetime(text, dayfirst=dayfirst, original=value)
    else:
        raise FieldValueError(f"{_describe(value)} is not a date")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment


def _parse_text_datetime(text: str, *, dayfirst: bool, original: Any) -> datetime:
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        return datetime.fromisoformat(iso)
    except ValueError:
        pass
    slashed = _SLASHED.match(text)
    if slashed:
        try:
            year, month, day = (int(part) for part in slashed.groups())
            return datetime(year, month, day)
        except ValueError as exc:
            raise FieldValueError(f"{_describe(original)} is not a valid date") from exc
    if "," in text or text[:3].isalpha():
        try:
            return email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            pass
    try:
        return dateutil_parser.parse(text, dayfirst=dayfirst)
    except (ValueError, OverflowError) as exc:
        raise FieldValueError(
            f"{_describe(original)} is not a date (ISO 8601, RFC 2822, YYYY-MM-DD or epoch "
            'seconds; for other layouts add {datetime = {format = "%d.%m.%Y"}})'
        ) from exc


# --- URLs, e-mail, phone -----------------------------------------------------------------------

_BARE_HOST = re.compile(r"^(?:[A-Za-z0-9-]+\.)+([A-Za-z]{2,})(?::\d+)?(?:[/?#]|$)")
# "photo.png" is a relative file name, "youtu.be/x" a host without its scheme.
_FILE_EXTENSIONS = frozenset(
    [
        "png",
        "jpg",
        "jpeg",
        "gif",
        "webp",
        "svg",
        "bmp",
        "tif",
        "tiff",
        "ico",
        "avif",
        "heic",
        "pdf",
        "doc",
        "docx",
        "xls",
        "xlsx",
        "ppt",
        "pptx",
        "txt",
        "csv",
        "zip",
        "gz",
        "mp3",
        "mp4",
        "m4a",
        "m4v",
        "mov",
        "wav",
        "ogg",
        "ogv",
        "webm",
        "html",
        "htm",
        "php",
        "asp",
        "aspx",
        "jsp",
        "xml",
        "json",
        "js",
        "css",
    ]
)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def parse_url(
    value: Any,
    *,
    base_url: str | None,
    schemes: frozenset[str] = frozenset({"http", "https"}),
) -> str:
    """An absolute URL with one of ``schemes``; relative ones are joined to ``base_url``."""
    if not isinstance(value, str):
        raise FieldValueError(f"{_describe(value)} is not a URL")
    text = value.strip()
    if any(c in text for c in " \t\r\n\x00"):
        text = text.replace(" ", "%20")
        if any(c in text for c in "\t\r\n\x00"):
            raise FieldValueError(f"{_describe(value)} is not a URL (it holds control characters)")
    if text.startswith("//"):
        text = "https:" + text
    elif not _SCHEME.match(text):
        host = _BARE_HOST.match(text)
        if host and host.group(1).lower() not in _FILE_EXTENSIONS:
            text = "https://" + text
        elif base_url:
            text = urljoin(base_url, text)
        else:
            raise FieldValueError(
                f"{_describe(value)} is a relative URL; set base_url in the collection mapping"
            )
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        wanted = "http(s)" if schemes == {"http", "https"} else "/".join(sorted(schemes))
        raise FieldValueError(f"{_describe(value)} is not an {wanted} URL")
    if scheme in ("http", "https") and not parts.netloc:
        raise FieldValueError(f"{_describe(value)} has no host")
    return text


_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)


def parse_email(value: Any) -> str:
    if not isinstance(value, str):
        raise FieldValueError(f"{_describe(value)} is not an e-mail address")
    text = value.strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    if "<" in text and text.endswith(">"):
        text = text[text.rindex("<") + 1 : -1].strip()
    local, _, domain = text.rpartition("@")
    if (
        len(text) > 254
        or len(local) > 64
        or not _EMAIL.match(text)
        or local.startswith(".")
        or local.endswith(".")
        or ".." in local
    ):
        raise FieldValueError(f"{_describe(value)} is not an e-mail address")
    return f"{local}@{domain.lower()}"


_PHONE_CHARS = re.compile(r"^\+?[0-9 ().\-/]+$")
_EXTENSION = re.compile(r"\s*(?:ext\.?|x|#)\s*\d{1,6}$", re.IGNORECASE)


def parse_phone(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise FieldValueError(f"{_describe(value)} is not a phone number")
    text = " ".join(value.strip().split())
    if text.lower().startswith("tel:"):
        text = text[4:].strip()
    if _EXTENSION.search(text) and _PHONE_CHARS.match(_EXTENSION.sub("", text)):
        raise FieldValueError(
            f"{_describe(value)} has an extension, which a Phone field does not take "
            "(map it to a PlainText field)"
        )
    digits = sum(c.isdigit() for c in text)
    if not _PHONE_CHARS.match(text) or not 7 <= digits <= 15:
        raise FieldValueError(
            f"{_describe(value)} is not a phone number (7 to 15 digits, optional +, "
            "spaces, dashes, dots, slashes and parentheses)"
        )
    return text


# --- colours -----------------------------------------------------------------------------------

_COLOR_NAME_LIST = """
    aliceblue antiquewhite aqua aquamarine azure beige bisque black blanchedalmond blue
    blueviolet brown burlywood cadetblue chartreuse chocolate coral cornflowerblue cornsilk crimson
    cyan darkblue darkcyan darkgoldenrod darkgray darkgreen darkgrey darkkhaki darkmagenta
    darkolivegreen darkorange darkorchid darkred darksalmon darkseagreen darkslateblue
    darkslategray darkslategrey darkturquoise darkviolet deeppink deepskyblue dimgray dimgrey
    dodgerblue firebrick floralwhite forestgreen fuchsia gainsboro ghostwhite gold goldenrod gray
    green greenyellow grey honeydew hotpink indianred indigo ivory khaki lavender lavenderblush
    lawngreen lemonchiffon lightblue lightcoral lightcyan lightgoldenrodyellow lightgray lightgreen
    lightgrey lightpink lightsalmon lightseagreen lightskyblue lightslategray lightslategrey
    lightsteelblue lightyellow lime limegreen linen magenta maroon mediumaquamarine mediumblue
    mediumorchid mediumpurple mediumseagreen mediumslateblue mediumspringgreen mediumturquoise
    mediumvioletred midnightblue mintcream mistyrose moccasin navajowhite navy oldlace olive
    olivedrab orange orangered orchid palegoldenrod palegreen paleturquoise palevioletred
    papayawhip peachpuff peru pink plum powderblue purple rebeccapurple red rosybrown royalblue
    saddlebrown salmon sandybrown seagreen seashell sienna silver skyblue slateblue slategray
    slategrey snow springgreen steelblue tan teal thistle tomato turquoise violet wheat white
    whitesmoke yellow yellowgreen transparent"""
CSS_COLOR_NAMES = frozenset(_COLOR_NAME_LIST.split())
_HEX = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")
_NUM = r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)%?\s*"
_FUNCTIONAL = re.compile(
    rf"^(rgb|rgba|hsl|hsla)\(({_NUM}),({_NUM}),({_NUM})(?:,({_NUM}))?\)$", re.IGNORECASE
)


def _component(text: str, scale: float, original: Any) -> float:
    """A CSS colour component as a fraction of ``scale`` (0..1), percentages included."""
    text = text.strip()
    number = float(text[:-1]) / 100 if text.endswith("%") else float(text) / scale
    if not 0 <= number <= 1:
        raise FieldValueError(f"{_describe(original)} has a component out of range")
    return number


def _functional_to_hex(match: re.Match[str], original: Any) -> str | None:
    # rgb()/hsl() become hex: every reader of the item (and Webflow's own editor) takes hex.
    name = match.group(1).lower()
    parts = [g for g in match.groups()[1:] if g is not None]
    if name.startswith("rgb"):
        red, green, blue = (_component(p, 255, original) for p in parts[:3])
    else:
        hue_text = parts[0].strip()
        if hue_text.endswith("%"):
            return None
        hue = (float(hue_text) % 360) / 360
        saturation = _component(parts[1], 100, original) if parts[1].strip().endswith("%") else -1
        lightness = _component(parts[2], 100, original) if parts[2].strip().endswith("%") else -1
        if saturation < 0 or lightness < 0:
            return None
        red, green, blue = colorsys.hls_to_rgb(hue, lightness, saturation)
    channels = [round(c * 255) for c in (red, green, blue)]
    if len(parts) == 4:
        alpha = _component(parts[3], 1, original)
        if alpha < 1:
            channels.append(round(alpha * 255))
    return "#" + "".join(f"{c:02x}" for c in channels)


def parse_color(value: Any) -> str:
    if not isinstance(value, str):
        raise FieldValueError(f"{_describe(value)} is not a colour")
    text = value.strip()
    hex_match = _HEX.match(text)
    # A bare "123" or "beef" is more likely a mistake than a colour; only six or eight hex
    # digits without "#" are accepted as one.
    if hex_match and (text.startswith("#") or len(text) in (6, 8)):
        return "#" + hex_match.group(1).lower()
    if text.lower() in CSS_COLOR_NAMES:
        return text.lower()
    functional = _FUNCTIONAL.match(text)
    if functional:
        hex_color = _functional_to_hex(functional, value)
        if hex_color is not None:
            return hex_color
    raise FieldValueError(
        f"{_describe(value)} is not a colour (#rgb, #rrggbb, #rrggbbaa, rgb(), rgba(), hsl(), "
        "hsla() or a CSS colour name)"
    )
