"""Teacher context: what the self-distillation teacher sees besides the plain prompt.

The study's main knob is the information I(y; c | x) carried by the teacher's context c. Each
level is one template filled from the same fields; the defaults reproduce the reference
templates (lasgroup/SDPO actor.yaml, which the study ran) byte for byte for `demo`, `demo_answer`
and `feedback`, and follow the same pattern for `answer` and `solution`.

Which samples are distilled (the reference's mask):
  demo, demo_answer  a successful sibling exists (reward >= threshold; the sample itself
                     excluded when dont_reprompt_on_self_success) — the first one is shown;
  feedback           the grader's feedback on this attempt is non-empty (i.e. it failed);
  feedback_attempt   it failed and the grader extracted an answer from it ({attempt}, e.g. "Your
                     answer 7 is incorrect."); failures without an answer are not distilled;
  solution           the problem has a reference solution;
  answer, none       always.
A sample that is not distilled keeps the plain prompt and contributes 0 to the loss.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

_INSTRUCTION = "\n\nCorrectly solve the original question."

DEFAULT_TEMPLATES: dict[str, str] = {
    "none": "{prompt}",
    "feedback": "{prompt}\nThe following is feedback from your unsuccessful earlier attempt:\n\n"
                "{feedback}" + _INSTRUCTION,
    "demo_answer": "{prompt}\nCorrect solution:\n\n{demo_answer}" + _INSTRUCTION,
    "demo": "{prompt}\nCorrect solution:\n\n{demo}" + _INSTRUCTION,
    "answer": "{prompt}\nThe correct final answer is {answer}." + _INSTRUCTION,
    "solution": "{prompt}\nCorrect solution:\n\n{solution}" + _INSTRUCTION,
    "feedback_attempt": "{prompt}\nThe following is feedback from your unsuccessful earlier attempt:\n\n"
                        "Your answer {attempt} is incorrect." + _INSTRUCTION,
}

_THINK_BLOCK = re.compile(r"<think>.*?</think>\s*", re.DOTALL)


def strip_thinking(text: str) -> str:
    """Remove the reasoning: every <think>...</think> block, or — for models whose template opens
    <think> inside the prompt (DeepSeek-R1-Distill) — everything up to the first </think>."""
    if "<think>" in text:
        return _THINK_BLOCK.sub("", text)
    if "</think>" in text:
        return text.split("</think>", 1)[1].lstrip()
    return text


def fill(template: str, **fields: str) -> str:
    """Substitute {name} fields without re-parsing the values, so braces in prompts or responses
    (LaTeX!) are safe, and unknown {..} in the template text itself stay literal."""
    return re.sub(r"\{(\w+)\}", lambda m: fields[m.group(1)] if m.group(1) in fields else m.group(0), template)


@dataclass(frozen=True)
class TeacherContext:
    text: str
    """The teacher's user message (the plain prompt when not distilled)."""
    distilled: bool


def build_teacher_contexts(
    level: str,
    *,
    prompts: Sequence[str],
    responses: Sequence[str],
    rewards: Sequence[float],
    group_ids: Sequence[int],
    answers: Sequence[str],
    solutions: Sequence[str | None],
    feedbacks: Sequence[str],
    success_threshold: float = 0.5,
    exclude_self: bool = True,
    templates: dict[str, str] | None = None,
    attempts: Sequence[str | None] | None = None,
) -> list[TeacherContext]:
    """One teacher context per sample; samples of one prompt share a group id. `attempts`: the
    grader's extracted answer of each sample (None when it has none), for `feedback_attempt`."""
    template = {**DEFAULT_TEMPLATES, **(templates or {})}[level]
    n = len(prompts)
    successes: dict[int, list[int]] = {}
    for i in range(n):
        if rewards[i] >= success_threshold:
            successes.setdefault(group_ids[i], []).append(i)
    out = []
    for i in range(n):
        fields = {"prompt": prompts[i], "answer": answers[i], "feedback": feedbacks[i]}
        if level in ("demo", "demo_answer"):
            siblings = [j for j in successes.get(group_ids[i], []) if not (exclude_self and j == i)]
            if not siblings:
                out.append(TeacherContext(prompts[i], False))
                continue
            demo = responses[siblings[0]]
            fields["demo"] = demo
            fields["demo_answer"] = strip_thinking(demo)
        elif level == "feedback" and not feedbacks[i]:
            out.append(TeacherContext(prompts[i], False))
            continue
        elif level == "feedback_attempt":
            attempt = attempts[i] if attempts is not None else None
            if not feedbacks[i] or not attempt:
                out.append(TeacherContext(prompts[i], False))
                continue
            fields["attempt"] = attempt
        elif level == "solution":
            if not solutions[i]:
                out.append(TeacherContext(prompts[i], False))
                continue
            fields["solution"] = solutions[i]
        out.append(TeacherContext(fill(template, **fields), True))
    return out


def level_contexts(level: str, problem, user_text: str, group: Sequence, *, exclude_self: bool,
                   templates: dict[str, str] | None = None, success_threshold: float = 0.5) -> list[TeacherContext]:
    """`build_teacher_contexts` for the responses of one problem (objects with `.text`, `.reward`,
    `.feedback` and `.pred`, e.g. `sdlab.evaluation.sampling.Generation`), as `sdlab info` and `sdlab sft`
    build them."""
    n = len(group)
    return build_teacher_contexts(
        level, prompts=[user_text] * n, responses=[g.text for g in group], rewards=[g.reward for g in group],
        group_ids=[0] * n, answers=[problem.answer] * n, solutions=[problem.solution] * n,
        feedbacks=[g.feedback for g in group], success_threshold=success_threshold, exclude_self=exclude_self,
        templates=templates, attempts=[g.pred for g in group],
    )


def load_templates(path: str | None) -> dict[str, str]:
    """Teacher templates from a YAML mapping {level: template}; a config-style file with
    `sdpo.templates` (or a top-level `templates`) also works. None or "" -> {}."""
    from pathlib import Path

    import yaml

    from ..config import CONTEXT_LEVELS, ConfigError

    if not path:
        return {}
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
