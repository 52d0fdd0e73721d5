"""Everything the report shows, as numbers: the runs, their groups, the in-domain / OOD split of
the benchmarks, the final metrics of every group, and each figure's `compute` (no drawing)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ...errors import DataError
from .groups import Group, group_runs
from .runs import RunData, load_runs
from .stats import stat

__all__ = ["Metric", "ReportData", "analyze"]


def is_in_domain(bench: str, train: str | None) -> bool:
    """`bench` is a benchmark label as the trainer logs it (`eval/<label>/...`, `eval/step-N/<label>.jsonl`;
    a file path becomes its stem)."""
    if bench.endswith(":train"):
        return True
    if not train:
        return False
    return bench == train or (("/" in train or train.endswith((".jsonl", ".parquet", ".json")))
                              and bench == Path(train).stem)


def benchmarks(runs: Sequence[RunData]) -> list[str]:
    """Benchmark labels in the order they first appear in the metrics (then in the sample files)."""
    out: list[str] = []
    for r in runs:
        for step in sorted(r.records):
            for k in r.records[step]:
                m = re.fullmatch(r"eval/(.+)/accuracy", k)
                if m and m.group(1) not in out:
                    out.append(m.group(1))
    for r in runs:
        for step in r.eval_steps():
            for b in r.sample_files(step):
                if b not in out:
                    out.append(b)
    return out


@dataclass
class Metric:
    key: str
    """metrics.jsonl key."""
    when: str
    """final | 0 (the initial model) ."""
    label: str

    @property
    def id(self) -> str:
        return f"{self.key}@{self.when}"

    def value(self, run: RunData) -> float | None:
        return run.final(self.key) if self.when == "final" else run.at(self.key, int(self.when))


def final_metrics(in_domain: list[str], ood: list[str], logged: set[str]) -> list[Metric]:
    """The columns of the final table (those logged by at least one run)."""
    metrics: list[Metric] = [
        Metric("reward/mean", "final", "reward (final)"),
        Metric("response_length/mean", "final", "train length (final)"),
        Metric("epistemic/mean", "final", "train epistemic (final)"),
    ]
    for b in in_domain + ood:
        metrics += [
            Metric(f"eval/{b}/accuracy", "0", f"{b} acc (step 0)"),
            Metric(f"eval/{b}/accuracy", "final", f"{b} acc (final)"),
            Metric(f"eval/{b}/response_length", "final", f"{b} length (final)"),
            Metric(f"eval/{b}/epistemic", "0", f"{b} epistemic (step 0)"),
            Metric(f"eval/{b}/epistemic", "final", f"{b} epistemic (final)"),
        ]
    return [m for m in metrics if m.key in logged]


@dataclass
class ReportData:
    runs_dir: Path
    runs: list[RunData]
    differing: list[str]
    groups: list[Group]
    in_domain: list[str]
    ood: list[str]
    logged: set[str]
    """Every metrics.jsonl key that some run logged."""
    metrics: list[Metric]
    table: dict[str, dict[str, dict[str, Any]]]
    """group label -> metric id -> stat."""
    title: str = "sdlab report"
    results: dict[str, Any] = field(default_factory=dict)
    """Figure key -> its computed numbers (also readable as `data.<key>`, e.g. `data.coverage`)."""

    def __getattr__(self, name: str) -> Any:
        results = self.__dict__.get("results")
        if results is not None and name in results:
            return results[name]
        raise AttributeError(f"{type(self).__name__!r} has no attribute or figure {name!r}")


def analyze(runs_dir: str | Path, *, title: str | None = None) -> ReportData:
    """Read every run and compute every number the report shows (no drawing)."""
    from .figures import FIGURES

    runs = load_runs(runs_dir)
    if not runs:
        raise DataError(f"no runs in {runs_dir}: a run is a folder with config.yaml and metrics.jsonl "
                        "(what `sdlab train` and `sdlab sweep` write)")
    differing, groups = group_runs(runs)
    benches = benchmarks(runs)
    trains = {str((r.config.get("data") or {}).get("train")) for r in runs}
    in_domain = [b for b in benches if any(is_in_domain(b, t) for t in trains)]
    ood = [b for b in benches if b not in in_domain]
    logged = {k for r in runs for rec in r.records.values() for k in rec}
    metrics = final_metrics(in_domain, ood, logged)
    table = {g.label: {m.id: stat([m.value(r) for r in g.runs]) for m in metrics} for g in groups}
    data = ReportData(runs_dir=Path(runs_dir), runs=runs, differing=differing, groups=groups, in_domain=in_domain,
                      ood=ood, logged=logged, metrics=metrics, table=table,
                      title=title or f"sdlab report: {Path(runs_dir).name}")
    for fig in FIGURES:
        data.results[fig.key] = fig.compute(data)
    return data
