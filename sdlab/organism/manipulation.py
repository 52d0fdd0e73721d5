"""P0, the manipulation check of world v2: the base model's own Table 1, per context level, before
any RL run (docs/organism.md, "World v2 — pre-registration").

Uses the engine's machinery throughout: prompts rendered as the trainer renders them, generation
through the ordinary rollout backend (`sdlab.rollout.make_backend("hf")`, per-sample seeds, T = 1,
top-p 1, the world's budget), the project's `strict` grader, the trainer's teacher-context builder
(`sdlab.algorithms.context.build_teacher_contexts`, as `sdlab info` uses it: the demo is the first
correct unguided response, s = correct_solutions[0]; feedback levels take each failed response's
feedback / extracted attempt), and the information lens (`sdlab.analysis.info.context_logratios`).

Procedure (`p0_table`):
  1. n unguided responses per problem (level none).
  2. For each level, its contexts from those responses; the P0 problem set is the problems for which
     every level has a context (>= 1 correct and >= 1 failed response with an extracted answer).
  3. n responses per problem generated with each level's context (cycling through the problem's
     contexts for the feedback levels); none reuses the unguided responses (I = 0 exactly).
  4. Per response: measured I = log p(y|x,c) - log p(y|x) (lens), length in tokens (EOS included),
     epistemic words (the study's substring rule), correctness, and whether the boxed answer is a
     refuted candidate (refuted by the response's own checks or by the context's attempt).
  5. Per problem means, then per kind (one-step / two-step) means over problems, with 95% bootstrap
     CIs over problems (resampling the same problems for every level, so differences, ratios and
     Spearman's rho are paired).
  6. The exact values of the generator (`information.exact_table`) beside the measured ones.
  7. The P0 criteria (`p0_criteria`), each holding only if its CI lies on the predicted side.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .information import LEVELS_P0, exact_table, refuted_answers

__all__ = ["LEVELS_P0", "METRICS", "fact_recall", "format_p0", "p0_criteria", "p0_table", "spearman"]

METRICS = ("I", "length", "epistemic", "accuracy", "refuted_boxed", "truncated")


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rho with average ranks for ties (Pearson correlation of the ranks)."""
    def ranks(x):
        x = np.asarray(x, dtype=np.float64)
        order = np.argsort(x, kind="mergesort")
        r = np.empty(len(x))
        i = 0
        while i < len(x):
            j = i
            while j + 1 < len(x) and x[order[j + 1]] == x[order[i]]:
                j += 1
            r[order[i : j + 1]] = (i + j) / 2 + 1
            i = j + 1
        return r

    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = math.sqrt(float((ra ** 2).sum() * (rb ** 2).sum()))
    return float((ra * rb).sum() / den) if den else float("nan")


def _render(tokenizer, text: str) -> list[int]:
    from ..data.prompts import build_messages, render_prompt

    return tokenizer(render_prompt(tokenizer, build_messages(text, "plain")), add_special_tokens=False)["input_ids"]


def _user_text(problem) -> str:
    from ..data.prompts import build_messages

    return build_messages(problem.prompt, "plain")[-1]["content"]


