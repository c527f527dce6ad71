"""A SQL source's ``query``: what it may hold, and how it reaches the database as written.

The query is checked without knowing which database will run it (the job file is checked before
any connection), so it is read twice, the way PostgreSQL (and SQLite) and the way MySQL/MariaDB
would: string literals, quoted names and comments are set aside, and what is left is the code.
A rule about the code holds if it holds under both readings, so nothing one database would run
can hide in what the other takes for a string or a comment:

* PostgreSQL: ``--`` comments, nested ``/* */`` comments, ``'...'`` (quotes doubled), ``E'...'``
  (backslash escapes), ``$tag$...$tag$``, ``"names"``.
* MySQL/MariaDB: ``-- `` comments (a space after the dashes), ``#`` comments, ``/* */`` comments
  that do not nest, ``/*! ... */`` and ``/*M! ... */`` whose content MySQL runs (so it is code),
  ``'...'`` and ``"..."`` with backslash escapes, ```names```.
"""

from __future__ import annotations

import itertools
import re
from typing import Literal

__all__ = ["check_read_only_query", "escape_bind_markers"]

_Dialect = Literal["postgresql", "mysql"]

_POSTGRESQL = re.compile(
    r"""
      (?P<comment>--[^\n]*)
    | (?P<block>/\*)
    | (?P<string>[Ee]'(?:[^'\\]|\\.|'')*'?|'(?:[^']|'')*'?)
    | (?P<dollar>\$(?:[^\W\d]\w*)?\$)
    | (?P<name>"(?:[^"]|"")*"?)
    | (?P<word>[^\W\d][\w$]*|\d\w*)
    | (?P<space>\s+)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_MYSQL = re.compile(
    r"""
      (?P<comment>(?:--(?=\s|\Z)|\#)[^\n]*)
    | (?P<code>/\*M?!\d*)
    | (?P<block>/\*.*?(?:\*/|\Z))
    | (?P<string>'(?:[^'\\]|\\.|'')*'?|"(?:[^"\\]|\\.|"")*"?)
    | (?P<name>`(?:[^`]|``)*`?)
    | (?P<word>[\w$]+)
    | (?P<space>\s+)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_LEXERS = {"postgresql": _POSTGRESQL, "mysql": _MYSQL}
_SIGNIFICANT = frozenset({"word", "other", "string", "name"})
_STATEMENT_STARTS = (("word", "select"), ("word", "with"))
_WRITABLE_WITH_VERBS = (("word", "insert"), ("word", "merge"))

#: SQLAlchemy's text() takes ``:name`` for a bind parameter wherever it appears, string literals
#: included, and ``\:name`` for a colon as written; this is its own pattern
#: (sqlalchemy.sql.elements.TextClause._bind_params_regex, 2.1), so exactly what it would take
#: is escaped and its compiler turns each ``\:name`` back into ``:name``.
_BIND_MARKER = re.compile(r"(?<![:\w\x5c]):(\w+)(?![:\w])", re.UNICODE)

_INTO_MESSAGE = (
    "query must only read, and SELECT ... INTO writes (INTO OUTFILE or DUMPFILE a file on the "
    "database server, INTO @var session variables, INTO a new table on PostgreSQL): remove the "
    "INTO clause, flowport reads the rows the SELECT returns"
)


def escape_bind_markers(query: str) -> str:
    """The query for ``sqlalchemy.text()``: a ``:1`` in a string literal stays ``:1``."""
    return _BIND_MARKER.sub(lambda match: "\\" + match.group(0), query)


def check_read_only_query(statement: str) -> None:
    """Raise ValueError unless ``statement`` is one SELECT (or WITH ... SELECT) without INTO."""
    readings = [_significant_tokens(statement, dialect) for dialect in ("postgresql", "mysql")]
    # A comment before the SELECT is fine if one database reads it as a comment (MySQL needs a
    # space after "--"): the other would refuse the statement itself.
    if not any(tokens and tokens[0] in _STATEMENT_STARTS for tokens in readings):
        raise ValueError("query must be a single SELECT (or WITH ... SELECT) statement")
    for tokens in readings:
        if ("other", ";") in tokens:
            raise ValueError("query must be a single statement: remove the ';' inside it")
        for previous, token in itertools.pairwise(tokens):
            # INSERT INTO and MERGE INTO are a writable WITH on PostgreSQL, which the read-only
            # transaction refuses; every other INTO is SELECT ... INTO.
            if token == ("word", "into") and previous not in _WRITABLE_WITH_VERBS:
                raise ValueError(_INTO_MESSAGE)


def _significant_tokens(text: str, dialect: _Dialect) -> list[tuple[str, str]]:
    """(kind, text) of the code, lower-cased; strings and quoted names keep only their kind."""
    pattern = _LEXERS[dialect]
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = pattern.match(text, position)
        assert match is not None, "the 'other' alternative matches any character"
        kind, position = match.lastgroup or "other", match.end()
        if kind == "block" and dialect == "postgresql":
            position = _end_of_nested_comment(text, position)
        elif kind == "dollar":
            closing = text.find(match.group(), position)
            position = len(text) if closing < 0 else closing + len(match.group())
            kind = "string"
        if kind in _SIGNIFICANT:
            tokens.append((kind, match.group().lower() if kind in ("word", "other") else ""))
    return tokens


def _end_of_nested_comment(text: str, position: int) -> int:
    """Where a PostgreSQL ``/*`` comment opened just before ``position`` ends: they nest."""
    depth = 1
    while depth:
        opening, closing = text.find("/*", position), text.find("*/", position)
        if closing < 0:
            return len(text)
        if 0 <= opening < closing:
            depth, position = depth + 1, opening + 2
        else:
            depth, position = depth - 1, closing + 2
    return position
