"""Charts over time for the statistics page, as inline SVG (see `charts`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from html import escape

from leadwatch.web.charts import COLORS, chart_id

# Charts over time: one column (or point) per bucket, a legend, a summary in the title.
TIME_COLORS = {
    **COLORS,
    "email": "#2680c2",
    "sms": "#3ebd93",
    "in_app": "#9446ed",
    "slack": "#e8833a",
    "webhook": "#486581",
}
TIME_PALETTE = ("#486581", "#0e7c86", "#8719e0", "#c65d21", "#627d98", "#3e8e41")
_TIME_WIDTH, _TIME_LEFT, _TIME_RIGHT = 480, 48, 470
# Full width on a phone, no wider than a reading column elsewhere; text stays about 11 px
# on a 390 px screen.
_TIME_STYLE = "width:100%;max-width:40rem;height:auto"


def stacked_columns(
    title: str,
    buckets: Sequence[str],
    series: Mapping[str, Sequence[float]],
    colors: Mapping[str, str] | None = None,
    *,
    empty: str = "no escalations in this window",
) -> str:
    """Columns over time (bucket labels in order), each stacking the ``series`` (name ->
    one value per bucket) from the bottom up, as an SVG string."""
    totals = [sum(values[i] for values in series.values()) for i in range(len(buckets))]
    if not any(totals):
        return _time_empty(title, empty)
    colors = colors or {}
    palette = {
        name: colors.get(name) or TIME_COLORS.get(name) or TIME_PALETTE[n % len(TIME_PALETTE)]
        for n, name in enumerate(series)
    }
    busiest = max(range(len(buckets)), key=lambda i: totals[i])
    summary = (
        f"{sum(totals):g} in all; "
        + ", ".join(f"{name} {sum(values):g}" for name, values in series.items())
        + f"; most in {buckets[busiest]} ({totals[busiest]:g})"
    )
    top = _time_top(max(totals))
    ticks = (0.0, top / 2, top) if top > 1 else (0.0, top)
    parts, upper, lower = _time_frame(title, summary, palette, buckets, ticks, "{:g}".format)
    slot = (_TIME_RIGHT - _TIME_LEFT) / len(buckets)
    for i, label in enumerate(buckets):
        base = lower
        for name, values in series.items():
            if not values[i]:
                continue
            height = (lower - upper) * values[i] / top
            base -= height
            parts.append(
                f'<rect x="{_TIME_LEFT + slot * i + slot * 0.1:.1f}" y="{base:.1f}" '
                f'width="{max(slot * 0.8, 1):.1f}" height="{height:.1f}" '
                f'fill="{palette[name]}"><title>{escape(label)}: {escape(name)} '
                f"{values[i]:g}</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts)


def line(
    title: str,
    points: Sequence[tuple[str, float | None]],
    *,
    name: str = "success rate",
    color: str = "#3e8e41",
    empty: str = "no escalations decided in this window",
) -> str:
    """A share (0 to 1) over time as a line, broken where a bucket has no value, as an SVG
    string; a bucket on its own between gaps still shows as a dot."""
    known = [(label, value) for label, value in points if value is not None]
    if not known:
        return _time_empty(title, empty)
    low = min(known, key=lambda p: p[1])
    high = max(known, key=lambda p: p[1])
    summary = (
        f"{name} lowest {low[1]:.0%} ({low[0]}), highest {high[1]:.0%} ({high[0]}), "
        f"latest {known[-1][1]:.0%} ({known[-1][0]}); {len(known)} of {len(points)} with data"
    )
    labels = [label for label, _ in points]
    parts, upper, lower = _time_frame(
        title, summary, {name: color}, labels, (0.0, 0.5, 1.0), "{:.0%}".format
    )
    slot = (_TIME_RIGHT - _TIME_LEFT) / len(points)
    runs: list[list[tuple[float, float, str]]] = [[]]
    for i, (label, value) in enumerate(points):
        if value is None:
            runs.append([])
            continue
        x = _TIME_LEFT + slot * (i + 0.5)
        runs[-1].append((x, lower - (lower - upper) * value, f"{label}: {value:.0%}"))
    for run in runs:
        if len(run) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in run)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>'
            )
        parts += [
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}">'
            f"<title>{escape(text)}</title></circle>"
            for x, y, text in run
        ]
    parts.append("</svg>")
    return "".join(parts)


def _time_empty(title: str, message: str) -> str:
    ident = chart_id("time-chart", title)
    return (
        f'<svg role="img" aria-labelledby="{ident}" viewBox="0 0 {_TIME_WIDTH} 60" '
        f'style="{_TIME_STYLE}">'
        f'<title id="{ident}">{escape(title)}: {escape(message)}</title>'
        f'<text x="0" y="18" font-size="16" font-weight="600">{escape(title)}</text>'
        f'<text x="0" y="46" font-size="15">{escape(message)}</text></svg>'
    )


def _time_top(value: float) -> float:
    """The axis end: the value rounded up to 1, 2, 4, 6 or 8 times a power of ten, so half
    of it is a whole number too."""
    scale = 1.0
    while value > 10 * scale:
        scale *= 10
    return next(step * scale for step in (1, 2, 4, 6, 8, 10) if value <= step * scale)


def _time_frame(
    title: str,
    summary: str,
    palette: Mapping[str, str],
    labels: Sequence[str],
    ticks: Sequence[float],
    tick: Callable[[float], str],
) -> tuple[list[str], float, float]:
    """The SVG's opening, title, legend (wrapped), grid and bucket labels; returns the parts
    and the plot's upper and lower edge."""
    legend: list[str] = []
    x, y = 0.0, 40.0
    for name, color in palette.items():
        width = 22 + 8.5 * len(name)
        if x and x + width > _TIME_WIDTH:
            x, y = 0.0, y + 20
        legend += [
            f'<rect x="{x:.1f}" y="{y - 11:.1f}" width="12" height="12" fill="{color}"/>',
            f'<text x="{x + 16:.1f}" y="{y:.1f}" font-size="15">{escape(name)}</text>',
        ]
        x += width + 12
    upper, lower = y + 18, y + 188
    ident = chart_id("time-chart", title)
    parts = [
        f'<svg role="img" aria-labelledby="{ident}" viewBox="0 0 {_TIME_WIDTH} '
        f'{lower + 28:.0f}" style="{_TIME_STYLE}">',
        f'<title id="{ident}">{escape(title)}: {escape(summary)}</title>',
        f'<text x="0" y="18" font-size="16" font-weight="600">{escape(title)}</text>',
        *legend,
    ]
    for value in ticks:
        y = lower - (lower - upper) * value / ticks[-1]
        parts += [
            f'<line x1="{_TIME_LEFT}" y1="{y:.1f}" x2="{_TIME_RIGHT}" y2="{y:.1f}" '
            'stroke="#d9e2ec"/>',
            f'<text x="{_TIME_LEFT - 4}" y="{y + 5:.1f}" font-size="14" text-anchor="end">'
            f"{escape(tick(value))}</text>",
        ]
    slot = (_TIME_RIGHT - _TIME_LEFT) / len(labels)
    half = 3.9 * max(len(label) for label in labels)  # half a label's width at 14 px
    every = max(1, -(-len(labels) * (2 * half + 10) // (_TIME_RIGHT - _TIME_LEFT)))
    parts += [
        f'<text x="{min(_TIME_LEFT + slot * (i + 0.5), _TIME_WIDTH - half):.1f}" '
        f'y="{lower + 20:.1f}" font-size="14" text-anchor="middle">{escape(label)}</text>'
        for i, label in enumerate(labels)
        if i % every == 0
    ]
    return parts, upper, lower
