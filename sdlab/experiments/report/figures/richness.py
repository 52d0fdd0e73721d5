"""The context-richness sweep: final epistemic-word count and OOD accuracy of SDPO runs per
`teacher_context` level (ordered by information), with the initial model and GRPO as references,
when the context varies between SDPO runs."""

from __future__ import annotations

from typing import Any

from ..figure import Figure, band, final_lines, panel_points
from ..groups import CONTEXT_ORDER, order_value, series_of, short_keys
from ..page import Section, figure_html, fmt_stat, table_html
from ..stats import stat

KEY = "teacher_context"


class Richness(Figure):
    key = "richness"

    def compute(self, data) -> dict[str, Any] | None:
        sdpo = [g for g in data.groups if g.algorithm == "sdpo"]
        levels = {g.runs[0].config.get(KEY) for g in sdpo}
        if KEY not in data.differing or len(levels) < 2:
            return None
        order = [c for c in CONTEXT_ORDER if c in levels] + sorted(str(c) for c in levels if c not in CONTEXT_ORDER)
        panels: list[tuple[str, str]] = []
        for b in data.ood:
            panels.append((f"eval/{b}/epistemic", f"epistemic words per response: {b}"))
            panels.append((f"eval/{b}/accuracy", f"{b} accuracy (OOD)"))
        if not data.ood:
            panels += [("epistemic/mean", "epistemic words per training response"), ("reward/mean", "training score")]
        short = short_keys(data.differing)
        drop = [KEY, "algorithm"]
        series = series_of(sdpo, drop, short, "SDPO")
        grpo = series_of([g for g in data.groups if g.algorithm == "grpo"], drop, short, "SDPO")
        out_panels = []
        for mkey, title in panels:
            lines = final_lines(series, mkey, "level", lambda g: g.runs[0].config.get(KEY),
                                lambda g: order_value(KEY, g.values.get(KEY)))
            refs = {label: {"initial_model": stat([r.at(mkey, 0) for g in gs for r in g.runs])["mean"],
                            "grpo": stat([r.final(mkey) for g in grpo.get(label, []) for r in g.runs])["mean"]}
                    for label, gs in series.items()}
            if lines:
                out_panels.append({"metric": mkey, "title": title, "series": lines, "references": refs})
        if not out_panels:
            return None
        return {"key": KEY, "levels": order, "panels": out_panels}

    def section(self, data, value) -> Section | None:
        if not value:
            return None
        from .. import plots

        levels = value["levels"]
        series = []
        for p in value["panels"]:
            bands = [band(label, [levels.index(q["level"]) for q in pts], pts, p["metric"])
                     for label, pts in p["series"].items()]
            hl = []
            if len(p["series"]) == 1:
                ref = next(iter(p["references"].values()))
                hl = [(n, ref[k]) for n, k in (("initial model", "initial_model"), ("GRPO (final)", "grpo"))
                      if ref.get(k) is not None]
            series.append(plots.Series(p["title"], "final value", bands, hl))
        png = plots.panels(series, xlabel="teacher context (less → more information)", xticks=list(range(len(levels))),
                           xticklabels=levels, ncols=2, suptitle="Context richness: SDPO teacher context levels")
        rows = [[p["metric"], label, q["level"], fmt_stat(q)] for p, label, q in panel_points(value)]
        return Section("richness", "Teacher-context richness (SDPO)", [
            figure_html("richness-sweep", png, "Final epistemic-word count and OOD accuracy per teacher_context level "
                        "(ordered by information), mean over seeds with 95% interval; "
                        "dashed: the initial model and GRPO."),
            table_html(["metric", "series", "teacher_context", "mean ± 95% CI"], rows, table_id="richness-table")])

    def rows(self, data, value):
        for p, label, q in panel_points(value) if value else ():
            yield label, f"{p['metric']}@teacher_context={q['level']}", q
