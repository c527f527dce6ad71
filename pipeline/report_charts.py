"""The run report's charts, as inline SVG drawn here: a report opens anywhere, offline, with no
script library to vendor or keep up to date.

Pure functions from numbers to SVG text. Every label that comes from a job or a source (a
collection's name, an outcome) is escaped here; callers pass plain text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Final, Literal

__all__ = ["Series", "clock", "outcome_colour", "run_bars", "time_chart"]

WIDTH: Final = 640
HEIGHT: Final = 240
#: Room for the axes' labels: left, right, top, bottom.
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 12, 52, 30
#: Colours of outcomes that have one; others take the palette in turn.
OUTCOME_COLOURS: Final[Mapping[str, str]] = {
    "created": "#2e7d32",
    "updated": "#1565c0",
    "unchanged": "#9e9e9e",
    "failed": "#c62828",
    "skipped": "#f9a825",
    "published": "#6a1b9a",
    "publish_failed": "#ad1457",
    "conflicts": "#ef6c00",
}
_PALETTE: Final = ("#00838f", "#5d4037", "#7cb342", "#3949ab", "#d81b60", "#8d6e63", "#546e7a")


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    #: (seconds since the run began, value)
    points: Sequence[tuple[float, float]]
    colour: str
    style: Literal["line", "bar"] = "line"


def outcome_colour(outcome: str, index: int) -> str:
    return OUTCOME_COLOURS.get(outcome, _PALETTE[index % len(_PALETTE)])


def clock(seconds: float) -> str:
    """Seconds as ``m:ss`` or ``h:mm:ss``, for a time axis."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """Round values from 0 to at least ``top``: 0, 25, 50, 75, 100 rather than 0, 23.4…"""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [step * n for n in range(math.ceil(top / step - 1e-9) + 1)]


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _legend(legend: Sequence[tuple[str, str]]) -> str:
    """Keys under the title, left to right, on a second line when the first is full."""
    keys = []
    x, y = float(_LEFT), 24
    for label, colour in legend:
        width = 18 + 6.5 * len(label)
        if x + width > WIDTH - _RIGHT and x > _LEFT:
            x, y = float(_LEFT), y + 13
        keys.append(
            f'<rect x="{x:.1f}" y="{y}" width="9" height="9" fill="{colour}"/>'
            f'<text x="{x + 12:.1f}" y="{y + 8}" class="key">{escape(label)}</text>'
        )
        x += width
    return "".join(keys)


def _frame(title: str, body: list[str], legend: Sequence[tuple[str, str]]) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
        f'<text x="{_LEFT}" y="15" class="heading">{escape(title)}</text>'
        + _legend(legend)
        + "".join(body)
        + "</svg>"
    )


def _y_axis(ticks: Sequence[float], unit: str) -> tuple[list[str], float]:
    """Grid lines and labels of the value axis, and the pixels per unit."""
    plot_height = HEIGHT - _TOP - _BOTTOM
    scale = plot_height / ticks[-1]
    body = []
    for tick in ticks:
        y = HEIGHT - _BOTTOM - tick * scale
        body.append(
            f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{_LEFT - 4}" y="{y + 4:.1f}" class="tick" text-anchor="end">'
            f"{_number(tick)}</text>"
        )
    body.append(
        f'<text x="10" y="{_TOP + plot_height / 2:.0f}" class="tick" text-anchor="middle" '
        f'transform="rotate(-90 10 {_TOP + plot_height / 2:.0f})">{escape(unit)}</text>'
    )
    return body, scale


def _x_axis(x_max: float) -> tuple[list[str], float]:
    plot_width = WIDTH - _LEFT - _RIGHT
    scale = plot_width / x_max
    body = []
    ticks = nice_ticks(x_max, 6)
    # Whole seconds: a run of two seconds is not labelled 0:00, 0:00, 0:01…
    step = max(ticks[1] - ticks[0], 1.0)
    for n in range(int(x_max // step) + 1):
        tick = n * step
        x = _LEFT + tick * scale
        body.append(
            f'<text x="{x:.1f}" y="{HEIGHT - _BOTTOM + 16}" class="tick" '
            f'text-anchor="middle">{clock(tick)}</text>'
        )
    return body, scale


def _draw(series: Series, index: int, count: int, scales: tuple[float, float], bar: float) -> str:
    x_scale, y_scale = scales
    base = HEIGHT - _BOTTOM
    if series.style == "bar":
        width = max(bar * x_scale / count - 1, 1.0)
        return "".join(
            f'<rect x="{_LEFT + x * x_scale + index * width:.1f}" y="{base - y * y_scale:.1f}" '
            f'width="{width:.1f}" height="{max(y * y_scale, 0.5):.1f}" fill="{series.colour}">'
            f"<title>{escape(series.label)}: {_number(y)} at {clock(x)}</title></rect>"
            for x, y in series.points
            if y > 0
        )
    path = " ".join(f"{_LEFT + x * x_scale:.1f},{base - y * y_scale:.1f}" for x, y in series.points)
    dots = "".join(
        f'<circle cx="{_LEFT + x * x_scale:.1f}" cy="{base - y * y_scale:.1f}" r="2.5" '
        f'fill="{series.colour}"><title>{escape(series.label)}: {_number(y)} at {clock(x)}'
        "</title></circle>"
        for x, y in series.points
    )
    return (
        f'<polyline points="{path}" fill="none" stroke="{series.colour}" stroke-width="2"/>' + dots
    )


def time_chart(
    title: str,
    series: Sequence[Series],
    *,
    x_max: float,
    bucket_seconds: float,
    unit: str,
    ceiling: tuple[float, str] | None = None,
) -> str:
    """Values over a run's time, as lines or bars, with a dashed ceiling line when given."""
    top = max([y for s in series for _x, y in s.points] + [ceiling[0] if ceiling else 0])
    ticks = nice_ticks(top * 1.08 if top else 1.0)
    body, y_scale = _y_axis(ticks, unit)
    x_labels, x_scale = _x_axis(max(x_max, bucket_seconds))
    body += x_labels
    bars = [s for s in series if s.style == "bar"]
    for s in series:
        index = bars.index(s) if s in bars else 0
        body.append(_draw(s, index, max(len(bars), 1), (x_scale, y_scale), bucket_seconds))
    legend = [(s.label, s.colour) for s in series]
    if ceiling is not None:
        y = HEIGHT - _BOTTOM - ceiling[0] * y_scale
        body.append(
            f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'class="ceiling"><title>{escape(ceiling[1])}</title></line>'
            f'<text x="{WIDTH - _RIGHT - 2}" y="{y - 4:.1f}" class="tick" text-anchor="end">'
            f"{escape(ceiling[1])}</text>"
        )
    return _frame(title, body, legend)


