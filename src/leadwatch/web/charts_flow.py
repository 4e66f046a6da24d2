"""Lead flow charts, as inline SVG (see `charts`)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from leadwatch.analysis.recommend import percent
from leadwatch.web.charts import chart_id, no_data

# Lead flow charts: rates with their 95 % intervals as whiskers, the stage funnel, and pairs.
RateRow = tuple[str, float | None, float | None, float | None]  # label, rate, low, high
_FLOW_BLUE, _FLOW_GREY, _FLOW_ORANGE = "#2680c2", "#9fb3c8", "#c65d21"


def _flow_top(rows: Sequence[RateRow], reference: float | None) -> float:
    highest = max([r[3] or r[1] or 0.0 for r in rows] + [reference or 0.0])
    return min(1.0, max(0.05, -(-highest * 1.1 * 20 // 1) / 20))  # next 5 % up


def rate_bars(
    title: str,
    rows: Sequence[RateRow],
    *,
    reference: float | None = None,
    reference_label: str = "overall",
    muted: Sequence[str] = (),
) -> str:
    """Horizontal bars of rates (0 to 1) with their intervals as whiskers and a dashed line at
    ``reference``; labels in ``muted`` (groups too small to judge) are drawn grey."""
    shown = [row for row in rows if row[1] is not None]
    if not shown:
        return no_data(title)
    top = _flow_top(shown, reference)
    left, right, height = 150, 400, 24
    ident = chart_id("rates", title)

    def x(value: float) -> float:
        return left + (right - left) * value / top

    summary = ", ".join(
        f"{label} {percent(rate)} (95 % interval {percent(low)} to {percent(high)})"
        for label, rate, low, high in shown
    )
    if reference is not None:
        summary += f"; {reference_label} {percent(reference)}"
    total = 40 + height * len(shown)
    parts = [
        f'<svg role="img" aria-labelledby="{ident}" viewBox="0 0 480 {total}" '
        'style="width:100%;max-width:40rem;height:auto">',
        f'<title id="{ident}">{escape(title)}: {escape(summary)}</title>',
        f'<text x="0" y="16" font-size="14" font-weight="600">{escape(title)}</text>',
    ]
    for index, (label, rate, low, high) in enumerate(shown):
        y = 30 + index * height
        color = _FLOW_GREY if label in muted else _FLOW_BLUE
        name = label if len(label) <= 22 else label[:21] + "…"
        parts += [
            f'<text x="0" y="{y + 15}" font-size="12">{escape(name)}</text>',
            f'<rect x="{left}" y="{y + 4}" width="{x(rate or 0.0) - left:.1f}" height="14" '
            f'fill="{color}"><title>{escape(label)}: {percent(rate)}</title></rect>',
        ]
        if low is not None and high is not None:
            parts.append(
                f'<line x1="{x(low):.1f}" y1="{y + 11}" x2="{x(high):.1f}" y2="{y + 11}" '
                'stroke="#102a43" stroke-width="1.5"/>'
            )
        parts.append(f'<text x="{right + 8}" y="{y + 15}" font-size="12">{percent(rate)}</text>')
    if reference is not None:
        parts += [
            f'<line x1="{x(reference):.1f}" y1="24" x2="{x(reference):.1f}" y2="{total - 8}" '
            f'stroke="{_FLOW_ORANGE}" stroke-dasharray="4 3"/>',
            f'<text x="{x(reference):.1f}" y="{total}" font-size="11" text-anchor="middle" '
            f'fill="{_FLOW_ORANGE}">{escape(reference_label)} {percent(reference)}</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)


def rate_columns(
    title: str,
    rows: Sequence[RateRow],
    *,
    reference: float | None = None,
    muted: Sequence[str] = (),
) -> str:
    """Vertical columns of rates (0 to 1) in the order given (a curve over buckets or hours),
    with interval whiskers, a dashed line at ``reference`` and ``muted`` labels in grey."""
    if not any(row[1] is not None for row in rows):
        return no_data(title)
    top = _flow_top(rows, reference)
    left, right, upper, lower = 44, 470, 30, 200
    ident = chart_id("columns", title)
    slot = (right - left) / len(rows)

    def y(value: float) -> float:
        return lower - (lower - upper) * value / top

    summary = ", ".join(f"{label} {percent(rate)}" for label, rate, _, _ in rows)
    parts = [
        f'<svg role="img" aria-labelledby="{ident}" viewBox="0 0 480 244" '
        'style="width:100%;max-width:40rem;height:auto">',
        f'<title id="{ident}">{escape(title)}: {escape(summary)}</title>',
        f'<text x="0" y="16" font-size="14" font-weight="600">{escape(title)}</text>',
    ]
    for tick in (0.0, top / 2, top):
        parts += [
            f'<line x1="{left}" y1="{y(tick):.1f}" x2="{right}" y2="{y(tick):.1f}" '
            'stroke="#d9e2ec"/>',
            f'<text x="{left - 4}" y="{y(tick) + 4:.1f}" font-size="11" text-anchor="end">'
            f"{percent(tick)}</text>",
        ]
    needed = max(len(label) for label, _, _, _ in rows) * 6 + 6
    # Labels that do not fit side by side go on two staggered lines, or every k-th is shown.
    lines = 1 if slot >= needed else 2
    every = 1 if slot * 2 >= needed else -(-needed // int(slot))
    for index, (label, rate, low, high) in enumerate(rows):
        centre = left + slot * (index + 0.5)
        color = _FLOW_GREY if label in muted else _FLOW_BLUE
        if rate is not None:
            parts.append(
                f'<rect x="{centre - slot * 0.35:.1f}" y="{y(rate):.1f}" '
                f'width="{slot * 0.7:.1f}" height="{lower - y(rate):.1f}" fill="{color}">'
                f"<title>{escape(label)}: {percent(rate)} (95 % interval {percent(low)} "
                f"to {percent(high)})</title></rect>"
            )
        if low is not None and high is not None:
            parts.append(
                f'<line x1="{centre:.1f}" y1="{y(high):.1f}" x2="{centre:.1f}" '
                f'y2="{y(low):.1f}" stroke="#102a43" stroke-width="1.5"/>'
            )
        if index % every == 0:
            down = 16 + 14 * (index % lines if every == 1 else 0)
            parts.append(
                f'<text x="{centre:.1f}" y="{lower + down}" font-size="11" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    if reference is not None:
        parts.append(
            f'<line x1="{left}" y1="{y(reference):.1f}" x2="{right}" y2="{y(reference):.1f}" '
            f'stroke="{_FLOW_ORANGE}" stroke-dasharray="4 3"><title>overall '
            f"{percent(reference)}</title></line>"
        )
    parts.append("</svg>")
    return "".join(parts)


def funnel(title: str, stages: Sequence[tuple[str, int]]) -> str:
    """The stage funnel: one centred bar per stage, as wide as its share of the first."""
    if not stages or not stages[0][1]:
        return no_data(title)
    first = stages[0][1]
    ident = chart_id("funnel", title)
    height, middle, widest = 30, 250, 180
    summary = ", ".join(f"{name} {count:,} ({count / first:.0%})" for name, count in stages)
    parts = [
        f'<svg role="img" aria-labelledby="{ident}" viewBox="0 0 480 '
        f'{30 + height * len(stages)}" style="width:100%;max-width:40rem;height:auto">',
        f'<title id="{ident}">{escape(title)}: {escape(summary)}</title>',
        f'<text x="0" y="16" font-size="14" font-weight="600">{escape(title)}</text>',
    ]
    for index, (name, count) in enumerate(stages):
        y = 26 + index * height
        width = max(widest * count / first, 1.0)
        parts += [
            f'<text x="0" y="{y + 18}" font-size="12">{escape(name)}</text>',
            f'<rect x="{middle - width / 2:.1f}" y="{y + 4}" width="{width:.1f}" '
            f'height="{height - 8}" fill="{_FLOW_BLUE}"/>',
            f'<text x="{middle + width / 2 + 6:.1f}" y="{y + 18}" font-size="12">{count:,} '
            f"({percent(count / first)})</text>",
        ]
    parts.append("</svg>")
    return "".join(parts)


def paired_bars(
    title: str,
    rows: Sequence[tuple[str, float | None, float | None]],
    names: tuple[str, str] = ("business hours", "after hours"),
) -> str:
    """Two horizontal bars of shares (0 to 1) per row, e.g. business hours against after hours."""
    if not any(a is not None or b is not None for _, a, b in rows):
        return no_data(title)
    ident = chart_id("pairs", title)
    left, right, height = 150, 420, 40
    colors = (_FLOW_BLUE, _FLOW_ORANGE)
    summary = "; ".join(
        f"{label}: {names[0]} {percent(a)}, {names[1]} {percent(b)}" for label, a, b in rows
    )
    parts = [
        f'<svg role="img" aria-labelledby="{ident}" viewBox="0 0 480 '
        f'{50 + height * len(rows)}" style="width:100%;max-width:40rem;height:auto">',
        f'<title id="{ident}">{escape(title)}: {escape(summary)}</title>',
        f'<text x="0" y="16" font-size="14" font-weight="600">{escape(title)}</text>',
    ]
    for index, name in enumerate(names):
        parts += [
            f'<rect x="{left + index * 130}" y="24" width="12" height="12" '
            f'fill="{colors[index]}"/>',
            f'<text x="{left + 16 + index * 130}" y="34" font-size="12">{escape(name)}</text>',
        ]
    for index, (label, *values) in enumerate(rows):
        y = 44 + index * height
        parts.append(f'<text x="0" y="{y + 20}" font-size="12">{escape(label)}</text>')
        for side, value in enumerate(values):
            width = (right - left) * (value or 0.0)
            parts += [
                f'<rect x="{left}" y="{y + 2 + side * 16}" width="{width:.1f}" height="13" '
                f'fill="{colors[side]}"/>',
                f'<text x="{left + width + 4:.1f}" y="{y + 13 + side * 16}" font-size="11">'
                f"{percent(value)}</text>",
            ]
    parts.append("</svg>")
    return "".join(parts)
