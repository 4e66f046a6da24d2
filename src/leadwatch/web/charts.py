"""Bar charts drawn on the server as inline SVG: no JavaScript, nothing fetched, readable at
phone width (they scale), and labelled for screen readers."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from html import escape

COLORS = {"critical": "#d64545", "high": "#f0b429", "medium": "#2680c2", "low": "#9fb3c8"}


def bars(title: str, values: Mapping[str, float], *, unit: str = "") -> str:
    """A horizontal bar chart of ``values`` (label -> number) as an SVG string."""
    rows = list(values.items())
    if not rows:
        return f'<p role="img" aria-label="{escape(title)}: no data">{escape(title)}: no data</p>'
    top = max(value for _, value in rows) or 1.0
    height, label_width, width = 28, 110, 420
    ident = "chart-" + "".join(c if c.isalnum() else "-" for c in title.lower())
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
        return f'<p role="img" aria-label="{escape(title)}: no data">{escape(title)}: no data</p>'
    largest = max(max(p, o) for found in points.values() for p, o, _ in found)
    top = min(1.0, max(0.1, -(-largest * 10 // 1) / 10))  # next tenth up
    left, right, upper, lower = 48, 340, 40, 300  # plot area inside a 360 x 350 box
    ident = "calibration-" + "".join(c if c.isalnum() else "-" for c in title.lower())
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


def _time_ident(title: str) -> str:
    return "time-chart-" + "".join(c if c.isalnum() else "-" for c in title.lower())


def _time_empty(title: str, message: str) -> str:
    ident = _time_ident(title)
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
    ident = _time_ident(title)
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


# Lead flow charts: rates with their 95 % intervals as whiskers, the stage funnel, and pairs.
RateRow = tuple[str, float | None, float | None, float | None]  # label, rate, low, high
_FLOW_BLUE, _FLOW_GREY, _FLOW_ORANGE = "#2680c2", "#9fb3c8", "#c65d21"


def _flow_ident(prefix: str, title: str) -> str:
    return prefix + "-" + "".join(c if c.isalnum() else "-" for c in title.lower())


def _flow_pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}".removesuffix(".0") + " %"


def _flow_empty(title: str) -> str:
    return f'<p role="img" aria-label="{escape(title)}: no data">{escape(title)}: no data</p>'


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
        return _flow_empty(title)
    top = _flow_top(shown, reference)
    left, right, height = 150, 400, 24
    ident = _flow_ident("rates", title)

    def x(value: float) -> float:
        return left + (right - left) * value / top

    summary = ", ".join(
        f"{label} {_flow_pct(rate)} (95 % interval {_flow_pct(low)} to {_flow_pct(high)})"
        for label, rate, low, high in shown
    )
    if reference is not None:
        summary += f"; {reference_label} {_flow_pct(reference)}"
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
            f'fill="{color}"><title>{escape(label)}: {_flow_pct(rate)}</title></rect>',
        ]
        if low is not None and high is not None:
            parts.append(
                f'<line x1="{x(low):.1f}" y1="{y + 11}" x2="{x(high):.1f}" y2="{y + 11}" '
                'stroke="#102a43" stroke-width="1.5"/>'
            )
        parts.append(f'<text x="{right + 8}" y="{y + 15}" font-size="12">{_flow_pct(rate)}</text>')
    if reference is not None:
        parts += [
            f'<line x1="{x(reference):.1f}" y1="24" x2="{x(reference):.1f}" y2="{total - 8}" '
            f'stroke="{_FLOW_ORANGE}" stroke-dasharray="4 3"/>',
            f'<text x="{x(reference):.1f}" y="{total}" font-size="11" text-anchor="middle" '
            f'fill="{_FLOW_ORANGE}">{escape(reference_label)} {_flow_pct(reference)}</text>',
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
        return _flow_empty(title)
    top = _flow_top(rows, reference)
    left, right, upper, lower = 44, 470, 30, 200
    ident = _flow_ident("columns", title)
    slot = (right - left) / len(rows)

    def y(value: float) -> float:
        return lower - (lower - upper) * value / top

    summary = ", ".join(f"{label} {_flow_pct(rate)}" for label, rate, _, _ in rows)
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
            f"{_flow_pct(tick)}</text>",
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
                f"<title>{escape(label)}: {_flow_pct(rate)} (95 % interval {_flow_pct(low)} "
                f"to {_flow_pct(high)})</title></rect>"
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
            f"{_flow_pct(reference)}</title></line>"
        )
    parts.append("</svg>")
    return "".join(parts)


def funnel(title: str, stages: Sequence[tuple[str, int]]) -> str:
    """The stage funnel: one centred bar per stage, as wide as its share of the first."""
    if not stages or not stages[0][1]:
        return _flow_empty(title)
    first = stages[0][1]
    ident = _flow_ident("funnel", title)
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
            f"({_flow_pct(count / first)})</text>",
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
        return _flow_empty(title)
    ident = _flow_ident("pairs", title)
    left, right, height = 150, 420, 40
    colors = (_FLOW_BLUE, _FLOW_ORANGE)
    summary = "; ".join(
        f"{label}: {names[0]} {_flow_pct(a)}, {names[1]} {_flow_pct(b)}" for label, a, b in rows
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
                f"{_flow_pct(value)}</text>",
            ]
    parts.append("</svg>")
    return "".join(parts)
