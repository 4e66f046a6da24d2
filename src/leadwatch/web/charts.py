"""Bar charts drawn on the server as inline SVG: no JavaScript, nothing fetched, readable at
phone width (they scale), and labelled for screen readers."""

from __future__ import annotations

from collections.abc import Mapping
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
        f'{height * len(rows) + 30}" style="max-width:100%;height:auto">',
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
