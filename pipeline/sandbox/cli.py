"""``flowport sandbox``: serve the emulator until SIGTERM/SIGINT; the token is never an argument."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import typing
from pathlib import Path
from typing import Annotated, Literal, cast

import typer

from flowport.pipeline.sandbox._config import (
    PLAN_ITEM_LIMITS,
    FaultConfig,
    SandboxConfig,
    SitePlan,
)

__all__ = ["TOKEN_ENV", "read_tokens", "register", "serve"]

TOKEN_ENV = "FLOWPORT_SANDBOX_TOKEN"  # noqa: S105 - the name of the variable, not a secret


Grants = tuple[tuple[str, ...], dict[str, frozenset[str]]]


def read_tokens(token_file: Path | None) -> Grants:
    """The tokens, and the scopes of those that name theirs, from ``--token-file`` or else from
    ``FLOWPORT_SANDBOX_TOKEN`` (one token, every scope).

    The file holds one token a line: ``TOKEN`` alone has every scope; ``TOKEN cms:read,sites:read``
    (scopes after whitespace, separated by commas or spaces) has only those. Blank lines and
    lines starting with ``#`` are skipped."""
    if token_file is None:
        token = os.environ.get(TOKEN_ENV, "").strip()
        if not token:
            raise typer.BadParameter(f"set {TOKEN_ENV} or pass --token-file FILE")
        return (token,), {}
    try:
        text = token_file.read_text(encoding="utf-8")
    except OSError as problem:
        raise typer.BadParameter(
            f"cannot read token file {token_file}: {problem.strerror}"
        ) from None
    tokens: list[str] = []
    scopes: dict[str, frozenset[str]] = {}
    for line in text.splitlines():
        token, _, granted = line.strip().partition(" ")
        if not token or token.startswith("#"):
            continue
        tokens.append(token)
        if granted.strip():
            scopes[token] = frozenset(granted.replace(",", " ").split())
    if not tokens:
        raise typer.BadParameter(f"token file {token_file} holds no token")
    return tuple(tokens), scopes


async def serve(config: SandboxConfig) -> None:
    """Run until SIGTERM or SIGINT, then shut down cleanly (the journal is compacted)."""
    from flowport.pipeline.sandbox._server import Sandbox

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with Sandbox(config) as sandbox:
            sys.stdout.write(sandbox.base_url + "\n")
            sys.stdout.flush()
            await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def register(app: typer.Typer) -> None:
    app.command("sandbox")(sandbox_command)


# The command's options, one alias each, so its signature reads as a list of names and defaults.
_Host = Annotated[str, typer.Option(help="Interface to listen on.")]
_Port = Annotated[int, typer.Option(help="Port; 0 picks a free one.", min=0)]
_RateLimit = Annotated[int, typer.Option(help="Requests per window per token.", min=1)]
_WindowSeconds = Annotated[float, typer.Option(help="Rate window length.")]
_Seed = Annotated[int, typer.Option(help="Seed for ids and faults.")]
_State = Annotated[
    Path | None, typer.Option(help="Journal file: state survives restarts and SIGKILL.")
]
_TokenFile = Annotated[
    Path | None, typer.Option(help=f"Token file: 'TOKEN [scope,...]' a line; else ${TOKEN_ENV}.")
]
_ErrorRate = Annotated[float, typer.Option(help="Share of 500/503 answers.")]
_SlowRate = Annotated[float, typer.Option(help="Share of slow answers.")]
_SlowSeconds = Annotated[float, typer.Option(help="Delay of a slow answer.")]
_Burst429Rate = Annotated[float, typer.Option(help="Share starting a 429 burst.")]
_Burst429Length = Annotated[int, typer.Option(help="Requests per 429 burst.")]
_CommitThenDropRate = Annotated[
    float, typer.Option(help="Share of requests applied, then answered by a disconnect.")
]
_DuplicateSlug = Annotated[str, typer.Option(help="reject (400) or suffix (-2, -3 ...).")]
_BulkInvalid = Annotated[
    str, typer.Option(help="reject_all or partial, for a bulk request with bad items.")
]
_Plan = Annotated[str, typer.Option(help="Site plan: starter, basic, cms, business or enterprise.")]
_ItemLimit = Annotated[
    int | None, typer.Option(help="CMS items per site; default: the plan's.", min=0)
]
_SitePublishInterval = Annotated[
    float, typer.Option(help="Seconds between successful site publishes.")
]
_Locale = Annotated[list[str] | None, typer.Option(help="Locale tag; primary first, repeatable.")]
_FileFetchTimeout = Annotated[
    float, typer.Option(help="Seconds to fetch the file of an Image/File field value.", min=0.001)
]
_PublicFilesOnly = Annotated[
    bool, typer.Option(help="Refuse file URLs on loopback/private hosts, as Webflow does.")
]


