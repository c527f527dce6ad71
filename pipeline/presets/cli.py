"""``flowport init``: write a ready job file (and a redirects CSV) for a known kind of source.

Exit codes follow ``flowport``'s: 2 for bad arguments (nothing written), 3 when the source cannot
be read.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from flowport.base.errors import ConfigError, FatalError
from flowport.connectors.wordpress_api import one_discovery_per_site
from flowport.pipeline.jobfile import Job, load_job
from flowport.pipeline.logging import redact
from flowport.pipeline.presets.wordpress import (
    RedirectReport,
    SiteProfile,
    job_toml,
    redirect_rows,
    scan_rest,
    scan_wxr,
    write_redirects_csv,
)

__all__ = ["register"]

_EXIT_BAD_ARGUMENTS = 2
_EXIT_SOURCE = 3
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_stderr = Console(stderr=True, highlight=False)
_stdout = Console(highlight=False)


def _fail(code: int, text: str) -> NoReturn:
    _stderr.print(redact(text), markup=False, soft_wrap=True)
    raise typer.Exit(code)


def _env_name(value: str | None, option: str) -> str | None:
    if value is not None and not _ENV_NAME.match(value):
        _fail(
            _EXIT_BAD_ARGUMENTS,
            f"error: {option} takes the NAME of an environment variable (like WP_USER), "
            "never its value",
        )
    return value


def _profile(source: str, user_env: str | None, password_env: str | None) -> SiteProfile:
    if re.match(r"^https?://", source, re.IGNORECASE):
        return asyncio.run(
            scan_rest(source, user_env=user_env, password_env=password_env, env=os.environ)
        )
    if user_env or password_env:
        _fail(_EXIT_BAD_ARGUMENTS, "error: --user-env/--password-env apply to a site URL only")
    return scan_wxr(Path(source))


_Source = Annotated[
    str,
    typer.Argument(
        help="A WordPress export file (WXR) or a site's address (https://...).",
        show_default=False,
    ),
]
_Out = Annotated[Path, typer.Option("--out", help="The job file to write.", dir_okay=False)]
_Redirects = Annotated[
    Path | None,
    typer.Option(
        "--redirects",
        help="The 301 redirects CSV to write (default: <job>-redirects.csv).",
        dir_okay=False,
    ),
]
_TargetApi = Annotated[
    str,
    typer.Option(
        "--target-api", help='"sandbox" or a Webflow API base URL (https://api.webflow.com/v2).'
    ),
]
_SiteId = Annotated[
    str | None, typer.Option("--site-id", help="The Webflow site id (real API only).")
]
_TokenEnv = Annotated[
    str, typer.Option("--token-env", help="NAME of the env var holding the API token.")
]
_UserEnv = Annotated[
    str | None,
    typer.Option("--user-env", help="NAME of the env var holding the WordPress user."),
]
_PasswordEnv = Annotated[
    str | None,
    typer.Option(
        "--password-env", help="NAME of the env var holding that user's application password."
    ),
]
_Comments = Annotated[
    bool,
    typer.Option(
        "--comments",
        help="Also migrate approved comments into a 'comments' collection, each with a "
        "Reference to its post (commenters' e-mail and IP addresses are never read).",
    ),
]
_Force = Annotated[
    bool, typer.Option("--force", help="Overwrite the job file and CSV if they exist.")
]


@dataclass(frozen=True, slots=True)
class _Target:
    """Where the job goes: the file, its redirects CSV and the destination it names."""

    out: Path
    csv_path: Path
    target_api: str
    site_id: str | None
    token_env: str
    comments: bool = False


def register(app: typer.Typer) -> None:
    init_app = typer.Typer(
        help="Write a ready job file for a known kind of source.", no_args_is_help=True
    )

    @init_app.command("wordpress")
    def wordpress(
        source: _Source,
        out: _Out = Path("wordpress.toml"),
        redirects: _Redirects = None,
        target_api: _TargetApi = "sandbox",
        site_id: _SiteId = None,
        token_env: _TokenEnv = "WEBFLOW_TOKEN",  # noqa: S107 (a variable name, not a token)
        user_env: _UserEnv = None,
        password_env: _PasswordEnv = None,
        comments: _Comments = False,
        force: _Force = False,
    ) -> None:
        """Map posts, pages, categories, tags and authors of a WordPress site into Webflow."""
        _env_name(token_env, "--token-env")
        _env_name(user_env, "--user-env")
        _env_name(password_env, "--password-env")
        if target_api != "sandbox" and not re.match(r"^https?://[^/\s]+", target_api):
            _fail(_EXIT_BAD_ARGUMENTS, 'error: --target-api is "sandbox" or an http(s) URL')
        csv_path = redirects or out.with_name(f"{out.stem}-redirects.csv")
        for path in (out, csv_path):
            if path.exists() and not force:
                _fail(_EXIT_BAD_ARGUMENTS, f"error: {path} exists (pass --force to replace it)")
        target = _Target(out, csv_path, target_api, site_id, token_env, comments)
        # The scan and the redirects' read of every collection learn the site once.
        with one_discovery_per_site():
            _init_wordpress(_scanned(source, user_env, password_env), target)

    app.add_typer(init_app, name="init")


def _scanned(source: str, user_env: str | None, password_env: str | None) -> SiteProfile:
    try:
        return _profile(source, user_env, password_env)
    except ConfigError as exc:
        _fail(_EXIT_BAD_ARGUMENTS, f"error: {exc}")
    except FatalError as exc:
        _fail(_EXIT_SOURCE, f"error: {exc}")


def _init_wordpress(profile: SiteProfile, target: _Target) -> None:
    out = target.out
    out.parent.mkdir(parents=True, exist_ok=True)
    text = job_toml(
        profile,
        job_dir=out.parent,
        target_api=target.target_api,
        site_id=target.site_id,
        token_env=target.token_env,
        redirects_csv=_relative(target.csv_path, out.parent),
        comments=target.comments,
    )
    # Written beside the target first, so relative paths resolve the same when it is loaded
    # back; a job file that does not load never replaces anything.
    draft = out.with_name(f".{out.name}.draft")
    draft.write_text(text, encoding="utf-8")
    try:
        job = load_job(draft)
    except ConfigError as exc:
        draft.unlink(missing_ok=True)
        _fail(_EXIT_SOURCE, f"error: the generated job file does not load: {exc}")
    try:
        report = asyncio.run(redirect_rows(job, profile))
    except ConfigError as exc:
        draft.unlink(missing_ok=True)
        _fail(_EXIT_BAD_ARGUMENTS, f"error: {exc}")
    except FatalError as exc:
        draft.unlink(missing_ok=True)
        _fail(_EXIT_SOURCE, f"error: {exc}")
    draft.replace(out)
    write_redirects_csv(target.csv_path, report.rows)
    _print_summary(profile, job, report, target)


def _relative(path: Path, start: Path) -> str:
    try:
        return path.resolve().relative_to(start.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def _print_summary(profile: SiteProfile, job: Job, report: RedirectReport, target: _Target) -> None:
    out = target.out
    _stdout.print(
        f"wrote {out}: {len(job.collections)} collections "
        f"({', '.join(job.collections)}) from {profile.site_url}",
        markup=False,
    )
    if profile.permalink_structure:
        _stdout.print(f"  permalinks: {profile.permalink_structure}", markup=False)
    for note in profile.notes:
        _stdout.print(f"  note: {note}", markup=False)
    _stdout.print(f"wrote {target.csv_path}: {len(report.rows)} redirects", markup=False)
    for name, reasons in report.left_out.items():
        detail = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
        _stdout.print(f"  {name}: no redirect for {detail}", markup=False)
    _stdout.print(f"next: flowport validate {out} --offline && flowport run {out}")
