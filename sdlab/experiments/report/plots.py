"""Figures for `sdlab report`, drawn with matplotlib's Agg canvas and returned as PNG bytes.

Every function takes plain numbers (already aggregated over seeds: mean and 95% interval) and
returns the PNG as bytes, so the report can embed it as a `data:` URI. Figures are built with
`matplotlib.figure.Figure` directly (no pyplot state), which is safe to call from any thread.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Sequence

__all__ = ["Band", "Series", "bar_groups", "line_bands", "panels", "to_png"]

DPI = 110
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")


@dataclass
class Band:
    """One line with an optional confidence band: y[i] at x[i], band [lo[i], hi[i]] (nan = none)."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    lo: Sequence[float] | None = None
    hi: Sequence[float] | None = None
    style: str = "-"
    marker: str | None = None
    color: str | None = None
    clip: tuple[float | None, float | None] = (None, None)
    """Draw the band within these bounds (e.g. (0, 1) for an accuracy; the numbers are not changed)."""


@dataclass
class Series:
    """One panel of a multi-panel figure."""

    title: str
    ylabel: str
    bands: list[Band] = field(default_factory=list)
    hlines: list[tuple[str, float]] = field(default_factory=list)
    """Reference levels (label, y), drawn dashed across the panel."""


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def to_png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def _draw_band(ax, b: Band, color: str) -> None:
    xs = list(b.x)
    ys = [float("nan") if not _finite(v) else v for v in b.y]
    ax.plot(xs, ys, b.style, marker=b.marker, color=color, label=b.label, linewidth=1.6, markersize=4)
    if b.lo is not None and b.hi is not None:
        low, high = b.clip
        lo = [max(v, low) if low is not None else v for v in (v if _finite(v) else float("nan") for v in b.lo)]
        hi = [min(v, high) if high is not None else v for v in (v if _finite(v) else float("nan") for v in b.hi)]
        if any(_finite(v) for v in lo):
            ax.fill_between(xs, lo, hi, color=color, alpha=0.18, linewidth=0)
            if len(xs) == 1 or sum(_finite(v) for v in lo) == 1:  # a lone point: show the interval
                ax.errorbar(xs, ys, yerr=[[y - v if _finite(v) else 0 for y, v in zip(ys, lo)],
                                          [h - y if _finite(h) else 0 for y, h in zip(ys, hi)]],
                            fmt="none", ecolor=color, capsize=3)


def panels(series: Sequence[Series], *, xlabel: str = "step", xlog: bool = False, xticks: Sequence | None = None,
           xticklabels: Sequence[str] | None = None, ncols: int | None = None, suptitle: str | None = None,
           panel_size: tuple[float, float] = (4.6, 3.2)) -> bytes:
    """A row (or grid) of line panels with bands; one legend for the whole figure."""
    n = max(1, len(series))
    ncols = ncols or min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = _figure(panel_size[0] * ncols, panel_size[1] * nrows + 0.5 + 0.2 * len(series[0].bands if series else []) / 3)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    labels_seen: dict[str, object] = {}
    color_of: dict[str, str] = {}
    for idx, s in enumerate(series):
        ax = axes[idx // ncols][idx % ncols]
        for b in s.bands:
            color = b.color or color_of.setdefault(b.label, COLORS[len(color_of) % len(COLORS)])
            _draw_band(ax, b, color)
        for j, (label, y) in enumerate(s.hlines):
            if _finite(y):
                line_color = "#555555" if j == 0 else COLORS[(j + 5) % len(COLORS)]
                ax.axhline(y, linestyle="--", linewidth=1.0, color=line_color, label=label)
        ax.set_title(s.title, fontsize=10)
        ax.set_ylabel(s.ylabel, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=8)
        if xlog:
            ax.set_xscale("log")
        if xticks is not None:
            ax.set_xticks(list(xticks))
            ax.set_xticklabels(list(xticklabels) if xticklabels is not None else [str(t) for t in xticks],
                               rotation=30 if xticklabels is not None else 0, fontsize=8)
            ax.minorticks_off()
        for handle, label in zip(*ax.get_legend_handles_labels()):
            labels_seen.setdefault(label, handle)
    for idx in range(len(series), nrows * ncols):
        axes[idx // ncols][idx % ncols].set_visible(False)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    if labels_seen:
        fig.legend(list(labels_seen.values()), list(labels_seen.keys()), loc="outside lower center",
                   ncol=min(3, len(labels_seen)), fontsize=8, frameon=False)
    return to_png(fig)


def line_bands(bands: Sequence[Band], *, title: str, ylabel: str, xlabel: str = "step") -> bytes:
    return panels([Series(title, ylabel, list(bands))], xlabel=xlabel, panel_size=(6.4, 3.6))


def bar_groups(categories: Sequence[str], bars: Sequence[tuple[str, Sequence[float], Sequence[float] | None,
                                                               Sequence[float] | None]], *, title: str, ylabel: str,
               xlabel: str = "") -> bytes:
    """Grouped bars: one group per category (e.g. word), one bar per series (label, values, lo, hi)
    with error bars where the interval is known. A zero line marks "no change"."""
    import numpy as np

    k = max(1, len(bars))
    width = 0.8 / k
    fig = _figure(min(12.0, max(6.4, 0.55 * len(categories) * max(1.0, k / 2))), 4.2)
    ax = fig.subplots()
    x = np.arange(len(categories))
    for i, (label, values, lo, hi) in enumerate(bars):
        vals = np.array([v if _finite(v) else np.nan for v in values], dtype=float)
        pos = x - 0.4 + width * (i + 0.5)
        yerr = None
        if lo is not None and hi is not None:
            lo_a = np.array([v if _finite(v) else np.nan for v in lo], dtype=float)
            hi_a = np.array([v if _finite(v) else np.nan for v in hi], dtype=float)
            if np.isfinite(lo_a).any():
                yerr = np.vstack([np.nan_to_num(vals - lo_a), np.nan_to_num(hi_a - vals)])
        ax.bar(pos, np.nan_to_num(vals), width=width, label=label, color=COLORS[i % len(COLORS)],
               yerr=yerr, capsize=2 if yerr is not None else 0, error_kw={"linewidth": 0.8})
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels(list(categories), rotation=30, fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel, fontsize=9)
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    ax.tick_params(labelsize=8)
    fig.legend(loc="outside lower center", ncol=min(3, k), fontsize=8, frameon=False)
    return to_png(fig)
