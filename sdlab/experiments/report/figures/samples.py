"""The responses of one problem before (step 0) and after training, side by side, one row per
group, with the epistemic words marked."""

from __future__ import annotations

from typing import Any

from ..figure import Figure
from ..page import Section, clip, esc, highlight_epistemic


class Samples(Figure):
    key = "samples"

    def compute(self, data) -> dict[str, Any] | None:
        """One problem, its step-0 and final responses (lowest sample index) for the first run of every
        group that has both; OOD benchmarks first."""
        for b in data.ood + data.in_domain:
            reps = []
            for g in data.groups:
                for r in g.runs:
                    last = r.final_eval_step(b)
                    if last is not None and r.has_samples(0, b):
                        reps.append((g, r, last))
                        break
            if not reps:
                continue
            ids_at = lambda r, step: {rec.get("problem_id") for rec in r.iter_samples(step, b)}  # noqa: E731
            common = None
            for _, r, last in reps:
                ids = ids_at(r, 0) & ids_at(r, last)
                common = ids if common is None else common & ids
            chosen = next((rec.get("problem_id") for rec in reps[0][1].iter_samples(0, b)
                           if rec.get("problem_id") in (common or set())), None)
            if chosen is None:
                continue
            rows = [{"group": g.label, "run": r.name, "final_step": last,
                     "before": r.first_sample(0, b, chosen), "after": r.first_sample(last, b, chosen)}
                    for g, r, last in reps]
            first = rows[0]["before"]
            return {"benchmark": b, "problem_id": chosen, "prompt": first.get("prompt"), "gold": first.get("gold"),
                    "rows": rows}
        return None

    def summary(self, value):
        return None if not value else {k: value[k] for k in ("benchmark", "problem_id")}

    def section(self, data, value) -> Section | None:
        if not value:
            return None
        sm = value
        blocks = [f"<p><b>Benchmark</b> {esc(sm['benchmark'])}, <b>problem</b> {esc(sm['problem_id'])}, "
                  f"<b>reference answer</b> {esc(sm['gold'])}</p>"]
        if sm.get("prompt"):
            blocks.append(f"<details open><summary>Prompt</summary><pre class=\"prompt\">{esc(sm['prompt'])}</pre>"
                          "</details>")
        for row in sm["rows"]:
            blocks.append(f"<h3>{esc(row['group'])} <span class=\"note\">({esc(row['run'])})</span></h3>")
            cells = []
            for which, s, step in (("before", row["before"], 0), ("after", row["after"], row["final_step"])):
                cells.append(_sample_cell(s, f"step {step}" + (" (initial model)" if step == 0 else " (final)"), which))
            blocks.append(f'<div class="pair">{"".join(cells)}</div>')
        return Section("samples", "Responses before and after training", blocks,
                       intro="The same problem answered by the initial model (step 0) and after training "
                             "(sample 0 of the first seed); epistemic words are marked.")


def _sample_cell(s: dict, heading: str, which: str) -> str:
    from ....analysis.epistemic import count_epistemic

    text = str(s.get("response") or "")
    correct = s.get("correct")
    verdict = ('<span class="ok">correct</span>' if correct else
               '<span class="bad">incorrect</span>' if correct is not None else "ungraded")
    epi = sum(count_epistemic(text, mode="paper").values())
    head, tail, omitted = clip(text)
    body = highlight_epistemic(head)
    if omitted:
        body += f'<span class="omitted">[… {omitted:,} characters omitted …]</span>' + highlight_epistemic(tail)
    meta = (f"{verdict}; prediction <code>{esc(s.get('pred'))}</code>; {esc(s.get('num_tokens'))} tokens"
            f"{' (truncated)' if s.get('truncated') else ''}; {epi} epistemic words")
    return (f'<div class="sample {which}"><b>{esc(heading)}</b><br><span class="note">{meta}</span>'
            f"<pre>{body}</pre></div>")
