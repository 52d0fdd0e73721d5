"""`sdlab report RUNS_DIR --out OUT`: one self-contained HTML report over a folder of runs.

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
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime as _dt
import html
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import yaml

__all__ = [
    "CSP",
    "Group",
    "ReportData",
    "RunData",
    "Section",
    "analyze",
    "build_report",
    "figure_html",
    "group_runs",
    "highlight_epistemic",
    "load_runs",
    "render_report",
    "report_sections",
    "table_html",
    "write_summary",
]

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
IGNORED_KEYS = ("seed", "output_dir", "logging.run_name")
CONTEXT_ORDER = ("none", "feedback", "demo_answer", "demo", "answer", "solution")
ALGORITHM_ORDER = ("grpo", "sdpo")
SAMPLE_DISPLAY_CHARS = 6000
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# ---------------------------------------------------------------------------- runs


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    from .sweep import flatten

    return flatten(tree, prefix)


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


@dataclass
class RunData:
    path: Path
    name: str
    """The run folder relative to RUNS_DIR."""
    config: dict[str, Any]
    records: dict[int, dict[str, Any]]
    """step -> metrics (lines of the same step merged; later lines win)."""
    status: dict[str, Any] | None = None
    _word_means: dict[tuple[int, str], dict[str, float] | None] = field(default_factory=dict, repr=False)

    @property
    def flat(self) -> dict[str, Any]:
        if "_flat" not in self.__dict__:
            self.__dict__["_flat"] = _flatten(self.config)
        return self.__dict__["_flat"]

    @property
    def seed(self) -> Any:
        return self.config.get("seed")

    @property
    def algorithm(self) -> str:
        return str(self.config.get("algorithm", ""))

    @property
    def last_step(self) -> int | None:
        return max(self.records) if self.records else None

    def series(self, key: str) -> list[tuple[int, float]]:
        out = []
        for step in sorted(self.records):
            v = _num(self.records[step].get(key))
            if v is not None:
                out.append((step, v))
        return out

    def final(self, key: str) -> float | None:
        """The last logged value after step 0 (a run that never got past the initial evaluation
        has no final value)."""
        s = [x for x in self.series(key) if x[0] > 0]
        return s[-1][1] if s else None

    def at(self, key: str, step: int) -> float | None:
        return _num(self.records.get(step, {}).get(key))

    def eval_steps(self) -> list[int]:
        root = self.path / "eval"
        steps = []
        if root.is_dir():
            for d in root.iterdir():
                m = re.fullmatch(r"step-(\d+)", d.name)
                if m and d.is_dir():
                    steps.append(int(m.group(1)))
        return sorted(steps)

    def sample_files(self, step: int) -> dict[str, Path]:
        """Eval sample files of one step by benchmark label (`eval/step-<step>/<label>.jsonl`)."""
        root = self.path / "eval" / f"step-{step}"
        if not root.is_dir():
            return {}
        return {str(f.relative_to(root).with_suffix("")): f for f in sorted(root.rglob("*.jsonl"))}

    def iter_samples(self, step: int, bench: str) -> Iterator[dict]:
        """Stream the samples of one benchmark at one step (files can be large: nothing is kept)."""
        f = self.sample_files(step).get(bench)
        if f is None:
            return
        with open(f, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a torn line
                    continue
                if isinstance(rec, dict):
                    yield rec

    def has_samples(self, step: int, bench: str) -> bool:
        return next(self.iter_samples(step, bench), None) is not None

    def word_means(self, step: int, bench: str) -> dict[str, float] | None:
        """Mean count per response of each epistemic word (and "total") in one step's samples."""
        key = (step, bench)
        if key not in self._word_means:
            from ..analysis.epistemic import EPISTEMIC_WORDS, count_epistemic

            sums = dict.fromkeys(EPISTEMIC_WORDS, 0)
            n = 0
            for rec in self.iter_samples(step, bench):
                for w, c in count_epistemic(str(rec.get("response") or ""), mode="paper").items():
                    sums[w] += c
                n += 1
            if n:
                out = {w: sums[w] / n for w in EPISTEMIC_WORDS}
                out["total"] = float(sum(out[w] for w in EPISTEMIC_WORDS))
                self._word_means[key] = out
            else:
                self._word_means[key] = None
        return self._word_means[key]

    def first_sample(self, step: int, bench: str, problem_id: Any) -> dict | None:
        """The lowest-numbered sample of one problem."""
        best = None
        for rec in self.iter_samples(step, bench):
            if rec.get("problem_id") == problem_id:
                k = rec.get("sample") if isinstance(rec.get("sample"), int) else 0
                if best is None or k < best[0]:
                    best = (k, rec)
        return best[1] if best else None

    def final_eval_step(self, bench: str) -> int | None:
        """The last eval step after the start that has samples of `bench`."""
        for s in reversed(self.eval_steps()):
            if s > 0 and bench in self.sample_files(s):
                return s
        return None


