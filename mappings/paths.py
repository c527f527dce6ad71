"""Reading values out of a record: dotted paths (``author.name``, ``tags[].slug``, ``images[0]``)
and ``{placeholder}`` templates over them.

Both are compiled once per job so that mapping a record does no parsing. A template can only read
record fields: there is no attribute access, indexing by expression or format spec, so a job file
cannot reach into Python objects.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["PathError", "compile_path", "compile_template", "is_missing"]

Getter = Callable[[Mapping[str, Any]], Any]

_SEGMENT = re.compile(r"^(?P<name>[^.\[\]]+)(?P<index>\[(?:\d+|-\d+)?\])*$")
_INDEX = re.compile(r"\[(-?\d*)\]")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


class PathError(ValueError):
    """A path or template that cannot be compiled."""


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple | dict):
        return len(value) == 0
    return False


_Step = tuple[str, Any]  # ("key", name) | ("index", n) | ("each", None)


def _parse(path: str) -> list[_Step]:
    if not path or path.strip() != path:
        raise PathError(f"bad path {path!r}: empty or surrounded by spaces")
    steps: list[_Step] = []
    for segment in path.split("."):
        match = _SEGMENT.match(segment)
        if match is None:
            raise PathError(
                f"bad path {path!r}: segment {segment!r} is not a name optionally followed by "
                "[] or [n]"
            )
        steps.append(("key", match.group("name")))
        for index in _INDEX.findall(segment):
            steps.append(("each", None) if index == "" else ("index", int(index)))
    return steps


def _walk(value: Any, steps: list[_Step], start: int) -> Any:
    for position in range(start, len(steps)):
        kind, arg = steps[position]
        if value is None:
            return None
        if kind == "key":
            if not isinstance(value, Mapping):
                return None
            value = value.get(arg)
        elif kind == "index":
            if not isinstance(value, list | tuple):
                return None
            try:
                value = value[arg]
            except IndexError:
                return None
        else:
            if not isinstance(value, list | tuple):
                value = [value]
            collected = [_walk(element, steps, position + 1) for element in value]
            flat: list[Any] = []
            for element in collected:
                if isinstance(element, list):
                    flat.extend(element)
                elif element is not None:
                    flat.append(element)
            return flat
    return value


def column_of(path: str) -> str | None:
    """The record key ``path`` reads when it is a plain name (what most mappings are), else
    None; the mapper reads such a field with one dict lookup."""
    try:
        steps = _parse(path)
    except PathError:
        return None
    return str(steps[0][1]) if len(steps) == 1 else None


def compile_path(path: str) -> Getter:
    """A getter for ``path``; a key that literally contains dots or brackets wins if present."""
    steps = _parse(path)
    if len(steps) == 1:
        name = steps[0][1]
        return lambda fields: fields.get(name)

    def get(fields: Mapping[str, Any]) -> Any:
        if path in fields:
            return fields[path]
        return _walk(fields, steps, 0)

    return get


def _render(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(_render(v) for v in value if not is_missing(v))
    return str(value)


def compile_template(template: str) -> tuple[Getter, tuple[str, ...]]:
    """A getter rendering ``template`` plus the paths it reads; ``{{`` and ``}}`` are literal."""
    pieces: list[str | Getter] = []
    paths: list[str] = []
    last = 0
    for match in _PLACEHOLDER.finditer(template):
        pieces.append(template[last : match.start()])
        last = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            pieces.append(token[0])
            continue
        if token in ("{", "}"):
            raise PathError(f"template {template!r}: unbalanced {token!r} (write {token * 2})")
        name = match.group(1).strip()
        if not name:
            raise PathError(f"template {template!r}: empty placeholder {{}}")
        if any(c in name for c in "!:()"):
            raise PathError(
                f"template {template!r}: placeholder {{{name}}} may only name a field path, "
                "without conversions or format specs"
            )
        pieces.append(compile_path(name))
        paths.append(name)
    pieces.append(template[last:])
    parts = tuple(p for p in pieces if not (isinstance(p, str) and p == ""))

    def render(fields: Mapping[str, Any]) -> Any:
        out: list[str] = []
        filled = False
        for part in parts:
            if isinstance(part, str):
                out.append(part)
            else:
                value = part(fields)
                if not is_missing(value):
                    filled = True
                out.append(_render(value))
        # A template whose every placeholder is empty is a missing value, not its literal glue
        # (" " for "{first} {last}"), so defaults and required checks still apply.
        if paths and not filled:
            return None
        return "".join(out)

    return render, tuple(paths)
