"""Exact information of each context level in world v2, computed from the writer itself.

For a problem x and a context c the writer defines the response distribution q(y | x, c) exactly
(`Writer.logprob`), so the quantity the information lens estimates from a model,

    I_trace(c) = E_c E_{y ~ q(.|x,c)} [ log q(y | x, c) - log q(y | x) ]   (y cut to the budget),

is here a property of the generator: the mean log-ratio of the writer's own responses with and
without the context (q(y | x) = the writer on an unseen problem with no context; the expectation
is a Monte-Carlo mean over contexts and responses with exact log-probabilities; its standard error
is reported). Beside it, what a context reveals about the answer and about the witness, under a
uniform prior over both:

    I_answer(c)  = log |answers| - E_c log |answers still possible given c|
    I_witness(c) = log V - E_c log |live candidates given c|      (literal: a known answer of a
                   two-step problem names no witness)

and the generator's own length, epistemic words and refuted-box rate per level (the ideal P0 row).
"""

from __future__ import annotations

import math
import random
from typing import Iterable, Sequence

from ..analysis.epistemic import count_epistemic
from .corpus2 import sibling, wrong_attempt
from .world2 import Task, WorldV2
from .writer import Knowledge, Writer, knowledge_for

__all__ = ["LEVELS_P0", "exact_information", "exact_table", "refuted_answers"]

LEVELS_P0 = ("none", "feedback", "feedback_attempt", "demo_answer", "demo", "answer")
"""The richness sweep of P0 in its predicted order of information."""


def refuted_answers(world: WorldV2, task: Task, text: str, attempt: str | None = None) -> set[str]:
    """Answers a response has literally refuted for itself, plus the context's refuted attempt.
    One-step: the candidates its own checks showed to miss the target (the answer is the witness).
    Two-step: the values it looked up at a refuted candidate (`fb x' > v` after `fk x'` missed), so
    boxing v means checking and ignoring the result; a box that merely coincides with f_b at a
    refuted candidate it never looked up is not counted."""
    from .world2 import parse_response_v2 as parse_response

    out = {attempt} if attempt else set()
    missed = set()
    for k, x, v in parse_response(text).checks:
        if k == task.k and x < world.cfg.n_values and v != task.y:
            missed.add(x)
            if not task.two_step:
                out.add(str(x))
        elif task.two_step and k == task.b and x in missed and v < world.cfg.n_values:
            out.add(world.answer_space(task)[v])
    return out


def _context_knowledge(world: WorldV2, writer: Writer, level: str, task: Task, rng: random.Random
                       ) -> tuple[Knowledge, str | None]:
    if level in ("demo",):
        return knowledge_for(world, task, "demo", demo=sibling(world, writer, task, rng)), None
    if level == "feedback_attempt":
        a = wrong_attempt(world, task, rng)
        return knowledge_for(world, task, level, attempt=a), a
    return knowledge_for(world, task, level), None


def exact_information(world: WorldV2, level: str, tasks: Sequence[Task], *, samples: int = 200, seed: int = 0
                      ) -> dict:
    """Exact-model statistics of one level over `tasks` (`samples` responses per task)."""
    writer = Writer(world)
    budget = world.cfg.max_new_tokens
    rng = random.Random(f"sdlab-organism-exact:{world.cfg.config_hash()}:{level}:{seed}")
    trace, lengths, epi, refuted, correct = [], [], [], [], []
    i_ans, i_wit = [], []
    V = world.cfg.n_values
    for task in tasks:
        base = knowledge_for(world, task, "none")
        n_answers = len(world.answer_space(task))
        gold = world.answer(task)
        for _ in range(samples):
            know, attempt = _context_knowledge(world, writer, level, task, rng)
            words, ended = writer.sample_response(task, know, rng, budget)
            if know == base:
                trace.append(0.0)  # the same distribution: exactly zero
            else:
                trace.append(writer.logprob(task, know, words, ended) - writer.logprob(task, base, words, ended))
            text = " ".join(words)
            lengths.append(len(words) + (1 if ended else 0))
            epi.append(sum(count_epistemic(text, mode="paper").values()))
            boxed = words[-2] if ended and len(words) >= 2 else None
            refuted.append(boxed is not None and boxed in refuted_answers(world, task, text, attempt))
            correct.append(boxed == gold)
            possible = 1 if know.knows_answer else n_answers - len(know.refuted)
            i_ans.append(math.log(n_answers) - math.log(possible))
            i_wit.append(math.log(V) - math.log(len(know.live)))

    def mean_se(xs):
        n = len(xs)
        m = sum(xs) / n
        var = sum((x - m) ** 2 for x in xs) / (n - 1) if n > 1 else 0.0
        return m, math.sqrt(var / n)

    unsupported = sum(math.isinf(v) for v in trace) / len(trace)
    m, se = mean_se(trace) if not unsupported else (float("inf"), float("nan"))
    return {"level": level, "responses": len(trace), "I_trace": m, "I_trace_se": se, "unsupported": unsupported,
            "I_answer": sum(i_ans) / len(i_ans), "I_witness": sum(i_wit) / len(i_wit),
            "length": sum(lengths) / len(lengths), "epistemic": sum(epi) / len(epi),
            "refuted_boxed": sum(refuted) / len(refuted), "accuracy": sum(correct) / len(correct)}


def exact_table(world: WorldV2, tasks: Iterable[Task], levels: Sequence[str] = LEVELS_P0, *, samples: int = 200,
                seed: int = 0) -> dict[str, dict[str, dict]]:
    """{kind ("one" | "two"): {level: exact statistics}} over the given tasks."""
    tasks = list(tasks)
    out: dict[str, dict[str, dict]] = {}
    for kind, sel in (("one", [t for t in tasks if not t.two_step]), ("two", [t for t in tasks if t.two_step])):
        if sel:
            out[kind] = {lv: exact_information(world, lv, sel, samples=samples, seed=seed) for lv in levels}
    return out
