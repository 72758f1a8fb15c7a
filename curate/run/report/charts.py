"""Inline SVG charts for the run report: no JavaScript, no network, same data -> same bytes.

Hand-written rather than matplotlib: the report needs only bars, histograms and one scatter map,
must be byte-deterministic, and should not pull a plotting stack into every install.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

PALETTE = ("#3b6ea8", "#d9822b", "#5a9e4b", "#b54a4a", "#7b5ea7", "#8c6d46", "#c76fa8", "#6b6b6b")
FONT = "font-family='system-ui, sans-serif' font-size='12'"


def _fmt(value: float) -> str:
    if value >= 100 or float(value).is_integer():
        return f"{round(value):,}"
    return f"{value:,.1f}"


def _svg_open(width: int, height: int, title: str) -> str:
    # Scales down to its container (keeps the aspect ratio), never up past its natural size.
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='100%' style='max-width:{width}px' "
        f"viewBox='0 0 {width} {height}' role='img' aria-label='{escape(title)}' {FONT}>"
    )


def bar_chart(
    labels: Sequence[str],
    series: Sequence[Sequence[float]],
    *,
    names: Sequence[str] = (),
    width: int = 760,
    label_width: int = 220,
    bar_height: int = 14,
    title: str = "",
) -> str:
    """Horizontal bars: one row per label, one bar per series (grouped), values written at the end."""
    if not labels:
        return "<p class='empty'>nothing to show</p>"
    groups = max(1, len(series))
    row_height = bar_height * groups + 8
    legend_height = 20 if names else 0
    height = legend_height + row_height * len(labels) + 6
    top = max((v for s in series for v in s), default=0) or 1
    plot_width = width - label_width - 90
    parts = [_svg_open(width, height, title)]
    for i, name in enumerate(names):
        x = label_width + i * 150
        parts.append(
            f"<rect x='{x}' y='4' width='12' height='12' fill='{PALETTE[i % len(PALETTE)]}'/>"
            f"<text x='{x + 16}' y='14'>{escape(name)}</text>"
        )
    for row, label in enumerate(labels):
        y0 = legend_height + row * row_height + 4
        fits = max(4, (label_width - 10) // 7)  # ~7 px per character at 12 px
        short = label if len(label) <= fits else label[: fits - 1] + "…"
        parts.append(
            f"<text x='{label_width - 6}' y='{y0 + row_height / 2 + 1:.0f}' text-anchor='end'>"
            f"<title>{escape(label)}</title>{escape(short)}</text>"
        )
        for g, values in enumerate(series):
            value = values[row]
            w = max(0.0, plot_width * value / top)
            y = y0 + g * bar_height
            color = PALETTE[g % len(PALETTE)]
            parts.append(
                f"<rect x='{label_width}' y='{y}' width='{w:.1f}' height='{bar_height - 2}' "
                f"fill='{color}'><title>{escape(label)}: {_fmt(value)}</title></rect>"
                f"<text x='{label_width + w + 4:.1f}' y='{y + bar_height - 4}'>{_fmt(value)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _bin_label(x: float, y: int, label: str) -> str:
    """A bin's label, centred under its bar(s)."""
    return f"<text x='{x:.1f}' y='{y}' text-anchor='middle' font-size='10'>{escape(label)}</text>"


def _x_title(x: float, height: int, title: str) -> str:
    """The chart's title under the axis, and the end of the SVG."""
    return f"<text x='{x:.0f}' y='{height - 4}' text-anchor='middle'>{escape(title)}</text></svg>"


def histogram(
    bins: Sequence[str],
    counts: Sequence[int],
    *,
    width: int = 1000,
    height: int = 200,
    title: str = "",
) -> str:
    """Vertical bars over ordered bins (labels under each bar)."""
    if not bins or not any(counts):
        return "<p class='empty'>nothing to show</p>"
    last = max(i for i, c in enumerate(counts) if c)  # drop empty bins past the longest value
    bins, counts = bins[: last + 1], counts[: last + 1]
    left, bottom, top_pad = 50, 40, 16
    plot_w = width - left - 10
    plot_h = height - bottom - top_pad
    peak = max(counts) or 1
    step = plot_w / len(bins)
    parts = [
        _svg_open(width, height, title),
        f"<line x1='{left}' y1='{top_pad + plot_h}' x2='{width - 10}' y2='{top_pad + plot_h}' "
        "stroke='#999'/>",
        f"<text x='{left - 4}' y='{top_pad + 8}' text-anchor='end'>{_fmt(peak)}</text>",
    ]
    for i, (label, count) in enumerate(zip(bins, counts, strict=True)):
        h = plot_h * count / peak
        x = left + i * step
        parts.append(
            f"<rect x='{x + 1:.1f}' y='{top_pad + plot_h - h:.1f}' width='{step - 2:.1f}' "
            f"height='{h:.1f}' fill='{PALETTE[0]}'><title>{escape(label)}: {count:,}</title></rect>"
            + _bin_label(x + step / 2, top_pad + plot_h + 14, label)
        )
    parts.append(_x_title(left + plot_w / 2, height, title))
    return "".join(parts)


