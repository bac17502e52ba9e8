"""Small, dependency-free SVG charts for self-contained HTML reports.

Two chart kinds cover the reports: :func:`xy_chart` (points and/or lines, linear or log x axis)
and :func:`stacked_bars`. Output is an ``<svg>`` string with inline styles, so a report is one
file that opens anywhere — no JavaScript, no network, no plotting library.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

__all__ = ["PALETTE", "Series", "color", "stacked_bars", "xy_chart"]

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#000000",
    "#999999",
)
_FONT = "font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;font-size:12px"


def color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


@dataclass(slots=True)
class Series:
    """Points to plot. ``mode``: ``points`` (markers + labels), ``line``, or ``both``."""

    label: str
    points: Sequence[tuple[float, float]]
    color: str = PALETTE[0]
    mode: str = "points"
    dashed: bool = False
    point_labels: Sequence[str] = field(default_factory=tuple)


@dataclass(slots=True)
class _Frame:
    width: int
    height: int
    left: int = 64
    right: int = 30
    top: int = 28
    bottom: int = 44
    legend_rows: int = 0  # the legend sits below the plot, so it never hides data

    @property
    def plot_w(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> int:
        return self.height - self.top - self.bottom

    @property
    def total_height(self) -> int:
        return self.height + _LEGEND_ROW * self.legend_rows


_LEGEND_ROW = 18
_CHAR_W = 6.6  # average glyph width at 12px, for laying out legend entries


def _legend_layout(frame: _Frame, labels: Sequence[str]) -> list[tuple[float, int]]:
    """(x, row) of each legend entry, flowing left to right under the plot."""
    places = []
    x, row = float(frame.left), 0
    for label in labels:
        width = 22 + len(label) * _CHAR_W + 14
        if x + width > frame.width - frame.right and x > frame.left:
            x, row = float(frame.left), row + 1
        places.append((x, row))
        x += width
    return places


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step + 1e-9) * step
    ticks = [round(start, 12)]
    while ticks[-1] < high - step * 1e-9:  # the last tick is at or above the highest value
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def _log_ticks(low: float, high: float) -> list[float]:
    return [10.0**e for e in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)]


def _fmt(value: float, unit: str = "") -> str:
    if unit == "%":
        return f"{value * 100:.0f}%"
    if unit == "$":
        if value == 0:
            return "$0"
        if abs(value) < 0.01:
            return "$" + f"{value:.6f}".rstrip("0")
        return f"${value:,.2f}"
    if abs(value) >= 1000 or (0 < abs(value) < 0.01):
        return f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{value:g}"


def xy_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_unit: str = "",
    y_unit: str = "",
    log_x: bool = False,
    y_range: tuple[float, float] | None = None,
    width: int = 560,
    height: int = 340,
) -> str:
    """A chart of points and lines, with axes, ticks, grid and a legend."""
    frame = _Frame(width, height)
    frame.legend_rows = _legend_rows(frame, [s.label for s in series])
    xs = [x for s in series for x, _ in s.points if not log_x or x > 0]
    ys = [y for s in series for _, y in s.points]
    if not xs or not ys:
        return _empty(frame, title, "no data to plot")
    if log_x:
        x_low, x_high = min(xs) / 1.5, max(xs) * 1.5
        x_ticks = _log_ticks(x_low, x_high)
        x_low, x_high = x_ticks[0], x_ticks[-1]
    else:
        x_ticks = _nice_ticks(min(0.0, min(xs)), max(xs) if max(xs) > 0 else 1.0)
        x_low, x_high = x_ticks[0], x_ticks[-1]
    if y_range is not None:
        y_low, y_high = y_range
        y_ticks = _nice_ticks(y_low, y_high)
    else:
        y_ticks = _nice_ticks(min(0.0, min(ys)), max(ys) if max(ys) > 0 else 1.0)
        y_low, y_high = y_ticks[0], y_ticks[-1]

    def px(x: float) -> float:
        if log_x:
            x = max(x, x_low)
            share = (math.log10(x) - math.log10(x_low)) / (math.log10(x_high) - math.log10(x_low))
        else:
            share = (x - x_low) / (x_high - x_low)
        return frame.left + share * frame.plot_w

    def py(y: float) -> float:
        return frame.top + frame.plot_h - (y - y_low) / (y_high - y_low) * frame.plot_h

    parts = [_open(frame, title)]
    parts += _axes(
        frame,
        [(px(t), _fmt(t, x_unit)) for t in x_ticks if x_low <= t <= x_high],
        [(py(t), _fmt(t, y_unit)) for t in y_ticks if y_low <= t <= y_high],
        x_label,
        y_label,
    )
    for s in series:
        points = [(x, y) for x, y in s.points if not log_x or x > 0]
        if s.mode in ("line", "both") and len(points) > 1:
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
            dash = ' stroke-dasharray="5,4"' if s.dashed else ""
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{s.color}" stroke-width="2"{dash}/>'
            )
        if s.mode in ("points", "both"):
            for i, (x, y) in enumerate(points):
                tip = escape(f"{s.label}: {_fmt(x, x_unit)}, {_fmt(y, y_unit)}")
                parts.append(
                    f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="5" fill="{s.color}" '
                    f'stroke="#fff" stroke-width="1"><title>{tip}</title></circle>'
                )
                if i < len(s.point_labels) and s.point_labels[i]:
                    parts.append(
                        f'<text x="{px(x) + 7:.1f}" y="{py(y) - 6:.1f}" fill="#333">'
                        f"{escape(s.point_labels[i])}</text>"
                    )
    parts.append(_legend(frame, [(s.label, s.color, s.dashed) for s in series]))
    parts.append("</svg>")
    return "\n".join(parts)


def stacked_bars(
    categories: Sequence[str],
    stacks: Sequence[tuple[str, Sequence[float], str]],
    *,
    title: str,
    y_label: str,
    y_unit: str = "",
    width: int = 560,
    height: int = 340,
) -> str:
    """Vertical bars, one per category, each split into the ``stacks`` (label, values, colour)."""
    frame = _Frame(width, height, left=110, bottom=78)
    frame.legend_rows = _legend_rows(frame, [label for label, _, _ in stacks])
    if not categories:
        return _empty(frame, title, "no data to plot")
    totals = [sum(values[i] for _, values, _ in stacks) for i in range(len(categories))]
    y_ticks = _nice_ticks(0.0, max(totals) if max(totals) > 0 else 1.0)
    y_high = y_ticks[-1]

    def py(y: float) -> float:
        return frame.top + frame.plot_h - y / y_high * frame.plot_h

    slot = frame.plot_w / len(categories)
    bar = min(48.0, slot * 0.6)
    parts = [_open(frame, title)]
    parts += _axes(frame, [], [(py(t), _fmt(t, y_unit)) for t in y_ticks], "", y_label)
    for i, category in enumerate(categories):
        x = frame.left + slot * i + (slot - bar) / 2
        base = 0.0
        for label, values, fill in stacks:
            value = values[i]
            if value <= 0:
                continue
            tip = escape(f"{category} — {label}: {_fmt(value, y_unit)}")
            parts.append(
                f'<rect x="{x:.1f}" y="{py(base + value):.1f}" width="{bar:.1f}" '
                f'height="{py(base) - py(base + value):.1f}" fill="{fill}">'
                f"<title>{tip}</title></rect>"
            )
            base += value
        cx = frame.left + slot * (i + 0.5)
        cy = frame.top + frame.plot_h + 14
        parts.append(
            f'<text x="{cx:.1f}" y="{cy}" text-anchor="end" fill="#333" '
            f'transform="rotate(-25 {cx:.1f} {cy})">{escape(_shorten(category))}</text>'
        )
    parts.append(_legend(frame, [(label, fill, False) for label, _, fill in stacks]))
    parts.append("</svg>")
    return "\n".join(parts)


def _shorten(text: str, limit: int = 26) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _open(frame: _Frame, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {frame.width} '
        f'{frame.total_height}" width="{frame.width}" height="{frame.total_height}" role="img" '
        f'style="{_FONT}">'
        f"<title>{escape(title)}</title>"
        f'<rect width="100%" height="100%" fill="#fff"/>'
        f'<text x="{frame.left}" y="18" font-weight="600" font-size="14" fill="#111">'
        f"{escape(title)}</text>"
    )


def _axes(
    frame: _Frame,
    x_ticks: Sequence[tuple[float, str]],
    y_ticks: Sequence[tuple[float, str]],
    x_label: str,
    y_label: str,
) -> list[str]:
    bottom = frame.top + frame.plot_h
    right = frame.left + frame.plot_w
    parts = []
    for y, text in y_ticks:
        parts.append(
            f'<line x1="{frame.left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#e5e5e5"/>'
        )
        parts.append(
            f'<text x="{frame.left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">'
            f"{escape(text)}</text>"
        )
    for x, text in x_ticks:
        parts.append(
            f'<line x1="{x:.1f}" y1="{frame.top}" x2="{x:.1f}" y2="{bottom}" stroke="#f0f0f0"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle" fill="#555">'
            f"{escape(text)}</text>"
        )
    parts.append(
        f'<path d="M{frame.left},{frame.top} V{bottom} H{right}" fill="none" stroke="#333"/>'
    )
    if x_label:
        parts.append(
            f'<text x="{frame.left + frame.plot_w / 2:.1f}" y="{frame.height - 8}" '
            f'text-anchor="middle" fill="#333">{escape(x_label)}</text>'
        )
    if y_label:
        cy = frame.top + frame.plot_h / 2
        lx = max(14, frame.left - 50)  # beside the tick labels, whatever the margin
        parts.append(
            f'<text x="{lx}" y="{cy:.1f}" text-anchor="middle" fill="#333" '
            f'transform="rotate(-90 {lx} {cy:.1f})">{escape(y_label)}</text>'
        )
    return parts


def _legend_rows(frame: _Frame, labels: Sequence[str]) -> int:
    places = _legend_layout(frame, labels)
    return places[-1][1] + 1 if places else 0


def _legend(frame: _Frame, entries: Sequence[tuple[str, str, bool]]) -> str:
    rows = []
    for (label, fill, dashed), (x, row) in zip(
        entries, _legend_layout(frame, [e[0] for e in entries]), strict=True
    ):
        y = frame.height + 4 + row * _LEGEND_ROW
        dash = ' stroke-dasharray="4,3"' if dashed else ""
        rows.append(
            f'<line x1="{x:.1f}" y1="{y}" x2="{x + 16:.1f}" y2="{y}" stroke="{fill}" '
            f'stroke-width="3"{dash}/>'
            f'<text x="{x + 22:.1f}" y="{y + 4}" fill="#222">{escape(label)}</text>'
        )
    return '<g class="legend">' + "".join(rows) + "</g>"


def _empty(frame: _Frame, title: str, message: str) -> str:
    return (
        _open(frame, title)
        + f'<text x="{frame.width / 2}" y="{frame.height / 2}" text-anchor="middle" '
        f'fill="#777">{escape(message)}</text></svg>'
    )
