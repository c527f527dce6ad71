"""The mapper's shortcuts give exactly what the long way gives.

A field read from a plain column, with one transform whose results the field type's check keeps
unchanged (or with none, on a PlainText field), skips steps of the general producer. These
tests hold each shortcut to the general path over ordinary, blank, odd and invalid values, and
hold ``keeps_unchanged`` to what the checks really do.
"""

from __future__ import annotations

import random
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from flowport.base.models import FieldSchema
from flowport.mappings.compiler import _producer
from flowport.mappings.fieldtypes import blank_text_is_missing, build_coercer, keeps_unchanged
from flowport.mappings.paths import column_of, compile_path
from flowport.mappings.transforms import (
    RESULT_KINDS,
    TransformEnv,
    TransformRun,
    build_transform,
    transform_name,
)
from flowport.mappings.values import (
    FieldValueError,
    format_webflow_datetime,
    parse_datetime,
    webflow_datetime,
)

VALUES: list[Any] = [
    None, "", "   ", "0", "1", "-3", "1.5", " 2.25 ", "1,234.5", "1e3", "nan", "inf", "abc",
    "true", "FALSE", "yes", "off", "2024-06-06T10:00:00Z", "2024-06-06", "2024-06-06 10:00",
    "1717668000", "06/07/2024", "0000-00-00", 0, 1, 2, 2.0, 2.5, 2**60, float("nan"), True,
    False, [], ["a"], {}, {"a": 1}, "line one\nline two", "x" * 300,
]  # fmt: skip


def schema_field(kind: str, **validations: Any) -> FieldSchema:
    return FieldSchema.model_validate(
        {"id": "f", "slug": "f", "displayName": "F", "type": kind, "validations": validations}
    )


def outcome(produce: Any, value: Any) -> tuple[str, Any]:
    run = TransformRun()
    try:
        result = produce({"col": value}, run)
    except FieldValueError as error:
        return ("error", str(error))
    return ("value", (type(result), result, [(w.kind, w.message) for w in run.warnings]))


def both_ways(field: FieldSchema, transforms: list[Any]) -> tuple[Any, Any, bool]:
    env = TransformEnv(field_type=field.type, base_url=None, attachment_url=None)
    built = tuple(build_transform(spec, env) for spec in transforms)
    coerce = build_coercer(field, base_url=None, overflow="truncate")
    get = compile_path("col")
    kind = RESULT_KINDS.get(transform_name(transforms[-1])) if transforms else None
    checked = kind is not None and keeps_unchanged(field, kind)
    fast = _producer(
        get,
        None,
        built,
        coerce,
        column=column_of("col"),
        checked=checked,
        blank_is_missing=blank_text_is_missing(field),
    )
    general = _producer(get, None, built, coerce)
    return fast, general, checked


@pytest.mark.parametrize(
    ("kind", "transforms", "expect_checked"),
    [
        ("Number", ["number"], True),
        ("Switch", ["boolean"], True),
        ("DateTime", ["datetime"], True),
        ("PlainText", [], False),
        ("PlainText", ["number"], False),
        ("PlainText", ["datetime"], False),
        ("Number", [], False),
        ("DateTime", [], False),
    ],
)
def test_shortcut_answers_like_the_general_path(
    kind: str, transforms: list[str], expect_checked: bool
) -> None:
    fast, general, checked = both_ways(schema_field(kind), transforms)
    assert checked is expect_checked
    for value in VALUES:
        assert outcome(fast, value) == outcome(general, value), value


