"""SVG chart geometry, pure Python: the template only draws what this computes.

Two shapes serve every page: stacked bars (events per bucket by kind) and signed bars
(net payout per bucket, above or below a zero line). Axis ticks are "nice" numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from html import escape

WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 52, 8, 10, 24
MAX_X_LABELS = 8


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass
class Tick:
    y: float
    label: str


@dataclass
class XLabel:
    x: float
    label: str


@dataclass
class Chart:
    width: int
    height: int
    bars: list[Bar] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    x_labels: list[XLabel] = field(default_factory=list)
    zero_y: float = 0.0
    plot_left: int = LEFT
    plot_right: int = WIDTH - RIGHT
    empty: bool = True

    @property
    def bars_svg(self) -> str:
        """The bars as SVG markup, built here: a template loop over a month of stacked bars cost more
        than the page's queries (each number went through the template's number formatting)."""
        return "".join(
            f'<rect class="bar {escape(b.css)}" x="{b.x}" y="{b.y}" width="{b.width}" height="{b.height}">'
            f"<title>{escape(b.title)}</title></rect>"
            for b in self.bars
        )

    @property
    def center_x(self) -> float:
        return (self.plot_left + self.plot_right) / 2

    @property
    def center_y(self) -> float:
        return (TOP + self.height - BOTTOM) / 2


def nice_step(span: float, ticks: int = 4) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) giving about `ticks` intervals."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def compact_number(value: float) -> str:
    """Axis labels: 950, 1.2k, 3.5M; whole numbers without decimals."""
    sign = "−" if value < 0 else ""
    value = abs(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            scaled = value / limit
            return f"{sign}{scaled:.1f}".rstrip("0").rstrip(".") + suffix
    if value == int(value):
        return f"{sign}{int(value)}"
    return f"{sign}{value:.2f}".rstrip("0").rstrip(".")


def _x_layout(count: int, width: int) -> tuple[float, float]:
    plot = width - LEFT - RIGHT
    slot = plot / max(count, 1)
    return slot, max(1.0, min(slot * 0.7, 40.0))


def _x_labels(labels: list[str], slot: float) -> list[XLabel]:
    every = max(1, math.ceil(len(labels) / MAX_X_LABELS))
    return [XLabel(LEFT + slot * i + slot / 2, text) for i, text in enumerate(labels) if i % every == 0]


def stacked_bars(
    labels: list[str], series: list[tuple[str, str]], values: list[dict[str, float]], width=WIDTH, height=HEIGHT
) -> Chart:
    """One stacked bar per label; `series` is [(key, css class)], stacked bottom-up in that order."""
    chart = Chart(width, height)
    totals = [sum(float(row.get(key) or 0) for key, _ in series) for row in values]
    top = max(totals, default=0)
    chart.empty = top == 0
    step = nice_step(top or 1)
    ceiling = step * max(1, math.ceil((top or 1) / step))
    plot_h = height - TOP - BOTTOM
    scale = plot_h / ceiling
    chart.zero_y = TOP + plot_h
    chart.ticks = [Tick(chart.zero_y - v * scale, compact_number(v)) for v in _range(0, ceiling, step)]
    slot, bar_w = _x_layout(len(labels), width)
    for i, (label, row) in enumerate(zip(labels, values, strict=True)):
        base = chart.zero_y
        x = LEFT + slot * i + (slot - bar_w) / 2
        for key, css in series:
            value = float(row.get(key) or 0)
            if value <= 0:
                continue
            h = value * scale
            base -= h
            chart.bars.append(
                Bar(round(x, 2), round(base, 2), round(bar_w, 2), round(h, 2), css, f"{label}: {int(value)} {key}")
            )
    chart.x_labels = _x_labels(labels, slot)
    return chart


def signed_bars(labels: list[str], values: list[Decimal | float | None], width=WIDTH, height=HEIGHT, fmt=str) -> Chart:
    """One bar per label from a zero line: up for gains (css `gain`), down for losses (`loss`)."""
    chart = Chart(width, height)
    numbers = [float(v or 0) for v in values]
    high = max([0.0, *numbers])
    low = min([0.0, *numbers])
    chart.empty = high == 0 and low == 0
    step = nice_step((high - low) or 1)
    top = step * math.ceil(high / step) if high > 0 else 0.0
    bottom = step * math.floor(low / step) if low < 0 else 0.0
    if top == bottom:
        top = step
    plot_h = height - TOP - BOTTOM
    scale = plot_h / (top - bottom)
    chart.zero_y = round(TOP + top * scale, 2)
    chart.ticks = [Tick(round(TOP + (top - v) * scale, 2), compact_number(v)) for v in _range(bottom, top, step)]
    slot, bar_w = _x_layout(len(labels), width)
    for i, (label, value, raw) in enumerate(zip(labels, numbers, values, strict=True)):
        if value == 0:
            continue
        h = abs(value) * scale
        y = chart.zero_y - h if value > 0 else chart.zero_y
        x = LEFT + slot * i + (slot - bar_w) / 2
        css = "gain" if value > 0 else "loss"
        chart.bars.append(Bar(round(x, 2), round(y, 2), round(bar_w, 2), round(h, 2), css, f"{label}: {fmt(raw)}"))
    chart.x_labels = _x_labels(labels, slot)
    return chart


def _range(start: float, stop: float, step: float) -> list[float]:
    count = round((stop - start) / step)
    return [start + step * i for i in range(count + 1)]
