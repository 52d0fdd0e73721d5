"""Sample responses and grade them: the one path shared by `sdlab eval`, in-training evaluation,
the information lens (`sdlab info`) and SFT's trace generation (`sdlab sft`).

A `Job` is one response to draw (problem index, sample index, prompt ids, seed); `generate_graded`
samples every job in one backend call and grades it against its problem's gold answer with
`grade_texts`, the one grading helper: a problem whose gold answer does not parse gets `None`
verdicts for its responses (and is reported as excluded), never a silent "incorrect".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from ..config import ConfigError
from ..rewards import GoldParseError, grade_many

__all__ = ["Generation", "Job", "generate_graded", "grade_texts", "group_by_problem", "parse_solve_range",
           "select_problems"]


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


def grade_texts(texts: Sequence[str], golds: Sequence[str], owners: Sequence[int], truncated: Sequence[bool], *,
                grader: str, timeout: float, reveal_answer: bool = False) -> list:
    """Grade responses (owners[i]: the problem of response i). A problem whose gold answer does not
    parse gets None for its responses; the others are graded problem by problem then, so one bad
    gold excludes only its own problem."""
    kw = dict(timeout=timeout, reveal_answer=reveal_answer)
    try:
        return list(grade_many(list(texts), list(golds), grader, truncated=list(truncated), **kw))
    except GoldParseError:
        pass
    out: list = [None] * len(texts)
    for pi in sorted(set(owners)):
        idx = [i for i, o in enumerate(owners) if o == pi]
        try:
            res = grade_many([texts[i] for i in idx], [golds[i] for i in idx], grader,
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
    if text is None or text == "":
        return None
    parts = [x for x in re.split(r"[-,:]", text.strip()) if x != ""] if isinstance(text, str) else list(text)
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
