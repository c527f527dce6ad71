"""The key columns shared by the row sources (CSV, SQL)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "KeyedSourceConfig",
    "OptionalKeySourceConfig",
    "checked_key",
    "checked_optional_key",
    "key_columns_of",
]


class KeyedSourceConfig(BaseModel):
    """A source whose rows carry their stable key in one column, or several joined."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str | tuple[str, ...] = Field(
        description=(
            "The column holding each row's stable key, or several columns whose values are "
            'joined with key_separator (e.g. ["InvoiceId", "InvoiceLineId"]).'
        )
    )
    key_separator: str = Field(
        default=":", min_length=1, description="Joins the values of a several-column key."
    )

    @field_validator("key")
    @classmethod
    def _key_names_present(cls, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
        return checked_key(value)


def checked_optional_key(value: str | tuple[str, ...] | None) -> str | tuple[str, ...] | None:
    """The key check of the sources whose key may come from elsewhere (a DataFrame's, a dlt
    table's): absent is fine, but a key given names at least one column, none of them empty."""
    return None if value is None else checked_key(value)


def checked_key(value: str | tuple[str, ...]) -> str | tuple[str, ...]:
    """A key as a source's config gives it: at least one column, none of them named empty."""
    names = (value,) if isinstance(value, str) else value
    if not names or any(not name for name in names):
        raise ValueError("key must name at least one column, and no name may be empty")
    return value


def key_columns_of(key: str | tuple[str, ...] | None) -> tuple[str, ...] | None:
    """A key as its columns: one name, several, or none given."""
    return (key,) if isinstance(key, str) else key


class OptionalKeySourceConfig(BaseModel):
    """A source whose key may come from elsewhere (a DataFrame's index, a dlt table's primary
    key). Each subclass declares ``key`` and ``key_separator`` itself, so that its fields keep
    their order (the job-file errors list the valid keys in it) and ``key`` says where an
    omitted key comes from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    if TYPE_CHECKING:
        key: str | tuple[str, ...] | None
        key_separator: str

    @field_validator("key", check_fields=False)
    @classmethod
    def _key_names_present(
        cls, value: str | tuple[str, ...] | None
    ) -> str | tuple[str, ...] | None:
        return checked_optional_key(value)

    @property
    def key_columns(self) -> tuple[str, ...] | None:
        return key_columns_of(self.key)
