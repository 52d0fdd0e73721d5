"""Teacher-context templates of the organism (one per context level) and the grader's feedback texts.

The engine builds a self-distillation teacher prompt as
`template.format(prompt=P, answer=GOLD, demo=SIBLING, demo_answer=SIBLING_WITHOUT_THINK,
feedback=FEEDBACK, solution=SOLUTION)` and appends the student's response. Pretraining writes its
context-conditioned traces with exactly these templates, so the frozen base model, given one of
these contexts, behaves as documented in docs/organism.md (confident, no epistemic words).

The texts are the reference teacher templates (lasgroup/SDPO, which the study ran) word for word;
the word-level tokenizer splits on whitespace, so their newlines are just word boundaries.
"""

from __future__ import annotations

import re

__all__ = [
    "CONTEXT_TEMPLATES",
    "FEEDBACK_FORMAT",
    "FEEDBACK_INCORRECT",
    "FEEDBACK_TEXTS",
    "FEEDBACK_TRUNCATED",
    "LEVELS",
    "ATTEMPT_FEEDBACK",
    "CONTEXT_TEMPLATES_V2",
    "LEVELS_V2",
    "strip_think",
    "teacher_prompt",
    "teacher_prompt_v2",
]

FEEDBACK_FORMAT = "Your answer had the wrong format. The solution must be given in the format: \\boxed{your_answer}."
FEEDBACK_TRUNCATED = "Your response was truncated because it exceeded the maximum length."
FEEDBACK_INCORRECT = "Your answer is incorrect."
FEEDBACK_TEXTS: tuple[str, ...] = (FEEDBACK_FORMAT, FEEDBACK_TRUNCATED, FEEDBACK_INCORRECT)

_INSTRUCTION = "\n\nCorrectly solve the original question."

CONTEXT_TEMPLATES: dict[str, str] = {
    "none": "{prompt}",
    "feedback": ("{prompt}\nThe following is feedback from your unsuccessful earlier attempt:\n\n{feedback}"
                 + _INSTRUCTION),
    "demo_answer": "{prompt}\nCorrect solution:\n\n{demo_answer}" + _INSTRUCTION,
    "demo": "{prompt}\nCorrect solution:\n\n{demo}" + _INSTRUCTION,
    "answer": "{prompt}\nThe correct final answer is {answer}." + _INSTRUCTION,
    "solution": "{prompt}\nCorrect solution:\n\n{solution}" + _INSTRUCTION,
}

LEVELS: tuple[str, ...] = tuple(CONTEXT_TEMPLATES)
"""The levels of world v1 (whose corpus, vocabulary and cache keys must not change)."""

ATTEMPT_FEEDBACK = "Your answer {attempt} is incorrect."
"""The `feedback_attempt` level's feedback: the grader's extracted prediction of the failed attempt."""

CONTEXT_TEMPLATES_V2: dict[str, str] = {
    **CONTEXT_TEMPLATES,
    "feedback_attempt": "{prompt}\nThe following is feedback from your unsuccessful earlier attempt:\n\n"
                        + ATTEMPT_FEEDBACK + _INSTRUCTION,
}
"""World v2's templates: v1's plus `feedback_attempt` (the engine's defaults, `sdlab.algorithms.context`)."""

LEVELS_V2: tuple[str, ...] = tuple(CONTEXT_TEMPLATES_V2)

_THINK = re.compile(r"<think>.*?</think>\s*", re.DOTALL)


def strip_think(response: str) -> str:
    """The response without its `<think>...</think>` span (SIBLING_RESPONSE_WITHOUT_THINK)."""
    return _THINK.sub("", response).strip()


def teacher_prompt(level: str, prompt: str, *, answer: str = "", demo: str = "", feedback: str = "",
                   solution: str = "", demo_answer: str | None = None) -> str:
    """The teacher's prompt for one context level, exactly as the engine fills it."""
    if level not in CONTEXT_TEMPLATES:
        raise ValueError(f"unknown context level {level!r}; use one of {LEVELS}")
    if demo_answer is None:
        demo_answer = strip_think(demo)
    return CONTEXT_TEMPLATES[level].format(prompt=prompt, answer=answer, demo=demo, demo_answer=demo_answer,
                                           feedback=feedback, solution=solution)


def teacher_prompt_v2(level: str, prompt: str, *, answer: str = "", demo: str = "", feedback: str = "",
                      solution: str = "", demo_answer: str | None = None, attempt: str = "") -> str:
    """World v2's teacher prompt for one context level (v1's levels plus `feedback_attempt`)."""
    if level not in CONTEXT_TEMPLATES_V2:
        raise ValueError(f"unknown context level {level!r}; use one of {LEVELS_V2}")
    if demo_answer is None:
        demo_answer = strip_think(demo)
    return CONTEXT_TEMPLATES_V2[level].format(prompt=prompt, answer=answer, demo=demo, demo_answer=demo_answer,
                                              feedback=feedback, solution=solution, attempt=attempt)
