r"""Rewards: ``grade(response, gold, grader) -> GradeResult`` with a hardened math-verify pool.

* :mod:`.extract`  -- last ``\boxed{}`` / ``Answer:`` extraction and answer normalisation
* :mod:`.guards`   -- lexical pre-filters run before any sympy call
* :mod:`.exact`    -- exact rational fast path for purely numeric answers
* :mod:`.pool`     -- persistent worker processes (fresh interpreters, JSON over pipes) with
  hard per-task deadlines; :class:`VerifierUnavailable` when they cannot run
* :mod:`.grader`   -- the ``strict`` / ``math_verify`` / ``paper`` graders and feedback

See ``docs/architecture.md`` ("Rewards") for the contract.
"""

from .exact import exact_value
from .extract import extract_answer, extract_answer_line, extract_boxed, normalize_answer
from .grader import (
    FORMAT_FEEDBACK,
    GRADERS,
    INCORRECT_FEEDBACK,
    ORACLE_FEEDBACK,
    PAPER_TAIL_CHARS,
    TRUNCATION_FEEDBACK,
    GoldParseError,
    GradeResult,
    clear_cache,
    grade,
    grade_many,
    summarize,
)
from .guards import DEFAULT_LIMITS, GuardLimits, check_answer
from .pool import (
    PoolError,
    TaskFailed,
    TaskTimeout,
    VerifierPool,
    VerifierUnavailable,
    WorkerCrashed,
    configure_pool,
    get_pool,
    shutdown_pool,
)

__all__ = [
    "GRADERS",
    "GradeResult",
    "GoldParseError",
    "grade",
    "grade_many",
    "summarize",
    "clear_cache",
    "FORMAT_FEEDBACK",
    "TRUNCATION_FEEDBACK",
    "INCORRECT_FEEDBACK",
    "ORACLE_FEEDBACK",
    "PAPER_TAIL_CHARS",
    "extract_boxed",
    "extract_answer",
    "extract_answer_line",
    "normalize_answer",
    "exact_value",
    "check_answer",
    "GuardLimits",
    "DEFAULT_LIMITS",
    "VerifierPool",
    "PoolError",
    "TaskTimeout",
    "TaskFailed",
    "WorkerCrashed",
    "VerifierUnavailable",
    "get_pool",
    "configure_pool",
    "shutdown_pool",
]