def sandbox_command(
    host: _Host = "127.0.0.1",
    port: _Port = 0,
    rate_limit: _RateLimit = 120,
    window_seconds: _WindowSeconds = 60.0,
    seed: _Seed = 0,
    state: _State = None,
    token_file: _TokenFile = None,
    error_rate: _ErrorRate = 0.0,
    slow_rate: _SlowRate = 0.0,
    slow_seconds: _SlowSeconds = 2.0,
    burst_429_rate: _Burst429Rate = 0.0,
    burst_429_length: _Burst429Length = 5,
    commit_then_drop_rate: _CommitThenDropRate = 0.0,
    duplicate_slug: _DuplicateSlug = "reject",
    bulk_invalid: _BulkInvalid = "reject_all",
    plan: _Plan = "business",
    item_limit: _ItemLimit = None,
    site_publish_interval: _SitePublishInterval = 60.0,
    locale: _Locale = None,
    file_fetch_timeout: _FileFetchTimeout = 10.0,
    public_files_only: _PublicFilesOnly = False,
) -> None:
    """Serve a local emulator of Webflow's CMS Data API v2; prints its base URL."""
    slug_mode, bulk_mode = _modes(duplicate_slug, bulk_invalid)
    tokens, token_scopes = read_tokens(token_file)
    try:
        config = SandboxConfig(
            tokens=tokens,
            token_scopes=token_scopes,
            host=host,
            port=port,
            rate_limit=rate_limit,
            window_seconds=window_seconds,
            seed=seed,
            state_file=state,
            duplicate_slug=slug_mode,
            bulk_invalid=bulk_mode,
            plan=_site_plan(plan),
            item_limit=item_limit,
            site_publish_interval=site_publish_interval,
            locales=tuple(locale) if locale else ("en",),
            file_fetch_timeout_seconds=file_fetch_timeout,
            file_fetch_loopback=not public_files_only,
            faults=FaultConfig(
                error_rate=error_rate,
                slow_rate=slow_rate,
                slow_seconds=slow_seconds,
                burst_429_rate=burst_429_rate,
                burst_429_length=burst_429_length,
                commit_then_drop_rate=commit_then_drop_rate,
            ),
        )
    except ValueError as problem:
        raise typer.BadParameter(str(problem)) from None
    asyncio.run(serve(config))


def _modes(
    duplicate_slug: str, bulk_invalid: str
) -> tuple[Literal["reject", "suffix"], Literal["reject_all", "partial"]]:
    """The two mode options, checked before anything else is read (the token included)."""
    if duplicate_slug not in ("reject", "suffix"):
        raise typer.BadParameter("--duplicate-slug must be reject or suffix")
    if bulk_invalid not in ("reject_all", "partial"):
        raise typer.BadParameter("--bulk-invalid must be reject_all or partial")
    slug_mode: Literal["reject", "suffix"] = "suffix" if duplicate_slug == "suffix" else "reject"
    bulk_mode: Literal["reject_all", "partial"] = (
        "partial" if bulk_invalid == "partial" else "reject_all"
    )
    return slug_mode, bulk_mode


def _site_plan(plan: str) -> SitePlan:
    for known in typing.get_args(SitePlan):
        if plan == known:
            return cast("SitePlan", known)
    raise typer.BadParameter(f"--plan must be one of {', '.join(PLAN_ITEM_LIMITS)}")
