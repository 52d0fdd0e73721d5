"""One unit of the report: a figure (or table) is a `Figure` with a `compute` (numbers only, from
the analyzed runs) and a `section` (the HTML, figures drawn here), registered in
`figures.FIGURES`; summary.json gets its numbers under `key`, summary.csv its `rows`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from .stats import nan, point, stat

if TYPE_CHECKING:
    from .data import ReportData
    from .groups import Group
    from .page import Section

__all__ = ["Figure", "band", "final_lines", "panel_points", "value_range"]


class Figure:
    """Subclass, set `key`, write `compute` and `section`, and add an instance to `FIGURES`
    (`sdlab/experiments/report/figures/__init__.py`; the list's order is the page's order)."""

    key: str = ""
    """Name of the numbers: `data.results[key]` (also `data.<key>`) and the summary.json key."""
    in_summary: bool = True
    """Whether summary.json has a `key` entry (the tables of numbers the report always has, i.e.
    groups, final metrics and runs, are written by `summary.summary_json` itself)."""

    def compute(self, data: ReportData) -> Any:
        """The numbers (JSON-able); None when there is nothing to show."""
        return None

    def section(self, data: ReportData, value: Any) -> Section | None:
        """The section of the page for `value` (None: none)."""
        raise NotImplementedError

    def summary(self, value: Any) -> Any:
        """The summary.json entry (default: the numbers as computed)."""
        return value

    def rows(self, data: ReportData, value: Any) -> Iterable[tuple[str, str, dict[str, Any]]]:
        """summary.csv rows (group label, metric, stat); their `section` column is `key`."""
        return ()


def value_range(key: str) -> tuple[float | None, float | None]:
    """The values a metric can take, to draw its bands within (the numbers are not clipped)."""
    if key.endswith(("/accuracy", "/pass@1", "/truncation_rate")) or key == "reward/mean":
        return (0.0, 1.0)
    return (0.0, None)


def band(label: str, x: list, pts: list[dict[str, Any]], metric: str, marker: str | None = "o"):
    """A line with its 95% band from points with mean / ci_low / ci_high."""
    from . import plots

    return plots.Band(label, x, [p["mean"] for p in pts], [nan(p["ci_low"]) for p in pts],
                      [nan(p["ci_high"]) for p in pts], marker=marker, clip=value_range(metric))


def final_lines(series: dict[str, list[Group]], metric: str, x_key: str, x_of: Callable[[Group], Any],
                sort_key: Callable[[Group], Any]) -> dict[str, list[dict[str, Any]]]:
    """The lines of a sweep figure: series label -> one point {x_key: x, n, mean, ci_low, ci_high}
    per group (the final value of `metric` over its seeds), in `sort_key` order; empty lines left out."""
    lines = {}
    for label, gs in series.items():
        pts = []
        for g in sorted(gs, key=sort_key):
            s = stat([r.final(metric) for r in g.runs])
            if s["n"]:
                pts.append(point(x_key, x_of(g), s))
        if pts:
            lines[label] = pts
    return lines


def panel_points(value: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str, dict[str, Any]]]:
    """(panel, series label, point) of a sweep figure's `{"panels": [{"series": {label: [points]}}]}`."""
    for p in value["panels"]:
        for label, pts in p["series"].items():
            for q in pts:
                yield p, label, q