def _read_records(path: Path) -> dict[int, dict[str, Any]]:
    records: dict[int, dict[str, Any]] = {}
    if not path.exists():
        return records
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line torn by a crash
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("step"), int):
            continue
        records.setdefault(rec["step"], {}).update(rec)
    return records


def load_runs(runs_dir: str | Path) -> list[RunData]:
    """Every folder under runs_dir (recursively, including runs_dir itself) with config.yaml and
    metrics.jsonl, sorted by path."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"runs folder not found: {root}")
    runs = []
    for cfg_path in sorted(root.rglob("config.yaml")):
        d = cfg_path.parent
        if not (d / "metrics.jsonl").exists():
            continue
        try:
            config = yaml.load(cfg_path.read_text(), Loader=_YAML_LOADER) or {}
        except yaml.YAMLError:
            continue
        if not isinstance(config, dict):
            continue
        status = None
        if (d / "status.json").exists():
            try:
                status = json.loads((d / "status.json").read_text())
            except json.JSONDecodeError:
                status = None
        name = str(d.relative_to(root)) if d != root else d.name
        runs.append(RunData(path=d, name=name, config=config, records=_read_records(d / "metrics.jsonl"), status=status))
    return runs


# ---------------------------------------------------------------------------- groups


def _canon(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def _order_value(key: str, v: Any) -> tuple:
    if key == "teacher_context" and v in CONTEXT_ORDER:
        return (0, CONTEXT_ORDER.index(v))
    if key == "algorithm" and v in ALGORITHM_ORDER:
        return (0, ALGORITHM_ORDER.index(v))
    if v is None:
        return (1, 0)
    if isinstance(v, bool):
        return (2, int(v))
    if isinstance(v, (int, float)):
        return (3, float(v))
    if isinstance(v, str):
        return (4, v)
    return (5, _canon(v))


def _short_keys(keys: Sequence[str]) -> dict[str, str]:
    lasts = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (last if lasts.count(last) == 1 else k) for k, last in zip(keys, lasts)}


def _fmt_value(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ",".join(_fmt_value(x) for x in v)
    return str(v)


def _label(values: dict[str, Any], short: dict[str, str]) -> str:
    parts = []
    for k, v in values.items():
        if k == "algorithm":
            parts.append(str(v).upper())
        else:
            parts.append(f"{short.get(k, k)}={_fmt_value(v)}")
    return ", ".join(parts) or "all runs"


@dataclass
class Group:
    label: str
    values: dict[str, Any]
    """Differing key -> value shared by the runs of this group."""
    runs: list[RunData]
    label_keys: list[str] = field(default_factory=list)
    """The differing keys that appear in the label (the others are implied by them)."""

    @property
    def algorithm(self) -> str:
        return self.runs[0].algorithm if self.runs else ""

    @property
    def seeds(self) -> list[Any]:
        return [r.seed for r in self.runs]


def group_runs(runs: Sequence[RunData], ignore: Iterable[str] = IGNORED_KEYS) -> tuple[list[str], list[Group]]:
    """(differing keys, groups): groups of runs whose configs are equal except for `ignore`."""
    flats = [r.flat for r in runs]
    keys: list[str] = []
    for f in flats:
        for k in f:
            if k not in keys:
                keys.append(k)
    skip = set(ignore)
    differing = [k for k in keys if k not in skip and len({_canon(f.get(k)) for f in flats}) > 1]
    buckets: dict[tuple, list[RunData]] = {}
    for r, f in zip(runs, flats):
        buckets.setdefault(tuple(_canon(f.get(k)) for k in differing), []).append(r)
    short = _short_keys(differing)
    label_keys = _label_keys(differing, [tuple(members[0].flat.get(k) for k in differing) for members in buckets.values()])
    groups = []
    for members in buckets.values():
        f = members[0].flat
        values = {k: f.get(k) for k in differing}
        members = sorted(members, key=lambda r: (_order_value("seed", r.seed), r.name))
        groups.append(Group(_label({k: values[k] for k in label_keys}, short), values, members, label_keys))
    groups.sort(key=lambda g: tuple(_order_value(k, g.values[k]) for k in differing))
    seen: dict[str, int] = {}
    for g in groups:  # values that print alike (0.1 vs 0.1000001) must not merge two groups
        seen[g.label] = seen.get(g.label, 0) + 1
        if seen[g.label] > 1:
            g.label = f"{g.label} #{seen[g.label]}"
    return differing, groups


LABEL_PRIORITY = ("algorithm", "teacher_context", "data.coverage", "sdpo.teacher.kind")


def _label_keys(differing: list[str], rows: list[tuple]) -> list[str]:
    """The differing keys needed to tell the groups apart: keys that are implied by the others
    (e.g. actor.lr set together with algorithm) are left out of labels, least important first."""
    order = [k for k in LABEL_PRIORITY if k in differing] + [k for k in differing if k not in LABEL_PRIORITY]
    idx = {k: differing.index(k) for k in differing}
    keep = list(order)
    n_groups = len({tuple(_canon(v) for v in r) for r in rows})
    for k in reversed(order):
        trial = [x for x in keep if x != k]
        if len({tuple(_canon(r[idx[x]]) for x in trial) for r in rows}) == n_groups:
            keep = trial
    return keep


# ---------------------------------------------------------------------------- statistics


def stat(values: Sequence[float]) -> dict[str, Any]:
    """mean and 95% Student-t interval over seeds (interval undefined with fewer than 2 values)."""
    from ..analysis.stats import mean_ci_t

    vals = [float(v) for v in values if _num(v) is not None]
    if not vals:
        return {"n": 0, "mean": None, "ci_low": None, "ci_high": None, "values": []}
    m, lo, hi = mean_ci_t(vals)
    clean = lambda x: None if x is None or not math.isfinite(x) else float(x)  # noqa: E731
    return {"n": len(vals), "mean": clean(m), "ci_low": clean(lo), "ci_high": clean(hi), "values": vals}


def _is_in_domain(bench: str, train: str | None) -> bool:
    """`bench` is a benchmark label as the trainer logs it (`eval/<label>/...`, `eval/step-N/<label>.jsonl`;
    a file path becomes its stem)."""
    if bench.endswith(":train"):
        return True
    if not train:
        return False
    return bench == train or (("/" in train or train.endswith((".jsonl", ".parquet", ".json"))) and bench == Path(train).stem)


def _benchmarks(runs: Sequence[RunData]) -> list[str]:
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


@dataclass
class ReportData:
    runs_dir: Path
    runs: list[RunData]
    differing: list[str]
    groups: list[Group]
    in_domain: list[str]
    ood: list[str]
    curves: list[tuple[str, str, str]]
    """(metrics key, title, y label) of the training curves present in at least one run."""
    metrics: list[Metric]
    table: dict[str, dict[str, dict[str, Any]]]
    """group label -> metric id -> stat."""
    curve_stats: dict[str, dict[str, list[dict[str, Any]]]]
    """metrics key -> group label -> [{step, n, mean, ci_low, ci_high}]."""
    epistemic_change: dict[str, dict[str, Any]]
    coverage: dict[str, Any] | None
    richness: dict[str, Any] | None
    samples: dict[str, Any] | None
    title: str = "sdlab report"


def analyze(runs_dir: str | Path, *, title: str | None = None) -> ReportData:
    """Read every run and compute every number the report shows (no drawing)."""
    runs = load_runs(runs_dir)
    differing, groups = group_runs(runs)
    benches = _benchmarks(runs)
    trains = {str((r.config.get("data") or {}).get("train")) for r in runs}
    in_domain = [b for b in benches if any(_is_in_domain(b, t) for t in trains)]
    ood = [b for b in benches if b not in in_domain]

    curves: list[tuple[str, str, str]] = [("reward/mean", "Training reward (score)", "mean reward")]
    for b in in_domain:
        curves.append((f"eval/{b}/accuracy", f"In-domain accuracy: {b}", "accuracy"))
    for b in ood:
        curves.append((f"eval/{b}/accuracy", f"OOD accuracy: {b}", "accuracy"))
    curves += [("response_length/mean", "Training response length", "tokens"),
               ("epistemic/mean", "Epistemic words per training response", "count per response")]
    for b in ood:
        curves.append((f"eval/{b}/epistemic", f"Epistemic words per response: {b}", "count per response"))
    present = {k for r in runs for rec in r.records.values() for k in rec}
    curves = [c for c in curves if c[0] in present]

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
    metrics = [m for m in metrics if m.key in present]
    table = {g.label: {m.id: stat([m.value(r) for r in g.runs]) for m in metrics} for g in groups}

    curve_stats: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for key, _, _ in curves:
        per_group = {}
        for g in groups:
            by_step: dict[int, list[float]] = {}
            for r in g.runs:
                for step, v in r.series(key):
                    by_step.setdefault(step, []).append(v)
            pts = []
            for step in sorted(by_step):
                s = stat(by_step[step])
                pts.append({"step": step, "n": s["n"], "mean": s["mean"], "ci_low": s["ci_low"], "ci_high": s["ci_high"]})
            if pts:
                per_group[g.label] = pts
        curve_stats[key] = per_group

    data = ReportData(
        runs_dir=Path(runs_dir), runs=runs, differing=differing, groups=groups, in_domain=in_domain, ood=ood,
        curves=curves, metrics=metrics, table=table, curve_stats=curve_stats,
        epistemic_change=_epistemic_change(groups, ood + in_domain),
        coverage=_coverage(groups, differing, in_domain, ood),
        richness=_richness(groups, differing, ood),
        samples=_pick_samples(groups, ood + in_domain),
        title=title or f"sdlab report: {Path(runs_dir).name}",
    )
    return data


# ---------------------------------------------------------------------------- the study's figures


def _epistemic_change(groups: list[Group], benches: list[str]) -> dict[str, dict[str, Any]]:
    """bench -> {"words": [...], "groups": {label: {word|total: stat of the per-run change,
    "initial": {...}, "final": {...}}}}. Per run: mean count per response in the final eval samples
    minus that in the step-0 samples; then mean and interval over the runs (seeds) of a group."""
    from ..analysis.epistemic import EPISTEMIC_WORDS

    words = list(EPISTEMIC_WORDS) + ["total"]
    out: dict[str, dict[str, Any]] = {}
    for b in benches:
        per_group = {}
        for g in groups:
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


def _series_of(groups: list[Group], drop: Sequence[str], short: dict[str, str], default: str = "all runs") -> dict[str, list[Group]]:
    """Groups bucketed by their values without the keys in `drop` (label -> groups)."""
    out: dict[str, list[Group]] = {}
    for g in groups:
        vals = {k: g.values[k] for k in (g.label_keys or g.values) if k not in drop}
        out.setdefault(_label(vals, short) if vals else default, []).append(g)
    return out


def _coverage(groups: list[Group], differing: list[str], in_domain: list[str], ood: list[str]) -> dict[str, Any] | None:
    key = "data.coverage"
    if key not in differing:
        return None
    panels: list[tuple[str, str, str]] = []  # (metric key, title, kind)
    for b in in_domain:
        panels.append((f"eval/{b}/accuracy", f"{b} accuracy (in-domain)", "in_domain"))
    if not in_domain:
        panels.append(("reward/mean", "training score (in-domain)", "in_domain"))
    for b in ood:
        panels.append((f"eval/{b}/accuracy", f"{b} accuracy (OOD)", "ood"))
    short = _short_keys(differing)
    series = _series_of([g for g in groups if isinstance(g.values[key], (int, float))], [key], short)
    xs = sorted({g.values[key] for gs in series.values() for g in gs})
    out_panels = []
    for mkey, title, kind in panels:
        lines = {}
        for label, gs in series.items():
            pts = []
            for g in sorted(gs, key=lambda g: g.values[key]):
                s = stat([r.final(mkey) for r in g.runs])
                if s["n"]:
                    pts.append({"coverage": g.values[key], **{k: s[k] for k in ("n", "mean", "ci_low", "ci_high")}})
            if pts:
                lines[label] = pts
        base = None
        if kind == "ood":
            base = stat([r.at(mkey, 0) for gs in series.values() for g in gs for r in g.runs])["mean"]
        if lines:
            out_panels.append({"metric": mkey, "title": title, "kind": kind, "initial_model": base, "series": lines})
    if not out_panels:
        return None
    return {"key": key, "x": xs, "panels": out_panels}


def _richness(groups: list[Group], differing: list[str], ood: list[str]) -> dict[str, Any] | None:
    key = "teacher_context"
    sdpo = [g for g in groups if g.algorithm == "sdpo"]
    levels = {g.runs[0].config.get(key) for g in sdpo}
    if key not in differing or len(levels) < 2:
        return None
    order = [c for c in CONTEXT_ORDER if c in levels] + sorted(str(c) for c in levels if c not in CONTEXT_ORDER)
    panels: list[tuple[str, str]] = []
    for b in ood:
        panels.append((f"eval/{b}/epistemic", f"epistemic words per response: {b}"))
        panels.append((f"eval/{b}/accuracy", f"{b} accuracy (OOD)"))
    if not ood:
        panels += [("epistemic/mean", "epistemic words per training response"), ("reward/mean", "training score")]
    short = _short_keys(differing)
    drop = [key, "algorithm"]
    series = _series_of(sdpo, drop, short, "SDPO")
    grpo = _series_of([g for g in groups if g.algorithm == "grpo"], drop, short, "SDPO")
    out_panels = []
    for mkey, title in panels:
        lines, refs = {}, {}
        for label, gs in series.items():
            pts = []
            for g in sorted(gs, key=lambda g: _order_value(key, g.values.get(key))):
                s = stat([r.final(mkey) for r in g.runs])
                if s["n"]:
                    pts.append({"level": g.runs[0].config.get(key),
                                **{k: s[k] for k in ("n", "mean", "ci_low", "ci_high")}})
            if pts:
                lines[label] = pts
            refs[label] = {
                "initial_model": stat([r.at(mkey, 0) for g in gs for r in g.runs])["mean"],
                "grpo": stat([r.final(mkey) for g in grpo.get(label, []) for r in g.runs])["mean"],
            }
        if lines:
            out_panels.append({"metric": mkey, "title": title, "series": lines, "references": refs})
    if not out_panels:
        return None
    return {"key": key, "levels": order, "panels": out_panels}


def _pick_samples(groups: list[Group], benches: list[str]) -> dict[str, Any] | None:
    """One problem, its step-0 and final responses (lowest sample index) for the first run of every
    group that has both; OOD benchmarks first."""
    for b in benches:
        reps = []
        for g in groups:
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
        return {"benchmark": b, "problem_id": chosen, "prompt": first.get("prompt"), "gold": first.get("gold"), "rows": rows}
    return None


# ---------------------------------------------------------------------------- HTML


@dataclass
class Section:
    id: str
    title: str
    blocks: list[str]
    """HTML fragments (already escaped)."""
    intro: str = ""
    """Plain text shown under the heading (escaped when rendered)."""


def esc(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def figure_html(fig_id: str, png: bytes, caption: str, alt: str | None = None) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure id="{esc(fig_id)}"><img alt="{esc(alt or caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def table_html(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, table_id: str | None = None,
               raw: bool = False) -> str:
    """A table; cells are escaped unless raw=True (then they must be escaped HTML already)."""
    cell = (lambda c: str(c)) if raw else esc
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    attr = f' id="{esc(table_id)}"' if table_id else ""
    return f'<div class="scroll"><table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


_EPI_RE: re.Pattern | None = None


def highlight_epistemic(text: str) -> str:
    """HTML-escape `text` and wrap every epistemic word occurrence (the paper's case-insensitive
    substring rule, as counted by `count_epistemic(mode="paper")`) in <mark>."""
    global _EPI_RE
    if _EPI_RE is None:
        from ..analysis.epistemic import EPISTEMIC_WORDS

        _EPI_RE = re.compile("|".join(re.escape(w) for w in sorted(EPISTEMIC_WORDS, key=len, reverse=True)), re.I)
    out, pos = [], 0
    for m in _EPI_RE.finditer(text):
        out.append(html.escape(text[pos:m.start()]))
        out.append(f"<mark>{html.escape(m.group(0))}</mark>")
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


def _clip(text: str, limit: int = SAMPLE_DISPLAY_CHARS) -> tuple[str, str, int]:
    """(head, tail, omitted characters) of a long text."""
    if len(text) <= limit:
        return text, "", 0
    head, tail = text[: int(limit * 0.75)], text[-int(limit * 0.25):]
    return head, tail, len(text) - len(head) - len(tail)


def _fmt_num(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    v = float(v)
    if abs(v) < 0.5 * 10 ** -digits:
        v = 0.0  # no "-0.000"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.1f}"
    return f"{v:.{digits}f}"


def fmt_stat(s: dict[str, Any]) -> str:
    if not s or s.get("mean") is None:
        return "–"
    text = _fmt_num(s["mean"])
    if s.get("ci_low") is not None:
        text += f" ± {_fmt_num((s['ci_high'] - s['ci_low']) / 2)}"
    return f"{text} (n={s['n']})"


CSS = """
body{font:14px/1.45 -apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1200px;
padding:1em 2em 4em;color:#1b1b1b;background:#fff}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
h3{margin-top:1.4em}.meta{color:#555}nav ul{columns:2;padding-left:1.2em}
figure{margin:1em 0;display:inline-block;max-width:100%}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#444;font-size:.92em;max-width:900px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:.5em 1.5em}
.grid figure{margin:.5em 0}
.scroll{overflow-x:auto}table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.3em .55em;text-align:left;vertical-align:top;white-space:nowrap}
th{background:#f4f6f8}tbody tr:nth-child(even){background:#fafafa}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:1em;margin:.5em 0 1.5em}
.pair pre{white-space:pre-wrap;word-break:break-word;background:#f8f8f8;border:1px solid #e3e3e3;padding:.7em;
margin:.3em 0;max-height:32em;overflow:auto;font-size:.85em}
mark{background:#ffe066;padding:0 .1em}.ok{color:#1a7f37}.bad{color:#c62828}.note{color:#666;font-size:.9em}
.omitted{display:block;color:#888;font-style:italic;margin:.4em 0}
"""


def render_report(sections: Sequence[Section], *, title: str, subtitle: str = "") -> str:
    """The HTML page: title, table of contents and sections (each section's blocks verbatim)."""
    toc = "".join(f'<li><a href="#{esc(s.id)}">{esc(s.title)}</a></li>' for s in sections)
    body = []
    for s in sections:
        intro = f"<p>{esc(s.intro)}</p>" if s.intro else ""
        body.append(f'<section id="{esc(s.id)}"><h2>{esc(s.title)}</h2>{intro}{"".join(s.blocks)}</section>')
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1><p class=\"meta\">{esc(subtitle)}</p>"
        f"<nav><ul>{toc}</ul></nav>{''.join(body)}</body></html>\n"
    )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def report_sections(data: ReportData) -> list[Section]:
    """Draw the figures and build the report's sections from analyzed data."""
    from . import plots

    sections: list[Section] = []
    short = _short_keys(data.differing)

    # -- groups
    rows = []
    for g in data.groups:
        rows.append([g.label] + [_fmt_value(g.values[k]) for k in data.differing]
                    + [len(g.runs), ", ".join(_fmt_value(s) for s in g.seeds)])
    sections.append(Section("groups", "Groups", [table_html(["group"] + [short[k] for k in data.differing] + ["runs", "seeds"],
                                                            rows, table_id="groups-table")],
                            intro=("Runs are grouped by the config keys that differ between them "
                                   f"({', '.join(data.differing) or 'none'}); seeds of one setting form a group. "
                                   "Bands and ± are 95% Student-t intervals over seeds.")))

    # -- curves
    blocks = []
    for key, title, ylabel in data.curves:
        bands = []
        for label, pts in data.curve_stats.get(key, {}).items():
            bands.append(plots.Band(label, [p["step"] for p in pts], [p["mean"] for p in pts],
                                    [_nan(p["ci_low"]) for p in pts], [_nan(p["ci_high"]) for p in pts],
                                    marker="o" if len(pts) <= 12 else None, clip=_range_of(key)))
        if bands:
            png = plots.line_bands(bands, title=title, ylabel=ylabel)
            blocks.append(figure_html(f"curve-{_slug(key)}", png, f"{title} ({key}): mean over seeds with 95% band "
                                                                  "(drawn within the metric's range)."))
    if blocks:
        sections.append(Section("curves", "Training curves", [f'<div class="grid">{"".join(blocks)}</div>']))

    # -- per-word epistemic change
    blocks = []
    for b, entry in data.epistemic_change.items():
        words = [w for w in entry["words"] if w != "total"]
        bars = []
        for label, st in entry["groups"].items():
            bars.append((f"{label} (ΔE={_fmt_num(st['total']['mean'], 2)})", [st[w]["mean"] for w in words],
                         [_nan(st[w]["ci_low"]) for w in words], [_nan(st[w]["ci_high"]) for w in words]))
        png = plots.bar_groups(words, bars, title=f"Per-word change of epistemic words, {b}: final − step 0",
                               ylabel="Δ count per response")
        blocks.append(figure_html(f"epistemic-change-{_slug(b)}", png,
                                  f"{b}: mean count per response of each epistemic word in the final eval samples "
                                  "minus the initial model's (step-0 samples); mean over seeds with 95% interval."))
        trows = []
        for label, st in entry["groups"].items():
            trows.append([label] + [fmt_stat(st[w]) for w in entry["words"]])
        blocks.append(table_html(["group"] + [f"Δ{w}" for w in entry["words"]], trows,
                                 table_id=f"epistemic-change-table-{_slug(b)}"))
    if blocks:
        sections.append(Section("epistemic-change", "Epistemic words: change from the initial model", blocks))

    # -- coverage sweep
    if data.coverage:
        cov = data.coverage
        series = []
        for p in cov["panels"]:
            bands = [plots.Band(label, [q["coverage"] for q in pts], [q["mean"] for q in pts],
                                [_nan(q["ci_low"]) for q in pts], [_nan(q["ci_high"]) for q in pts], marker="o",
                                clip=_range_of(p["metric"]))
                     for label, pts in p["series"].items()]
            hl = [("initial model", p["initial_model"])] if p.get("initial_model") is not None else []
            series.append(plots.Series(p["title"], "final accuracy" if "accuracy" in p["metric"] else "final score", bands, hl))
        xs = cov["x"]
        png = plots.panels(series, xlabel="task coverage |D| (data.coverage)", xlog=min(xs) > 0 and len(xs) > 1,
                           xticks=xs, suptitle="Task-coverage sweep: final accuracy vs |D|")
        rows = []
        for p in cov["panels"]:
            for label, pts in p["series"].items():
                for q in pts:
                    rows.append([p["metric"], label, q["coverage"], fmt_stat(q)])
        sections.append(Section("coverage", "Task coverage |D|", [
            figure_html("coverage-sweep", png, "Final in-domain and OOD accuracy against data.coverage, per algorithm; "
                        "mean over seeds with 95% interval; dashed: the initial model."),
            table_html(["metric", "series", "|D|", "mean ± 95% CI"], rows, table_id="coverage-table")]))

    # -- richness sweep
    if data.richness:
        rich = data.richness
        levels = rich["levels"]
        series = []
        for p in rich["panels"]:
            bands = []
            for label, pts in p["series"].items():
                pos = [levels.index(q["level"]) for q in pts]
                bands.append(plots.Band(label, pos, [q["mean"] for q in pts], [_nan(q["ci_low"]) for q in pts],
                                        [_nan(q["ci_high"]) for q in pts], marker="o", clip=_range_of(p["metric"])))
            hl = []
            if len(p["series"]) == 1:
                ref = next(iter(p["references"].values()))
                hl = [(n, ref[k]) for n, k in (("initial model", "initial_model"), ("GRPO (final)", "grpo"))
                      if ref.get(k) is not None]
            series.append(plots.Series(p["title"], "final value", bands, hl))
        png = plots.panels(series, xlabel="teacher context (less → more information)", xticks=list(range(len(levels))),
                           xticklabels=levels, ncols=2, suptitle="Context richness: SDPO teacher context levels")
        rows = []
        for p in rich["panels"]:
            for label, pts in p["series"].items():
                for q in pts:
                    rows.append([p["metric"], label, q["level"], fmt_stat(q)])
        sections.append(Section("richness", "Teacher-context richness (SDPO)", [
            figure_html("richness-sweep", png, "Final epistemic-word count and OOD accuracy per teacher_context level "
                        "(ordered by information), mean over seeds with 95% interval; dashed: the initial model and GRPO."),
            table_html(["metric", "series", "teacher_context", "mean ± 95% CI"], rows, table_id="richness-table")]))

    # -- final table
    if data.metrics:
        rows = [[g.label] + [fmt_stat(data.table[g.label][m.id]) for m in data.metrics] for g in data.groups]
        sections.append(Section("final-table", "Final numbers", [
            table_html(["group"] + [m.label for m in data.metrics], rows, table_id="final-table-grid")],
            intro="Mean ± half-width of the 95% Student-t interval over seeds (n = number of seeds). "
                  "'final' is each run's last logged value; 'step 0' is the initial model."))

    # -- samples
    if data.samples:
        sm = data.samples
        blocks = [f"<p><b>Benchmark</b> {esc(sm['benchmark'])}, <b>problem</b> {esc(sm['problem_id'])}, "
                  f"<b>reference answer</b> {esc(sm['gold'])}</p>"]
        if sm.get("prompt"):
            blocks.append(f"<details open><summary>Prompt</summary><pre class=\"prompt\">{esc(sm['prompt'])}</pre></details>")
        for row in sm["rows"]:
            blocks.append(f"<h3>{esc(row['group'])} <span class=\"note\">({esc(row['run'])})</span></h3>")
            cells = []
            for which, s, step in (("before", row["before"], 0), ("after", row["after"], row["final_step"])):
                cells.append(_sample_cell(s, f"step {step}" + (" (initial model)" if step == 0 else " (final)"), which))
            blocks.append(f'<div class="pair">{"".join(cells)}</div>')
        sections.append(Section("samples", "Responses before and after training", blocks,
                                intro="The same problem answered by the initial model (step 0) and after training "
                                      "(sample 0 of the first seed); epistemic words are marked."))

    # -- runs
    rows = []
    label_of = {id(r): g.label for g in data.groups for r in g.runs}
    for r in data.runs:
        st = (r.status or {}).get("state", "")
        rows.append([r.name, label_of.get(id(r), ""), _fmt_value(r.seed), r.last_step if r.last_step is not None else "–",
                     st, _fmt_num(r.final("reward/mean"))])
    sections.append(Section("runs", "Runs", [table_html(["run", "group", "seed", "last step", "status", "final reward"],
                                                        rows, table_id="runs-table")]))
    return sections


def _sample_cell(s: dict, heading: str, which: str) -> str:
    from ..analysis.epistemic import count_epistemic

    text = str(s.get("response") or "")
    correct = s.get("correct")
    verdict = ('<span class="ok">correct</span>' if correct else
               '<span class="bad">incorrect</span>' if correct is not None else "ungraded")
    epi = sum(count_epistemic(text, mode="paper").values())
    head, tail, omitted = _clip(text)
    body = highlight_epistemic(head)
    if omitted:
        body += f'<span class="omitted">[… {omitted:,} characters omitted …]</span>' + highlight_epistemic(tail)
    meta = (f"{verdict}; prediction <code>{esc(s.get('pred'))}</code>; {esc(s.get('num_tokens'))} tokens"
            f"{' (truncated)' if s.get('truncated') else ''}; {epi} epistemic words")
    return f'<div class="sample {which}"><b>{esc(heading)}</b><br><span class="note">{meta}</span><pre>{body}</pre></div>'


def _range_of(key: str) -> tuple[float | None, float | None]:
    """The values a metric can take, to draw its bands within (the numbers are not clipped)."""
    if key.endswith(("/accuracy", "/pass@1", "/truncation_rate")) or key == "reward/mean":
        return (0.0, 1.0)
    return (0.0, None)


def _nan(v: Any) -> float:
    return float("nan") if v is None else float(v)


# ---------------------------------------------------------------------------- summary files


def summary_rows(data: ReportData) -> list[dict[str, Any]]:
    """Every number of the report as flat rows (section, group, metric, n, mean, ci_low, ci_high)."""
    rows: list[dict[str, Any]] = []
    values_of = {g.label: g.values for g in data.groups}

    def add(section: str, group: str, metric: str, s: dict[str, Any]) -> None:
        row = {"section": section, "group": group}
        for k in data.differing:
            row[k] = _fmt_value(values_of[group][k]) if group in values_of else ""
        row.update(metric=metric, n=s.get("n"), mean=s.get("mean"), ci_low=s.get("ci_low"), ci_high=s.get("ci_high"))
        rows.append(row)

    for g in data.groups:
        for m in data.metrics:
            add("final", g.label, m.id, data.table[g.label][m.id])
    for b, entry in data.epistemic_change.items():
        for label, st in entry["groups"].items():
            for w in entry["words"]:
                add("epistemic_change", label, f"{b}/delta/{w}", st[w])
    if data.coverage:
        for p in data.coverage["panels"]:
            for label, pts in p["series"].items():
                for q in pts:
                    add("coverage", label, f"{p['metric']}@coverage={q['coverage']}", q)
    if data.richness:
        for p in data.richness["panels"]:
            for label, pts in p["series"].items():
                for q in pts:
                    add("richness", label, f"{p['metric']}@teacher_context={q['level']}", q)
    return rows


def summary_json(data: ReportData) -> dict[str, Any]:
    return {
        "title": data.title,
        "runs_dir": str(data.runs_dir),
        "differing_keys": data.differing,
        "benchmarks": {"in_domain": data.in_domain, "ood": data.ood},
        "groups": [{"label": g.label, "values": g.values, "runs": [r.name for r in g.runs], "seeds": g.seeds,
                    "metrics": data.table[g.label]} for g in data.groups],
        "metrics": [{"id": m.id, "key": m.key, "when": m.when, "label": m.label} for m in data.metrics],
        "curves": data.curve_stats,
        "epistemic_change": data.epistemic_change,
        "coverage": data.coverage,
        "richness": data.richness,
        "samples": None if not data.samples else {k: data.samples[k] for k in ("benchmark", "problem_id")},
        "runs": [{"name": r.name, "seed": r.seed, "last_step": r.last_step, "status": (r.status or {}).get("state")}
                 for r in data.runs],
    }


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


# ---------------------------------------------------------------------------- entry points


def build_report(runs_dir: str | Path, out_dir: str | Path, *, title: str | None = None,
                 extra_sections: Sequence[Section] = ()) -> Path:
    """Analyze the runs under runs_dir and write out_dir/report.html, summary.csv and summary.json.
    Returns the path of report.html."""
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


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs_dir", help="folder searched recursively for runs (config.yaml + metrics.jsonl)")
    p.add_argument("--out", required=True, help="output folder for report.html, summary.csv, summary.json")
    p.add_argument("--title", default=None)


def run(args) -> int:
    path = build_report(args.runs_dir, args.out, title=args.title)
    data = json.loads((path.parent / "summary.json").read_text())
    print(f"report: {path} ({len(data['runs'])} runs, {len(data['groups'])} groups); "
          f"numbers in {path.parent / 'summary.csv'} and {path.parent / 'summary.json'}")
    if not data["runs"]:
        print(f"warning: no runs (folders with config.yaml and metrics.jsonl) under {args.runs_dir}")
    return 0
