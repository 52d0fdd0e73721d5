"""The information lens: how much a teacher context c changes the model's view of a response.

For a prompt x, a context c and a response y, the per-token log-ratio and its sum are

    r_t(y) = log p(y_t | x, c, y_<t) - log p(y_t | x, y_<t)
    R(y)   = sum_t r_t(y) = log p(y | x, c) - log p(y | x)

R is the pointwise conditional mutual information of y and c given x. Its mean is

- over y ~ p(. | x, c) (responses generated *with* c): KL(p(.|x,c) || p(.|x)) >= 0, the Monte
  Carlo estimate of the study's I(y; c | x) = H(y|x) - H(y|x,c) (Eq. 2) for the contexts used.
  It is unbiased when the responses are sampled from the scored distribution (temperature 1,
  top-p 1; `score_temperature` must equal the sampling temperature otherwise);
- over y ~ p(. | x) (the student's own, unguided responses, what an SDPO teacher scores):
  -KL(p(.|x) || p(.|x,c)) <= 0, how much less likely the context makes the student's responses.

With c = none the two prompts are the same token sequence, so every r_t is exactly 0.

Besides the log-probs, each position reports the probability mass the model puts on the
epistemic words (the token ids that spell one of them on their own, as the trainer's SDPO
diagnostics do) with and without c.

Everything is batched through `sdlab.engine.batch` (pack -> response positions only); identical
(context, response) pairs are scored once, which is what makes c = none free and exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..engine.batch import pack
from ..engine.head import response_hidden, score_tokens
from .epistemic import epistemic_token_ids

__all__ = [
    "TokenScores",
    "context_logratios",
    "epistemic_token_ids",
    "response_scores",
    "summarize_values",
]


@dataclass
class TokenScores:
    """Per-token scores of one response y under the prompt with context (c) and without (x)."""

    logp_c: torch.Tensor
    """[T] log p(y_t | x, c, y_<t)"""
    logp_x: torch.Tensor
    """[T] log p(y_t | x, y_<t)"""
    mass_c: torch.Tensor | None = None
    """[T] probability mass on the epistemic token ids with c (None when no ids were given)."""
    mass_x: torch.Tensor | None = None

    @property
    def logratio(self) -> torch.Tensor:
        """[T] r_t = log p(y_t | x, c, y_<t) - log p(y_t | x, y_<t)."""
        return self.logp_c - self.logp_x

    @property
    def total(self) -> float:
        """R(y) = log p(y | x, c) - log p(y | x), summed in float64."""
        return float(self.logratio.double().sum())

    @property
    def num_tokens(self) -> int:
        return int(self.logp_c.numel())


def _as_batch(x) -> list[list[int]]:
    """Accept one sequence (list of ints / 1-D tensor) or a sequence of them ([] = no sequences)."""
    if isinstance(x, torch.Tensor):
        x = x.tolist()
    x = list(x)
    if not x:
        return []
    if isinstance(x[0], (int, np.integer)):
        return [[int(t) for t in x]]
    return [[int(t) for t in (s.tolist() if isinstance(s, torch.Tensor) else s)] for s in x]


@torch.no_grad()
def response_scores(
    model,
    pad_id: int,
    contexts: Sequence[list[int]],
    responses: Sequence[list[int]],
    *,
    extra_ids: torch.Tensor | None = None,
    temperature: float = 1.0,
    batch_size: int = 8,
    chunk_size: int = 1024,
    cache: dict | None = None,
) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """(log p(y_t | context, y_<t) [T], epistemic mass [T] or None) for each (context, response).

    Pairs are deduplicated (and looked up in / added to `cache` when given, keyed by the token
    tuples and the temperature), sorted by length and scored `batch_size` sequences per forward,
    through the engine's one scoring path (`sdlab.engine.head`: hidden states, then logits
    `chunk_size` positions at a time, so no [tokens, V] tensor exists)."""
    if len(contexts) != len(responses):
        raise ValueError("response_scores: contexts and responses differ in length")
    cache = {} if cache is None else cache
    keys = [(tuple(c), tuple(r), float(temperature), extra_ids is not None) for c, r in zip(contexts, responses)]
    todo = sorted({k for k in keys if k not in cache}, key=lambda k: -(len(k[0]) + len(k[1])))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(todo), max(1, batch_size)):
            chunk_keys = todo[start : start + batch_size]
            batch = pack([list(k[0]) for k in chunk_keys], [list(k[1]) for k in chunk_keys], pad_id).to(device)
            hidden, head = response_hidden(model, batch, temperature)
            logp, _, mass = score_tokens(hidden, head, batch.tokens, chunk_size, extra_ids=extra_ids)
            logp = batch.to_rows(logp.float()).cpu()
            mass = batch.to_rows(mass.float()).cpu() if extra_ids is not None else None
            for i, k in enumerate(chunk_keys):
                n = len(k[1])
                cache[k] = (logp[i, :n].clone(), mass[i, :n].clone() if mass is not None else None)
    finally:
        model.train(was_training)
    return [cache[k] for k in keys]


def context_logratios(
    model,
    tokenizer,
    x_ids,
    c_ids,
    y_ids,
    *,
    epistemic_ids: torch.Tensor | str | None = "auto",
    temperature: float = 1.0,
    batch_size: int = 8,
    chunk_size: int = 1024,
    cache: dict | None = None,
) -> list[TokenScores]:
    """Per-token log p(y_t | x, c, y_<t) - log p(y_t | x, y_<t) for each response.

    x_ids: the plain prompt's token ids (what the student sees); c_ids: the token ids of the prompt
    that contains x *and* the context c (the teacher's rendered prompt; equal to x_ids for c =
    none); y_ids: the response's token ids. Each argument is one sequence or a list of them (one
    per response). epistemic_ids: token ids whose probability mass is reported per position;
    "auto" uses the trainer's epistemic-word ids for this tokenizer, None skips the mass.
    """
    xs, cs, ys = _as_batch(x_ids), _as_batch(c_ids), _as_batch(y_ids)
    if not (len(xs) == len(cs) == len(ys)):
        raise ValueError(f"context_logratios: {len(xs)} prompts, {len(cs)} contexts, {len(ys)} responses")
    if isinstance(epistemic_ids, str):
        if epistemic_ids != "auto":
            raise ValueError("epistemic_ids must be 'auto', a tensor of token ids or None")
        epistemic_ids = epistemic_token_ids(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    n = len(ys)
    scored = response_scores(model, pad_id, xs + cs, ys + ys, extra_ids=epistemic_ids, temperature=temperature,
                             batch_size=batch_size, chunk_size=chunk_size, cache=cache)
    return [TokenScores(logp_c=scored[n + i][0], logp_x=scored[i][0], mass_c=scored[n + i][1], mass_x=scored[i][1])
            for i in range(n)]


def summarize_values(values: Sequence[float], groups: Sequence[str], *, seed: int = 0) -> dict:
    """Mean over groups (problems) of the per-group mean, with a bootstrap CI over groups.

    Problems are the unit of independent variation, as in `sdlab eval`; with the same number of
    responses per problem this is also the mean over responses."""
    from .stats import bootstrap_ci

    by_group: dict[str, list[float]] = {}
    for v, g in zip(values, groups):
        by_group.setdefault(g, []).append(float(v))
    if not by_group:
        return {"mean": None, "ci95": [None, None], "problems": 0, "responses": 0}
    per = np.array([np.mean(v) for v in by_group.values()], dtype=np.float64)
    lo, hi = bootstrap_ci(per, seed=seed) if len(per) > 1 else (float(per[0]), float(per[0]))
    return {"mean": float(per.mean()), "ci95": [float(lo), float(hi)], "problems": len(per),
            "responses": int(sum(len(v) for v in by_group.values()))}
