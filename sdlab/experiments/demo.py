"""The study's experiment on the model organism, end to end on a laptop CPU (the library of
`sdlab demo`, see `sdlab/commands/demo.py`).

Builds the world, pretrains the base model (cached), runs GRPO and SDPO (teacher context
`answer`, frozen teacher) from the same base with the same seeds through the ordinary engine
(`configs/organism.yaml` holds every hyperparameter; both algorithms share all of them except the
objective), evaluates in-domain (the RL training problems) and OOD (held-out problems) every few
steps, and writes `<out>/summary.json` and `<out>/report.html`.

The grid runs through the sweep runner (`sweep.run_sweep`, one training subprocess per run with
one torch thread, `jobs` at a time): each run folder `<out>/runs/cov<|D|>/<algorithm>-s<seed>` gets
a `status.json`; calling the demo again skips finished runs and resumes interrupted ones. A run
that fails is recorded there and the others go on; then `run_demo` raises `DemoRunsFailed` (naming
the failed runs) instead of summarizing an incomplete grid.

summary.json (schema "sdlab.demo/v2"; v1 judged the checks on means alone):
  settings          the command's options and the resolved base config
  world             the organism's world parameters and split sizes (the first world seed's)
  results[coverage][algorithm][unit] = {   # unit: a seed "0", or "w1-s0" with several worlds
      in_domain_accuracy, ood_accuracy,      # final evaluation, fraction correct (avg@n)
      response_length,                       # mean tokens per OOD evaluation response
      epistemic,                             # mean epistemic words per OOD response (study's rule)
      in_domain_response_length, in_domain_epistemic, steps_to_90_in_domain
  }                                          # algorithm "base" = the step-0 evaluation
  aggregate[coverage][algorithm][metric] = {mean, ci95: [low, high], n}
  checks            the study's claims (`CHECKS`): value (mean over seeds), ci95, per_seed,
                    threshold, passed (only if the whole CI is on the predicted side)
  timing            seconds: pretraining, training, total
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..config import Config, ConfigError, load_config
from ..engine.runs import RunLock
from .sweep import RunSpec, SubprocessRunner, plan, prepare, read_status, run_sweep

__all__ = ["DemoGrid", "DemoRunsFailed", "demo_grid", "format_summary", "run_demo"]

REPO_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "organism.yaml"
METRICS = ("in_domain_accuracy", "ood_accuracy", "response_length", "epistemic",
           "in_domain_response_length", "in_domain_epistemic")
# Every run trains with one torch thread (a ~0.5M-parameter model gains nothing from more; the
# runs go in parallel instead), whatever the environment says.
RUN_ENV = {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}


class DemoRunsFailed(RuntimeError):
    """Some runs of the demo's grid did not finish (each one's error is in its status.json)."""


@dataclass
class DemoGrid:
    config_path: Path
    base: Config
    """The base config with the overrides (what every run shares)."""
    coverages: list[int]
    steps: int
    eval_every: int
    runs: list[RunSpec]
    """world x coverage x seed x algorithm, in the order they run."""
    world_seeds: list[int | None]
    """The world seeds (`[None]`: the config's world)."""


def demo_grid(out: str | Path, *, config: str | Path | None = None, coverages: Sequence[int] | None = None,
              algorithms: Sequence[str] = ("grpo", "sdpo"), seeds: int = 3, steps: int | None = None,
              eval_every: int | None = None, teacher_context: str = "answer", device: str = "cpu",
              overrides: Sequence[str] = (), world_seeds: Sequence[int] | None = None) -> DemoGrid:
    """The demo's runs, every config validated: the base config with `overrides`, then the demo's keys.
    `world_seeds`: the organism's world seeds (default: the config's world); with more than one, every
    seed runs on every world (runs `<out>/runs/w<W>/cov<|D|>/...`) and each (world, seed) pair is one
    unit of the statistics, so the intervals include the spread between worlds and their bases."""
    config_path = Path(config or REPO_CONFIG)
    base = load_config(config_path, list(overrides) + [f"model.device={device}"])
    coverages = list(coverages) if coverages else [base.data.coverage]
    steps = steps or base.steps
    eval_every = eval_every or base.eval.every or max(1, steps // 5)
    worlds = list(world_seeds) if world_seeds else [None]
    runs = []
    for world in worlds:
        for cov in coverages:
            for seed in range(seeds):
                for alg in algorithms:
                    name = (f"w{world}/" if len(worlds) > 1 else "") + f"cov{cov}/{alg}-s{seed}"
                    run_dir = Path(out) / "runs" / name
                    settings = {"model.device": device, "algorithm": alg, "teacher_context": teacher_context,
                                "seed": seed, "steps": steps, "data.coverage": cov, "eval.every": eval_every,
                                "output_dir": str(run_dir), "logging.progress": "false"}
                    if world is not None:
                        settings["organism.seed"] = world
                    cfg = load_config(config_path, list(overrides) + [f"{k}={v}" for k, v in settings.items()])
                    values = {"data.coverage": cov, "seed": seed, "algorithm": alg}
                    if len(worlds) > 1:
                        values["organism.seed"] = world
                    runs.append(RunSpec(name=name, dir=run_dir, values=values, settings=settings, config=cfg))
    return DemoGrid(config_path, base, coverages, steps, eval_every, runs, worlds)


def run_demo(out: str | Path = "runs/demo", *, config: str | Path | None = None,
             coverages: Sequence[int] | None = None, algorithms: Sequence[str] = ("grpo", "sdpo"), seeds: int = 3,
             steps: int | None = None, eval_every: int | None = None, teacher_context: str = "answer",
             device: str = "cpu", jobs: int | None = None, overrides: Sequence[str] = (), progress: bool = True,
             log: Callable[[str], None] | None = None, world_seeds: Sequence[int] | None = None) -> dict[str, Any]:
    """Pretrain (cached), run the grid, evaluate, write `<out>/summary.json` and `<out>/report.html`;
    returns the summary. `jobs`: runs at a time (default: one per CPU core on cpu, 1 on a GPU);
    `log`: the runner's line per run start and end (default: above the progress bar, on stderr).
    Raises DemoRunsFailed when a run did not finish."""
    import yaml
    from tqdm.auto import tqdm

    from ..organism.registry import organism_base_path, organism_world

    t_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    algorithms = list(algorithms)
    grid = demo_grid(out, config=config, coverages=coverages, algorithms=algorithms, seeds=seeds, steps=steps,
                     eval_every=eval_every, teacher_context=teacher_context, device=device, overrides=overrides,
                     world_seeds=world_seeds)
    runs, steps = grid.runs, grid.steps
    changed = [p.run.name for p in plan(runs) if p.action == "skip" and p.note]
    if changed:  # finished with other settings: summarizing them would mix two experiments
        raise ConfigError(f"{len(changed)} finished runs under {out / 'runs'} were made with other settings "
                          f"({', '.join(changed[:4])}{', ...' if len(changed) > 4 else ''}); "
                          "use another --out or delete them")

    t0 = time.perf_counter()
    worlds = {json.dumps(r.config.organism, sort_keys=True): r.config.organism for r in runs}
    for organism in worlds.values():  # one base per world (shipped, or pretrained once and cached by hash)
        organism_base_path(organism)
    t_pretrain = time.perf_counter() - t0

    jobs = jobs or ((os.cpu_count() or 1) if grid.base.model.device == "cpu" else 1)
    bar = tqdm(total=len(runs) * steps, desc=f"demo ({jobs} at a time)", unit="step", dynamic_ncols=True,
               disable=not progress)
    shown = {r.name: 0 for r in runs}

    def poll() -> None:  # the bar counts the training steps that every run has logged
        for r in runs:
            shown[r.name] = max(shown[r.name], _steps_done(r.dir))
        bar.update(sum(shown.values()) - bar.n)

    with RunLock(out):  # one demo per folder
        prepare(runs)
        states = run_sweep(runs, parallel=jobs, runner=SubprocessRunner(threads=1, env=RUN_ENV), poll=poll,
                           log=log or (lambda msg: tqdm.write(msg, file=sys.stderr)))
    bar.close()
    t_train = time.perf_counter() - t0 - t_pretrain
    unfinished = [r for r in runs if states[r.name] != "done"]
    if unfinished:
        raise DemoRunsFailed(_failure_message(unfinished, states, len(runs)))

    results = {cov: _collect([r for r in runs if r.values["data.coverage"] == cov]) for cov in grid.coverages}
    world = organism_world(runs[0].config.organism)
    summary = {
        "schema": "sdlab.demo/v2",
        "settings": {"seeds": seeds, "world_seeds": [w for w in grid.world_seeds if w is not None] or None,
                     "steps": steps, "coverage": grid.coverages, "teacher_context": teacher_context,
                     "algorithms": algorithms, "eval_every": grid.eval_every, "device": device,
                     "config": yaml.safe_load(grid.config_path.read_text()), "overrides": list(overrides)},
        "world": world.describe(),
        "results": {str(c): r for c, r in results.items()},
        "aggregate": {str(c): _aggregate(r) for c, r in results.items()},
    }
    summary["checks"] = _checks(results)
    summary["timing"] = {"pretrain_seconds": round(t_pretrain, 1), "train_seconds": round(t_train, 1),
                         "total_seconds": round(time.perf_counter() - t_start, 1)}
    from .report import build_report

    build_report(out / "runs", out, title="sdlab demo: GRPO vs SDPO on the model organism",
                 extra_sections=[_checks_section(summary)])
    # the report's per-group table (summary.csv / its json) is kept beside the demo's own summary
    (out / "summary.json").replace(out / "report_summary.json")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _failure_message(unfinished: list[RunSpec], states: dict[str, str], total: int) -> str:
    lines = [f"{len(unfinished)} of {total} demo runs did not finish, so there is no summary:"]
    for i, r in enumerate(unfinished):
        error = (read_status(r.dir) or {}).get("error") or f"state {states[r.name]}; see {r.dir / 'status.json'}"
        lines.append(f"  {r.name} ({r.dir}): " + (error if i == 0 else error.splitlines()[0]))
    lines.append("Finished runs are kept: run the same command again to retry the others.")
    return "\n".join(lines)


def _checks_section(summary: dict):
    """The demo's checks and timing as a report section."""
    import html

    from .report import Section

    rows = "".join(
        f"<tr><td>{html.escape(c['check'])}</td><td>{c['value']:.3f}</td><td>[{c['ci95'][0]:.3f}, "
        f"{c['ci95'][1]:.3f}]</td><td>CI {html.escape(c['threshold'])}</td>"
        f"<td>{'pass' if c['passed'] else '<b>FAIL</b>'}</td></tr>" for c in summary["checks"])
    t = summary["timing"]
    body = (f"<table><tr><th>claim (mean over seeds)</th><th>measured</th><th>95% CI</th><th>wanted</th><th></th>"
            f"</tr>{rows}</table><p>A claim passes only if its whole confidence interval lies on the predicted "
            f"side.</p>"
            f"<p>Pretraining {t['pretrain_seconds']} s, training and evaluation {t['train_seconds']} s, "
            f"total {t['total_seconds']} s.</p>")
    return Section(id="claims", title="The study's claims on the organism", blocks=[body])


def _steps_done(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if '"reward/mean"' in line)


def _final_eval(run_dir: Path, step: int) -> dict[str, float]:
    import numpy as np

    from ..analysis.epistemic import count_epistemic

    out = {}
    for label, prefix in (("organism:ood", ""), ("organism:train", "in_domain_")):
        path = run_dir / "eval" / f"step-{step}" / f"{label}.jsonl"
        rows = [json.loads(x) for x in path.read_text().splitlines() if x]
        acc = np.mean([r["correct"] for r in rows])
        out["ood_accuracy" if label == "organism:ood" else "in_domain_accuracy"] = float(acc)
        out[prefix + "response_length"] = float(np.mean([r["num_tokens"] for r in rows]))
        out[prefix + "epistemic"] = float(np.mean([sum(count_epistemic(r["response"]).values()) for r in rows]))
    return out


def _collect(runs: list[RunSpec]) -> dict[str, dict[str, dict]]:
    """results[algorithm][unit] for one coverage; a unit is a seed ("0"), or a world and a seed
    ("w1-s0") when the demo crosses world seeds. "base" is each unit's step-0 evaluation."""
    from ..engine.metrics import read_metrics

    res: dict[str, dict[str, dict]] = {"base": {}}
    for run in runs:
        v = run.values
        unit = f"w{v['organism.seed']}-s{v['seed']}" if "organism.seed" in v else str(v["seed"])
        rows = read_metrics(run.dir / "metrics.jsonl")
        last = max(r["step"] for r in rows if "eval/organism:ood/accuracy" in r)
        entry = _final_eval(run.dir, last)
        key = "eval/organism:train/accuracy"
        curve = [(r["step"], r[key]) for r in rows if key in r]
        entry["steps_to_90_in_domain"] = next((s for s, a in curve if a >= 0.9), None)
        res.setdefault(v["algorithm"], {})[unit] = entry
        if unit not in res["base"]:
            res["base"][unit] = _final_eval(run.dir, 0)
    return res


def _aggregate(results: dict[str, dict[str, dict]]) -> dict[str, dict[str, dict]]:
    from ..analysis.stats import mean_ci_t

    agg = {}
    for alg, by_seed in results.items():
        agg[alg] = {}
        for m in METRICS + ("steps_to_90_in_domain",):
            vals = [v[m] for v in by_seed.values() if v.get(m) is not None]
            if vals:
                mean, lo, hi = mean_ci_t(vals)
                agg[alg][m] = {"mean": mean, "ci95": [lo, hi], "n": len(vals)}
    return agg


CHECKS = (
    # (arm, claim, per-seed value from (arm, base) results of one seed, operator, bound)
    ("sdpo", "SDPO epistemic words vs base (relative change)",
     lambda a, b: _rel(a["epistemic"], b["epistemic"]), "<=", -0.80),
    ("sdpo", "SDPO response length vs base (relative change)",
     lambda a, b: _rel(a["response_length"], b["response_length"]), "<=", -0.40),
    ("sdpo", "SDPO in-domain accuracy minus base (points)",
     lambda a, b: 100 * (a["in_domain_accuracy"] - b["in_domain_accuracy"]), ">", 0.0),
    ("sdpo", "SDPO OOD accuracy vs base (relative change)",
     lambda a, b: _rel(a["ood_accuracy"], b["ood_accuracy"]), "<=", -0.25),
    ("grpo", "GRPO OOD accuracy minus base (points)",
     lambda a, b: 100 * (a["ood_accuracy"] - b["ood_accuracy"]), ">=", -2.0),
    ("grpo", "GRPO epistemic words minus base",
     lambda a, b: a["epistemic"] - b["epistemic"], ">=", 0.0),
)
"""The study's claims as the demo tests them. A claim is judged on its 95% t-interval over seeds
(each seed's arm against the same seed's step-0 evaluation of the base): it passes only if the
whole interval lies on the predicted side of the bound, so a mean that happens to cross the bound
with an interval that straddles it is a FAIL, not a pass. With one seed there is no interval and
no claim passes."""


def _checks(results: dict[int, dict[str, dict[str, dict]]]) -> list[dict[str, Any]]:
    from ..analysis.stats import mean_ci_t

    checks = []
    for cov, res in results.items():
        base = res.get("base", {})
        for arm, claim, value, op, bound in CHECKS:
            if arm not in res:
                continue
            seeds = [s for s in res[arm] if s in base]  # units: seeds, or (world, seed) pairs
            per_seed = [value(res[arm][s], base[s]) for s in seeds]
            mean, lo, hi = mean_ci_t(per_seed)
            passed = {"<=": hi <= bound, ">=": lo >= bound, ">": lo > bound}[op]  # False when the CI is nan
            checks.append({"check": f"|D|={cov} {claim}", "value": mean, "ci95": [lo, hi],
                           "per_seed": dict(zip(seeds, per_seed)), "threshold": f"{op} {bound:g}",
                           "rule": "the whole 95% CI on the predicted side", "passed": bool(passed)})
    return checks


def _rel(x: float, base: float) -> float:
    return (x - base) / base if base else float("nan")


def format_summary(summary: dict) -> str:
    lines = []
    for cov, agg in summary["aggregate"].items():
        worlds = summary["settings"].get("world_seeds") or [None]
        units = f"{summary['settings']['seeds']} seeds" + (f" x {len(worlds)} worlds" if len(worlds) > 1 else "")
        lines.append(f"\n|D| = {cov}   (mean ± 95% CI over {units}; "
                     "OOD length/epistemic per response)")
        lines.append(f"{'':6}{'in-domain acc':>18}{'OOD acc':>18}{'length':>16}{'epistemic':>16}")
        for alg, m in agg.items():
            cells = []
            for key, scale in (("in_domain_accuracy", 100), ("ood_accuracy", 100), ("response_length", 1),
                               ("epistemic", 1)):
                v = m[key]
                half = (v["ci95"][1] - v["ci95"][0]) / 2 if v["n"] > 1 else float("nan")
                cells.append(f"{scale * v['mean']:>10.1f} ± {scale * half:<5.1f}")
            lines.append(f"{alg:<6}" + "".join(cells))
    lines.append("")
    for c in summary["checks"]:
        lines.append(f"[{'pass' if c['passed'] else 'FAIL'}] {c['check']}: {c['value']:.3f} "
                     f"[{c['ci95'][0]:.3f}, {c['ci95'][1]:.3f}] (want the CI {c['threshold']})")
    t = summary["timing"]
    lines.append(f"\ntime: pretraining {t['pretrain_seconds']}s, training+eval {t['train_seconds']}s, "
                 f"total {t['total_seconds']}s")
    return "\n".join(lines)
