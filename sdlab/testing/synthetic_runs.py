"""Synthetic run folders in the trainer's format, for report tests, previews and screenshots.

`write_synthetic_runs(root, ...)` writes `<root>/<name>/{config.yaml, metrics.jsonl,
eval/step-<N>/<bench>.jsonl, status.json}` for a grid of algorithms x coverages x seeds (and
optionally SDPO teacher-context levels), with curves shaped like the study's findings (GRPO
keeps or raises epistemic words, SDPO suppresses them, more so with richer context and lower
coverage). The numbers are made up: use them to look at a report, never as results.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Sequence

from ..config import load_config

__all__ = ["write_synthetic_runs"]

_FILLER = ("Let x be the unknown. Then 3x + 2 = 11, so x = 3. "
           "Plugging back in gives 11 <= 11 & the claim <holds>. ")
_WORDS = ["wait", "hmm", "perhaps", "maybe", "actually", "check"]
_CTX_STRENGTH = {"none": 0.1, "feedback": 0.3, "demo_answer": 0.55, "demo": 0.8, "answer": 0.9, "solution": 1.0}


def _response(rng: random.Random, n_epistemic: int, words: Sequence[str], correct: bool, answer: str) -> str:
    parts = [_FILLER]
    for _ in range(max(0, n_epistemic)):
        parts.append(f"{rng.choice(words).capitalize()}, let me reconsider. ")
    parts.append(f"So the answer is \\boxed{{{answer if correct else int(answer) + 1}}}.")
    return "".join(parts)


def write_synthetic_runs(root: str | Path, *, algorithms: Sequence[str] = ("grpo", "sdpo"),
                         coverages: Sequence[int | None] = (8, 32, 200), seeds: Sequence[int] = (0, 1, 2),
                         contexts: Sequence[str] = ("demo",), steps: int = 20, eval_every: int = 5,
                         problems: int = 6, samples: int = 2) -> list[Path]:
    """Write the grid; SDPO runs are crossed with `contexts` (GRPO runs use the first). Returns the run folders."""
    root = Path(root)
    out = []
    for alg in algorithms:
        for cov in coverages:
            for ctx in (contexts if alg == "sdpo" else contexts[:1]):
                for seed in seeds:
                    name = f"{alg}-cov{cov}" + (f"-{ctx}" if len(contexts) > 1 else "") + f"-s{seed}"
                    out.append(_write_run(root / name, alg, cov, ctx, seed, steps=steps, eval_every=eval_every,
                                          problems=problems, samples=samples))
    return out


def _write_run(run: Path, alg: str, cov: int | None, ctx: str, seed: int, *, steps: int, eval_every: int,
               problems: int, samples: int) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    cfg = load_config(None, {
        "algorithm": alg, "teacher_context": ctx, "seed": seed, "steps": steps,
        "output_dir": str(run), "data.train": "organism:rl", "data.coverage": cov,
        "model.name_or_path": "organism", "eval.benchmarks": ["organism:train", "organism:ood"],
        "eval.every": eval_every, "actor.lr": 1e-5 if alg == "sdpo" else 1e-6,
    })
    cfg.save(run / "config.yaml")
    rng = random.Random(f"{alg}-{cov}-{ctx}-{seed}")  # stable across processes
    strength = _CTX_STRENGTH.get(ctx, 0.5) if alg == "sdpo" else 0.0
    breadth = math.log10(cov or 1000) / 3
    lines = []
    for step in range(steps + 1):
        t = step / steps
        rec = {"step": step}
        if step > 0:
            rec.update({
                "reward/mean": min(1.0, 0.3 + 0.5 * t * (1 + strength) + rng.gauss(0, 0.03)),
                "reward/std": 0.3,
                "response_length/mean": 60 * (1 - 0.6 * strength * t) * (1 + 0.2 * (alg == "grpo") * t)
                + rng.gauss(0, 2),
                "epistemic/mean": max(0.0, 4 * (1 - strength * t) + (0.8 * t if alg == "grpo" else 0)
                                      + rng.gauss(0, 0.2)),
                "actor/entropy": 1.2 - 0.3 * t,
            })
        if step % eval_every == 0 or step == steps:
            ood = 0.35 + (0.15 * breadth * t if alg == "grpo" else -0.2 * strength * (1.2 - breadth) * t)
            ind = 0.4 + 0.45 * t * (1 + strength) / 2
            for bench, acc in (("organism:train", ind), ("organism:ood", ood)):
                acc = min(1.0, max(0.0, acc + rng.gauss(0, 0.02)))
                epi = max(0.0, 4 * (1 - strength * t) + (0.8 * t if alg == "grpo" else 0))
                rec.update({f"eval/{bench}/accuracy": acc, f"eval/{bench}/pass@1": acc,
                            f"eval/{bench}/response_length": 60 * (1 - 0.6 * strength * t),
                            f"eval/{bench}/truncation_rate": 0.0, f"eval/{bench}/epistemic": epi})
                if step in (0, steps):
                    d = run / "eval" / f"step-{step}"
                    d.mkdir(parents=True, exist_ok=True)
                    rows = _samples(rng, bench, acc, epi, problems, samples)
                    (d / f"{bench}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        lines.append(json.dumps(rec))
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (run / "status.json").write_text(json.dumps({"name": run.name, "state": "done"}) + "\n")
    return run


def _samples(rng: random.Random, bench: str, acc: float, epi: float, problems: int, samples: int) -> list[dict]:
    rows = []
    for p in range(problems):
        for k in range(samples):
            correct = rng.random() < acc
            text = _response(rng, int(round(epi + rng.gauss(0, 1))), _WORDS, correct, "3")
            rows.append({"benchmark": bench, "problem_id": f"{bench.split(':')[1]}-{p}", "sample": k,
                         "prompt": f"Solve 3x + 2 = 11 <problem {p}> & more.", "response": text,
                         "num_tokens": len(text) // 4, "truncated": False, "correct": correct,
                         "pred": "3" if correct else "4", "reason": "correct" if correct else "incorrect", "gold": "3"})
    return rows