def p0_table(model, tokenizer, world, *, problems=None, n: int = 16, seed: int = 0,
             levels: Sequence[str] = LEVELS_P0, batch_size: int = 256, score_batch_size: int = 64,
             n_boot: int = 2000, exact_samples: int = 50, keep_samples: bool = False) -> dict[str, Any]:
    """The P0 table of one base model (see the module doc). `problems` defaults to the RL pool and
    the iid split (300 problems, half two-step; none of them in pretraining)."""
    import torch

    from ..algorithms.context import build_teacher_contexts
    from ..analysis.epistemic import count_epistemic
    from ..analysis.info import context_logratios
    from ..config import CONTEXT_LEVELS
    from ..rewards import grade_many
    from ..rollout import SamplingParams, make_backend, sample_seed

    if "none" not in levels:
        raise ValueError("P0 needs the level none (the unguided responses)")
    problems = list(problems if problems is not None else world.rl_pool() + world.problems("iid"))
    budget = world.cfg.max_new_tokens
    backend = make_backend("hf", model, tokenizer, batch_size=batch_size)
    params = SamplingParams(1.0, 1.0, 0, budget)
    user = [_user_text(p) for p in problems]
    x_ids = [_render(tokenizer, u) for u in user]

    def generate(prompt_ids, seeds):
        rollouts = backend.generate(prompt_ids, seeds, params)
        texts = [tokenizer.decode(r.response_ids, skip_special_tokens=True) for r in rollouts]
        return rollouts, texts

    # 1. unguided
    jobs = [(pi, j) for pi in range(len(problems)) for j in range(n)]
    rollouts, texts = generate([x_ids[pi] for pi, _ in jobs], [sample_seed(seed, 0, pi, j) for pi, j in jobs])
    grades = grade_many(texts, [problems[pi].answer for pi, _ in jobs], "strict",
                        truncated=[r.truncated for r in rollouts])
    unguided = {pi: [] for pi in range(len(problems))}
    for (pi, j), r, t, g in zip(jobs, rollouts, texts, grades):
        unguided[pi].append({"ids": list(r.response_ids), "text": t, "truncated": r.truncated, "grade": g})

    # 2. contexts per level
    contexts: dict[str, dict[int, list[tuple[str, str | None]]]] = {}
    for level in levels:
        contexts[level] = {}
        if level == "none":
            continue
        for pi, group in unguided.items():
            p = problems[pi]
            ctxs = build_teacher_contexts(
                level, prompts=[user[pi]] * n, responses=[g["text"] for g in group],
                rewards=[g["grade"].reward for g in group], group_ids=[0] * n, answers=[p.answer] * n,
                solutions=[p.solution] * n, feedbacks=[g["grade"].feedback for g in group],
                attempts=[g["grade"].pred for g in group], exclude_self=False)
            chosen = [(c.text, g["grade"].pred if level == "feedback_attempt" else None)
                      for c, g in zip(ctxs, group) if c.distilled]
            if chosen:
                contexts[level][pi] = chosen
    keep = [pi for pi in range(len(problems)) if all(pi in contexts[lv] for lv in levels if lv != "none")]

    # 3-4. guided generations and per-response statistics
    per_response: dict[str, list[dict]] = {}
    epi = lambda t: sum(count_epistemic(t, mode="paper").values())  # noqa: E731
    cache: dict = {}
    for li, level in enumerate(levels):
        rows = []
        if level == "none":
            for pi in keep:
                for g in unguided[pi]:
                    rows.append({"pi": pi, "ctx_ids": x_ids[pi], "ids": g["ids"], "text": g["text"],
                                 "truncated": g["truncated"], "correct": g["grade"].correct, "attempt": None})
        else:
            gj = [(pi, j) for pi in keep for j in range(n)]
            ctx = {(pi, j): contexts[level][pi][j % len(contexts[level][pi])] for pi, j in gj}
            c_ids = {(pi, j): _render(tokenizer, ctx[(pi, j)][0]) for pi, j in gj}
            level_id = 1 + CONTEXT_LEVELS.index(level)
            ro, tx = generate([c_ids[k] for k in gj], [sample_seed(seed, level_id, pi, j) for pi, j in gj])
            gr = grade_many(tx, [problems[pi].answer for pi, _ in gj], "strict", truncated=[r.truncated for r in ro])
            for (pi, j), r, t, g in zip(gj, ro, tx, gr):
                rows.append({"pi": pi, "ctx_ids": c_ids[(pi, j)], "ids": list(r.response_ids), "text": t,
                             "truncated": r.truncated, "correct": g.correct, "attempt": ctx[(pi, j)][1]})
        if level == "none":
            for r in rows:
                r["I"] = 0.0
        else:
            with torch.no_grad():
                scores = context_logratios(model, tokenizer, [x_ids[r["pi"]] for r in rows],
                                           [r["ctx_ids"] for r in rows], [r["ids"] for r in rows],
                                           epistemic_ids=None, batch_size=score_batch_size,
                                           cache=cache)
            for r, s in zip(rows, scores):
                r["I"] = s.total
        for r in rows:
            task = world.task(problems[r["pi"]])
            boxed = None if r["truncated"] else _boxed(r["text"])
            r["length"] = len(r["ids"])
            r["epistemic"] = epi(r["text"])
            r["accuracy"] = float(bool(r["correct"]))
            refuted = refuted_answers(world, task, r["text"], r["attempt"])
            r["refuted_boxed"] = float(boxed is not None and boxed in refuted)
            r["truncated"] = float(r["truncated"])
            r["two_step"] = task.two_step
        per_response[level] = rows

    # 5. per-problem means and bootstrap over problems
    out: dict[str, Any] = {"settings": {"n": n, "seed": seed, "levels": list(levels), "budget": budget,
                                        "problems_loaded": len(problems), "problems_kept": len(keep)},
                           "kinds": {}}
    rng = np.random.default_rng(seed)
    for kind in ("two", "one"):
        sel = [pi for pi in keep if world.task(problems[pi]).two_step == (kind == "two")]
        if not sel:
            continue
        index = {pi: i for i, pi in enumerate(sel)}
        table = {}
        for level in levels:
            per = {m: np.zeros(len(sel)) for m in METRICS}
            cnt = np.zeros(len(sel))
            for r in per_response[level]:
                if r["pi"] in index:
                    i = index[r["pi"]]
                    cnt[i] += 1
                    for m in METRICS:
                        per[m][i] += r[m]
            table[level] = {m: per[m] / np.maximum(cnt, 1) for m in METRICS}
        boots = rng.integers(0, len(sel), size=(n_boot, len(sel)))
        out["kinds"][kind] = {"problems": len(sel), "levels": {}, "_per_problem": table, "_boots": boots}
        for level in levels:
            out["kinds"][kind]["levels"][level] = {
                m: {"mean": float(table[level][m].mean()), "ci95": _ci(table[level][m][boots].mean(1))}
                for m in METRICS}
    # 6. exact values from the generator on the same problems
    tasks = [world.task(problems[pi]) for pi in keep]
    out["exact"] = exact_table(world, tasks, levels, samples=exact_samples, seed=seed)
    out["criteria"] = p0_criteria(out)
    for kind in out["kinds"].values():
        kind.pop("_per_problem")
        kind.pop("_boots")
    if keep_samples:
        out["samples"] = {lv: [{k: v for k, v in r.items() if k not in ("ids", "ctx_ids")} for r in rows]
                          for lv, rows in per_response.items()}
    return out


