"""The per-word change of epistemic-word counts from the initial model (step-0 eval samples) to
the final eval samples, per benchmark and group."""

from __future__ import annotations

from typing import Any

from ..figure import Figure
from ..page import Section, figure_html, fmt_num, fmt_stat, slug, table_html
from ..stats import nan, stat


class EpistemicChange(Figure):
    key = "epistemic_change"

    def compute(self, data) -> dict[str, dict[str, Any]]:
        """bench -> {"words": [...], "groups": {label: {word|total: stat of the per-run change,
        "initial": {...}, "final": {...}}}}. Per run: mean count per response in the final eval samples
        minus that in the step-0 samples; then mean and interval over the runs (seeds) of a group."""
        from ....analysis.epistemic import EPISTEMIC_WORDS

        words = list(EPISTEMIC_WORDS) + ["total"]
        out: dict[str, dict[str, Any]] = {}
        for b in data.ood + data.in_domain:
            per_group = {}
            for g in data.groups:
                deltas, initial, final = [], [], []
                for r in g.runs:
                    last_step = r.final_eval_step(b)
                    a = r.word_means(0, b) if last_step is not None else None
                    z = r.word_means(last_step, b) if a is not None else None
                    if a is None or z is None:
                        continue
                    initial.append(a)
                    final.append(z)
                    deltas.append({w: z[w] - a[w] for w in words})
                if deltas:
                    entry = {w: stat([d[w] for d in deltas]) for w in words}
                    entry["initial"] = {w: stat([d[w] for d in initial])["mean"] for w in words}
                    entry["final"] = {w: stat([d[w] for d in final])["mean"] for w in words}
                    per_group[g.label] = entry
            if per_group:
                out[b] = {"words": words, "groups": per_group}
        return out

    def section(self, data, value) -> Section | None:
        from .. import plots

        blocks = []
        for b, entry in value.items():
            words = [w for w in entry["words"] if w != "total"]
            bars = []
            for label, st in entry["groups"].items():
                bars.append((f"{label} (ΔE={fmt_num(st['total']['mean'], 2)})", [st[w]["mean"] for w in words],
                             [nan(st[w]["ci_low"]) for w in words], [nan(st[w]["ci_high"]) for w in words]))
            png = plots.bar_groups(words, bars, title=f"Per-word change of epistemic words, {b}: final − step 0",
                                   ylabel="Δ count per response")
            blocks.append(figure_html(f"epistemic-change-{slug(b)}", png,
                                      f"{b}: mean count per response of each epistemic word in the final eval samples "
                                      "minus the initial model's (step-0 samples); mean over seeds with 95% interval."))
            trows = [[label] + [fmt_stat(st[w]) for w in entry["words"]] for label, st in entry["groups"].items()]
            blocks.append(table_html(["group"] + [f"Δ{w}" for w in entry["words"]], trows,
                                     table_id=f"epistemic-change-table-{slug(b)}"))
        if not blocks:
            return None
        return Section("epistemic-change", "Epistemic words: change from the initial model", blocks)

    def rows(self, data, value):
        for b, entry in value.items():
            for label, st in entry["groups"].items():
                for w in entry["words"]:
                    yield label, f"{b}/delta/{w}", st[w]
