"""DataFrames handed over in Python, bound to the job's ``dataframe`` sources before a run.

``flowport.run(job, sources={"products": df})`` reaches the runner as a job whose ``products``
source config carries ``df``: the runner opens it like any other source, so nothing in it knows
about frames. Every check happens here, before the run starts (before the sandbox, the
checkpoint log or Webflow is touched): a dataframe collection without a frame, a frame for a
collection that is not one, a key column the frame lacks.

A collection the job creates (``create_missing``) gets a schema field for each mapped field that
reads a frame column as it is (``price = "price"``: a source path, no transform, no reference)
and whose type the job leaves unsaid: its type comes from the column's dtype
(:func:`flowport.connectors.dataframe.field_type_of`). A type the job states always wins.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flowport.base.errors import ConfigError, SourceError
from flowport.connectors.dataframe import DataFrameSourceConfig, library_use_fix
from flowport.pipeline.jobfile import CollectionJob, CollectionSchemaSpec, Job, SchemaField

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["bind_frames", "dataframe_collections"]


def dataframe_collections(job: Job) -> list[str]:
    """The job's collections whose source is a DataFrame given in Python."""
    return [
        name
        for name, collection in job.collections.items()
        if isinstance(collection.source, DataFrameSourceConfig)
    ]


def bind_frames(job: Job, frames: Mapping[str, pd.DataFrame] | None) -> Job:
    """``job`` with each dataframe source reading its frame; :class:`ConfigError` naming the
    collection and the fix when a frame is missing, unexpected or not a DataFrame."""
    frames = frames or {}
    wanted = dataframe_collections(job)
    _check_names(job, wanted, frames)
    if not wanted:
        return job
    import pandas as pd

    collections = dict(job.collections)
    for name in wanted:
        frame = frames[name]
        if not isinstance(frame, pd.DataFrame):
            raise ConfigError(
                f"the source given for collection {name!r} is a {type(frame).__name__}, "
                "not a pandas DataFrame",
                key=f"collections.{name}.source",
                fix=library_use_fix(name),
            )
        collections[name] = _bound(job, name, frame)
    return dataclasses.replace(job, collections=types.MappingProxyType(collections))


def _check_names(job: Job, wanted: list[str], frames: Mapping[str, Any]) -> None:
    for name in frames:
        if name in wanted:
            continue
        if name in job.collections:
            kind = job.collections[name].source.type
            raise ConfigError(
                f"a DataFrame was given for collection {name!r}, whose source is {kind!r}",
                key=f"collections.{name}.source",
                fix=f'set source = {{ type = "dataframe", key = "<column>" }} for {name}, '
                "or drop it from sources",
            )
        close = difflib.get_close_matches(name, wanted, n=1)
        raise ConfigError(
            f"a DataFrame was given for {name!r}, which is not a collection of the job",
            fix=(f"did you mean {close[0]!r}? " if close else "")
            + f"dataframe collections: {', '.join(wanted) or 'none'}",
        )
    for name in wanted:
        if name not in frames:
            raise ConfigError(
                f"collection {name!r} reads a dataframe source, and no DataFrame was given for it",
                key=f"collections.{name}.source",
                fix=library_use_fix(name),
            )


def _bound(job: Job, name: str, frame: pd.DataFrame) -> CollectionJob:
    collection = job.collections[name]
    config = collection.source
    assert isinstance(config, DataFrameSourceConfig)
    bound = config.bind(frame, label=name)
    source = bound.open(base_dir=job.base_dir, env={})
    try:
        field_types = source.field_types()
    except SourceError as error:
        raise ConfigError(str(error), key=f"collections.{name}.source") from None
    update: dict[str, Any] = {"source": bound}
    if collection.create_missing:
        spec = collection.collection_schema or CollectionSchemaSpec()
        inferred = dict(spec.fields)
        for slug, mapping in collection.field_mappings().items():
            plain = mapping.source is not None and not mapping.transforms
            if slug in ("name", "slug") or slug in inferred or not plain:
                continue
            if mapping.reference is None and mapping.source in field_types:
                inferred[slug] = SchemaField(type=field_types[mapping.source])
        update["collection_schema"] = spec.model_copy(update={"fields": inferred})
    return collection.model_copy(update=update)
