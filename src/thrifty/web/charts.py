"""Charts as inline SVG, drawn on the server: a page needs no JavaScript to show them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from markupsafe import Markup

WIDTH_PX = 640
HEIGHT_PX = 160
_PAD_PX = 28


def _scale(values: Sequence[float], top: float, span_px: float) -> list[float]:
    return [span_px * (v / top) if top > 0 else 0.0 for v in values]


def _x_positions(count: int) -> list[float]:
    inner = WIDTH_PX - 2 * _PAD_PX
    return [_PAD_PX + (inner * i / (count - 1) if count > 1 else inner / 2) for i in range(count)]


def series_svg(
    title: str, times: Sequence[datetime], values: Sequence[float], *, unit: str, bars: bool = False
) -> Markup:
    """One series over time as an SVG line (or bars), with its title, max and time range labelled."""
    label = escape(title)
    if not values:
        return Markup(
            f'<svg class="chart" role="img" aria-label="{label}: no data" viewBox="0 0 {WIDTH_PX} 40">'
            f'<text x="8" y="24">{label}: no requests in this window</text></svg>'
        )
    top = max(values)
    heights = _scale(values, top, HEIGHT_PX - 2 * _PAD_PX)
    xs = _x_positions(len(values))
    base = HEIGHT_PX - _PAD_PX
    if bars:
        width = max(1.0, (WIDTH_PX - 2 * _PAD_PX) / len(values) * 0.8)
        marks = "".join(
            f'<rect x="{x - width / 2:.1f}" y="{base - h:.1f}" width="{width:.1f}" height="{h:.1f}">'
            f"<title>{t:%Y-%m-%d %H:%M} {v:.4g} {escape(unit)}</title></rect>"
            for x, h, t, v in zip(xs, heights, times, values, strict=True)
        )
    else:
        points = " ".join(f"{x:.1f},{base - h:.1f}" for x, h in zip(xs, heights, strict=True))
        marks = f'<polyline fill="none" points="{points}"/>'
    return Markup(
        f'<svg class="chart" role="img" aria-label="{label}" viewBox="0 0 {WIDTH_PX} {HEIGHT_PX}">'
        f'<text x="{_PAD_PX}" y="16">{label} (max {top:.4g} {escape(unit)})</text>'
        f'<line x1="{_PAD_PX}" y1="{base}" x2="{WIDTH_PX - _PAD_PX}" y2="{base}"/>{marks}'
        f'<text x="{_PAD_PX}" y="{HEIGHT_PX - 8}">{times[0]:%m-%d %H:%M}</text>'
        f'<text x="{WIDTH_PX - _PAD_PX}" y="{HEIGHT_PX - 8}" text-anchor="end">{times[-1]:%m-%d %H:%M} UTC</text>'
        "</svg>"
    )
