"""The refusal of hostile XML, decided from the prolog's bytes before any parser sees the file.

A WordPress export never has a DOCTYPE with entity declarations or an external DTD. Such a
DOCTYPE is how entity-expansion ("billion laughs") and external-entity attacks work, so it is
refused here, by reading the bytes before the root element, whatever the installed libxml2 does
with it (libxml2 2.14 stops an expansion on its own, with a message of its own, mid-parse; older
versions leave it to the caller). The refusal does not depend on a library's wording.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["PROLOG_LIMIT", "HostileProlog", "hostile_prolog"]

#: Bytes read looking for the root element; a prolog longer than this is refused as hostile.
PROLOG_LIMIT = 1 << 20

_ENTITY = re.compile(r"<!ENTITY\s+(?:%\s+)?([^\s>]+)")
_EXTERNAL_ID = re.compile(r"\s+(SYSTEM|PUBLIC)\b")
_NAME = re.compile(r"[^\s\[>]+")


@dataclass(frozen=True, slots=True)
class HostileProlog:
    """Why a file's prolog is refused, and the line of its DOCTYPE."""

    line: int
    reason: str


def _decode(head: bytes) -> str:
    # Markup of a prolog is ASCII in every encoding WordPress writes; UTF-16 needs its BOM.
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="replace")
    return head.decode("utf-8", errors="replace").removeprefix("\ufeff")


def _subset_end(text: str, start: int) -> int:
    """The index of the ``]`` closing a DOCTYPE's internal subset that opens at ``start``,
    skipping quoted literals and comments (where a ``]`` means nothing); -1 if not found."""
    index = start + 1
    while index < len(text):
        char = text[index]
        if char in "\"'":
            index = text.find(char, index + 1)
            if index < 0:
                return -1
        elif text.startswith("<!--", index):
            index = text.find("-->", index + 4)
            if index < 0:
                return -1
            index += 2
        elif char == "]":
            return index
        index += 1
    return -1


def hostile_prolog(head: bytes, *, complete: bool) -> HostileProlog | None:
    """Whether the prolog in ``head`` (the file's first bytes; ``complete`` when that is the
    whole file) declares entities or points at an external DTD.

    Only what stands before the root element is read: the XML declaration, comments,
    processing instructions and the DOCTYPE. A prolog that does not end within ``head`` is
    refused unless the file ends there (a parser then says what is wrong with it).
    """
    text = _decode(head)
    index = 0
    while True:
        while index < len(text) and text[index] in " \t\r\n":
            index += 1
        if text.startswith("<?", index):
            end = text.find("?>", index + 2)
            closer = 2
        elif text.startswith("<!--", index):
            end = text.find("-->", index + 4)
            closer = 3
        elif text.startswith("<!DOCTYPE", index):
            return _doctype(text, index, complete=complete)
        else:
            return None  # the root element, or not XML at all: the parser's business
        if end < 0:
            return None if complete else _too_long(text, index)
        index = end + closer


def _doctype(text: str, start: int, *, complete: bool) -> HostileProlog | None:
    line = text.count("\n", 0, start) + 1
    cursor = start + len("<!DOCTYPE")
    while cursor < len(text) and text[cursor] in " \t\r\n":
        cursor += 1
    name = _NAME.match(text, cursor)
    cursor = name.end() if name else cursor
    external = _EXTERNAL_ID.match(text, cursor)
    bracket = text.find("[", cursor)
    closing = text.find(">", cursor)
    if external is not None and (bracket < 0 or external.start() < bracket):
        return HostileProlog(
            line,
            f"the DOCTYPE points at an external DTD ({external.group(1)} "
            f"{text[external.end() : closing if closing >= 0 else None].strip()[:80]})",
        )
    if bracket < 0 or (0 <= closing < bracket):
        if closing < 0 and not complete:
            return _too_long(text, start)
        return None  # <!DOCTYPE rss>: nothing declared
    end = _subset_end(text, bracket)
    if end < 0:
        return None if complete else _too_long(text, start)
    names = _ENTITY.findall(text, bracket, end)
    if names:
        return HostileProlog(line, f"the DOCTYPE declares entities ({', '.join(names[:5])})")
    return None


def _too_long(text: str, start: int) -> HostileProlog:
    return HostileProlog(
        text.count("\n", 0, start) + 1,
        f"the prolog runs past its first {PROLOG_LIMIT // (1 << 20)} MiB without reaching the "
        "root element",
    )
