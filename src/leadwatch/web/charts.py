"""Charts drawn on the server as inline SVG: no JavaScript, nothing fetched, readable at
phone width (they scale), and labelled for screen readers. This module holds bars, the
calibration chart and what every chart shares; `charts_time` draws series over time and
`charts_flow` the lead flow's rates, funnel and pairs."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

COLORS = {"critical": "#d64545", "high": "#f0b429", "medium": "#2680c2", "low": "#9fb3c8"}


def chart_id(prefix: str, title: str) -> str:
    """An id for the chart's <title>, which its aria-labelledby points at."""
    return prefix + "-" + "".join(c if c.isalnum() else "-" for c in title.lower())


def no_data(title: str) -> str:
    return f'<p role="img" aria-label="{escape(title)}: no data">{escape(title)}: no data</p>'


def bars(title: str, values: Mapping[str, float], *, unit: str = "") -> str:
    """A horizontal bar chart of ``values`` (label -> number) as an SVG string."""
    rows = list(values.items())
    if not rows:
        return no_data(title)
    top = max(value for _, value in rows) or 1.0
    height, label_width, width = 28, 110, 420
    ident = chart_id("chart", title)
    parts = [
        f'<svg role="img" aria-labelledby="{ident}" viewBox="0 0 {width} '
        f'{height * len(rows) + 30}" style="width:100%;max-width:40rem;height:auto">',
        f'<title id="{ident}">{escape(title)}: '
        + escape(", ".join(f"{k} {v:g}{unit}" for k, v in rows))
        + "</title>",
        f'<text x="0" y="16" font-size="14" font-weight="600">{escape(title)}</text>',
    ]
    for index, (label, value) in enumerate(rows):
        y = 26 + index * height
        length = (width - label_width - 60) * (value / top)
        color = COLORS.get(label, "#486581")
        parts += [
            f'<text x="0" y="{y + 16}" font-size="13">{escape(label)}</text>',
            f'<rect x="{label_width}" y="{y + 4}" width="{length:.1f}" height="16" '
            f'fill="{color}"/>',
            f'<text x="{label_width + length + 6:.1f}" y="{y + 16}" font-size="13">'
            f"{value:g}{escape(unit)}</text>",
        ]
    parts.append("</svg>")
    return "".join(parts)


CALIBRATION_COLORS = ("#2680c2", "#d64545", "#3e8e41", "#f0b429")


def calibration(title: str, series: Mapping[str, list[Mapping[str, float | None]]]) -> str:
    """A reliability chart as an SVG string: for each series (label -> reliability table rows
    with ``mean_predicted``, ``observed_rate`` and ``count``), observed against predicted per
    bin, dot size by leads in the bin, with the diagonal a perfectly calibrated model follows.
    The axes end a little above the largest value, so small probabilities stay readable."""
    points = {label: _reliability_points(rows) for label, rows in series.items()}
    points = {label: found for label, found in points.items() if found}
    if not points:
        return no_data(title)
    largest = max(max(p, o) for found in points.values() for p, o, _ in found)
    top = min(1.0, max(0.1, -(-largest * 10 // 1) / 10))  # next tenth up
    left, right, upper, lower = 48, 340, 40, 300  # plot area inside a 360 x 350 box
    ident = chart_id("calibration", title)
    most = max(n for found in points.values() for _, _, n in found)

    def x(value: float) -> float:
        return left + (right - left) * value / top

    def y(value: float) -> float:
        return lower - (lower - upper) * value / top

    summary = "; ".join(
        f"{label}: " + ", ".join(f"predicted {p:.0%} observed {o:.0%}" for p, o, _ in found)
        for label, found in points.items()
    )
    parts = [
        f'<svg role="img" aria-labelledby="{ident}" viewBox="0 0 360 350" '
        'style="max-width:100%;height:auto;width:24rem">',
        f'<title id="{ident}">{escape(title)}: {escape(summary)}</title>',
        f'<text x="0" y="16" font-size="14" font-weight="600">{escape(title)}</text>',
    ]
    step = 0.02 if top <= 0.1 else 0.05 if top <= 0.3 else 0.1  # ticks on round numbers
    for tick in range(round(top / step) + 1):
        value = step * tick
        parts += [
            f'<line x1="{x(value):.1f}" y1="{upper}" x2="{x(value):.1f}" y2="{lower}" '
            'stroke="#d9e2ec"/>',
            f'<line x1="{left}" y1="{y(value):.1f}" x2="{right}" y2="{y(value):.1f}" '
            'stroke="#d9e2ec"/>',
            f'<text x="{x(value):.1f}" y="{lower + 16}" font-size="11" text-anchor="middle">'
            f"{value:.0%}</text>",
            f'<text x="{left - 6}" y="{y(value) + 4:.1f}" font-size="11" text-anchor="end">'
            f"{value:.0%}</text>",
        ]
    parts += [
        f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(top):.1f}" y2="{y(top):.1f}" stroke="#829ab1" '
        'stroke-dasharray="5 4"><title>perfect calibration</title></line>',
        f'<text x="{(left + right) / 2}" y="{lower + 34}" font-size="12" text-anchor="middle">'
        "predicted probability</text>",
        f'<text x="12" y="{(upper + lower) / 2}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 12 {(upper + lower) / 2})">observed rate</text>',
    ]
    for index, (label, found) in enumerate(points.items()):
        color = CALIBRATION_COLORS[index % len(CALIBRATION_COLORS)]
        path = " ".join(f"{x(p):.1f},{y(o):.1f}" for p, o, _ in found)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for p, o, n in found:
            radius = 3 + 5 * (n / most) ** 0.5
            parts.append(
                f'<circle cx="{x(p):.1f}" cy="{y(o):.1f}" r="{radius:.1f}" fill="{color}" '
                f'fill-opacity="0.7"><title>{escape(label)}: predicted {p:.1%}, observed '
                f"{o:.1%}, {n:g} leads</title></circle>"
            )
        parts += [
            f'<rect x="{left + 8 + index * 90}" y="{upper - 14}" width="12" height="12" '
            f'fill="{color}"/>',
            f'<text x="{left + 24 + index * 90}" y="{upper - 4}" font-size="12">'
            f"{escape(label)}</text>",
        ]
    parts.append("</svg>")
    return "".join(parts)


def _reliability_points(
    rows: list[Mapping[str, float | None]],
) -> list[tuple[float, float, float]]:
    """(mean predicted, observed rate, leads) of the bins that hold leads."""
    found = []
    for row in rows:
        predicted, observed, count = (
            row.get("mean_predicted"),
            row.get("observed_rate"),
            row.get("count"),
        )
        if count and predicted is not None and observed is not None:
            found.append((float(predicted), float(observed), float(count)))
    return found