def _boxed(text: str) -> str | None:
    from .world import extract_boxed

    return extract_boxed(text)


def _ci(values: np.ndarray) -> list[float]:
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [float(lo), float(hi)]


def p0_criteria(result: dict) -> list[dict]:
    """The pre-registered P0 criteria on a `p0_table` result that still holds its per-problem values
    (`_per_problem`, `_boots`). Each criterion: name, value (point estimate), ci95, wanted, holds."""
    crits: list[dict] = []

    def add(name, value, ci, wanted, holds):
        crits.append({"criterion": name, "value": float(value), "ci95": [float(ci[0]), float(ci[1])],
                      "wanted": wanted, "holds": bool(holds)})

    for kind in ("two", "one"):
        k = result["kinds"].get(kind)
        if k is None or "_per_problem" not in k:
            continue
        t, boots = k["_per_problem"], k["_boots"]
        have = set(t)

        def mean(level, m):
            return t[level][m].mean(), t[level][m][boots].mean(1)

        def ratio(a, b, m):
            va, ba = mean(a, m)
            vb, bb = mean(b, m)
            with np.errstate(divide="ignore", invalid="ignore"):
                return va / vb, _ci(ba / bb)

        def diff(a, b, m):
            va, ba = mean(a, m)
            vb, bb = mean(b, m)
            return va - vb, _ci(ba - bb)

        if kind == "two":
            if "none" in have:
                v, _ = mean("none", "I")
                add("two-step: I(none) = 0 (identical prompts)", v, [v, v], "= 0", abs(v) < 1e-6)
            if "feedback" in have:
                v, b = mean("feedback", "I")
                ci = _ci(b)
                add("two-step: 0 < I(feedback)", v, ci, "CI > 0", ci[0] > 0)
            pairs = [("feedback", "feedback_attempt", "<="), ("feedback_attempt", "demo_answer", "<"),
                     ("answer", "demo", "<"), ("demo_answer", "demo", "<")]
            for a, b, op in pairs:
                if a in have and b in have:
                    v, ci = diff(b, a, "I")
                    if op == "<":
                        add(f"two-step: I({a}) < I({b})", v, ci, f"CI of I({b}) - I({a}) > 0", ci[0] > 0)
                    else:
                        add(f"two-step: I({a}) <= I({b})", v, ci, f"CI of I({b}) - I({a}) not all < 0", ci[1] >= 0)
            if {"demo_answer", "answer"} <= have:
                v, ci = ratio("demo_answer", "answer", "I")
                add("two-step: I(demo_answer) ~ I(answer) (within 10%)", v, ci, "CI of ratio in [1/1.1, 1.1]",
                    ci[0] >= 1 / 1.1 and ci[1] <= 1.1)
            if {"feedback", "none"} <= have:
                for m in ("length", "epistemic"):
                    v, ci = ratio("feedback", "none", m)
                    add(f"two-step: {m}(feedback) within 10% of none", v, ci, "CI of ratio in [0.9, 1.1]",
                        ci[0] >= 0.9 and ci[1] <= 1.1)
            if {"demo_answer", "none"} <= have:
                v, ci = ratio("demo_answer", "none", "length")
                add("two-step: length(demo_answer) >= 0.7 x none", v, ci, "CI >= 0.7", ci[0] >= 0.7)
            if {"demo", "none"} <= have:
                v, ci = ratio("demo", "none", "length")
                add("two-step: length(demo) <= 0.35 x none", v, ci, "CI <= 0.35", ci[1] <= 0.35)
            order = [lv for lv in LEVELS_P0 if lv in have]
            if len(order) >= 3:
                point = spearman([t[lv]["I"].mean() for lv in order], [t[lv]["length"].mean() for lv in order])
                bI = np.stack([t[lv]["I"][boots].mean(1) for lv in order], 1)
                bL = np.stack([t[lv]["length"][boots].mean(1) for lv in order], 1)
                rhos = np.array([spearman(bI[i], bL[i]) for i in range(len(bI))])
                ci = _ci(rhos)
                add("two-step: Spearman rho(I, length) over the levels <= -0.8", point, ci, "CI <= -0.8", ci[1] <= -0.8)
        else:
            trio = [lv for lv in ("demo", "demo_answer", "answer") if lv in have]
            for m in ("length", "I"):
                for i in range(len(trio)):
                    for j in range(i + 1, len(trio)):
                        v, ci = ratio(trio[i], trio[j], m)
                        add(f"one-step: {m}({trio[i]}) ~ {m}({trio[j]}) (within 10%)", v, ci,
                            "CI of ratio in [1/1.1, 1.1]", ci[0] >= 1 / 1.1 and ci[1] <= 1.1)
    # refuted boxes, both kinds pooled
    for level in ("feedback", "feedback_attempt"):
        vals = []
        for kind in ("two", "one"):
            k = result["kinds"].get(kind)
            if k is not None and "_per_problem" in k and level in k["_per_problem"]:
                vals.append(k["_per_problem"][level]["refuted_boxed"])
        if vals:
            allv = np.concatenate(vals)
            rng = np.random.default_rng(0)
            b = allv[rng.integers(0, len(allv), size=(2000, len(allv)))].mean(1)
            ci = _ci(b)
            add(f"{level}: share of responses boxing a refuted candidate <= 5%", allv.mean(), ci, "CI <= 0.05",
                ci[1] <= 0.05)
    return crits


