"""Generate, grade and summarise benchmarks. Shared by `sdlab eval`, the trainer and `sdlab sft`."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..analysis.epistemic import EPISTEMIC_WORDS, count_epistemic
from ..analysis.stats import bootstrap_ci, pass_at_k
from ..data.problems import Problem
from ..data.prompts import PromptBuilder
from ..data.sources import load_source
from ..io import write_jsonl
from ..rollout import SamplingParams, problem_seed
from .sampling import Job, generate_graded

__all__ = ["EvalSettings", "Shard", "benchmark_label", "evaluate", "evaluate_benchmarks", "format_table",
           "load_eval_sets", "summarize"]

@dataclass(frozen=True)
class EvalSettings:
    n: int = 1
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 0
    max_new_tokens: int = 1024
    grader: str = "math_verify"
    timeout: float = 5.0
    seed: int = 0

    @classmethod
    def from_config(cls, cfg) -> "EvalSettings":
        """The `eval.*` settings of a run config (response budget: eval.max_new_tokens, else rollout's)."""
        e = cfg.eval
        return cls(n=e.n, temperature=e.temperature, top_p=e.top_p, top_k=e.top_k,
                   max_new_tokens=e.max_new_tokens or cfg.rollout.max_new_tokens,
                   grader=cfg.reward.grader, timeout=cfg.reward.timeout, seed=cfg.seed)


@dataclass(frozen=True)
class Shard:
    """This process's part of an evaluation spread over `world` processes: rank r generates and
    grades every world-th sample (padded so that every process generates as many, which a sharded
    model needs: each forward pass is a collective); `gather(obj)` returns every rank's obj."""

    rank: int
    world: int
    gather: Callable[[Any], list]


def evaluate(backend, tokenizer, problems: Sequence[Problem], settings: EvalSettings, *, name: str,
             prompts: PromptBuilder, progress=None, shard: Shard | None = None) -> tuple[dict, list[dict]]:
    """Returns (summary, samples), the same on every process. Sample seeds depend only on (seed,
    benchmark, problem, k), so a re-run — or the same problem at a later training step, or with
    another number of processes — draws the same samples."""
    params = SamplingParams(settings.temperature, settings.top_p, settings.top_k, settings.max_new_tokens)
    jobs = [Job(pi, k, prompts.prompt_ids(p), problem_seed(settings.seed, name, pi, k))
            for pi, p in enumerate(problems) for k in range(settings.n)]
    grading = dict(level="none", grader=settings.grader, timeout=settings.timeout)
    if shard is None or shard.world == 1:
        gens = generate_graded(backend, tokenizer, problems, jobs, params, **grading)
    else:
        mine = jobs[shard.rank::shard.world]
        idle = -(-len(jobs) // shard.world) - len(mine)  # ceil: the same count on every process
        local = generate_graded(backend, tokenizer, problems, mine + jobs[:1] * idle, params, **grading)[:len(mine)]
        by_key = {(g.problem, g.sample): g for part in shard.gather(local) for g in part}
        gens = [by_key[(j.problem, j.sample)] for j in jobs]
    if progress is not None:
        progress.update(len(problems))
    samples = [{
        "benchmark": name, "problem_id": g.problem_id, "sample": g.sample,
        "prompt": prompts.user_text(problems[g.problem]),
        "response": g.text, "num_tokens": len(g.response_ids), "truncated": g.truncated, "correct": g.correct,
        "pred": g.pred, "reason": g.reason, "gold": problems[g.problem].answer,
    } for g in gens]
    excluded = sorted({g.problem_id for g in gens if g.correct is None})
    return summarize(samples, settings.n, excluded=excluded), samples


def benchmark_label(name: str) -> str:
    """A short, file-name-safe label for a benchmark spec (a file path becomes its stem)."""
    if "/" in name or name.endswith((".jsonl", ".parquet", ".json")):
        name = Path(name).stem
    return "".join(c if c.isalnum() or c in "-_.:" else "_" for c in name)


def load_eval_sets(cfg) -> dict[str, list[Problem]]:
    """The problems of a run config's eval.benchmarks (organism sets at the run's task coverage,
    so `organism:train` is the in-domain set), the first eval.limit of each."""
    return {name: load_source(name, coverage=cfg.data.coverage if name.startswith("organism:") else None,
                              organism=cfg.organism, limit=cfg.eval.limit)
            for name in cfg.eval.benchmarks}


def evaluate_benchmarks(backend, tokenizer, benchmarks: dict[str, Sequence[Problem]], settings: EvalSettings, *,
                        prompts: PromptBuilder, samples_dir: Path | None = None,
                        shard: Shard | None = None) -> dict[str, float]:
    """In-training evaluation: {eval/<label>/<key>: value} over the benchmarks; with samples_dir,
    every sample is written to samples_dir/<label>.jsonl."""
    out: dict[str, float] = {}
    for name, problems in benchmarks.items():
        label = benchmark_label(name)
        summary, samples = evaluate(backend, tokenizer, problems, settings, name=name, prompts=prompts, shard=shard)
        for key in ("accuracy", "pass@1", f"pass@{settings.n}", "response_length", "truncation_rate", "epistemic"):
            if key in summary:
                out[f"eval/{label}/{key}"] = summary[key]
        if samples_dir is not None:
            write_jsonl(samples_dir / f"{label}.jsonl", samples)
    return out


def summarize(samples: list[dict], n: int, *, excluded: Sequence[str] = (), seed: int = 0) -> dict:
    """avg@n, unbiased pass@k (k = 1, 2, 4, ... <= n), bootstrap CI over problems, length,
    truncation and epistemic statistics (the study's substring rule)."""
    graded = [s for s in samples if s["correct"] is not None]
    by_problem: dict[str, list[dict]] = {}
    for s in graded:
        by_problem.setdefault(s["problem_id"], []).append(s)
    per_problem_acc = (np.array([np.mean([s["correct"] for s in ss]) for ss in by_problem.values()])
                       if by_problem else np.zeros(0))
    out: dict = {"n": n, "problems": len(by_problem), "samples": len(graded), "excluded_problems": list(excluded)}
    if not graded:
        return out
    out["accuracy"] = float(per_problem_acc.mean())
    out[f"avg@{n}"] = out["accuracy"]
    lo, hi = bootstrap_ci(per_problem_acc, seed=seed)
    out["accuracy_ci95"] = [float(lo), float(hi)]
    for k in sorted({2**i for i in range(n.bit_length()) if 2**i <= n} | {n}):
        out[f"pass@{k}"] = float(np.mean([pass_at_k(len(ss), sum(s["correct"] for s in ss), k)
                                          for ss in by_problem.values()]))
    lengths = [s["num_tokens"] for s in graded]
    out["response_length"] = float(np.mean(lengths))
    out["response_length_median"] = float(statistics.median(lengths))
    out["truncation_rate"] = float(np.mean([s["truncated"] for s in graded]))
    counts = [count_epistemic(s["response"], mode="paper") for s in graded]
    out["epistemic"] = float(np.mean([sum(c.values()) for c in counts]))
    out["epistemic_per_word"] = {w: float(np.mean([c[w] for c in counts])) for w in EPISTEMIC_WORDS}
    reasons: dict[str, int] = {}
    for s in graded:
        reasons[s["reason"]] = reasons.get(s["reason"], 0) + 1
    out["grader_reasons"] = reasons
    return out


def format_table(summaries: dict, n: int) -> str:
    head = (f"{'benchmark':<14}{'problems':>9}{'avg@' + str(n):>9}{'95% CI':>17}{'pass@' + str(n):>9}"
            f"{'length':>9}{'trunc':>7}{'epist.':>8}")
    lines = [head, "-" * len(head)]
    for name, s in summaries.items():
        if "accuracy" not in s:
            lines.append(f"{name:<14}{s['problems']:>9}   (no gradable samples)")
            continue
        lo, hi = s["accuracy_ci95"]
        lines.append(
            f"{name:<14}{s['problems']:>9}{100 * s['accuracy']:>8.1f}%{f'[{100 * lo:.1f}, {100 * hi:.1f}]':>17}"
            f"{100 * s.get(f'pass@{n}', s['accuracy']):>8.1f}%{s['response_length']:>9.0f}"
            f"{100 * s['truncation_rate']:>6.0f}%"
            f"{s['epistemic']:>8.2f}"
        )
        if s.get("excluded_problems"):
            lines.append(f"  excluded (gold answer does not parse): {', '.join(s['excluded_problems'])}")
    return "\n".join(lines)
