"""Configuration of the sandbox: frozen, validated, safe to print (tokens never shown)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["FaultConfig", "SandboxConfig"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class FaultConfig(BaseModel):
    """Scripted misbehaviour, drawn from the sandbox's seeded random generator per request."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: share of requests answered 500/503 without applying anything
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    #: share of requests that sleep ``slow_seconds`` before being served normally
    slow_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    slow_seconds: float = Field(default=2.0, ge=0.0, le=600.0)
    #: share of requests that start a burst: this and the next requests of the token get 429
    burst_429_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    burst_429_length: int = Field(default=5, ge=1, le=10_000)
    #: share of requests that are applied (and persisted) and then answered by a dropped connection
    commit_then_drop_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    #: share of requests (of ``garbled_methods``; all when empty) answered 200 with a body that
    #: is not the API's JSON, without applying anything, as a proxy in front of Webflow does
    #: during maintenance: an HTML page, or JSON of the wrong shape (``garbled_body``)
    garbled_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    garbled_body: Literal["html", "wrong_shape"] = "html"
    garbled_methods: tuple[str, ...] = ()


class SandboxConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    tokens: tuple[str, ...] = Field(default=("tok",), min_length=1, repr=False)
    rate_limit: int = Field(default=120, ge=1)
    window_seconds: float = Field(default=60.0, gt=0.0)
    site_publish_interval: float = Field(default=60.0, ge=0.0)
    item_limit: int = Field(default=10_000, ge=1)
    duplicate_slug: Literal["reject", "suffix"] = "reject"
    bulk_invalid: Literal["reject_all", "partial"] = "reject_all"
    skip_invalid_files: bool = True
    locales: tuple[str, ...] = Field(default=("en",), min_length=1)
    seed: int = 0
    faults: FaultConfig = Field(default_factory=FaultConfig)
    state_file: Path | None = None
    #: fsync the journal after each acknowledged write (survives power loss, not only SIGKILL)
    fsync: bool = False
    clock: Callable[[], float] = Field(default=time.monotonic, repr=False)
    wall_clock: Callable[[], datetime] = Field(default=_utc_now, repr=False)
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65_535)
    # Limits Webflow does not document; the stricter guess, so a real run never meets a surprise.
    name_max_length: int = Field(default=256, ge=1)
    slug_max_length: int = Field(default=256, ge=1)
    plain_text_max_length: int = Field(default=10_000, ge=1)
    rich_text_max_length: int = Field(default=500_000, ge=1)
    multi_image_max: int = Field(default=25, ge=1)
    multi_reference_max: int = Field(default=100, ge=1)
    max_items_per_request: int = Field(default=100, ge=1)
    # Assets: Webflow's documented 4 MB for images and 10 MB for other files, read as decimal
    # megabytes (the stricter reading); a presigned upload's policy expires after this long.
    asset_image_max_bytes: int = Field(default=4_000_000, ge=1)
    asset_file_max_bytes: int = Field(default=10_000_000, ge=1)
    asset_upload_seconds: float = Field(default=900.0, gt=0.0)

    @field_validator("tokens")
    @classmethod
    def _tokens_not_blank(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not token.strip() for token in value):
            raise ValueError("tokens must not be blank")
        return value

    @field_validator("locales")
    @classmethod
    def _locales_unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"locales must be unique, got {list(value)}")
        if any(not tag.strip() for tag in value):
            raise ValueError("locale tags must not be blank")
        return value
