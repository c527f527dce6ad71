"""The mapping part of a job file: what each Webflow field of a collection is made from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from flowport.base.errors import ConfigError

__all__ = [
    "CollectionMapping",
    "FieldMapping",
    "JSONValue",
    "StatusMapping",
    "TransformSpec",
    "parse_collection_mapping",
]

JSONValue: TypeAlias = str | int | float | bool | list[Any] | dict[str, Any]
#: ``"trim"`` or a one-key table ``{"truncate": 256}``.
TransformSpec: TypeAlias = str | dict[str, Any]
StatusValue = Literal["live", "draft", "skip"]


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FieldMapping(_Spec):
    """Where one target field (a Webflow field slug) takes its value from."""

    source: str | None = None
    template: str | None = None
    value: JSONValue | None = None
    default: JSONValue | None = None
    transforms: list[TransformSpec] = Field(default_factory=list)
    reference: str | None = None

    @model_validator(mode="after")
    def _exactly_one_origin(self) -> FieldMapping:
        given = [
            name
            for name, present in (
                ("source", self.source is not None),
                ("template", self.template is not None),
                ("value", self.value is not None),
            )
            if present
        ]
        if len(given) != 1:
            detail = "none" if not given else " and ".join(given)
            raise ValueError(
                f"a field mapping takes exactly one of source, template or value (got {detail})"
            )
        for spec in self.transforms:
            if isinstance(spec, dict) and len(spec) != 1:
                raise ValueError(
                    "a transform is a name or a one-key table like {truncate = 256}, "
                    f"got {spec!r}"
                )
        return self


class StatusMapping(_Spec):
    """Turns a source value (a WordPress ``post_status``, a CSV column) into the item's state."""

    source: str
    values: dict[str, StatusValue]
    default: StatusValue = "skip"


class CollectionMapping(_Spec):
    fields: dict[str, FieldMapping | str]
    status: StatusMapping | None = None
    slug_from: str | None = None
    base_url: str | None = None
    plain_text_overflow: Literal["truncate", "error"] = "truncate"

    def field_mappings(self) -> dict[str, FieldMapping]:
        """Every field as a :class:`FieldMapping`; a bare string is shorthand for ``source``."""
        return {
            slug: FieldMapping(source=spec) if isinstance(spec, str) else spec
            for slug, spec in self.fields.items()
        }

    def reference_targets(self) -> dict[str, str]:
        """Field slug -> job collection name it points to, so the engine can order writes."""
        return {
            slug: spec.reference
            for slug, spec in self.field_mappings().items()
            if spec.reference is not None
        }


_UNION_BRANCHES = frozenset({"FieldMapping", "StatusMapping", "str"})


def _location(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif part in _UNION_BRANCHES or part.startswith(("function-", "json-or-python")):
            continue  # pydantic's names for union branches and validators, not job-file keys
        else:
            parts.append(f".{part}" if parts else part)
    return "".join(parts)


def parse_collection_mapping(data: Mapping[str, Any], *, collection: str) -> CollectionMapping:
    """Validate a job file's ``[collections.<name>]`` table, raising ConfigError naming the key."""
    try:
        return CollectionMapping.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _location(tuple(first["loc"]))
        key = f"collections.{collection}" + (f".{where}" if where else "")
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(
            message,
            key=key,
            fix='see the mapping reference: fields.<slug> = "column" or a table with '
            "source/template/value, default, transforms, reference",
        ) from None
