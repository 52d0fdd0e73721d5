"""`sdlab demo`: the study's experiment on the model organism, end to end on a laptop CPU.

Builds the world, pretrains the base model (cached), runs GRPO and SDPO (teacher context
`answer`, frozen teacher) from the same base with the same seeds through the ordinary engine
(`configs/organism.yaml` holds every hyperparameter; both algorithms share all of them except the
objective), evaluates in-domain (the RL training problems) and OOD (held-out problems) every few
steps, and writes `<out>/summary.json` and `<out>/report.html`.

summary.json (schema "sdlab.demo/v1"):
  settings          the command's options and the resolved base config
  world             the organism's world parameters and split sizes
  results[coverage][algorithm][seed] = {
      in_domain_accuracy, ood_accuracy,      # final evaluation, fraction correct (avg@n)
      response_length,                       # mean tokens per OOD evaluation response
      epistemic,                             # mean epistemic words per OOD response (study's rule)
      in_domain_response_length, in_domain_epistemic, steps_to_90_in_domain
  }                                          # algorithm "base" = the step-0 evaluation
  aggregate[coverage][algorithm][metric] = {mean, ci95: [low, high], n}
  checks            the issue's claims evaluated on these numbers (value, threshold, passed)
  timing            seconds: pretraining, training, total
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "organism.yaml"
METRICS = ("in_domain_accuracy", "ood_accuracy", "response_length", "epistemic",
           "in_domain_response_length", "in_domain_epistemic")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0..N-1)")
    p.add_argument("--steps", type=int, default=None, help="training steps per run (default: the config's)")
    p.add_argument("--coverage", default=None, help="task coverage |D|, or a comma list for a sweep (e.g. 8,32,200)")
    p.add_argument("--teacher-context", default="answer", help="SDPO teacher context level")
    p.add_argument("--algorithms", default="grpo,sdpo")
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--config", default=None, help="base config (default: configs/organism.yaml)")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--jobs", type=int, default=None, help="runs at a time (default: one per CPU core on cpu, 1 on a GPU)")
    p.add_argument("overrides", nargs="*", help="extra key.sub=value overrides for every run")


def run(args) -> int:
    import yaml
    from tqdm.auto import tqdm

    from ..config import load_config
    from .registry import organism_base_path, organism_world

    t_start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config_path = args.config or REPO_CONFIG
    base = load_config(config_path, list(args.overrides) + [f"model.device={args.device}"])
    coverages = [int(c) for c in str(args.coverage).split(",")] if args.coverage else [base.data.coverage]
    algorithms = [a for a in args.algorithms.split(",") if a]
    steps = args.steps or base.steps
    eval_every = args.eval_every or base.eval.every or max(1, steps // 5)

    t0 = time.perf_counter()
    organism_base_path(base.organism)  # pretrain once (cached by hash)
    t_pretrain = time.perf_counter() - t0

    runs = [(cov, alg, seed) for cov in coverages for seed in range(args.seeds) for alg in algorithms]
    run_dirs = {r: out / "runs" / f"cov{r[0]}" / f"{r[1]}-s{r[2]}" for r in runs}
    jobs = args.jobs or (os.cpu_count() or 1 if base.model.device == "cpu" else 1)
    bar = tqdm(total=len(runs) * steps, desc=f"demo ({jobs} at a time)", unit="step", dynamic_ncols=True)
    commands = {}
    for cov, alg, seed in runs:
        commands[(cov, alg, seed)] = [
            sys.executable, "-m", "sdlab.cli", "train", str(config_path), *args.overrides,
            f"model.device={args.device}", f"algorithm={alg}", f"teacher_context={args.teacher_context}",
            f"seed={seed}", f"steps={steps}", f"data.coverage={cov}", f"eval.every={eval_every}",
            f"output_dir={run_dirs[(cov, alg, seed)]}", "logging.progress=false", "--resume",
        ]
    _run_all(commands, run_dirs, steps, jobs, bar)
    bar.close()
    t_train = time.perf_counter() - t0 - t_pretrain

    results = {cov: _collect(run_dirs, cov, algorithms, args.seeds) for cov in coverages}
    world = organism_world(base.organism)
    summary = {
        "schema": "sdlab.demo/v1",
        "settings": {"seeds": args.seeds, "steps": steps, "coverage": coverages, "teacher_context": args.teacher_context,
                     "algorithms": algorithms, "eval_every": eval_every, "device": args.device,
                     "config": yaml.safe_load(Path(config_path).read_text()), "overrides": list(args.overrides)},
        "world": world.describe(),
        "results": {str(c): r for c, r in results.items()},
        "aggregate": {str(c): _aggregate(r) for c, r in results.items()},
    }
    summary["checks"] = _checks(summary["aggregate"], results)
    summary["timing"] = {"pretrain_seconds": round(t_pretrain, 1), "train_seconds": round(t_train, 1),
                         "total_seconds": round(time.perf_counter() - t_start, 1)}
    from ..experiments.report import build_report

    build_report(out / "runs", out, title="sdlab demo: GRPO vs SDPO on the model organism",
                 extra_sections=[_checks_section(summary)])
    # the report's per-group table (summary.csv / its json) is kept beside the demo's own summary
    (out / "summary.json").replace(out / "report_summary.json")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(format_summary(summary))
    print(f"\nwrote {out / 'summary.json'} and {out / 'report.html'}")
    return 0


def _checks_section(summary: dict):
    """The demo's checks and timing as a report section."""
    import html

    from ..experiments.report import Section

    rows = "".join(
        f"<tr><td>{html.escape(c['check'])}</td><td>{c['value']:.3f}</td><td>{html.escape(c['threshold'])}</td>"
        f"<td>{'pass' if c['passed'] else '<b>FAIL</b>'}</td></tr>" for c in summary["checks"])
    t = summary["timing"]
    body = (f"<table><tr><th>claim</th><th>measured</th><th>wanted</th><th></th></tr>{rows}</table>"
            f"<p>Pretraining {t['pretrain_seconds']} s, training and evaluation {t['train_seconds']} s, "
            f"total {t['total_seconds']} s.</p>")
    return Section(id="claims", title="The study's claims on the organism", blocks=[body])