def format_p0(result: dict) -> str:
    """Markdown tables: measured (lens) and exact (generator) per level and kind, then the criteria."""
    lines = []
    for kind, k in result["kinds"].items():
        ex = result.get("exact", {}).get(kind, {})
        lines.append(f"\n**{'two' if kind == 'two' else 'one'}-step problems** ({k['problems']} problems, "
                     f"{result['settings']['n']} samples each per level)\n")
        lines.append("| level | I measured (nats) | I exact | I_answer | length | epistemic | accuracy | "
                     "refuted boxed | truncated |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for level, r in k["levels"].items():
            e = ex.get(level, {})
            cell = lambda m, f: f"{r[m]['mean']:{f}} [{r[m]['ci95'][0]:{f}}, {r[m]['ci95'][1]:{f}}]"  # noqa: E731
            ie = e.get("I_trace", float("nan"))
            ie = "inf" if ie == math.inf else f"{ie:.2f}"
            lines.append(f"| {level} | {cell('I', '.2f')} | {ie} | "
                         f"{e.get('I_answer', float('nan')):.2f} | {cell('length', '.1f')} | "
                         f"{cell('epistemic', '.2f')} | {r['accuracy']['mean']:.2f} | "
                         f"{r['refuted_boxed']['mean']:.3f} | {r['truncated']['mean']:.2f} |")
    lines.append("\n| P0 criterion | value | 95% CI | wanted | holds |")
    lines.append("|---|---|---|---|---|")
    for c in result["criteria"]:
        lines.append(f"| {c['criterion']} | {c['value']:.3f} | [{c['ci95'][0]:.3f}, {c['ci95'][1]:.3f}] | "
                     f"{c['wanted']} | {'yes' if c['holds'] else '**no**'} |")
    return "\n".join(lines)


def fact_recall(model, tokenizer, world) -> float:
    """Share of all facts `fK x >` whose greedy next word is the true value letter."""
    import torch

    from .world import value_word

    facts = world.facts()
    enc = tokenizer([f"f{k} {x} >" for k, x, _ in facts], add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        logits = model(input_ids=enc["input_ids"].to(next(model.parameters()).device)).logits[:, -1]
    pred = tokenizer.convert_ids_to_tokens(logits.argmax(-1).tolist())
    return sum(p == value_word(v) for p, (_, _, v) in zip(pred, facts)) / len(facts)
