"""`sdlab info`: the information lens and the study's Table 1 for any model.

  sdlab info --model deepseek-ai/DeepSeek-R1-Distill-Qwen-7B --benchmark dapo_math --limit 100 \\
             --contexts none,demo,demo_answer,answer --n 8 --temperature 0.6 --top-p 0.95 \\
             --max-new-tokens 32768 --solve-range 1-4 --out runs/info-r1

1. Sample n unguided responses per problem (context none) and grade them. Seeds follow
   `sdlab eval` (seed, benchmark, problem, sample), so these are the samples `sdlab eval` draws
   with the same settings. `--solve-range 1-4` keeps the problems the model solves 1-4 of n
   times (the study's selection).
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

Writes OUT/info.json, OUT/table1.csv and OUT/samples.jsonl, and prints the table.

The helpers here (`PromptBuilder`, `generate_graded`, `level_contexts`) are shared with
`sdlab sft`, which generates the same guided / unguided traces.
"""

from __future__ import annotations

import argparse
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

# ---------------------------------------------------------------------------- CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="hub id, local path, a run's final/ folder, or 'organism'")
    p.add_argument("--benchmark", required=True, help="benchmark name (aime24, gsm8k, dapo_math, ...) or a .jsonl/.parquet file")
    p.add_argument("--contexts", default="none,demo,demo_answer,answer",
                   help="comma-separated context levels: none, feedback, demo_answer, demo, answer, solution")
    p.add_argument("--limit", type=int, default=None, help="first N problems")
    p.add_argument("--n", type=int, default=8, help="responses per problem, unguided and per context level")
    p.add_argument("--temperature", type=float, default=0.6)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--max-new-tokens", type=int, default=1024)
    p.add_argument("--grader", default="math_verify", choices=["strict", "math_verify", "paper"])
    p.add_argument("--timeout", type=float, default=5.0, help="grader deadline per answer (seconds)")
    p.add_argument("--reveal-answer-in-feedback", action="store_true", help="the feedback context may state the gold answer")
    p.add_argument("--solve-range", default=None, metavar="LO-HI",
                   help="keep problems with LO..HI of the n unguided responses correct (the study: 1-4 of 8)")
    p.add_argument("--templates", default=None, help="YAML file {level: template} overriding the teacher templates")
    p.add_argument("--max-context-tokens", type=int, default=None,
                   help="cap the context prompt (keeps its last tokens, as the trainer's reprompt_truncation=left)")
    p.add_argument("--prompt-template", default="boxed", help="boxed | plain | a string with {problem}")
    p.add_argument("--system-prompt", default=None)
    thinking = p.add_mutually_exclusive_group()
    thinking.add_argument("--enable-thinking", dest="enable_thinking", action="store_true", default=None)
    thinking.add_argument("--no-thinking", dest="enable_thinking", action="store_false")
    p.add_argument("--score-temperature", type=float, default=1.0,
                   help="temperature of the scored distribution p (1 = the model itself)")
    p.add_argument("--batch-size", type=int, default=64, help="prompts per generate call")
    p.add_argument("--score-batch-size", type=int, default=8, help="sequences per scoring forward pass")
    p.add_argument("--token-level", action="store_true", help="also save per-token log-ratios in samples.jsonl")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--out", required=True, help="output folder")


