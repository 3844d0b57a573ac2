"""Server-side SVG charts: no JavaScript, no CDN, readable without colour.

Every bar carries a ``<title>`` (the browser shows it on hover and screen readers read it);
the page shows the same numbers as a table beside the chart.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from dashboard.stats import DayCounts

WIDTH = 720
HEIGHT = 220
PAD_LEFT = 48
PAD_RIGHT = 12
PAD_TOP = 12
PAD_BOTTOM = 32


def _nice_max(value: int) -> int:
    """An axis maximum of 4, 8 or 20 times a power of ten, so the four grid steps are whole numbers."""
    magnitude = 1
    while True:
        for step in (4, 8, 20):
            if value <= step * magnitude:
                return step * magnitude
        magnitude *= 10


def daily_bars(days: Sequence[DayCounts], *, title: str, decisions_label: str, blocks_label: str) -> Markup:
    """One bar per day: its full height is all decisions, the dark lower part the blocks."""
    top = _nice_max(max((d.decisions for d in days), default=0))
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    slot = plot_w / max(len(days), 1)
    bar_w = max(slot * 0.7, 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="chart-title">',
        f'<title id="chart-title">{escape(title)}</title>',
    ]
    for i in range(5):  # horizontal grid and y labels
        value = top * i // 4
        y = PAD_TOP + plot_h - plot_h * i / 4
        parts.append(f'<line class="grid" x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{PAD_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value}</text>')
    for index, day in enumerate(days):
        x = PAD_LEFT + index * slot + (slot - bar_w) / 2
        total_h = plot_h * day.decisions / top
        block_h = plot_h * day.blocks / top
        base = PAD_TOP + plot_h
        label = (f"{day.day.isoformat()}: {day.decisions} {decisions_label}, {day.blocks} {blocks_label}"
                 + (" (partial)" if day.partial else ""))
        parts.append(f'<g class="day"><title>{escape(label)}</title>')
        parts.append(f'<rect class="bar-all" x="{x:.1f}" y="{base - total_h:.1f}" '
                     f'width="{bar_w:.1f}" height="{total_h:.1f}"/>')
        parts.append(f'<rect class="bar-blocked" x="{x:.1f}" y="{base - block_h:.1f}" '
                     f'width="{bar_w:.1f}" height="{block_h:.1f}"/>')
        parts.append("</g>")
        if index % 5 == 0 or index == len(days) - 1:
            parts.append(f'<text class="axis" x="{x + bar_w / 2:.1f}" y="{HEIGHT - 10}" '
                         f'text-anchor="middle">{day.day.strftime("%d.%m")}</text>')
    legend_y = PAD_TOP + 4
    parts.append(f'<rect class="bar-all" x="{PAD_LEFT + 8}" y="{legend_y}" width="10" height="10"/>')
    parts.append(f'<text class="legend" x="{PAD_LEFT + 22}" y="{legend_y + 9}">{escape(decisions_label)}</text>')
    parts.append(f'<rect class="bar-blocked" x="{PAD_LEFT + 150}" y="{legend_y}" width="10" height="10"/>')
    parts.append(f'<text class="legend" x="{PAD_LEFT + 164}" y="{legend_y + 9}">{escape(blocks_label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
