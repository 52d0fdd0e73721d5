"""Training curves: reward, in-domain and OOD accuracy, response length and epistemic words per
step, mean over seeds with a 95% band, one panel per metric."""

from __future__ import annotations

from typing import Any

from ..figure import Figure, band
from ..page import Section, figure_html, slug
from ..stats import point, stat


def curve_panels(data) -> list[tuple[str, str, str]]:
    """(metrics key, title, y label) of the curves logged by at least one run."""
    curves: list[tuple[str, str, str]] = [("reward/mean", "Training reward (score)", "mean reward")]
    for b in data.in_domain:
        curves.append((f"eval/{b}/accuracy", f"In-domain accuracy: {b}", "accuracy"))
    for b in data.ood:
        curves.append((f"eval/{b}/accuracy", f"OOD accuracy: {b}", "accuracy"))
    curves += [("response_length/mean", "Training response length", "tokens"),
               ("epistemic/mean", "Epistemic words per training response", "count per response")]
    for b in data.ood:
        curves.append((f"eval/{b}/epistemic", f"Epistemic words per response: {b}", "count per response"))
    return [c for c in curves if c[0] in data.logged]


class Curves(Figure):
    key = "curves"

    def compute(self, data) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """metrics key -> group label -> [{step, n, mean, ci_low, ci_high}]."""
        out: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for key, _, _ in curve_panels(data):
            per_group = {}
            for g in data.groups:
                by_step: dict[int, list[float]] = {}
                for r in g.runs:
                    for step, v in r.series(key):
                        by_step.setdefault(step, []).append(v)
                pts = [point("step", step, stat(by_step[step])) for step in sorted(by_step)]
                if pts:
                    per_group[g.label] = pts
            out[key] = per_group
        return out

    def section(self, data, value) -> Section | None:
        from .. import plots

        blocks = []
        for key, title, ylabel in curve_panels(data):
            bands = [band(label, [p["step"] for p in pts], pts, key, marker="o" if len(pts) <= 12 else None)
                     for label, pts in value.get(key, {}).items()]
            if bands:
                png = plots.line_bands(bands, title=title, ylabel=ylabel)
                blocks.append(figure_html(f"curve-{slug(key)}", png, f"{title} ({key}): mean over seeds with 95% band "
                                                                    "(drawn within the metric's range)."))
        if not blocks:
            return None
        return Section("curves", "Training curves", [f'<div class="grid">{"".join(blocks)}</div>'])