def run(args) -> int:
    import torch

    from ..config import CONTEXT_LEVELS, ConfigError, ModelConfig
    from ..data.sources import load_source
    from ..models import load_model_and_tokenizer
    from ..rollout import SamplingParams, make_backend, sample_seed
    from .info import context_logratios, epistemic_token_ids

    levels = [c.strip() for c in args.contexts.split(",") if c.strip()]
    bad = [c for c in levels if c not in CONTEXT_LEVELS]
    if bad or not levels:
        raise ConfigError(f"--contexts: {bad[0] if bad else '(empty)'!r} is not one of {', '.join(CONTEXT_LEVELS)}")
    if args.n < 1:
        raise ConfigError("--n: must be >= 1")
    solve_range = parse_solve_range(args.solve_range)
    templates = load_templates(args.templates)

    torch.manual_seed(args.seed)
    model, tokenizer, path = load_model_and_tokenizer(ModelConfig(name_or_path=args.model, device=args.device, dtype=args.dtype))
    problems = load_source(args.benchmark, limit=args.limit)
    if not problems:
        raise ConfigError(f"--benchmark {args.benchmark!r} yielded no problems")
    prompts = PromptBuilder(tokenizer, template=args.prompt_template, system_prompt=args.system_prompt,
                            enable_thinking=args.enable_thinking, max_context_length=args.max_context_tokens)
    backend = make_backend("hf", model, tokenizer, batch_size=args.batch_size)
    params = SamplingParams(args.temperature, args.top_p, args.top_k, args.max_new_tokens)
    grading = dict(grader=args.grader, timeout=args.timeout, reveal_answer=args.reveal_answer_in_feedback)
    bench_key = zlib.crc32(args.benchmark.encode())

    # 1. unguided responses (the same seeds as `sdlab eval`)
    jobs = [Job(pi, k, prompts.prompt_ids(p), sample_seed(args.seed, bench_key, pi, k))
            for pi, p in enumerate(problems) for k in range(args.n)]
    unguided = generate_graded(backend, tokenizer, problems, jobs, params, level="none", **grading)
    groups = group_by_problem(unguided)
    keep = select_problems(groups, solve_range)
    _log(f"unguided: {len(unguided)} responses, {sum(bool(g.correct) for g in unguided)} correct; "
         f"{len(keep)} of {len(problems)} problems kept")

    # 2. every context level
    epi_ids = epistemic_token_ids(tokenizer)
    cache: dict = {}
    score_kw = dict(epistemic_ids=epi_ids, temperature=args.score_temperature, batch_size=args.score_batch_size, cache=cache)
    rows: list[dict] = [_sample_row("unguided", "none", problems, g) for pi in keep for g in groups[pi]]
    results: dict[str, dict] = {}
    for level in levels:
        scored_u = score_unguided(model, tokenizer, problems, prompts, groups, keep, level, templates, **score_kw)
        if level == "none":
            guided = [g for pi in keep for g in groups[pi]]
            guided_ctx = [g.prompt_ids for g in guided]
        else:
            gjobs = []
            for pi in keep:
                ctxs = level_contexts(level, problems[pi], prompts.user_text(problems[pi]), groups[pi],
                                      exclude_self=False, templates=templates)
                for g, c in zip(groups[pi], ctxs):
                    if c.distilled:
                        gjobs.append(Job(pi, g.sample, prompts.context_ids(c.text),
                                         sample_seed(args.seed, bench_key, 1 + CONTEXT_LEVELS.index(level), pi, g.sample)))
            guided = generate_graded(backend, tokenizer, problems, gjobs, params, level=level, **grading)
            guided_ctx = [g.prompt_ids for g in guided]
        scored_g = context_logratios(model, tokenizer, [prompts.prompt_ids(problems[g.problem]) for g in guided],
                                     guided_ctx, [g.response_ids for g in guided], **score_kw)
        for (g, ctx_len), s in scored_u:
            rows.append({"kind": "unguided_score", "context": level, "problem_id": g.problem_id, "sample": g.sample,
                         "context_tokens": ctx_len, **_score_fields(s, args.token_level)})
        if level != "none":
            for g, s in zip(guided, scored_g):
                rows.append({**_sample_row("guided", level, problems, g), "context_tokens": len(g.prompt_ids),
                             **_score_fields(s, args.token_level)})
        results[level] = level_summary(level, problems, guided, scored_g, scored_u, seed=args.seed)
        _log(f"{level}: {len(scored_u)} unguided responses scored, {len(guided)} responses with the context")

    settings = {"model": args.model, "resolved_model": str(path), "benchmark": args.benchmark, "limit": args.limit,
                "problems_loaded": len(problems), "problems_kept": len(keep), "solve_range": list(solve_range) if solve_range else None,
                "contexts": levels, "n": args.n, "temperature": args.temperature, "top_p": args.top_p, "top_k": args.top_k,
                "max_new_tokens": args.max_new_tokens, "grader": args.grader, "score_temperature": args.score_temperature,
                "prompt_template": args.prompt_template, "enable_thinking": args.enable_thinking, "seed": args.seed,
                "templates": templates or None, "max_context_tokens": args.max_context_tokens}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "info.json").write_text(json.dumps({"settings": settings, "contexts": results}, indent=2))
    write_table_csv(out / "table1.csv", results)
    (out / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(format_table(results, args.n))
    print(f"wrote {out / 'info.json'}, {out / 'table1.csv'}, {out / 'samples.jsonl'}")
    return 0


def _log(msg: str) -> None:
    import sys

    print(f"[sdlab info] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- shared helpers


@dataclass
class Job:
    problem: int
    sample: int
    prompt_ids: list[int]
    seed: int


@dataclass
class Generation:
    """One sampled, graded response."""

    problem: int
    """Index into the problem list."""
    problem_id: str
    sample: int
    level: str
    """The context it was generated with (none = the plain prompt)."""
    prompt_ids: list[int]
    """The prompt it was generated from (the guided prompt for level != none)."""
    response_ids: list[int]
    text: str
    truncated: bool
    correct: bool | None
    """None when the gold answer cannot be parsed."""
    pred: str | None = None
    reason: str = ""
    feedback: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def reward(self) -> float:
        return 1.0 if self.correct else 0.0


class PromptBuilder:
    """Renders prompts exactly as the trainer does: the problem in the prompt template as the user
    message, the chat template on top (`build_messages` + `render_prompt`), no special tokens added."""

    def __init__(self, tokenizer, *, template: str = "boxed", system_prompt: str | None = None,
                 enable_thinking: bool | None = None, max_prompt_length: int | None = None,
                 max_context_length: int | None = None, truncation: str = "left"):
        self.tokenizer = tokenizer
        self.template = template
        self.system_prompt = system_prompt
        self.enable_thinking = enable_thinking
        self.max_prompt_length = max_prompt_length
        self.max_context_length = max_context_length
        self.truncation = truncation
        self._cache: dict[str, list[int]] = {}

    def user_text(self, problem) -> str:
        from ..data.prompts import build_messages

        return build_messages(problem.prompt, self.template, self.system_prompt)[-1]["content"]

    def render(self, user_text: str) -> list[int]:
        from ..data.prompts import build_messages, render_prompt

        messages = build_messages(user_text, "plain", self.system_prompt)
        text = render_prompt(self.tokenizer, messages, enable_thinking=self.enable_thinking)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def prompt_ids(self, problem) -> list[int]:
        """The plain prompt (cached per problem id); the trainer keeps its last max_prompt_length tokens."""
        if problem.id not in self._cache:
            ids = self.render(self.user_text(problem))
            self._cache[problem.id] = ids[-self.max_prompt_length:] if self.max_prompt_length else ids
        return self._cache[problem.id]

    def context_ids(self, text: str) -> list[int]:
        """A teacher prompt (the plain prompt with the context), capped like the trainer's reprompt."""
        from ..algorithms.context import truncate_ids

        ids = self.render(text)
        return truncate_ids(ids, self.max_context_length, self.truncation)[0] if self.max_context_length else ids


def _grade_many(texts, golds, grader, *, truncated, timeout, reveal_answer):
    """The grading call (tests replace it)."""
    from ..rewards import grade_many

    return grade_many(texts, golds, grader, truncated=truncated, reveal_answer=reveal_answer, timeout=timeout)


def grade_texts(texts: Sequence[str], golds: Sequence[str], owners: Sequence[int], truncated: Sequence[bool], *,
                grader: str, timeout: float, reveal_answer: bool = False) -> list:
    """Grade responses; a problem whose gold answer does not parse gets None for its responses
    (graded problem by problem then, so one bad gold excludes only its own problem)."""
    from ..rewards import GoldParseError

    kw = dict(timeout=timeout, reveal_answer=reveal_answer)
    try:
        return list(_grade_many(list(texts), list(golds), grader, truncated=list(truncated), **kw))
    except GoldParseError:
        pass
    out: list = [None] * len(texts)
    for pi in sorted(set(owners)):
        idx = [i for i, o in enumerate(owners) if o == pi]
        try:
            res = _grade_many([texts[i] for i in idx], [golds[i] for i in idx], grader,
                              truncated=[truncated[i] for i in idx], **kw)
        except GoldParseError:
            continue
        for i, r in zip(idx, res):
            out[i] = r
    return out


def generate_graded(backend, tokenizer, problems, jobs: Sequence[Job], params, *, level: str, grader: str,
                    timeout: float = 5.0, reveal_answer: bool = False) -> list[Generation]:
    """Sample one response per job (its own seed) and grade it against the problem's gold answer."""
    if not jobs:
        return []
    rollouts = backend.generate([j.prompt_ids for j in jobs], [j.seed for j in jobs], params)
    texts = [tokenizer.decode(r.response_ids, skip_special_tokens=True) for r in rollouts]
    results = grade_texts(texts, [problems[j.problem].answer for j in jobs], [j.problem for j in jobs],
                          [r.truncated for r in rollouts], grader=grader, timeout=timeout, reveal_answer=reveal_answer)
    out = []
    for j, r, text, res in zip(jobs, rollouts, texts, results):
        out.append(Generation(
            problem=j.problem, problem_id=problems[j.problem].id, sample=j.sample, level=level,
            prompt_ids=list(j.prompt_ids), response_ids=list(r.response_ids), text=text, truncated=r.truncated,
            correct=None if res is None else bool(res.correct), pred=None if res is None else res.pred,
            reason="gold_unparseable" if res is None else res.reason, feedback="" if res is None else res.feedback,
        ))
    return out


def group_by_problem(gens: Sequence[Generation]) -> dict[int, list[Generation]]:
    groups: dict[int, list[Generation]] = {}
    for g in gens:
        groups.setdefault(g.problem, []).append(g)
    return groups


def parse_solve_range(text: str | Sequence[int] | None) -> tuple[int, int] | None:
    """"1-4", "1,4", "1:4" or [1, 4] -> (1, 4); None -> None."""
    from ..config import ConfigError

    if text is None or text == "":
        return None
    if isinstance(text, str):
        import re

        parts = [x for x in re.split(r"[-,:]", text.strip()) if x != ""]
    else:
        parts = list(text)
    try:
        lo, hi = (int(x) for x in parts)
    except (TypeError, ValueError):
        raise ConfigError(f"solve range {text!r}: expected LO-HI, e.g. 1-4") from None
    if lo < 0 or hi < lo:
        raise ConfigError(f"solve range {text!r}: need 0 <= LO <= HI")
    return lo, hi


def select_problems(groups: dict[int, list[Generation]], solve_range: tuple[int, int] | None) -> list[int]:
    """Problem indices in order whose gold parses and, with a solve range, whose number of correct
    unguided responses lies in [LO, HI]."""
    keep = []
    for pi in sorted(groups):
        g = groups[pi]
        if any(x.correct is None for x in g):
            continue
        if solve_range is not None and not solve_range[0] <= sum(bool(x.correct) for x in g) <= solve_range[1]:
            continue
        keep.append(pi)
    return keep


def level_contexts(level: str, problem, user_text: str, group: Sequence[Generation], *, exclude_self: bool,
                   templates: dict[str, str] | None = None, success_threshold: float = 0.5):
    """The trainer's teacher contexts (`build_teacher_contexts`) for one problem's responses."""
    from ..algorithms.context import build_teacher_contexts

    n = len(group)
    return build_teacher_contexts(
        level, prompts=[user_text] * n, responses=[g.text for g in group], rewards=[g.reward for g in group],
        group_ids=[0] * n, answers=[problem.answer] * n, solutions=[problem.solution] * n,
        feedbacks=[g.feedback for g in group], success_threshold=success_threshold, exclude_self=exclude_self,
        templates=templates,
    )


def load_templates(path: str | None) -> dict[str, str]:
    """A YAML mapping {level: template}; a config-style file with sdpo.templates also works."""
    from ..config import CONTEXT_LEVELS, ConfigError

    if not path:
        return {}
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"templates file not found: {p}")
    data = yaml.safe_load(p.read_text()) or {}
    if isinstance(data, dict) and isinstance(data.get("sdpo"), dict):
        data = data["sdpo"].get("templates", {})
    elif isinstance(data, dict) and isinstance(data.get("templates"), dict):
        data = data["templates"]
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of context level -> template")
    for k, v in data.items():
        if k not in CONTEXT_LEVELS:
            raise ConfigError(f"{p}: template level {k!r} is not one of {', '.join(CONTEXT_LEVELS)}")
        if not isinstance(v, str):
            raise ConfigError(f"{p}: template {k!r} must be a string")
    return dict(data)


# ---------------------------------------------------------------------------- scoring and summaries


def score_unguided(model, tokenizer, problems, prompts: PromptBuilder, groups, keep, level, templates, **score_kw):
    """Score every unguided response that has a context at this level (a response is never its own
    demo, as in the trainer). Returns [((generation, context_tokens), TokenScores)]."""
    from .info import context_logratios

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
    from .epistemic import count_epistemic

    return {"kind": kind, "context": level, "problem_id": g.problem_id, "sample": g.sample, "response": g.text,
            "num_tokens": len(g.response_ids), "truncated": g.truncated, "correct": g.correct, "pred": g.pred,
            "reason": g.reason, "gold": problems[g.problem].answer,
            "epistemic": sum(count_epistemic(g.text, mode="paper").values())}


def _mean(xs) -> float | None:
    xs = list(xs)
    return float(sum(xs) / len(xs)) if xs else None


def level_summary(level: str, problems, guided: Sequence[Generation], scored_g, scored_u, *, seed: int = 0) -> dict:
    """Table 1 statistics of the responses generated with c, and the information statistics."""
    from ..evaluation.runner import summarize
    from .info import summarize_values

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
        return _mean(float(getattr(s, attr).double().mean()) for s in scores if getattr(s, attr) is not None and s.num_tokens)

    def per_token(scores):
        tokens = sum(s.num_tokens for s in scores)
        return sum(s.total for s in scores) / tokens if tokens else None

    return {
        "context": level,
        "table1": table,
        "info": {**summarize_values([s.total for s in scored_g], g_ids, seed=seed), "per_token": per_token(scored_g),
                 "description": "mean over responses generated with c of log p(y|x,c) - log p(y|x): estimate of I(y;c|x)"},
        "logratio_unguided": {**summarize_values([s.total for s in u_scores], u_ids, seed=seed),
                              "per_token": per_token(u_scores),
                              "description": "mean over unguided responses of log p(y|x,c) - log p(y|x): -KL(p(.|x) || p(.|x,c))"},
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
            "length": t.get("response_length"), "epistemic": t.get("epistemic"), "truncation_rate": t.get("truncation_rate"),
            "info": info["mean"], "info_ci_low": info["ci95"][0], "info_ci_high": info["ci95"][1],
            "info_per_token": info["per_token"], "logratio_unguided": lu["mean"], "logratio_unguided_ci_low": lu["ci95"][0],
            "logratio_unguided_ci_high": lu["ci95"][1],
            "epistemic_mass_x_unguided": m["unguided"]["without_c"], "epistemic_mass_c_unguided": m["unguided"]["with_c"],
            "epistemic_mass_x_guided": m["guided"]["without_c"], "epistemic_mass_c_guided": m["guided"]["with_c"],
        })
    return rows


def write_table_csv(path: Path, results: dict[str, dict]) -> None:
    import csv

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
            f"{r['context']:<13}{r['problems']:>9}{r['responses']:>8}{num(r['score'], '.3f'):>8}{num(r['length'], '.0f'):>9}"
            f"{num(r['epistemic'], '.2f'):>8}{num(r['info'], '.2f'):>11}{ci:>21}{num(r['logratio_unguided'], '.2f'):>13}{mass:>17}"
        )
    lines.append("score/length/epist.: responses generated with c (Table 1); I(y;c|x): mean log p(y|x,c) - log p(y|x) "
                 "over them (nats); R(unguided): the same over the unguided responses; epi.mass: mean probability on "
                 "epistemic-word tokens per position of the unguided responses, without -> with c.")
    return "\n".join(lines)