def _steps_done(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if '"reward/mean"' in line)


def _run_all(commands: dict, run_dirs: dict, steps: int, jobs: int, bar) -> None:
    """Run the training commands `jobs` at a time (one torch thread each), updating the bar from
    each run's metrics.jsonl; a failed run stops the demo with the end of its log."""
    pending = [r for r in commands if not _finished(run_dirs[r], steps)]
    bar.update(sum(steps for r in commands if r not in pending))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    running: dict = {}
    shown = {r: 0 for r in pending}
    while pending or running:
        while pending and len(running) < jobs:
            r = pending.pop(0)
            run_dirs[r].mkdir(parents=True, exist_ok=True)
            log = open(run_dirs[r] / "train.log", "a")
            running[r] = (subprocess.Popen(commands[r], env=env, stdout=log, stderr=subprocess.STDOUT), log)
        time.sleep(0.5)
        for r, (proc, log) in list(running.items()):
            done = _steps_done(run_dirs[r])
            bar.update(max(0, done - shown[r]))
            shown[r] = max(shown[r], done)
            if proc.poll() is None:
                continue
            log.close()
            del running[r]
            if proc.returncode != 0:
                for other, _ in running.values():
                    other.kill()
                tail = (run_dirs[r] / "train.log").read_text()[-3000:]
                raise RuntimeError(f"demo run {run_dirs[r]} failed (exit {proc.returncode}):\n{tail}")


def _finished(run_dir: Path, steps: int) -> bool:
    from ..engine.metrics import read_metrics

    return (run_dir / "final").exists() and any(r.get("step") == steps for r in read_metrics(run_dir / "metrics.jsonl"))


def _final_eval(run_dir: Path, step: int) -> dict[str, float]:
    import numpy as np

    from ..analysis.epistemic import count_epistemic

    out = {}
    for label, prefix in (("organism:ood", ""), ("organism:train", "in_domain_")):
        rows = [json.loads(x) for x in (run_dir / "eval" / f"step-{step}" / f"{label}.jsonl").read_text().splitlines() if x]
        acc = np.mean([r["correct"] for r in rows])
        out["ood_accuracy" if label == "organism:ood" else "in_domain_accuracy"] = float(acc)
        out[prefix + "response_length"] = float(np.mean([r["num_tokens"] for r in rows]))
        out[prefix + "epistemic"] = float(np.mean([sum(count_epistemic(r["response"]).values()) for r in rows]))
    return out


