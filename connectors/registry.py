"""Which source types a job file may name: the discriminated union of the connector configs.

Each connector module exports one frozen pydantic config model whose ``type`` field is a
``Literal`` (the tag a job file writes as ``source = { type = "csv", ... }``) and whose
``open(*, base_dir, env)`` returns a :class:`flowport.connectors.Source`. :data:`SourceConfig` is
the union of those models, discriminated on ``type``.

A connector listed in :data:`CONNECTORS` whose module is not in this installation is left out
(``source_types()`` says which are in); a module that is present but fails to import raises, so a
broken connector is never mistaken for an unknown source type.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Protocol, Union, get_args

from pydantic import BaseModel, Field

from flowport.connectors import Source

__all__ = ["CONNECTORS", "SourceConfig", "SourceConfigModel", "config_models", "source_types"]

#: (module, config class) for every connector flowport knows, in the order they are tried.
CONNECTORS: Final[tuple[tuple[str, str], ...]] = (
    ("flowport.connectors.csv_source", "CsvSourceConfig"),
    ("flowport.connectors.sql", "SqlSourceConfig"),
    ("flowport.connectors.wxr", "WxrSourceConfig"),
    ("flowport.connectors.wordpress_rest", "WordPressRestConfig"),
    ("flowport.connectors.dataframe", "DataFrameSourceConfig"),
    ("flowport.connectors.dlt_load", "DltSourceConfig"),
)


class SourceConfigModel(Protocol):
    """What every connector config offers the engine, whatever its type."""

    @property
    def type(self) -> str: ...

    def open(self, *, base_dir: Path, env: Mapping[str, str]) -> Source: ...


def _load() -> tuple[type[BaseModel], ...]:
    models: list[type[BaseModel]] = []
    for module_name, class_name in CONNECTORS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        model = getattr(module, class_name)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"{module_name}.{class_name} is not a pydantic model")
        models.append(model)
    if not models:
        raise RuntimeError("no source connector is installed")
    return tuple(models)


_MODELS: Final = _load()


def config_models() -> tuple[type[BaseModel], ...]:
    return _MODELS


def _tag(model: type[BaseModel]) -> str:
    annotation: Any = model.model_fields["type"].annotation
    (tag,) = get_args(annotation)
    return str(tag)


def source_types() -> tuple[str, ...]:
    """The ``type`` tags a job file may use, e.g. ``("csv", "sql")``."""
    return tuple(_tag(model) for model in _MODELS)


if TYPE_CHECKING:
    SourceConfig = SourceConfigModel
else:
    SourceConfig = Annotated[Union[_MODELS], Field(discriminator="type")]  # noqa: UP007
