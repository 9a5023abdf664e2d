"""Small server-rendered SVG charts: no JavaScript, no CDN, readable offline and in print.

Pure functions from plain values to an SVG string (the caller marks it safe for Jinja); every
text is escaped here. Labels and formatted values come in already translated and formatted.
"""
from __future__ import annotations

import math
from html import escape
from typing import Callable, Sequence

FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def nice_ticks(max_value: float, count: int = 4) -> list[float]:
    """Round axis ticks from 0 covering ``max_value``: 0, 250, 500, 750, 1000 rather than 0, 233…"""
    if max_value <= 0:
        return [0.0, 1.0]
    raw = max_value / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    top = step * math.ceil(max_value / step)
    n = int(round(top / step))
    return [step * i for i in range(n + 1)]


def hbar_chart(rows: Sequence[tuple[str, int]], *, label: str, value_text: Callable[[int], str] = str,
               width: int = 520, bar_height: int = 18, gap: int = 6, label_width: int = 150) -> str:
    """Horizontal bars for categories (send statuses, suppression reasons), largest value = full width."""
    top = max((v for _, v in rows), default=0)
    value_width = 90
    track = width - label_width - value_width
    height = max(len(rows), 1) * (bar_height + gap) + gap
    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="{escape(label)}">',
             f"<title>{escape(label)}</title>"]
    if not rows:
        parts.append(f'<text x="0" y="{bar_height}" {FONT} fill="#667">—</text>')
    for i, (name, value) in enumerate(rows):
        y = gap + i * (bar_height + gap)
        w = 0 if top <= 0 else max(1, round(track * value / top)) if value > 0 else 0
        mid = y + bar_height / 2 + 4
        parts.append(f'<text x="{label_width - 8}" y="{mid}" text-anchor="end" {FONT} fill="#223">{escape(name)}</text>')
        parts.append(f'<rect class="bar" x="{label_width}" y="{y}" width="{w}" height="{bar_height}" rx="2" fill="#2f6fb3">'
                     f"<title>{escape(name)}: {escape(value_text(value))}</title></rect>")
        parts.append(f'<text x="{label_width + w + 6}" y="{mid}" {FONT} fill="#223">{escape(value_text(value))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def column_chart(points: Sequence[tuple[str, int]], *, label: str, value_text: Callable[[float], str] = lambda v: f"{v:g}",
                 width: int = 640, height: int = 200, max_labels: int = 8) -> str:
    """Columns over time (sends per day, commission per month) with a zero-based, rounded y axis."""
    left, right, top_pad, bottom = 64, 8, 10, 24
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    ticks = nice_ticks(max((v for _, v in points), default=0))
    top = ticks[-1]
    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="{escape(label)}">',
             f"<title>{escape(label)}</title>"]
    for t in ticks:
        y = top_pad + plot_h - plot_h * t / top
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#dde2ea"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {FONT} fill="#556">{escape(value_text(t))}</text>')
    n = len(points)
    if n:
        slot = plot_w / n
        bar = max(1.0, slot * 0.75)
        every = max(1, math.ceil(n / max_labels))
        for i, (name, value) in enumerate(points):
            h = plot_h * value / top if top else 0
            x = left + i * slot + (slot - bar) / 2
            parts.append(f'<rect class="bar" x="{x:.1f}" y="{top_pad + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="#2f6fb3">'
                         f"<title>{escape(name)}: {escape(value_text(value))}</title></rect>")
            if i % every == 0:
                parts.append(f'<text x="{x + bar / 2:.1f}" y="{height - 8}" text-anchor="middle" {FONT} fill="#556">{escape(name)}</text>')
    else:
        parts.append(f'<text x="{left + 8}" y="{top_pad + plot_h / 2}" {FONT} fill="#667">—</text>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top_pad + plot_h}" y2="{top_pad + plot_h}" stroke="#889"/>')
    parts.append("</svg>")
    return "".join(parts)
