"""`flowport init wordpress FILE` reads the export through the WXR connector's own first pass:
the same hostile-prolog refusal, the same bare-ampersand repair, the same refusal of anything
else, so a file the run would refuse never becomes a job file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer import Typer
from typer.testing import CliRunner

from flowport.base.errors import SourceError
from flowport.pipeline.presets.cli import register
from flowport.pipeline.presets.wordpress import scan_wxr

_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<rss xmlns:wp="http://wordpress.org/export/1.2/"><channel>\n'
    "<title>Fish &amp; Chips</title><link>https://blog.example/news</link>\n"
    "<wp:wxr_version>1.2</wp:wxr_version>\n"
    "<wp:base_site_url>https://wordpress.example/</wp:base_site_url>\n"
    "<wp:category><wp:category_nicename>news</wp:category_nicename>"
    "<wp:cat_name>News</wp:cat_name></wp:category>\n"
)


def _post(post_id: int, slug: str, *, link: str | None = None, status: str = "publish") -> str:
    shown = link or f"https://blog.example/news/2024/05/{slug}/"
    return (
        f"<item><title>{slug}</title><link>{shown}</link>"
        f"<wp:post_id>{post_id}</wp:post_id><wp:post_type>post</wp:post_type>"
        f"<wp:status>{status}</wp:status><wp:post_name>{slug}</wp:post_name>"
        "<wp:post_date>2024-05-07 10:00:00</wp:post_date>"
        '<category domain="category" nicename="news">News</category>'
        '<category domain="post_tag" nicename="%ce%b1-tag">α</category></item>\n'
    )


def _export(tmp_path: Path, items: str, head: str = _HEAD) -> Path:
    path = tmp_path / "export.xml"
    path.write_text(f"{head}{items}</channel></rss>\n", encoding="utf-8")
    return path


def _invoke(*args: str) -> Any:
    app = Typer()

    @app.callback()
    def main() -> None:
        pass

    register(app)
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_a_site_scan_learns_what_the_job_needs(tmp_path: Path) -> None:
    items = _post(1, "first") + _post(2, "second") + _post(3, "draft", status="draft")
    items += "<item><wp:post_id>4</wp:post_id><wp:post_type>page</wp:post_type></item>\n"
    profile = scan_wxr(_export(tmp_path, items))
    assert profile.site_url == "https://blog.example/news"  # <link>, not the network root
    assert profile.title == "Fish & Chips"
    assert profile.permalink_structure == "/%year%/%monthnum%/%postname%/"
    assert [(t.name, t.count) for t in profile.post_types] == [("post", 3), ("page", 1)]
    assert not profile.has_attachments
    # The tag the items use is not declared: a note says it becomes a term of its own.
    assert len(profile.notes) == 1
    assert "1 post_tag term(s) the export does not declare (α-tag)" in profile.notes[0]


def test_a_bare_ampersand_is_repaired_as_the_run_repairs_it(tmp_path: Path) -> None:
    link = "https://blog.example/news/?p=2&preview=true"
    path = _export(tmp_path, _post(1, "first") + _post(2, "second", link=link))
    profile = scan_wxr(path)
    assert profile.permalink_structure == "/%year%/%monthnum%/%postname%/"
    assert profile.notes[-1] == (
        "export.xml: not well-formed XML; repaired 1 bare '&' or HTML entities outside CDATA "
        "(first on line 8)"
    )


def test_a_malformed_export_the_run_would_refuse_is_refused_now(tmp_path: Path) -> None:
    path = _export(tmp_path, _post(1, "first").replace("</title>", "</titel>"))
    refused = r"export.xml: line 7: not well-formed XML: Opening and ending tag mismatch"
    with pytest.raises(SourceError, match=refused):
        scan_wxr(path)


def test_init_refuses_a_hostile_prolog_and_writes_nothing(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do-not-read-me", encoding="utf-8")
    hostile = _HEAD.replace(
        "<rss ", f'<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file://{secret}">]>\n<rss ', 1
    )
    path = _export(tmp_path, _post(1, "first").replace("<title>first", "<title>&xxe;"), hostile)
    # Refused by the scan itself, not later by the redirect rows' read of the job it wrote.
    with pytest.raises(SourceError, match="a WordPress export never has one"):
        scan_wxr(path)
    job = tmp_path / "job.toml"
    result = _invoke("init", "wordpress", str(path), "--out", str(job))
    assert result.exit_code == 3, result.output
    assert "a WordPress export never has one" in result.output
    assert "do-not-read-me" not in result.output
    assert not job.exists()
    assert not (tmp_path / "job-redirects.csv").exists()
