"""Generate, grade and summarise one benchmark. Shared by `sdlab eval` and the trainer."""

from __future__ import annotations

import statistics
import zlib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..analysis.epistemic import EPISTEMIC_WORDS, count_epistemic
from ..analysis.stats import bootstrap_ci, pass_at_k
from ..data.problems import Problem
from ..rewards import GoldParseError, grade_many
from ..rollout import SamplingParams, sample_seed


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


def _bench_key(name: str) -> int:
    return zlib.crc32(name.encode())


def evaluate(
    backend,
    tokenizer,
    problems: Sequence[Problem],
    settings: EvalSettings,
    *,
    name: str,
    prompt_ids_fn: Callable[[Problem], list[int]],
    prompt_text_fn: Callable[[Problem], str] | None = None,
    progress=None,
) -> tuple[dict, list[dict]]:
    """Returns (summary, samples). Sample seeds depend only on (seed, benchmark, problem, k), so a
    re-run — or the same problem at a later training step — uses the same random stream."""
    params = SamplingParams(settings.temperature, settings.top_p, settings.top_k, settings.max_new_tokens)
    prompts, seeds, owners = [], [], []
    for pi, p in enumerate(problems):
        ids = prompt_ids_fn(p)
        for k in range(settings.n):
            prompts.append(ids)
            seeds.append(sample_seed(settings.seed, _bench_key(name), pi, k))
            owners.append(pi)
    rollouts = backend.generate(prompts, seeds, params) if prompts else []
    if progress is not None:
        progress.update(len(problems))
    texts = [tokenizer.decode(r.response_ids, skip_special_tokens=True) for r in rollouts]
    golds = [problems[o].answer for o in owners]
    truncated = [r.truncated for r in rollouts]
    try:
        results = grade_many(texts, golds, settings.grader, truncated=truncated, timeout=settings.timeout)
        bad_gold: set[int] = set()
    except GoldParseError:
        results, bad_gold = _grade_skipping_bad_golds(texts, golds, truncated, owners, problems, settings)
    samples = []
    for i, (r, text, res) in enumerate(zip(rollouts, texts, results)):
        p = problems[owners[i]]
        samples.append({
            "benchmark": name, "problem_id": p.id, "sample": i % settings.n,
            "prompt": prompt_text_fn(p) if prompt_text_fn else None, "response": text,
            "num_tokens": len(r.response_ids), "truncated": r.truncated,
            "correct": None if res is None else res.correct, "pred": None if res is None else res.pred,
            "reason": "gold_unparseable" if res is None else res.reason, "gold": p.answer,
        })
    return summarize(samples, settings.n, excluded=sorted(problems[i].id for i in bad_gold)), samples


def _grade_skipping_bad_golds(texts, golds, truncated, owners, problems, settings):
    """Grade problem by problem so one unparseable gold excludes only its own problem."""
    results, bad = [None] * len(texts), set()
    for pi in sorted(set(owners)):
        idx = [i for i, o in enumerate(owners) if o == pi]
        try:
            res = grade_many([texts[i] for i in idx], [golds[i] for i in idx], settings.grader,
                             truncated=[truncated[i] for i in idx], timeout=settings.timeout)
        except GoldParseError:
            bad.add(pi)
            continue
        for i, r in zip(idx, res):
            results[i] = r
    return results, bad


def summarize(samples: list[dict], n: int, *, excluded: Sequence[str] = (), seed: int = 0) -> dict:
    """avg@n, unbiased pass@k (k = 1, 2, 4, ... <= n), bootstrap CI over problems, length,
    truncation and epistemic statistics (the study's substring rule)."""
    graded = [s for s in samples if s["correct"] is not None]
    by_problem: dict[str, list[dict]] = {}
    for s in graded:
        by_problem.setdefault(s["problem_id"], []).append(s)
    per_problem_acc = np.array([np.mean([s["correct"] for s in ss]) for ss in by_problem.values()]) if by_problem else np.zeros(0)
    out: dict = {"n": n, "problems": len(by_problem), "samples": len(graded), "excluded_problems": list(excluded)}
    if not graded:
        return out
    out["accuracy"] = float(per_problem_acc.mean())
    out[f"avg@{n}"] = out["accuracy"]
    lo, hi = bootstrap_ci(per_problem_acc, seed=seed)
    out["accuracy_ci95"] = [float(lo), float(hi)]
    for k in sorted({2**i for i in range(n.bit_length()) if 2**i <= n} | {n}):
        out[f"pass@{k}"] = float(np.mean([pass_at_k(len(ss), sum(s["correct"] for s in ss), k) for ss in by_problem.values()]))
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