def grouped_histogram(
    bins: Sequence[str],
    series: Sequence[Sequence[float]],
    *,
    names: Sequence[str] = (),
    width: int = 640,
    height: int = 240,
    unit: str = "",
    title: str = "",
) -> str:
    """Vertical bars over ordered bins, one bar per series side by side (a legend on top); the
    empty bins before the first and after the last value are left out. Each bar's label is its
    bin's lower edge."""
    if not bins or not any(v for s in series for v in s):
        return "<p class='empty'>nothing to show</p>"
    filled = [i for i in range(len(bins)) if any(s[i] for s in series)]
    first, last = filled[0], filled[-1]
    bins = bins[first : last + 1]
    series = [s[first : last + 1] for s in series]
    left, bottom, top_pad = 50, 40, 16 + (20 if names else 0)
    plot_w = width - left - 10
    plot_h = height - bottom - top_pad
    peak = max(v for s in series for v in s) or 1
    step = plot_w / len(bins)
    bar = max(1.0, (step - 2) / max(1, len(series)))
    parts = [_svg_open(width, height, title)]
    for i, name in enumerate(names):
        key_x = left + i * 150
        parts.append(
            f"<rect x='{key_x}' y='4' width='12' height='12' fill='{PALETTE[i % len(PALETTE)]}'/>"
            f"<text x='{key_x + 16}' y='14'>{escape(name)}</text>"
        )
    parts.append(
        f"<line x1='{left}' y1='{top_pad + plot_h}' x2='{width - 10}' y2='{top_pad + plot_h}' "
        "stroke='#999'/>"
        f"<text x='{left - 4}' y='{top_pad + 8}' text-anchor='end'>{_fmt(peak)}{escape(unit)}</text>"
    )
    for i, label in enumerate(bins):
        x = left + i * step
        for g, values in enumerate(series):
            value = values[i]
            h = plot_h * value / peak
            name = names[g] if g < len(names) else f"series {g + 1}"
            parts.append(
                f"<rect x='{x + 1 + g * bar:.1f}' y='{top_pad + plot_h - h:.1f}' "
                f"width='{bar:.1f}' height='{h:.1f}' fill='{PALETTE[g % len(PALETTE)]}'>"
                f"<title>{escape(name)} {escape(label)}: {_fmt(value)}{escape(unit)}</title></rect>"
            )
        parts.append(_bin_label(x + step / 2, top_pad + plot_h + 14, label))
    parts.append(_x_title(left + plot_w / 2, height, title))
    return "".join(parts)


def scatter(
    xs: Sequence[float],
    ys: Sequence[float],
    groups: Sequence[int],
    *,
    names: Sequence[str] = (),
    titles: Sequence[str] = (),
    width: int = 640,
    height: int = 520,
    x_label: str = "",
    y_label: str = "",
    title: str = "",
) -> str:
    """Points as small circles coloured by group (``PALETTE[group]``), a legend of ``names`` on
    top, a hover title per point when ``titles`` is given. Both axes fit the data."""
    if len(xs) != len(ys) or len(xs) != len(groups):
        raise ValueError("scatter: xs, ys and groups differ in length")
    if not xs:
        return "<p class='empty'>nothing to show</p>"
    per_row = max(1, (width - 60) // 150)
    legend_rows = -(-len(names) // per_row) if names else 0
    left, right, bottom = 30, 10, 34
    top_pad = 8 + 18 * legend_rows
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    x_low, x_high = min(xs), max(xs)
    y_low, y_high = min(ys), max(ys)
    x_span = (x_high - x_low) or 1.0
    y_span = (y_high - y_low) or 1.0
    parts = [_svg_open(width, height, title)]
    for i, name in enumerate(names):
        key_x = left + (i % per_row) * 150
        key_y = 4 + (i // per_row) * 18
        parts.append(
            f"<rect x='{key_x}' y='{key_y}' width='12' height='12' "
            f"fill='{PALETTE[i % len(PALETTE)]}'/>"
            f"<text x='{key_x + 16}' y='{key_y + 10}'>{escape(name)}</text>"
        )
    parts.append(
        f"<rect x='{left}' y='{top_pad}' width='{plot_w}' height='{plot_h}' fill='none' "
        "stroke='#ccc'/>"
    )
    # One <g> per colour (its points in input order), drawn in group order: group 0 first.
    by_group: dict[int, list[int]] = {}
    for i, group in enumerate(groups):
        by_group.setdefault(group % len(PALETTE), []).append(i)
    for group in sorted(by_group):
        parts.append(f"<g fill='{PALETTE[group]}' fill-opacity='0.7'>")
        for i in by_group[group]:
            cx = left + 4 + (plot_w - 8) * (xs[i] - x_low) / x_span
            cy = top_pad + 4 + (plot_h - 8) * (y_high - ys[i]) / y_span
            hover = f"<title>{escape(titles[i])}</title>" if i < len(titles) else ""
            parts.append(f"<circle cx='{cx:.1f}' cy='{cy:.1f}' r='2.5'>{hover}</circle>")
        parts.append("</g>")
    parts.append(
        f"<text x='{left + plot_w / 2:.0f}' y='{height - 18}' text-anchor='middle'>"
        f"{escape(x_label)}</text>"
        f"<text x='12' y='{top_pad + plot_h / 2:.0f}' text-anchor='middle' "
        f"transform='rotate(-90 12 {top_pad + plot_h / 2:.0f})'>{escape(y_label)}</text>"
        f"<text x='{left + plot_w / 2:.0f}' y='{height - 3}' text-anchor='middle' "
        f"font-size='11' fill='#666'>{escape(title)}</text></svg>"
    )
    return "".join(parts)