def run_bars(
    title: str, runs: Sequence[tuple[str, Mapping[str, int]]], outcomes: Sequence[str]
) -> str:
    """One stacked bar per run (label, counts per outcome), oldest on the left."""
    top = max([sum(counts.get(o, 0) for o in outcomes) for _label, counts in runs] + [0])
    ticks = nice_ticks(top * 1.05 if top else 1.0)
    body, y_scale = _y_axis(ticks, "items")
    slot = (WIDTH - _LEFT - _RIGHT) / max(len(runs), 1)
    width = min(max(slot * 0.7, 2.0), 48.0)
    for n, (label, counts) in enumerate(runs):
        x = _LEFT + n * slot + (slot - width) / 2
        y = float(HEIGHT - _BOTTOM)
        for index, outcome in enumerate(outcomes):
            value = counts.get(outcome, 0)
            if not value:
                continue
            height = max(value * y_scale, 0.5)
            y -= height
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" '
                f'fill="{outcome_colour(outcome, index)}"><title>{escape(label)}: '
                f"{value:,} {escape(outcome)}</title></rect>"
            )
        if len(runs) <= 16 or n % math.ceil(len(runs) / 16) == 0:
            body.append(
                f'<text x="{x + width / 2:.1f}" y="{HEIGHT - _BOTTOM + 16}" class="tick" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    legend = [(o, outcome_colour(o, i)) for i, o in enumerate(outcomes)]
    return _frame(title, body, legend)
