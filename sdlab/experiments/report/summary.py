"""summary.csv and summary.json: every number of the report, as flat rows and as a document."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from .data import ReportData
from .figures import FIGURES
from .groups import fmt_value

__all__ = ["summary_json", "summary_rows", "write_summary"]


def summary_rows(data: ReportData) -> list[dict[str, Any]]:
    """Every number of the report as flat rows (section, group, metric, n, mean, ci_low, ci_high)."""
    rows: list[dict[str, Any]] = []
    values_of = {g.label: g.values for g in data.groups}

    def add(section: str, group: str, metric: str, s: dict[str, Any]) -> None:
        row = {"section": section, "group": group}
        for k in data.differing:
            row[k] = fmt_value(values_of[group][k]) if group in values_of else ""
        row.update(metric=metric, n=s.get("n"), mean=s.get("mean"), ci_low=s.get("ci_low"), ci_high=s.get("ci_high"))
        rows.append(row)

    for g in data.groups:
        for m in data.metrics:
            add("final", g.label, m.id, data.table[g.label][m.id])
    for fig in FIGURES:
        for group, metric, s in fig.rows(data, data.results.get(fig.key)):
            add(fig.key, group, metric, s)
    return rows


def summary_json(data: ReportData) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "title": data.title,
        "runs_dir": str(data.runs_dir),
        "differing_keys": data.differing,
        "benchmarks": {"in_domain": data.in_domain, "ood": data.ood},
        "groups": [{"label": g.label, "values": g.values, "runs": [r.name for r in g.runs], "seeds": g.seeds,
                    "metrics": data.table[g.label]} for g in data.groups],
        "metrics": [{"id": m.id, "key": m.key, "when": m.when, "label": m.label} for m in data.metrics],
    }
    for fig in FIGURES:
        if fig.in_summary:
            doc[fig.key] = fig.summary(data.results.get(fig.key))
    doc["runs"] = [{"name": r.name, "seed": r.seed, "last_step": r.last_step, "status": (r.status or {}).get("state")}
                   for r in data.runs]
    return doc


def write_summary(data: ReportData, out_dir: str | Path) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = summary_rows(data)
    fields = ["section", "group", *data.differing, "metric", "n", "mean", "ci_low", "ci_high"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else (repr(r[k]) if isinstance(r[k], float) else r[k])) for k in fields})
    csv_path, json_path = out / "summary.csv", out / "summary.json"
    csv_path.write_text(buf.getvalue())
    json_path.write_text(json.dumps(summary_json(data), indent=1, default=str, allow_nan=False) + "\n")
    return csv_path, json_path
