"""The study's Table 1 for any model, with the information lens: per teacher context level c,
the score, length and epistemic words of responses generated with c, and the information
I(y; c | x) they carry (`sdlab info`).

1. Sample n unguided responses per problem (context none) and grade them. Seeds follow
   `sdlab eval` (seed, benchmark, problem, sample), so these are the samples `sdlab eval` draws
   with the same settings. A solve range (e.g. 1-4) keeps the problems the model solves LO..HI of
   n times (the study's selection).
2. For each context level c, build the teacher context by the trainer's rules
   (`sdlab.algorithms.context`): demo / demo_answer show a correct unguided response of the same
   problem, answer the gold answer, feedback the grader's feedback on that response, solution
   the reference solution.
   (a) Score the unguided responses with and without c (a response is never its own demo):
       per-token log-ratio, its sum R(y), epistemic-word probability mass with / without c.
   (b) Generate n responses *with* c (one context per problem: the demo is the first correct
       unguided response, the study's s = correct_solutions[0]; feedback: one per failed
       response), grade them (Table 1: score, length, epistemic count) and score them too:
       the mean of R over these is the estimate of I(y; c | x) (see `sdlab.analysis.info`).
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..algorithms.context import level_contexts
from ..data.prompts import PromptBuilder
from ..evaluation.runner import summarize
from ..evaluation.sampling import Generation, Job, generate_graded, group_by_problem, select_problems
from ..rollout import SamplingParams, context_slot, problem_seed
from .epistemic import count_epistemic, epistemic_token_ids
from .info import context_logratios, summarize_values

__all__ = ["CSV_COLUMNS", "InfoTable", "format_table", "information_table", "level_summary", "table_rows",
           "write_table_csv"]


@dataclass
class InfoTable:
    results: dict[str, dict]
    """Per context level: Table 1 statistics and the information statistics (`level_summary`)."""
    rows: list[dict]
    """One record per sampled or scored response (samples.jsonl)."""
    problems_kept: int


def information_table(model, tokenizer, problems, prompts: PromptBuilder, *, levels: Sequence[str], n: int,
                      params: SamplingParams, backend, grader: str, timeout: float = 5.0,
                      reveal_answer: bool = False, stream: str, seed: int = 0,
                      solve_range: tuple[int, int] | None = None, templates: dict[str, str] | None = None,
                      score_temperature: float = 1.0, score_batch_size: int = 8,
                      token_level: bool = False, log=None) -> InfoTable:
    """Steps 1-2 for `levels` (see the module docstring). `stream` names the seed stream (the
    benchmark name, as `sdlab eval` uses it)."""
    log = log or (lambda msg: print(f"[sdlab info] {msg}", file=sys.stderr, flush=True))
    grading = dict(grader=grader, timeout=timeout, reveal_answer=reveal_answer)

    # 1. unguided responses (the same seeds as `sdlab eval`)
    jobs = [Job(pi, k, prompts.prompt_ids(p), problem_seed(seed, stream, pi, k))
            for pi, p in enumerate(problems) for k in range(n)]
    unguided = generate_graded(backend, tokenizer, problems, jobs, params, level="none", **grading)
    groups = group_by_problem(unguided)
    keep = select_problems(groups, solve_range)
    log(f"unguided: {len(unguided)} responses, {sum(bool(g.correct) for g in unguided)} correct; "
        f"{len(keep)} of {len(problems)} problems kept")

    # 2. every context level
    cache: dict = {}
    score_kw = dict(epistemic_ids=epistemic_token_ids(tokenizer), temperature=score_temperature,
                    batch_size=score_batch_size, cache=cache)
    rows: list[dict] = [_sample_row("unguided", "none", problems, g) for pi in keep for g in groups[pi]]
    results: dict[str, dict] = {}
    for level in levels:
        scored_u = score_unguided(model, tokenizer, problems, prompts, groups, keep, level, templates, **score_kw)
        if level == "none":
            guided = [g for pi in keep for g in groups[pi]]
        else:
            gjobs = []
            for pi in keep:
                ctxs = level_contexts(level, problems[pi], prompts.user_text(problems[pi]), groups[pi],
                                      exclude_self=False, templates=templates)
                for g, c in zip(groups[pi], ctxs):
                    if c.distilled:
                        gjobs.append(Job(pi, g.sample, prompts.context_ids(c.text),
                                         problem_seed(seed, stream, pi, g.sample, slot=context_slot(level))))
            guided = generate_graded(backend, tokenizer, problems, gjobs, params, level=level, **grading)
        scored_g = context_logratios(model, tokenizer, [prompts.prompt_ids(problems[g.problem]) for g in guided],
                                     [g.prompt_ids for g in guided], [g.response_ids for g in guided], **score_kw)
        for (g, ctx_len), s in scored_u:
            rows.append({"kind": "unguided_score", "context": level, "problem_id": g.problem_id, "sample": g.sample,
                         "context_tokens": ctx_len, **_score_fields(s, token_level)})
        if level != "none":
            for g, s in zip(guided, scored_g):
                rows.append({**_sample_row("guided", level, problems, g), "context_tokens": len(g.prompt_ids),
                             **_score_fields(s, token_level)})
        results[level] = level_summary(level, problems, guided, scored_g, scored_u, seed=seed)
        log(f"{level}: {len(scored_u)} unguided responses scored, {len(guided)} responses with the context")
    return InfoTable(results, rows, len(keep))


def score_unguided(model, tokenizer, problems, prompts: PromptBuilder, groups, keep, level, templates, **score_kw):
    """Score every unguided response that has a context at this level (a response is never its own
    demo, as in the trainer). Returns [((generation, context_tokens), TokenScores)]."""
    items = []
    for pi in keep:
        p = problems[pi]
        if level == "none":
            items += [(g, g.prompt_ids) for g in groups[pi]]
            continue
        ctxs = level_contexts(level, p, prompts.user_text(p), groups[pi], exclude_self=True, templates=templates)
        items += [(g, prompts.context_ids(c.text)) for g, c in zip(groups[pi], ctxs) if c.distilled]
    scores = context_logratios(model, tokenizer, [g.prompt_ids for g, _ in items], [c for _, c in items],
                               [g.response_ids for g, _ in items], **score_kw)
    return [((g, len(c)), s) for (g, c), s in zip(items, scores)]


def _score_fields(s, token_level: bool) -> dict:
    n = max(1, s.num_tokens)
    out = {"logratio_sum": s.total, "logratio_per_token": s.total / n,
           "logp_c_sum": float(s.logp_c.double().sum()), "logp_x_sum": float(s.logp_x.double().sum())}
    if s.mass_c is not None:
        out["epistemic_mass_c"] = float(s.mass_c.double().mean()) if s.num_tokens else 0.0
        out["epistemic_mass_x"] = float(s.mass_x.double().mean()) if s.num_tokens else 0.0
    if token_level:
        out["logratio_tokens"] = [round(float(v), 6) for v in s.logratio]
    return out


def _sample_row(kind: str, level: str, problems, g: Generation) -> dict:
    return {"kind": kind, "context": level, "problem_id": g.problem_id, "sample": g.sample, "response": g.text,
            "num_tokens": len(g.response_ids), "truncated": g.truncated, "correct": g.correct, "pred": g.pred,
            "reason": g.reason, "gold": problems[g.problem].answer,
            "epistemic": sum(count_epistemic(g.text, mode="paper").values())}


def _mean(xs) -> float | None:
    xs = list(xs)
    return float(sum(xs) / len(xs)) if xs else None


def level_summary(level: str, problems, guided: Sequence[Generation], scored_g, scored_u, *, seed: int = 0) -> dict:
    """Table 1 statistics of the responses generated with c, and the information statistics."""
    samples = [_sample_row("guided", level, problems, g) for g in guided]
    sizes: dict[str, int] = {}
    for s in samples:
        if s["correct"] is not None:
            sizes[s["problem_id"]] = sizes.get(s["problem_id"], 0) + 1
    table = summarize(samples, min(sizes.values()), seed=seed) if sizes else {"problems": 0, "samples": 0}
    keep_keys = ("problems", "samples", "accuracy", "accuracy_ci95", "response_length", "response_length_median",
                 "truncation_rate", "epistemic", "epistemic_per_word", "grader_reasons")
    table = {k: table[k] for k in keep_keys if k in table}
    u_scores = [s for _, s in scored_u]
    u_ids = [g.problem_id for (g, _), _ in scored_u]
    g_ids = [g.problem_id for g in guided]

    def mass(scores, attr):
        return _mean(float(getattr(s, attr).double().mean())
                     for s in scores if getattr(s, attr) is not None and s.num_tokens)

    def per_token(scores):
        tokens = sum(s.num_tokens for s in scores)
        return sum(s.total for s in scores) / tokens if tokens else None

    return {
        "context": level,
        "table1": table,
        "info": {**summarize_values([s.total for s in scored_g], g_ids, seed=seed), "per_token": per_token(scored_g),
                 "description": "mean over responses generated with c of log p(y|x,c) - log p(y|x): "
                                "estimate of I(y;c|x)"},
        "logratio_unguided": {**summarize_values([s.total for s in u_scores], u_ids, seed=seed),
                              "per_token": per_token(u_scores),
                              "description": "mean over unguided responses of log p(y|x,c) - log p(y|x): "
                                             "-KL(p(.|x) || p(.|x,c))"},
        "epistemic_mass": {
            "unguided": {"without_c": mass(u_scores, "mass_x"), "with_c": mass(u_scores, "mass_c")},
            "guided": {"without_c": mass(scored_g, "mass_x"), "with_c": mass(scored_g, "mass_c")},
        },
    }


CSV_COLUMNS = [
    "context", "problems", "responses", "score", "score_ci_low", "score_ci_high", "length", "epistemic",
    "truncation_rate", "info", "info_ci_low", "info_ci_high", "info_per_token", "logratio_unguided",
    "logratio_unguided_ci_low", "logratio_unguided_ci_high", "epistemic_mass_x_unguided",
    "epistemic_mass_c_unguided", "epistemic_mass_x_guided", "epistemic_mass_c_guided",
]


def table_rows(results: dict[str, dict]) -> list[dict[str, Any]]:
    rows = []
    for level, r in results.items():
        t, info, lu, m = r["table1"], r["info"], r["logratio_unguided"], r["epistemic_mass"]
        ci = t.get("accuracy_ci95", [None, None])
        rows.append({
            "context": level, "problems": t.get("problems", 0), "responses": t.get("samples", 0),
            "score": t.get("accuracy"), "score_ci_low": ci[0], "score_ci_high": ci[1],
            "length": t.get("response_length"), "epistemic": t.get("epistemic"),
            "truncation_rate": t.get("truncation_rate"),
            "info": info["mean"], "info_ci_low": info["ci95"][0], "info_ci_high": info["ci95"][1],
            "info_per_token": info["per_token"], "logratio_unguided": lu["mean"],
            "logratio_unguided_ci_low": lu["ci95"][0], "logratio_unguided_ci_high": lu["ci95"][1],
            "epistemic_mass_x_unguided": m["unguided"]["without_c"],
            "epistemic_mass_c_unguided": m["unguided"]["with_c"],
            "epistemic_mass_x_guided": m["guided"]["without_c"], "epistemic_mass_c_guided": m["guided"]["with_c"],
        })
    return rows


def write_table_csv(path: Path, results: dict[str, dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for row in table_rows(results):
            w.writerow({k: ("" if v is None else v) for k, v in row.items()})


def format_table(results: dict[str, dict], n: int) -> str:
    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    head = (f"{'context':<13}{'problems':>9}{'samples':>8}{'score':>8}{'length':>9}{'epist.':>8}"
            f"{'I(y;c|x)':>11}{'95% CI':>21}{'R(unguided)':>13}{'epi.mass x->c':>17}")
    lines = [head, "-" * len(head)]
    for r in table_rows(results):
        ci = "-" if r["info_ci_low"] is None else f"[{r['info_ci_low']:.2f}, {r['info_ci_high']:.2f}]"
        mass = "-" if r["epistemic_mass_x_unguided"] is None else \
            f"{r['epistemic_mass_x_unguided']:.4f}->{r['epistemic_mass_c_unguided']:.4f}"
        lines.append(
            f"{r['context']:<13}{r['problems']:>9}{r['responses']:>8}{num(r['score'], '.3f'):>8}"
            f"{num(r['length'], '.0f'):>9}{num(r['epistemic'], '.2f'):>8}{num(r['info'], '.2f'):>11}{ci:>21}"
            f"{num(r['logratio_unguided'], '.2f'):>13}{mass:>17}"
        )
    lines.append("score/length/epist.: responses generated with c (Table 1); I(y;c|x): mean log p(y|x,c) - log p(y|x) "
                 "over them (nats); R(unguided): the same over the unguided responses; epi.mass: mean probability on "
                 "epistemic-word tokens per position of the unguided responses, without -> with c.")
    return "\n".join(lines)
