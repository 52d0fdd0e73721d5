"""Run folders as the report reads them: config, merged metrics per step, status and eval samples."""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

from ...config import flatten

__all__ = ["RunData", "load_runs", "num"]

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def num(v: Any) -> float | None:
    """A finite number as a float, else None (bools, strings, nan and inf are not numbers here)."""
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
            self.__dict__["_flat"] = flatten(self.config)
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
            v = num(self.records[step].get(key))
            if v is not None:
                out.append((step, v))
        return out

    def final(self, key: str) -> float | None:
        """The last logged value after step 0 (a run that never got past the initial evaluation
        has no final value)."""
        s = [x for x in self.series(key) if x[0] > 0]
        return s[-1][1] if s else None

    def at(self, key: str, step: int) -> float | None:
        return num(self.records.get(step, {}).get(key))

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
            from ...analysis.epistemic import EPISTEMIC_WORDS, count_epistemic

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


def _skipped(cfg_path: Path, why: str) -> None:
    print(f"sdlab report: skipping {cfg_path.parent}: {why}", file=sys.stderr)


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
        except yaml.YAMLError as e:
            _skipped(cfg_path, f"its config.yaml does not parse ({type(e).__name__})")
            continue
        if not isinstance(config, dict):
            _skipped(cfg_path, "its config.yaml is not a mapping")
            continue
        status = None
        if (d / "status.json").exists():
            try:
                status = json.loads((d / "status.json").read_text())
            except json.JSONDecodeError:
                status = None
        name = str(d.relative_to(root)) if d != root else d.name
        records = _read_records(d / "metrics.jsonl")
        runs.append(RunData(path=d, name=name, config=config, records=records, status=status))
    return runs
