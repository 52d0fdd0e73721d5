"""The task-coverage sweep: final in-domain and OOD accuracy against `data.coverage` (|D|), one
line per setting, when coverage varies between runs."""

from __future__ import annotations

from typing import Any

from ..figure import Figure, band, final_lines, panel_points
from ..groups import series_of, short_keys
from ..page import Section, figure_html, fmt_stat, table_html
from ..stats import stat

KEY = "data.coverage"


class Coverage(Figure):
    key = "coverage"

    def compute(self, data) -> dict[str, Any] | None:
        if KEY not in data.differing:
            return None
        panels: list[tuple[str, str, str]] = []  # (metric key, title, kind)
        for b in data.in_domain:
            panels.append((f"eval/{b}/accuracy", f"{b} accuracy (in-domain)", "in_domain"))
        if not data.in_domain:
            panels.append(("reward/mean", "training score (in-domain)", "in_domain"))
        for b in data.ood:
            panels.append((f"eval/{b}/accuracy", f"{b} accuracy (OOD)", "ood"))
        series = series_of([g for g in data.groups if isinstance(g.values[KEY], (int, float))], [KEY],
                           short_keys(data.differing))
        xs = sorted({g.values[KEY] for gs in series.values() for g in gs})
        out_panels = []
        for mkey, title, kind in panels:
            lines = final_lines(series, mkey, "coverage", lambda g: g.values[KEY], lambda g: g.values[KEY])
            base = None
            if kind == "ood":
                base = stat([r.at(mkey, 0) for gs in series.values() for g in gs for r in g.runs])["mean"]
            if lines:
                out_panels.append({"metric": mkey, "title": title, "kind": kind, "initial_model": base,
                                   "series": lines})
        if not out_panels:
            return None
        return {"key": KEY, "x": xs, "panels": out_panels}

    def section(self, data, value) -> Section | None:
        if not value:
            return None
        from .. import plots

        series = []
        for p in value["panels"]:
            bands = [band(label, [q["coverage"] for q in pts], pts, p["metric"]) for label, pts in p["series"].items()]
            hl = [("initial model", p["initial_model"])] if p.get("initial_model") is not None else []
            series.append(plots.Series(p["title"], "final accuracy" if "accuracy" in p["metric"] else "final score",
                                       bands, hl))
        xs = value["x"]
        png = plots.panels(series, xlabel="task coverage |D| (data.coverage)", xlog=min(xs) > 0 and len(xs) > 1,
                           xticks=xs, suptitle="Task-coverage sweep: final accuracy vs |D|")
        rows = [[p["metric"], label, q["coverage"], fmt_stat(q)] for p, label, q in panel_points(value)]
        return Section("coverage", "Task coverage |D|", [
            figure_html("coverage-sweep", png, "Final in-domain and OOD accuracy against data.coverage, per algorithm; "
                        "mean over seeds with 95% interval; dashed: the initial model."),
            table_html(["metric", "series", "|D|", "mean ± 95% CI"], rows, table_id="coverage-table")])

    def rows(self, data, value):
        for p, label, q in panel_points(value) if value else ():
            yield label, f"{p['metric']}@coverage={q['coverage']}", q
