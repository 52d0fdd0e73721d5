"""Quick self-check of a (pretrained) organism: sample it and measure what the world promises.

    sdlab probe [--path DIR] [--samples 4] [--seed 0] [--json out.json]
    (python -m sdlab.organism.probe ... still works)

Samples with `model.generate` (temperature 1, no top-k/top-p, max_new_tokens = the world's budget)
on OOD problems, RL-pool problems and `direct` problems, and with each teacher context level on RL
problems, and reports per set: accuracy, mean response length in tokens (EOS included), mean
epistemic-word count (the study's ten words, case-insensitive substrings), the share of well-formed
responses, of responses that search (at least one check), that answer without a check, that hit the
budget, the mean number of checks, and the share of checks whose value is the true fact.
Also greedy fact recall over all facts. Without --path it pretrains (or loads from cache) the
default world.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ..analysis.epistemic import count_epistemic
from .contexts import FEEDBACK_FORMAT, FEEDBACK_INCORRECT, FEEDBACK_TRUNCATED, LEVELS, strip_think, teacher_prompt
from .world import Problem, World, parse_response

__all__ = ["Sample", "fact_recall", "format_report", "generate", "probe", "summarize"]


@dataclass(frozen=True)
class Sample:
    problem: Problem
    text: str
    length: int
    """Response tokens, EOS included."""
    truncated: bool
    correct: bool


@torch.no_grad()
def generate(model, tokenizer, world: World, items: Sequence[tuple[Problem, str]], n: int, *, seed: int = 0,
             max_new_tokens: int | None = None, temperature: float = 1.0, batch_size: int = 512) -> list[Sample]:
    """n samples for each (problem, prompt text); prompts are left-padded, no special tokens added."""
    budget = max_new_tokens or world.cfg.max_new_tokens
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    flat = [(p, text) for p, text in items for _ in range(n)]
    out: list[Sample] = []
    device = next(model.parameters()).device
    for start in range(0, len(flat), batch_size):
        chunk = flat[start : start + batch_size]
        enc = tokenizer([t for _, t in chunk], add_special_tokens=False, padding=True, return_tensors="pt")
        torch.manual_seed(seed * 1_000_003 + start)
        seqs = model.generate(input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device),
                              do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                              max_new_tokens=budget, eos_token_id=eos, pad_token_id=pad)
        gen = seqs[:, enc["input_ids"].shape[1] :].cpu().tolist()
        for (problem, _), row in zip(chunk, gen):
            end = next((j + 1 for j, t in enumerate(row) if t == eos), None)
            truncated = end is None
            ids = row[: (end if end is not None else budget)]
            text = tokenizer.decode(ids, skip_special_tokens=True)
            correct = (not truncated) and world.check(problem, text)
            out.append(Sample(problem, text, len(ids), truncated, correct))
    return out


def summarize(world: World, samples: Sequence[Sample]) -> dict[str, Any]:
    if not samples:
        return {"n": 0}
    n = len(samples)
    parsed = [parse_response(s.text) for s in samples]
    checks = [c for p in parsed for c in p.checks]
    good = sum(1 for k, x, v in checks
               if k < world.cfg.n_functions and x < world.cfg.n_values and world.fact(k, x) == v)
    repeats = sum(len(p.checks) - len({x for _, x, _ in p.checks}) for p in parsed)
    # decisions after a check: did the trace stop exactly when the value matched the target?
    stop_ok = missed = 0
    for s, p in zip(samples, parsed):
        k, y = world.key(s.problem)
        for i, (_, x, v) in enumerate(p.checks):
            last = i == len(p.checks) - 1
            if v == y:
                stop_ok += last and p.well_formed
                missed += not last
    return {
        "n": n,
        "acc": sum(s.correct for s in samples) / n,
        "length": sum(s.length for s in samples) / n,
        "epistemic": sum(sum(count_epistemic(s.text, mode="paper").values()) for s in samples) / n,
        "well_formed": sum(p.well_formed and not s.truncated for p, s in zip(parsed, samples)) / n,
        "search": sum(len(p.checks) > 0 for p in parsed) / n,
        "no_check": sum(p.well_formed and len(p.checks) == 0 for p in parsed) / n,
        "truncated": sum(s.truncated for s in samples) / n,
        "checks": len(checks) / n,
        "facts_ok": good / len(checks) if checks else float("nan"),
        "repeats": repeats / len(checks) if checks else float("nan"),
        "missed_match": missed / max(1, missed + stop_ok),
    }


@torch.no_grad()
def fact_recall(model, tokenizer, world: World) -> float:
    """Share of facts `fK x >` whose greedy next word is the true value."""
    facts = world.facts()
    enc = tokenizer([f"f{k} {x} >" for k, x, _ in facts], add_special_tokens=False, return_tensors="pt")
    device = next(model.parameters()).device
    logits = model(input_ids=enc["input_ids"].to(device)).logits[:, -1]
    pred = tokenizer.convert_ids_to_tokens(logits.argmax(-1).tolist())
    return sum(p == str(v) for p, (_, _, v) in zip(pred, facts)) / len(facts)


def _feedback(sample: Sample) -> str:
    if sample.truncated:
        return FEEDBACK_TRUNCATED
    if not parse_response(sample.text).answer:
        return FEEDBACK_FORMAT
    return FEEDBACK_INCORRECT


def probe(model, tokenizer, world: World, *, samples: int = 4, seed: int = 0, n_rl: int | None = None,
          n_ood: int | None = None) -> dict[str, Any]:
    ood = world.ood()[:n_ood]
    rl = world.rl_pool()[:n_rl]
    direct = world.problems("direct")
    results: dict[str, Any] = {"fact_recall": fact_recall(model, tokenizer, world)}
    ood_samples = generate(model, tokenizer, world, [(p, p.prompt) for p in ood], samples, seed=seed)
    results["ood"] = summarize(world, ood_samples)
    rl_samples = generate(model, tokenizer, world, [(p, p.prompt) for p in rl], samples, seed=seed + 1)
    results["rl"] = summarize(world, rl_samples)
    results["direct"] = summarize(world, generate(model, tokenizer, world, [(p, p.prompt) for p in direct], samples,
                                                  seed=seed + 2))
    by_problem: dict[str, list[Sample]] = {}
    for s in rl_samples:
        by_problem.setdefault(s.problem.id, []).append(s)
    contexts: dict[str, Any] = {}
    for i, level in enumerate(LEVELS):
        items = []
        for p in rl:
            own = by_problem[p.id]
            demo = next((s.text for s in own if s.correct), None)
            failed = next((s for s in own if not s.correct), None)
            if level in ("demo", "demo_answer") and demo is None:
                continue  # no successful sibling: not distilled
            if level == "feedback" and failed is None:
                continue  # nothing to give feedback on
            text = teacher_prompt(level, p.prompt, answer=p.answer, solution=p.solution or "", demo=demo or "",
                                  demo_answer=strip_think(demo or ""),
                                  feedback=_feedback(failed) if failed else "")
            items.append((p, text))
        contexts[level] = summarize(world, generate(model, tokenizer, world, items, samples, seed=seed + 10 + i))
        contexts[level]["problems"] = len(items)
    results["contexts"] = contexts
    return results


def format_report(results: dict[str, Any]) -> str:
    cols = ("n", "acc", "length", "epistemic", "well_formed", "search", "no_check", "truncated", "checks", "facts_ok",
            "repeats", "missed_match")
    lines = [f"fact recall (greedy): {results['fact_recall']:.3f}", "",
             f"{'set':<18}" + "".join(f"{c:>11}" for c in cols)]

    def row(name, r):
        cells = []
        for c in cols:
            v = r.get(c, float("nan"))
            cells.append(f"{v:>11d}" if isinstance(v, int) else f"{v:>11.3f}")
        return f"{name:<18}" + "".join(cells)

    for name in ("ood", "rl", "direct"):
        lines.append(row(name, results[name]))
    for level, r in results["contexts"].items():
        lines.append(row(f"rl+ctx:{level}", r))
    return "\n".join(lines)


if __name__ == "__main__":  # the old entry point: `python -m sdlab.organism.probe` = `sdlab probe`
    from ..cli import main

    sys.exit(main(["probe", *sys.argv[1:]]))
