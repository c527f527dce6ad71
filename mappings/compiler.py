"""From a collection mapping and the collection's schema to a fast per-record mapper.

:func:`compile_mapping` checks the whole mapping against the schema once and raises
:class:`~flowport.base.errors.ConfigError` naming the job-file key and a fix.
:meth:`RecordMapper.map` then runs for every record: it reads, transforms and checks each field
exactly as Webflow would, so an item Webflow would refuse becomes a :class:`MappingFailure` here
instead of a request.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final, Literal, Protocol

from flowport.base.errors import ConfigError
from flowport.base.models import CollectionSchema, FieldSchema
from flowport.connectors import SourceRecord
from flowport.mappings.fieldtypes import (
    Coercer,
    blank_text_is_missing,
    build_coercer,
    keeps_unchanged,
)
from flowport.mappings.links import LinkMap
from flowport.mappings.paths import PathError, column_of, compile_path, compile_template, is_missing
from flowport.mappings.results import MappedItem, MappingFailure, SkippedRecord
from flowport.mappings.slugs import SlugClaims, webflow_slug
from flowport.mappings.spec import CollectionMapping, FieldMapping
from flowport.mappings.transforms import (
    RESULT_KINDS,
    AttachmentLookup,
    Transform,
    TransformConfigError,
    TransformEnv,
    TransformRun,
    build_transform,
    transform_name,
)
from flowport.mappings.values import FieldValueError

__all__ = ["RecordMapper", "ReferenceResolver", "compile_mapping"]

_OBJECT_ID: Final = re.compile(r"^[0-9a-f]{24}$")
_REFERENCE_TYPES: Final = frozenset({"Reference", "MultiReference"})
_DEFAULT_NAME: Final = FieldSchema.model_validate(
    {"id": "name", "slug": "name", "displayName": "Name", "type": "PlainText", "isRequired": True}
)
_DEFAULT_SLUG: Final = FieldSchema.model_validate(
    {"id": "slug", "slug": "slug", "displayName": "Slug", "type": "PlainText", "isRequired": True}
)


class ReferenceResolver(Protocol):
    def webflow_id(self, collection: str, source_key: str) -> str | None:
        """The Webflow item id written for ``source_key`` in job collection ``collection``."""
        ...


class _Plan:
    """Everything needed to produce one field, prepared once."""

    __slots__ = (
        "coerce",
        "default",
        "get",
        "multiple",
        "produce",
        "reference",
        "required",
        "slug",
        "transforms",
    )

    def __init__(
        self,
        slug: str,
        get: Callable[[Mapping[str, Any]], Any],
        default: Any,
        transforms: tuple[Transform, ...],
        coerce: Coercer | None,
        required: bool,
        reference: str | None,
        multiple: bool,
        column: str | None = None,
        checked: bool = False,
        blank_is_missing: bool = False,
    ) -> None:
        self.slug = slug
        self.get = get
        self.default = default
        self.transforms = transforms
        self.coerce = coerce
        self.required = required
        self.reference = reference
        self.multiple = multiple
        self.produce = _producer(
            get,
            default,
            transforms,
            coerce,
            column=column,
            checked=checked,
            blank_is_missing=blank_is_missing,
        )


def _producer(
    get: Callable[[Mapping[str, Any]], Any],
    default: Any,
    transforms: tuple[Transform, ...],
    coerce: Coercer | None,
    *,
    column: str | None = None,
    checked: bool = False,
    blank_is_missing: bool = False,
) -> Callable[[Mapping[str, Any], TransformRun], Any]:
    """The field's value from a record: read, default, transforms, then the field type's check.

    Built once per field in the shape it needs: every record of a run goes through it, and
    the common fields (a plain column, one transform, no default) skip the general loop.
    ``column``: the record key the field reads, when it is a plain name. ``checked``: every
    result of the (single) transform passes the field's check unchanged, so it is not run.
    ``blank_is_missing``: the field's check itself answers None for blank text.
    """
    if default is None and coerce is not None and len(transforms) <= 1:
        if not transforms:
            if column is not None and blank_is_missing:

                def text_column(fields: Mapping[str, Any], run: TransformRun) -> Any:
                    value = fields.get(column)
                    if type(value) is str:
                        return coerce(value, run)
                    return None if is_missing(value) else coerce(value, run)

                return text_column

            def plain(fields: Mapping[str, Any], run: TransformRun) -> Any:
                value = get(fields)
                return None if is_missing(value) else coerce(value, run)

            return plain
        (transform,) = transforms
        if checked:
            # The transform answers None or a value the check would return as it is.
            if column is not None:
                return lambda fields, run: transform(fields.get(column), run)
            return lambda fields, run: transform(get(fields), run)

        def transformed(fields: Mapping[str, Any], run: TransformRun) -> Any:
            value = transform(get(fields), run)
            return None if is_missing(value) else coerce(value, run)

        return transformed

    def general(fields: Mapping[str, Any], run: TransformRun) -> Any:
        value = get(fields)
        if default is not None and is_missing(value):
            value = default
        for each in transforms:
            value = each(value, run)
        if is_missing(value):
            return None
        if coerce is not None:
            value = coerce(value, run)
        return value

    return general


def _constant(value: Any) -> Callable[[Mapping[str, Any]], Any]:
    return lambda fields: value


def _reference_key(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise FieldValueError(f"{value!r} is not a source key")
    if isinstance(value, float):
        if not value.is_integer():
            raise FieldValueError(f"{value!r} is not a source key")
        value = int(value)
    return str(value).strip()


class RecordMapper:
    """Maps one record at a time; build it with :func:`compile_mapping`."""

    def __init__(
        self,
        *,
        collection: str,
        plans: tuple[_Plan, ...],
        slug_plan: _Plan | None,
        slug_from: str | None,
        status: tuple[Callable[[Mapping[str, Any]], Any], dict[str, str], str] | None,
        resolver: ReferenceResolver,
        slugs: SlugClaims,
        deferrable: frozenset[str],
        reference_targets: dict[str, str],
    ) -> None:
        self.collection = collection
        self._plans = plans
        # Unpacked once: the loop over them runs for every field of every record.
        self._steps = tuple(
            (plan.slug, plan.produce, plan.reference, plan.required, plan) for plan in plans
        )
        self._slug_plan = slug_plan
        self._slug_from = slug_from
        self._status = status
        self._resolver = resolver
        self._slugs = slugs
        self._deferrable = deferrable
        self._reference_targets = reference_targets

    @property
    def reference_targets(self) -> dict[str, str]:
        return dict(self._reference_targets)

    def map(self, record: SourceRecord) -> MappedItem | MappingFailure | SkippedRecord:
        key = record.key
        fields = record.fields
        status: Literal["live", "draft"] | None = None
        if self._status is not None:
            decided = self._decide_status(fields)
            if decided == "skip":
                raw = self._status[0](fields)
                return SkippedRecord(key, f"status {raw!r} maps to skip")
            status = "live" if decided == "live" else "draft"
        run = TransformRun()
        data: dict[str, Any] = {}
        deferred: dict[str, tuple[str, ...]] = {}
        for slug, produce, reference, required, plan in self._steps:
            run.field = slug
            try:
                value = produce(fields, run)
                if value is not None and reference is not None:
                    value = self._resolve(plan, value, deferred)
            except FieldValueError as problem:
                return MappingFailure(key, slug, f"field {slug}: {problem}")
            if value is None:
                if required:
                    reason = f"field {slug}: required but missing"
                    if slug in deferred:
                        reason = (
                            f"field {slug}: required reference to an item not written "
                            f"yet ({', '.join(deferred[slug])}); a required reference "
                            "cannot wait for a second pass"
                        )
                    return MappingFailure(key, slug, reason)
                continue
            data[slug] = value
        try:
            wanted = self._slug(key, fields, data, run)
        except FieldValueError as problem:
            return MappingFailure(key, "slug", f"field slug: {problem}")
        if wanted is not None:
            data["slug"] = self._slugs.claim(key, wanted)
        return MappedItem(
            key=key,
            field_data=data,
            status=status,
            warnings=tuple(run.warnings),
            deferred_references=deferred,
        )

    def _decide_status(self, fields: Mapping[str, Any]) -> str:
        assert self._status is not None
        get, values, default = self._status
        raw = get(fields)
        if raw is None:
            return default
        text = str(raw).strip()
        decided = values.get(text)
        if decided is None:
            decided = values.get(text.casefold(), default)
        return decided

    def _resolve(self, plan: _Plan, value: Any, deferred: dict[str, tuple[str, ...]]) -> Any:
        target = plan.reference
        assert target is not None
        values = list(value) if isinstance(value, list | tuple) else [value]
        if not plan.multiple and len(values) > 1:
            raise FieldValueError(
                f'expected one source key, got {len(values)} (add "first" or use a '
                "MultiReference field)"
            )
        keys: list[str] = []
        for element in values:
            if is_missing(element):
                continue
            source_key = _reference_key(element)
            if source_key not in keys:
                keys.append(source_key)
        ids: list[str] = []
        waiting: list[str] = []
        missing: list[str] = []
        for source_key in keys:
            item_id = self._resolver.webflow_id(target, source_key)
            if item_id is None:
                (waiting if target in self._deferrable else missing).append(source_key)
            elif not _OBJECT_ID.match(item_id):
                raise FieldValueError(
                    f"source key {source_key!r} in collection {target} resolved to "
                    f"{item_id!r}, which is not a Webflow item id"
                )
            else:
                ids.append(item_id)
        if missing:
            shown = ", ".join(repr(k) for k in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            noun = "source key" if len(missing) == 1 else "source keys"
            raise FieldValueError(f"no item for {noun} {shown}{more} in collection {target}")
        if waiting:
            deferred[plan.slug] = tuple(waiting)
        if plan.multiple:
            return ids or None
        return ids[0] if ids else None

    def _slug(
        self, key: str, fields: Mapping[str, Any], data: dict[str, Any], run: TransformRun
    ) -> str | None:
        wanted = ""
        plan = self._slug_plan
        if plan is not None:
            run.field = "slug"
            value = plan.produce(fields, run)
            if value is not None:
                if isinstance(value, list | tuple | Mapping):
                    raise FieldValueError("expected text for the slug, got a list or table")
                wanted = webflow_slug(str(value))
        if not wanted and self._slug_from is not None:
            origin = data.get(self._slug_from)
            if isinstance(origin, str | int | float) and not isinstance(origin, bool):
                wanted = webflow_slug(str(origin))
        if not wanted:
            wanted = webflow_slug(key)
        if not wanted:
            # A key made only of symbols still needs a stable, unique slug.
            wanted = "item-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]
        return wanted


def _field_key(collection: str, slug: str) -> str:
    return f"collections.{collection}.fields.{slug}"


def _known_fields(schema: CollectionSchema) -> str:
    return ", ".join(sorted(f.slug for f in schema.fields)) or "none"


def _getter(spec: FieldMapping, key: str) -> Callable[[Mapping[str, Any]], Any]:
    try:
        if spec.source is not None:
            return compile_path(spec.source)
        if spec.template is not None:
            return compile_template(spec.template)[0]
    except PathError as exc:
        raise ConfigError(
            str(exc),
            key=f"{key}.{'source' if spec.source is not None else 'template'}",
            fix='write a path like "title", "author.name" or "tags[].slug"',
        ) from None
    return _constant(spec.value)


def _transforms(spec: FieldMapping, key: str, env: TransformEnv) -> tuple[Transform, ...]:
    built: list[Transform] = []
    for position, transform_spec in enumerate(spec.transforms):
        try:
            built.append(build_transform(transform_spec, env))
        except TransformConfigError as exc:
            raise ConfigError(str(exc), key=f"{key}.transforms[{position}]", fix=exc.fix) from None
    return tuple(built)


def compile_mapping(
    mapping: CollectionMapping,
    schema: CollectionSchema,
    *,
    collection: str,
    resolver: ReferenceResolver,
    slugs: SlugClaims,
    deferrable: Collection[str] = (),
    attachment_url: AttachmentLookup | None = None,
    link_map: LinkMap | None = None,
) -> RecordMapper:
    """Check ``mapping`` against ``schema`` and prepare it.

    ``deferrable`` names the job collections (besides this one) whose items may not exist yet
    when this collection is written, because the engine breaks a reference cycle there;
    unresolved keys into them are deferred instead of failing. ``attachment_url`` turns a
    WordPress attachment id into its URL for ``[gallery ids=...]``; ``link_map`` points
    ``richtext_wordpress``'s links to the old site at their items on Webflow.
    """
    if mapping.base_url is not None:
        base = mapping.base_url
        if not re.match(r"^https?://[^/\s]+", base):
            raise ConfigError(
                f"base_url {base!r} is not an absolute http(s) URL",
                key=f"collections.{collection}.base_url",
                fix='base_url = "https://old-site.example.com/"',
            )
    field_specs = mapping.field_mappings()
    plans: list[_Plan] = []
    slug_plan: _Plan | None = None
    for slug, spec in field_specs.items():
        key = _field_key(collection, slug)
        field = schema.field(slug)
        if field is None and slug == "name":
            field = _DEFAULT_NAME
        if field is None and slug == "slug":
            field = _DEFAULT_SLUG
        if field is None:
            raise ConfigError(
                f"the collection {schema.display_name!r} has no field {slug!r}",
                key=key,
                fix=f"use one of its field slugs: {_known_fields(schema)}",
            )
        if not field.is_editable:
            raise ConfigError(
                f"field {slug!r} is not editable through the API",
                key=key,
                fix="remove it from the mapping",
            )
        is_reference = field.type in _REFERENCE_TYPES
        if is_reference and spec.reference is None:
            raise ConfigError(
                f"{field.type} field {slug!r} needs to know which job collection it points to",
                key=key,
                fix=f'{slug} = {{ source = "...", reference = "<job collection name>" }}',
            )
        if not is_reference and spec.reference is not None:
            raise ConfigError(
                f"field {slug!r} is a {field.type} field, not a Reference or MultiReference",
                key=f"{key}.reference",
                fix="remove reference here",
            )
        env = TransformEnv(
            field_type=field.type,
            base_url=mapping.base_url,
            attachment_url=attachment_url,
            link_map=link_map,
        )
        coerce = (
            None
            if is_reference
            else build_coercer(
                field,
                base_url=mapping.base_url,
                overflow=mapping.plain_text_overflow,
                new_paths=link_map.is_new_path if link_map is not None else None,
            )
        )
        result_kind = (
            RESULT_KINDS.get(transform_name(spec.transforms[-1])) if spec.transforms else None
        )
        plan = _Plan(
            slug=slug,
            get=_getter(spec, key),
            default=spec.default,
            transforms=_transforms(spec, key, env),
            coerce=coerce if slug != "slug" else None,
            required=field.is_required or slug == "name",
            reference=spec.reference,
            multiple=field.type == "MultiReference",
            column=column_of(spec.source) if spec.source is not None else None,
            checked=result_kind is not None and keeps_unchanged(field, result_kind),
            blank_is_missing=blank_text_is_missing(field),
        )
        if slug == "slug":
            slug_plan = plan
        else:
            plans.append(plan)

    if "name" not in field_specs:
        raise ConfigError(
            "every Webflow item needs a name, and it is not mapped",
            key=_field_key(collection, "name"),
            fix='name = "title" (the source field holding the item\'s name)',
        )
    if mapping.slug_from is not None and mapping.slug_from not in field_specs:
        raise ConfigError(
            f"slug_from names {mapping.slug_from!r}, which is not a mapped field",
            key=f"collections.{collection}.slug_from",
            fix='slug_from = "name"',
        )
    if slug_plan is None and mapping.slug_from is None:
        raise ConfigError(
            "every Webflow item needs a slug; map one or say where to build it from",
            key=_field_key(collection, "slug"),
            fix='slug_from = "name" in the collection table (or map fields.slug)',
        )
    for field in schema.fields:
        if (
            field.is_required
            and field.slug not in field_specs
            and field.slug
            not in (
                "name",
                "slug",
            )
        ):
            raise ConfigError(
                f"the collection requires field {field.slug!r} ({field.type}), and it is not "
                "mapped",
                key=_field_key(collection, field.slug),
                fix=f'{field.slug} = "<source field>" or {{ value = ... }} for a constant',
            )

    status = None
    if mapping.status is not None:
        try:
            status_get = compile_path(mapping.status.source)
        except PathError as exc:
            raise ConfigError(
                str(exc),
                key=f"collections.{collection}.status.source",
                fix='source = "status"',
            ) from None
        values: dict[str, str] = {}
        for raw, decided in mapping.status.values.items():
            values[raw] = decided
            values.setdefault(raw.casefold(), decided)
        status = (status_get, values, mapping.status.default)

    return RecordMapper(
        collection=collection,
        plans=tuple(plans),
        slug_plan=slug_plan,
        slug_from=mapping.slug_from,
        status=status,
        resolver=resolver,
        slugs=slugs,
        deferrable=frozenset(deferrable) | {collection},
        reference_targets=mapping.reference_targets(),
    )
