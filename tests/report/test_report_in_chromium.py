"""The run report opened in a real headless Chromium (Debian's ``chromium``): no console error,
no request but the file itself, every chart drawn with a size on the page, the filter hiding
rows, and a screenshot taken. Skips without Chromium, except under ``CI=true``."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.conftest import unavailable
from tests.report.chromium import chromium_page, chromium_path
from tests.report.conftest import SCRIPT_KEY, Scenario

_CHARTS = """JSON.stringify(Array.from(document.querySelectorAll("svg.chart")).map(function (svg) {
  var box = svg.getBoundingClientRect();
  var marks = Array.from(svg.querySelectorAll("rect, polyline, circle, line.ceiling"))
    .map(function (mark) { var b = mark.getBoundingClientRect(); return [b.width, b.height]; })
    .filter(function (size) { return size[0] > 0 || size[1] > 0; });
  return {title: svg.querySelector("title").textContent, width: box.width, height: box.height,
          marks: marks.length};
}))"""

_SHOWN = """JSON.stringify(Array.from(document.querySelectorAll("#problem-table tbody tr"))
  .filter(function (row) { return row.getClientRects().length > 0; })
  .map(function (row) { return row.cells[2].textContent; }))"""


async def test_the_report_renders_in_chromium(scenario: Scenario, tmp_path: Path) -> None:
    executable = chromium_path()
    if executable is None:
        unavailable("chromium not found at /usr/bin/chromium (apt-get install chromium)")
    started = time.monotonic()
    async with chromium_page(executable) as page:
        await page.open(scenario.page.resolve().as_uri())

        charts = json.loads(await page.evaluate(_CHARTS))
        assert len(charts) == 4, charts  # requests, items, retries; the runs' history
        for chart in charts:
            assert chart["width"] > 300, chart
            assert chart["height"] > 100, chart
            assert chart["marks"] > 0, chart
        # The escaped key is text on the page, and no script of its ran.
        assert await page.evaluate("document.title") == "flowport report: nightly"
        assert set(json.loads(await page.evaluate(_SHOWN))) == {SCRIPT_KEY, "post-7"}

        # Typing in the filter hides the rows it does not match...
        await page.evaluate('document.getElementById("problem-filter").focus()')
        await page.send("Input.insertText", {"text": "post-7"})
        # (post-7: its image's warning, and the error of the item Webflow wrote without it)
        assert json.loads(await page.evaluate(_SHOWN)) == ["post-7", "post-7"]
        assert (
            await page.evaluate('document.getElementById("problem-count").textContent')
            == "2 of 3 shown"
        )
        # ... and so does the kind list, with the text filter emptied.
        await page.evaluate(
            """(function () {
              var text = document.getElementById("problem-filter");
              text.value = ""; text.dispatchEvent(new Event("input"));
              var kind = document.getElementById("problem-kind");
              kind.value = "mapping"; kind.dispatchEvent(new Event("change"));
            }())"""
        )
        assert json.loads(await page.evaluate(_SHOWN)) == [SCRIPT_KEY]

        shot = await page.screenshot(tmp_path / "report.png")
        assert page.console_errors() == []
        assert page.requested_urls() == [scenario.page.resolve().as_uri()]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 20_000
    assert time.monotonic() - started < 20