@pytest.mark.parametrize(
    "rules",
    [
        {"format": "integer"},
        {"precision": 1},
        {"allowNegative": False},
        {"allowZero": False},
        {"minValue": 2},
        {"maxValue": 1.5},
    ],
)
def test_a_number_field_with_rules_is_checked_after_the_transform(rules: dict[str, Any]) -> None:
    field = schema_field("Number", **rules)
    assert not keeps_unchanged(field, "number")
    fast, general, checked = both_ways(field, ["number"])
    assert not checked
    refused_or_changed = 0
    for value in VALUES:
        assert outcome(fast, value) == outcome(general, value), value
        plain = outcome(
            _producer(compile_path("col"), None, (build_transform("number", _env(field)),), None),
            value,
        )
        refused_or_changed += outcome(general, value) != plain
    assert refused_or_changed  # the rule does act on some of these values


def _env(field: FieldSchema) -> TransformEnv:
    return TransformEnv(field_type=field.type, base_url=None, attachment_url=None)


def test_plain_text_with_limits_keeps_its_warnings_and_refusals() -> None:
    field = schema_field("PlainText", maxLength=10, minLength=2, singleLine=True)
    for overflow in ("truncate", "error"):
        coerce = build_coercer(field, base_url=None, overflow=overflow)
        get = compile_path("col")
        fast = _producer(get, None, (), coerce, column="col", blank_is_missing=True)
        general = _producer(get, None, (), coerce)
        for value in VALUES:
            assert outcome(fast, value) == outcome(general, value), value


def test_column_of_names_only_plain_keys() -> None:
    assert column_of("title") == "title"
    assert column_of("author.name") is None
    assert column_of("tags[]") is None
    assert column_of("items[0]") is None
    assert column_of(" bad ") is None


def _reference_datetime(value: Any, **options: Any) -> tuple[str, Any]:
    try:
        moment = parse_datetime(value, **options)
        return ("value", None if moment is None else format_webflow_datetime(moment))
    except FieldValueError as error:
        return ("error", str(error))


def _quick_datetime(value: Any, **options: Any) -> tuple[str, Any]:
    try:
        return ("value", webflow_datetime(value, **options))
    except FieldValueError as error:
        return ("error", str(error))


def _date_texts() -> list[str]:
    rng = random.Random(7)
    days = ["2024-06-06", "2024-02-29", "2023-02-29", "2024-02-30", "0999-01-01", "0000-00-00",
            "9999-12-31", "2024-13-01", "2024-6-06"]  # fmt: skip
    clocks = ["10:00:00", "23:59:59", "24:00:00", "00:00:60", "12:60:00", "00:00:00", "1:02:03"]
    fractions = ["", ".5", ".12", ".123", ".1234", ".123456", ".1234567", ".", ".12a"]
    offsets = ["", "Z", "z", "+00:00", "-00:00", "+0000", "+00", "+01:00", "-05:30", " Z"]
    texts = [
        f"{rng.choice([' ', '', '  '])}{day}{sep}{clock}{fraction}{offset}{rng.choice(['', ' '])}"
        for day in days
        for clock in clocks
        for sep in ("T", " ", "t")
        for fraction in rng.sample(fractions, 3)
        for offset in rng.sample(offsets, 4)
    ]
    return [*texts, "2024-06-06", "1717668000", "06/07/2024", "Thu, 06 Jun 2024 10:00:00 GMT", ""]


@pytest.mark.parametrize(
    "options",
    [{}, {"zone": ZoneInfo("Europe/Paris")}, {"dayfirst": True}, {"input_format": "%Y-%m-%d"}],
)
def test_webflow_datetime_writes_what_parsing_and_formatting_write(options: dict[str, Any]) -> None:
    texts = _date_texts()
    assert len(texts) > 2000
    quick = 0
    for text in texts:
        assert _quick_datetime(text, **options) == _reference_datetime(text, **options), text
        quick += text.strip().startswith("2024-06-06T10:00:00")
    assert quick  # the corpus holds the texts the shortcut serves


def test_webflow_datetime_of_other_values_matches_too() -> None:
    values: list[object] = [None, 0, 1717668000, 1717668000.5, True, [], {}, "nan"]
    for value in values:
        assert _quick_datetime(value) == _reference_datetime(value), value
