r"""Grading model responses against gold answers: ``grade`` / ``grade_many``.

Graders (``GRADERS``)
---------------------
``strict``
    Extract the last ``\boxed{}`` (else the last ``Answer:`` line), normalise it and the gold
    (:func:`~sdlab.rewards.extract.normalize_answer`) and compare the strings.  Pure Python,
    no sympy, cannot hang.  ``\frac{1}{2}`` vs ``0.5`` is *incorrect* here.
``math_verify``
    Same extraction, then a sympy-free fast path, then math-verify in the worker pool:

    1. normalised strings equal -> correct;
    2. lexical guards (:mod:`~sdlab.rewards.guards`) -> ``rejected:<why>``;
    3. both sides pure arithmetic on literals (:mod:`~sdlab.rewards.exact`) -> exact
       rational comparison.  Equal -> correct; different -> incorrect, unless one side is
       written as a decimal (``0.333333`` for ``1/3``), which is left to math-verify's
       rounding rules.  This fixes Math-Verify#14: ``\frac{1}{2006!}`` vs ``\frac{1}{2004!}``
       and ``\frac{1}{2^{98}}`` vs ``\frac{1}{2^{99}}`` are *incorrect*;
    4. math-verify ``parse``/``verify`` of ``\boxed{gold}`` and ``\boxed{pred}`` in a worker
       process with a hard deadline (``timeout`` seconds per sample) -> correct /
       incorrect / ``timeout`` / ``error:<msg>``.  Results are memoised by (gold, pred).
``paper``
    The study's reward (lasgroup/beanie00 ``feedback/math.py``): the last ``\boxed{}`` that
    lies within the **last 100 characters** of the response, normalised and compared
    exactly with the normalised gold; if not equal, the math-verify fallback of steps 2-4
    (no ``Answer:`` fallback; a box earlier in the response does not count).  Deliberate
    deviations from that code, all on its false positives: gold and prediction are parsed
    as ``\boxed{...}`` (a bare ``parse("3\sqrt{2}")`` reads ``3``), exact numbers are
    compared exactly (step 3), guards/deadlines replace the ineffective ``SIGALRM``, and the
    normalisation is :func:`~sdlab.rewards.extract.normalize_answer` (a superset of
    lasgroup's ``normalize_answer``, except that only thousands separators are removed, not
    every comma: ``1,2`` does not match ``12``).

Reasons: ``correct``, ``incorrect``, ``no_answer``, ``truncated`` (``truncated=True`` and no
answer found), ``timeout``, ``rejected:<why>``, ``error:<msg>``; all but ``correct`` give
``correct=False``.  An empty box (``\boxed{}``) or an unterminated last box counts as no
answer (``pred=None``).  Repeated boxes: only the last one counts.

Gold answers are validated for every grader, whatever the responses: a gold that
normalises to "" (all graders) or that math-verify cannot parse (``parse`` returns ``[]``
or times out; ``math_verify`` and ``paper``) raises :class:`GoldParseError` -- never a
reward of 1.  ``grade_many`` raises it if any gold in the batch is bad.  Timeouts are
memoised too, but only reused for calls whose deadline is not longer than the one that
expired.

A verifier that cannot run is an exception, never a grade: if the worker pool cannot start
workers (they die at start, math-verify does not import or fails its start-up self-test,
the pool is shut down) or math-verify raises ``ImportError`` in a worker, ``grade`` /
``grade_many`` raise :class:`~sdlab.rewards.pool.VerifierUnavailable` (the message names the
cause and what to do) instead of returning ``correct=False``.  What stays a graded outcome
is what is about the answer: ``timeout`` (its comparison ran past the deadline),
``error:<msg>`` (math-verify raised on it, or its worker died while comparing it).  The
``strict`` grader never uses the pool.

Feedback (algorithms.md §1.7; text for the self-distillation teacher): ``""`` when
correct; else the truncation message if the response was truncated (as in lasgroup, this
takes precedence); else the format message if no answer was found; else
``"Your answer is incorrect."`` -- or, only with ``reveal_answer=True``, the oracle message
``"Your answer is incorrect. The correct answer is {gold}."`` (this leaks the gold).
Timeouts, rejections and errors get the same incorrect-answer feedback.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

from ..config import GRADERS
from . import _mv
from .exact import exact_value
from .extract import extract_answer, extract_boxed, normalize_answer
from .guards import check_answer
from .pool import TaskFailed, TaskTimeout, VerifierUnavailable, WorkerCrashed, _unavailable, get_pool

__all__ = [
    "GradeResult",
    "GoldParseError",
    "GRADERS",
    "grade",
    "grade_many",
    "summarize",
    "clear_cache",
    "FORMAT_FEEDBACK",
    "TRUNCATION_FEEDBACK",
    "INCORRECT_FEEDBACK",
    "ORACLE_FEEDBACK",
    "PAPER_TAIL_CHARS",
]

log = logging.getLogger(__name__)

FORMAT_FEEDBACK = "Your answer had the wrong format. The solution must be given in the format: \\boxed{your_answer}."
TRUNCATION_FEEDBACK = "Your response was truncated because it exceeded the maximum length."
INCORRECT_FEEDBACK = "Your answer is incorrect."
ORACLE_FEEDBACK = "Your answer is incorrect. The correct answer is {gold}."

PAPER_TAIL_CHARS = 100
_MEMO_SIZE = 100_000


class GoldParseError(ValueError):
    """The gold answer cannot be parsed; the sample must be excluded, never rewarded."""


@dataclass(frozen=True)
class GradeResult:
    correct: bool
    pred: str | None
    reason: str
    feedback: str

    @property
    def reward(self) -> float:
        return 1.0 if self.correct else 0.0


# ----------------------------------------------------------------------------- memo

_memo_lock = threading.Lock()
_memo: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()  # (gold, pred) -> (reason, timeout)
_gold_memo: OrderedDict[str, str | None] = OrderedDict()  # gold -> None (ok) | error text


def _reset_memo_lock_after_fork() -> None:
    global _memo_lock
    _memo_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_memo_lock_after_fork)


def _memo_get(table: OrderedDict, key):
    with _memo_lock:
        if key in table:
            table.move_to_end(key)
            return True, table[key]
    return False, None


def _memo_put(table: OrderedDict, key, value) -> None:
    with _memo_lock:
        table[key] = value
        table.move_to_end(key)
        while len(table) > _MEMO_SIZE:
            table.popitem(last=False)


def clear_cache() -> None:
    """Forget memoised math-verify outcomes and gold checks."""
    with _memo_lock:
        _memo.clear()
        _gold_memo.clear()


# ----------------------------------------------------------------------------- helpers


def _feedback(reason: str, truncated: bool, gold: str, reveal_answer: bool) -> str:
    if reason == "correct":
        return ""
    if truncated:
        return TRUNCATION_FEEDBACK
    if reason == "no_answer":
        return FORMAT_FEEDBACK
    return ORACLE_FEEDBACK.format(gold=gold) if reveal_answer else INCORRECT_FEEDBACK


def _extract(response: str, grader: str) -> str | None:
    if grader == "paper":
        return extract_boxed(response[-PAPER_TAIL_CHARS:])
    return extract_answer(response)


_SYSTEMIC_TYPES = ("ImportError", "ModuleNotFoundError", "SendError")


def _systemic(ok: bool, value) -> VerifierUnavailable | None:
    """The exception to raise if a pool outcome says the verifier cannot run, else None.

    About the answer (graded): a timeout, an exception math-verify raised on it, a worker
    that died while comparing it.  Anything else (workers cannot start, the pool is shut
    down or stalled, math-verify cannot import a module, the task cannot be sent) is systemic."""
    if ok or isinstance(value, (TaskTimeout, WorkerCrashed)):
        return None
    if isinstance(value, TaskFailed):
        if value.exc_type == "SendError":
            return _unavailable(f"the verifier task could not be sent to a worker ({value})")
        if value.exc_type in _SYSTEMIC_TYPES:
            return _unavailable(f"math-verify cannot import a module in a worker ({value})")
        return None
    if isinstance(value, VerifierUnavailable):
        return value
    return _unavailable("unexpected verifier pool failure: " + (str(value) or type(value).__name__)[:300])


def _pool_reason(ok: bool, value) -> tuple[str, bool]:
    """(reason, memoisable) from a (non-systemic) pool outcome of ``_mv.mv_compare``."""
    if ok:
        if value == "equal":
            return "correct", True
        if value == "gold_unparseable":
            return "error:gold_unparseable", False
        return "incorrect", True
    if isinstance(value, TaskTimeout):
        return "timeout", True
    if isinstance(value, TaskFailed):
        return "error:" + str(value)[:200], True
    return "error:" + (str(value) or type(value).__name__)[:200], False  # its worker died


def _fast_path(gold: str, gold_norm: str, pred: str, pred_norm: str) -> str | None:
    """Decide without sympy when possible: a reason, or None to ask math-verify."""
    if pred_norm == gold_norm:
        return "correct"
    why = check_answer(pred, gold)
    if why is not None:
        return "rejected:" + why
    if "%" in pred or "%" in gold:
        return None
    g = exact_value(gold_norm)
    if g is None:
        return None
    p = exact_value(pred_norm)
    if p is None:
        return None
    if g.value == p.value:
        return "correct"
    if g.has_decimal or p.has_decimal:
        return None  # rounding may be intended: math-verify's float rules decide
    return "incorrect"


def _check_golds(golds: Sequence[str], grader: str) -> list[tuple]:
    """Validate every distinct gold; raise GoldParseError on the first bad one.

    For the pool-based graders returns the (gold,) task tuples that still need checking
    (submitted together with the comparison tasks so both share the same deadline)."""
    pending = []
    for gold in dict.fromkeys(golds):
        if not normalize_answer(gold):
            raise GoldParseError(f"gold answer is empty after normalisation: {gold!r}")
        if grader == "strict":
            continue
        found, err = _memo_get(_gold_memo, gold)
        if found:
            if err is not None:
                raise GoldParseError(f"cannot parse gold answer {gold!r}: {err}")
            continue
        pending.append((gold,))
    return pending


# ----------------------------------------------------------------------------- public API


def grade(
    response: str,
    gold: str,
    grader: str = "math_verify",
    *,
    truncated: bool = False,
    reveal_answer: bool = False,
    timeout: float = 5.0,
) -> GradeResult:
    """Grade one response (see the module docstring).  Raises GoldParseError for a bad gold and
    VerifierUnavailable when the math-verify workers cannot run."""
    return grade_many([response], [gold], grader, truncated=[bool(truncated)], reveal_answer=reveal_answer,
                      timeout=timeout)[0]


def grade_many(
    responses: Sequence[str],
    golds: Sequence[str],
    grader: str = "math_verify",
    *,
    truncated: Sequence[bool] | bool | None = None,
    reveal_answer: bool = False,
    timeout: float = 5.0,
) -> list[GradeResult]:
    """Grade a batch; math-verify comparisons run in parallel in the worker pool, each with
    its own ``timeout``-second deadline.  Raises GoldParseError if any gold is unparseable,
    VerifierUnavailable if the verifier cannot run (never a silent ``correct=False``)."""
    if grader not in GRADERS:
        raise ValueError(f"unknown grader {grader!r}; expected one of {GRADERS}")
    responses = ["" if r is None else str(r) for r in responses]
    golds = ["" if g is None else str(g) for g in golds]
    if len(responses) != len(golds):
        raise ValueError(f"{len(responses)} responses but {len(golds)} golds")
    n = len(responses)
    if truncated is None:
        trunc = [False] * n
    elif isinstance(truncated, bool):
        trunc = [truncated] * n
    else:
        trunc = [bool(t) for t in truncated]
        if len(trunc) != n:
            raise ValueError(f"{len(trunc)} truncated flags for {n} responses")
    timeout = float(timeout)
    if timeout <= 0:
        raise ValueError("timeout must be > 0")

    pool = None if grader == "strict" else get_pool()
    gold_tasks = _check_golds(golds, grader)

    gold_norms = {g: normalize_answer(g) for g in dict.fromkeys(golds)}
    preds: list[str | None] = []
    reasons: list[str | None] = []
    need: dict[tuple[str, str], None] = {}
    for response, gold in zip(responses, golds):
        pred = _extract(response, grader)
        if pred is not None and not pred.strip():
            pred = None
        preds.append(pred)
        if pred is None:
            reasons.append(None)  # filled below (no_answer / truncated)
            continue
        pred_norm = normalize_answer(pred)
        if grader == "strict":
            reasons.append("correct" if pred_norm == gold_norms[gold] else "incorrect")
            continue
        decided = _fast_path(gold, gold_norms[gold], pred, pred_norm)
        if decided is None:
            found, cached = _memo_get(_memo, (gold, pred))
            # a remembered timeout only stands for deadlines no longer than the one it hit
            if found and not (cached[0] == "timeout" and cached[1] < timeout):
                decided = cached[0]
            else:
                need[(gold, pred)] = None
        reasons.append(decided)

    pool_out: dict[tuple[str, str], str] = {}
    if pool is not None and (gold_tasks or need):
        keys = list(need)
        calls = [(_mv.gold_parses, g) for g in gold_tasks] + [(_mv.mv_compare, k) for k in keys]
        outcomes = pool.run_calls(calls, timeout)
        for ok, value in outcomes:  # the verifier cannot run: an exception, not a grade
            exc = _systemic(ok, value)
            if exc is not None:
                raise exc
        gold_out, cmp_out = outcomes[: len(gold_tasks)], outcomes[len(gold_tasks) :]
        bad = None
        for (gold,), (ok, value) in zip(gold_tasks, gold_out):
            if ok and value:
                _memo_put(_gold_memo, gold, None)
                continue
            if ok:
                why = "math-verify parse returned []"
            elif isinstance(value, (TaskTimeout, TaskFailed)):
                why = "parsing timed out" if isinstance(value, TaskTimeout) else f"parsing failed ({value})"
            else:  # its worker died: the gold is not known to be bad, the samples get error:
                log.warning("could not check gold answer %r: %s", gold, value)
                continue
            _memo_put(_gold_memo, gold, why)
            bad = bad or (gold, why)
        if bad is not None:
            raise GoldParseError(f"cannot parse gold answer {bad[0]!r}: {bad[1]}")
        for key, (ok, value) in zip(keys, cmp_out):
            reason, memoisable = _pool_reason(ok, value)
            if reason == "error:gold_unparseable":
                raise GoldParseError(f"cannot parse gold answer {key[0]!r}")
            if memoisable:
                _memo_put(_memo, key, (reason, timeout))
            pool_out[key] = reason

    results = []
    for pred, reason, gold, tr in zip(preds, reasons, golds, trunc):
        if pred is None:
            reason = "truncated" if tr else "no_answer"
        elif reason is None:
            reason = pool_out[(gold, pred)]
        results.append(GradeResult(correct=reason == "correct", pred=pred, reason=reason,
                                   feedback=_feedback(reason, tr, gold, reveal_answer)))
    return results


def summarize(results: Sequence[GradeResult]) -> dict[str, int]:
    """Counts for metrics: timeouts, errors, rejections, missing answers (plain + truncated)."""
    out = {"reward/timeouts": 0, "reward/errors": 0, "reward/rejected": 0, "reward/no_answer": 0,
           "reward/truncated_no_answer": 0}
    for r in results:
        if r.reason == "timeout":
            out["reward/timeouts"] += 1
        elif r.reason.startswith("error:"):
            out["reward/errors"] += 1
        elif r.reason.startswith("rejected:"):
            out["reward/rejected"] += 1
        elif r.reason == "no_answer":
            out["reward/no_answer"] += 1
        elif r.reason == "truncated":
            out["reward/truncated_no_answer"] += 1
    return out
