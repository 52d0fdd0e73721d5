"""One self-contained HTML report over a folder of runs (the library of `sdlab report RUNS_DIR --out OUT`).

Every folder below RUNS_DIR with a `config.yaml` and a `metrics.jsonl` is a run. Runs are grouped
by the config keys whose values differ between runs, ignoring `seed`, `output_dir` and
`logging.run_name`: the runs of one group are the seeds of one setting. For every group the
report shows mean ± 95% Student-t interval over seeds:

- training curves (reward, in-domain and OOD eval accuracy per benchmark, response length,
  epistemic words per response), with bands;
- the study's figures: the per-word change of epistemic-word counts from the initial model
  (step-0 eval samples) to the final eval samples; final in-domain and OOD accuracy against
  `data.coverage` when coverage varies; epistemic count and OOD accuracy per `teacher_context`
  level when the context varies among SDPO runs;
- a final table (also written to `summary.csv` / `summary.json` with the same numbers);
- the responses of one problem before (step 0) and after training, side by side, with the ten
  epistemic words marked.

The HTML embeds its PNG figures as `data:` URIs, uses inline CSS only, has no scripts and sets a
Content-Security-Policy that forbids any network access, so it can be mailed or archived as one file.

In-domain benchmarks are the training source itself (`eval.benchmarks` entry equal to
`data.train`) and any `*:train` benchmark (e.g. `organism:train`); all others are OOD.

The package: `runs` (run folders), `groups` (settings and labels), `stats` (mean and interval over
seeds), `data` (`analyze`: every number, no drawing), `figures/` (one `Figure` per figure or table:
its `compute` and its `section`, listed in `FIGURES` in the page's order), `page` (HTML helpers and
the page), `plots` (matplotlib), `summary` (summary.csv / summary.json).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Sequence

from .data import Metric, ReportData, analyze
from .figure import Figure
from .figures import FIGURES
from .groups import Group, group_runs
from .page import CSP, Section, figure_html, fmt_stat, highlight_epistemic, render_report, table_html
from .runs import RunData, load_runs
from .stats import stat
from .summary import summary_json, summary_rows, write_summary

__all__ = [
    "CSP",
    "FIGURES",
    "Figure",
    "Group",
    "Metric",
    "ReportData",
    "RunData",
    "Section",
    "analyze",
    "build_report",
    "figure_html",
    "fmt_stat",
    "group_runs",
    "highlight_epistemic",
    "load_runs",
    "render_report",
    "report_sections",
    "stat",
    "summary_json",
    "summary_rows",
    "table_html",
    "write_summary",
]


def report_sections(data: ReportData) -> list[Section]:
    """Draw the figures and build the report's sections from analyzed data (in `FIGURES` order)."""
    sections = []
    for fig in FIGURES:
        section = fig.section(data, data.results.get(fig.key))
        if section is not None:
            sections.append(section)
    return sections


def build_report(runs_dir: str | Path, out_dir: str | Path, *, title: str | None = None,
                 extra_sections: Sequence[Section] = ()) -> Path:
    """Analyze the runs under runs_dir and write out_dir/report.html, summary.csv and summary.json
    (`extra_sections` come first on the page). Returns the path of report.html."""
    data = analyze(runs_dir, title=title)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_summary(data, out)
    sections = list(extra_sections) + report_sections(data)
    now = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    subtitle = (f"{len(data.runs)} runs in {len(data.groups)} groups from {data.runs_dir}; generated {now} by sdlab. "
                f"In-domain: {', '.join(data.in_domain) or '–'}; OOD: {', '.join(data.ood) or '–'}.")
    path = out / "report.html"
    path.write_text(render_report(sections, title=data.title, subtitle=subtitle), encoding="utf-8")
    return path
