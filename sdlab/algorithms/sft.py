"""Off-policy self-distillation (the study's §4): trace selection and the SFT loss.

The student's training example is always (the *plain* prompt x, a correct trace y): traces
generated with a guidance context c are distilled into the unguided prompt, which is what
makes SFT on solution-guided traces teach the confident, low-epistemic style without the
information that justified it (the study's Table 2).

The loss is the causal-LM negative log-likelihood of the response tokens only; prompt tokens
never enter it (the engine scores response positions only, `sdlab.engine.batch`). Aggregation
uses the engine's global normalisers, so micro-batching does not change an update. The training
loop is `sdlab.engine.sft`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..config import SFT_LOSS_MODES
from .aggregation import aggregate

__all__ = ["Trace", "select_traces", "sft_loss", "truncate_example"]


@dataclass
class Trace:
    """One SFT example: the plain prompt and a correct response (maybe generated with guidance)."""

    problem_id: str
    guidance: str
    """The context the response was generated with (none = unguided)."""
    sample: int
    prompt_ids: list[int]
    """The plain prompt: what the student sees at inference."""
    response_ids: list[int]
    prompt: str = ""
    response: str = ""
    epistemic: int = 0
    guided_prompt_tokens: int = 0
    """Length of the prompt the response was generated from (the guided prompt when guidance != none)."""

    @property
    def num_tokens(self) -> int:
        return len(self.response_ids)

    def to_dict(self) -> dict:
        return {"problem_id": self.problem_id, "guidance": self.guidance, "sample": self.sample,
                "prompt": self.prompt, "response": self.response, "prompt_ids": self.prompt_ids,
                "response_ids": self.response_ids, "num_tokens": self.num_tokens,
                "prompt_tokens": len(self.prompt_ids), "guided_prompt_tokens": self.guided_prompt_tokens,
                "epistemic": self.epistemic, "correct": True}


def select_traces(
    problems: Sequence,
    plain_prompts: Sequence[list[int]],
    plain_texts: Sequence[str],
    candidates: dict[int, Sequence],
    *,
    guidance: str,
    per_problem: int | None = 1,
    problem_filter: Sequence[int] | None = None,
    max_problems: int | None = None,
) -> list[Trace]:
    """Keep the candidates the grader marked correct (the grader already fails truncated responses),
    at most `per_problem` per problem (in sample order; None or 0 = all), with the plain prompt of
    their problem as the input.

    problems / plain_prompts / plain_texts: one entry per problem (index = problem index).
    candidates: problem index -> generations (objects with `.sample`, `.response_ids`, `.text`,
    `.correct`, `.prompt_ids`), the unguided ones for guidance=none, else the guided.
    problem_filter: the problem indices allowed (e.g. a solve-rate band), in order.
    max_problems: stop after this many problems with at least one trace (the study's max_collect).
    """
    from ..analysis.epistemic import count_epistemic

    order = list(problem_filter) if problem_filter is not None else sorted(candidates)
    traces: list[Trace] = []
    used = 0
    for pi in order:
        if max_problems is not None and used >= max_problems:
            break
        good = [g for g in candidates.get(pi, []) if g.correct is True]
        if per_problem:
            good = good[:per_problem]
        if not good:
            continue
        used += 1
        for g in good:
            traces.append(Trace(
                problem_id=problems[pi].id, guidance=guidance, sample=g.sample, prompt_ids=list(plain_prompts[pi]),
                response_ids=list(g.response_ids), prompt=plain_texts[pi], response=g.text,
                epistemic=sum(count_epistemic(g.text, mode="paper").values()), guided_prompt_tokens=len(g.prompt_ids),
            ))
    return traces


def truncate_example(prompt_ids: list[int], response_ids: list[int], max_length: int) -> tuple[list[int], bool] | None:
    """Cap prompt + response at max_length tokens by cutting the response's end (LLaMA-Factory's
    cutoff_len keeps the start). None when the prompt alone fills max_length."""
    room = max_length - len(prompt_ids)
    if room <= 0:
        return None
    if len(response_ids) <= room:
        return list(response_ids), False
    return list(response_ids[:room]), True


def sft_loss(logp: torch.Tensor, mask: torch.Tensor, *, mode: str = "token-mean", num_tokens, num_seqs) -> torch.Tensor:
    """Negative log-likelihood of the masked (response) tokens, aggregated with the optimizer
    batch's normalisers: token-mean = summed NLL / response tokens in the whole batch (what HF's
    `labels` loss with -100 on the prompt gives for one batch); seq-mean-token-mean = mean over
    sequences of each one's token mean."""
    if mode not in SFT_LOSS_MODES:
        raise ValueError(f"sft loss mode {mode!r}: expected one of {', '.join(SFT_LOSS_MODES)}")
    return aggregate(-logp, mask, mode, num_tokens=num_tokens, num_seqs=num_seqs)
