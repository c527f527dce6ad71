"""``flowport sandbox``: serve the emulator until SIGTERM/SIGINT; the token is never an argument."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from flowport.pipeline.sandbox._config import FaultConfig, SandboxConfig

__all__ = ["TOKEN_ENV", "read_tokens", "register", "serve"]

TOKEN_ENV = "FLOWPORT_SANDBOX_TOKEN"  # noqa: S105 - the name of the variable, not a secret


def read_tokens(token_file: Path | None) -> tuple[str, ...]:
    """Tokens from ``--token-file`` (one per line) or else from ``FLOWPORT_SANDBOX_TOKEN``."""
    if token_file is not None:
        try:
            text = token_file.read_text(encoding="utf-8")
        except OSError as problem:
            raise typer.BadParameter(
                f"cannot read token file {token_file}: {problem.strerror}"
            ) from None
        tokens = tuple(line.strip() for line in text.splitlines() if line.strip())
        if not tokens:
            raise typer.BadParameter(f"token file {token_file} holds no token")
        return tokens
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise typer.BadParameter(f"set {TOKEN_ENV} or pass --token-file FILE")
    return (token,)


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
    @app.command("sandbox")
    def sandbox_command(
        host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port; 0 picks a free one.", min=0)] = 0,
        rate_limit: Annotated[
            int, typer.Option(help="Requests per window per token.", min=1)
        ] = 120,
        window_seconds: Annotated[float, typer.Option(help="Rate window length.")] = 60.0,
        seed: Annotated[int, typer.Option(help="Seed for ids and faults.")] = 0,
        state: Annotated[
            Path | None, typer.Option(help="Journal file: state survives restarts and SIGKILL.")
        ] = None,
        token_file: Annotated[
            Path | None, typer.Option(help=f"File with the token(s); else ${TOKEN_ENV}.")
        ] = None,
        error_rate: Annotated[float, typer.Option(help="Share of 500/503 answers.")] = 0.0,
        slow_rate: Annotated[float, typer.Option(help="Share of slow answers.")] = 0.0,
        slow_seconds: Annotated[float, typer.Option(help="Delay of a slow answer.")] = 2.0,
        burst_429_rate: Annotated[float, typer.Option(help="Share starting a 429 burst.")] = 0.0,
        burst_429_length: Annotated[int, typer.Option(help="Requests per 429 burst.")] = 5,
        commit_then_drop_rate: Annotated[
            float, typer.Option(help="Share of requests applied, then answered by a disconnect.")
        ] = 0.0,
        duplicate_slug: Annotated[
            str, typer.Option(help="reject (400) or suffix (-2, -3 ...).")
        ] = "reject",
        bulk_invalid: Annotated[
            str, typer.Option(help="reject_all or partial, for a bulk request with bad items.")
        ] = "reject_all",
        item_limit: Annotated[int, typer.Option(help="Plan item limit per site.", min=1)] = 10_000,
        site_publish_interval: Annotated[
            float, typer.Option(help="Seconds between successful site publishes.")
        ] = 60.0,
        locale: Annotated[
            list[str] | None, typer.Option(help="Locale tag; primary first, repeatable.")
        ] = None,
    ) -> None:
        """Serve a local emulator of Webflow's CMS Data API v2; prints its base URL."""
        if duplicate_slug not in ("reject", "suffix"):
            raise typer.BadParameter("--duplicate-slug must be reject or suffix")
        if bulk_invalid not in ("reject_all", "partial"):
            raise typer.BadParameter("--bulk-invalid must be reject_all or partial")
        slug_mode: Literal["reject", "suffix"] = (
            "suffix" if duplicate_slug == "suffix" else "reject"
        )
        bulk_mode: Literal["reject_all", "partial"] = (
            "partial" if bulk_invalid == "partial" else "reject_all"
        )
        try:
            config = SandboxConfig(
                tokens=read_tokens(token_file),
                host=host,
                port=port,
                rate_limit=rate_limit,
                window_seconds=window_seconds,
                seed=seed,
                state_file=state,
                duplicate_slug=slug_mode,
                bulk_invalid=bulk_mode,
                item_limit=item_limit,
                site_publish_interval=site_publish_interval,
                locales=tuple(locale) if locale else ("en",),
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