def _collect(run_dirs, cov: int, algorithms: list[str], seeds: int) -> dict[str, dict[str, dict]]:
    from ..engine.metrics import read_metrics

    res: dict[str, dict[str, dict]] = {"base": {}}
    for alg in algorithms:
        res[alg] = {}
        for seed in range(seeds):
            run_dir = run_dirs[(cov, alg, seed)]
            rows = read_metrics(run_dir / "metrics.jsonl")
            last = max(r["step"] for r in rows if "eval/organism:ood/accuracy" in r)
            entry = _final_eval(run_dir, last)
            curve = [(r["step"], r["eval/organism:train/accuracy"]) for r in rows if "eval/organism:train/accuracy" in r]
            entry["steps_to_90_in_domain"] = next((s for s, a in curve if a >= 0.9), None)
            res[alg][str(seed)] = entry
            if str(seed) not in res["base"]:
                res["base"][str(seed)] = _final_eval(run_dir, 0)
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


def _checks(aggregate: dict[str, Any], results) -> list[dict[str, Any]]:
    """The issue's expectations, evaluated honestly on the measured means."""
    checks = []

    def add(name, value, threshold, passed):
        checks.append({"check": name, "value": value, "threshold": threshold, "passed": bool(passed)})

    for cov, agg in aggregate.items():
        if "base" not in agg:
            continue
        b = {m: agg["base"][m]["mean"] for m in agg["base"]}
        if "sdpo" in agg:
            s = {m: agg["sdpo"][m]["mean"] for m in agg["sdpo"]}
            add(f"|D|={cov} SDPO epistemic words vs base (relative change)", _rel(s["epistemic"], b["epistemic"]), "<= -0.80",
                _rel(s["epistemic"], b["epistemic"]) <= -0.8)
            add(f"|D|={cov} SDPO response length vs base (relative change)", _rel(s["response_length"], b["response_length"]),
                "<= -0.40", _rel(s["response_length"], b["response_length"]) <= -0.4)
            add(f"|D|={cov} SDPO in-domain accuracy minus base", s["in_domain_accuracy"] - b["in_domain_accuracy"], "> 0",
                s["in_domain_accuracy"] > b["in_domain_accuracy"])
            add(f"|D|={cov} SDPO OOD accuracy vs base (relative change)", _rel(s["ood_accuracy"], b["ood_accuracy"]), "<= -0.25",
                _rel(s["ood_accuracy"], b["ood_accuracy"]) <= -0.25)
        if "grpo" in agg:
            g = {m: agg["grpo"][m]["mean"] for m in agg["grpo"]}
            add(f"|D|={cov} GRPO OOD accuracy minus base (points)", 100 * (g["ood_accuracy"] - b["ood_accuracy"]), ">= -2",
                100 * (g["ood_accuracy"] - b["ood_accuracy"]) >= -2)
            add(f"|D|={cov} GRPO epistemic words minus base", g["epistemic"] - b["epistemic"], ">= 0",
                g["epistemic"] >= b["epistemic"])
    return checks


def _rel(x: float, base: float) -> float:
    return (x - base) / base if base else float("nan")


def format_summary(summary: dict) -> str:
    lines = []
    for cov, agg in summary["aggregate"].items():
        lines.append(f"\n|D| = {cov}   (mean ± 95% CI over {summary['settings']['seeds']} seeds; OOD length/epistemic per response)")
        lines.append(f"{'':6}{'in-domain acc':>18}{'OOD acc':>18}{'length':>16}{'epistemic':>16}")
        for alg, m in agg.items():
            cells = []
            for key, scale in (("in_domain_accuracy", 100), ("ood_accuracy", 100), ("response_length", 1), ("epistemic", 1)):
                v = m[key]
                half = (v["ci95"][1] - v["ci95"][0]) / 2 if v["n"] > 1 else float("nan")
                cells.append(f"{scale * v['mean']:>10.1f} ± {scale * half:<5.1f}")
            lines.append(f"{alg:<6}" + "".join(cells))
    lines.append("")
    for c in summary["checks"]:
        lines.append(f"[{'pass' if c['passed'] else 'FAIL'}] {c['check']}: {c['value']:.3f} (want {c['threshold']})")
    t = summary["timing"]
    lines.append(f"\ntime: pretraining {t['pretrain_seconds']}s, training+eval {t['train_seconds']}s, total {t['total_seconds']}s")
    return "\n".join(lines)
