"""Configuration of the sandbox: frozen, validated, safe to print (tokens never shown)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["PLAN_ITEM_LIMITS", "SCOPES", "FaultConfig", "SandboxConfig", "SitePlan"]

SitePlan = Literal["starter", "basic", "cms", "business", "enterprise"]
#: CMS items per site by site plan, counted over all the site's collections. From Webflow's
#: pricing pages as third parties quote them (webflow.com/pricing is not in the docs the API
#: reference covers, so these are not confirmed by Webflow's developer docs): Starter 50, Basic
#: none (no CMS), CMS 2,000, Business 10,000 (add-ons up to 20,000), Enterprise 10,000 as the
#: contract's starting point (custom; give --item-limit).
PLAN_ITEM_LIMITS: dict[str, int] = {
    "starter": 50, "basic": 0, "cms": 2_000, "business": 10_000, "enterprise": 10_000,
}  # fmt: skip

#: The scopes a Webflow token can carry that the sandbox's routes need (the spec's ``security``
#: of each operation: ``sites:read`` to list sites, ``cms:write`` to create an item, ...).
SCOPES: tuple[str, ...] = (
    "assets:read", "assets:write", "cms:read", "cms:write", "sites:read", "sites:write",
)  # fmt: skip


def _utc_now() -> datetime:
    return datetime.now(UTC)


class FaultConfig(BaseModel):
    """Scripted misbehaviour, drawn from the sandbox's seeded random generator per request."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: share of requests answered 500/503 without applying anything
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    #: the methods whose requests may be answered 500/503; all when empty (a test that fails
    #: only updates, PATCH, still reads and creates through a working server)
    error_methods: tuple[str, ...] = ()
    #: share of requests that sleep ``slow_seconds`` before being served normally
    slow_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    slow_seconds: float = Field(default=2.0, ge=0.0, le=600.0)
    #: share of requests that start a burst: this and the next requests of the token get 429
    burst_429_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    burst_429_length: int = Field(default=5, ge=1, le=10_000)
    #: the Retry-After of a burst's 429s and of injected 503s, in seconds (a server asking for
    #: a long pause, up to a day); None: a burst's 429 asks for one request interval, a 503 for
    #: nothing
    retry_after_seconds: float | None = Field(default=None, ge=0.0, le=86_400.0)
    #: share of requests that are applied (and persisted) and then answered by a dropped connection
    commit_then_drop_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    #: the methods whose requests may be committed then dropped; all when empty (a test that
    #: loses only creates' answers still reads back through a working connection)
    commit_then_drop_methods: tuple[str, ...] = ()
    #: share of requests (of ``garbled_methods``; all when empty) answered 200 with a body that
    #: is not the API's JSON, without applying anything, as a proxy in front of Webflow does
    #: during maintenance: an HTML page, or JSON of the wrong shape (``garbled_body``)
    garbled_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    garbled_body: Literal["html", "wrong_shape"] = "html"
    garbled_methods: tuple[str, ...] = ()
    #: slugs of items whose publish (POST .../items/publish) is refused with a per-item error,
    #: as for an archived item
    publish_refused_slugs: tuple[str, ...] = ()


class SandboxConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    tokens: tuple[str, ...] = Field(default=("tok",), min_length=1, repr=False)
    #: the scopes of some tokens; a token not named here has every scope (the embedded sandbox's
    #: own token, and every configuration from before scopes)
    token_scopes: dict[str, frozenset[str]] = Field(default_factory=dict, repr=False)
    rate_limit: int = Field(default=120, ge=1)
    window_seconds: float = Field(default=60.0, gt=0.0)
    site_publish_interval: float = Field(default=60.0, ge=0.0)
    #: the site plan, whose CMS item limit applies unless ``item_limit`` is given
    plan: SitePlan = "business"
    item_limit: int | None = Field(default=None, ge=0)
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
    # Image/File field values given by URL are fetched, as Webflow fetches them: the time a file
    # may take, and whether loopback/private hosts may serve it (real Webflow: public URLs only).
    file_fetch_timeout_seconds: float = Field(default=10.0, gt=0.0)
    file_fetch_loopback: bool = True

    @field_validator("tokens")
    @classmethod
    def _tokens_not_blank(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not token.strip() for token in value):
            raise ValueError("tokens must not be blank")
        return value

    @field_validator("token_scopes")
    @classmethod
    def _scopes_known(cls, value: dict[str, frozenset[str]]) -> dict[str, frozenset[str]]:
        for scopes in value.values():
            unknown = sorted(set(scopes) - set(SCOPES))
            if unknown:
                raise ValueError(f"unknown scope(s) {unknown}; known: {', '.join(SCOPES)}")
        return value

    @property
    def items_allowed(self) -> int:
        return PLAN_ITEM_LIMITS[self.plan] if self.item_limit is None else self.item_limit

    @property
    def compressed_time(self) -> bool:
        """A rate window shorter than Webflow's minute: a test's compressed time, where a
        Retry-After below 10 s is given in milliseconds instead of whole seconds."""
        return self.window_seconds < 60.0

    def scopes_of(self, token: str) -> frozenset[str]:
        return self.token_scopes.get(token, frozenset(SCOPES))

    @field_validator("locales")
    @classmethod
    def _locales_unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"locales must be unique, got {list(value)}")
        if any(not tag.strip() for tag in value):
            raise ValueError("locale tags must not be blank")
        return value
