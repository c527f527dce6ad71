"""Presets: ready job files for well-known sources (``flowport init wordpress URL|WXR-FILE``)."""

from __future__ import annotations

from flowport.pipeline.presets.wordpress import (
    PostType,
    Redirect,
    RedirectReport,
    SiteProfile,
    job_toml,
    redirect_rows,
    scan_rest,
    scan_wxr,
    write_redirects_csv,
)

__all__ = [
    "PostType",
    "Redirect",
    "RedirectReport",
    "SiteProfile",
    "job_toml",
    "redirect_rows",
    "scan_rest",
    "scan_wxr",
    "write_redirects_csv",
]
