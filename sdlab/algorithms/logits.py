"""Quantities of one categorical distribution given by logits over the last dimension.

Pure tensor functions; the engine applies them to a chunk of positions at a time
(`sdlab.engine.head`), so `logits` is never the whole (tokens x vocabulary) tensor.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


def token_logprobs(logits: Tensor, ids: Tensor) -> Tensor:
    """log softmax(logits)[..., ids] for ids [...] -> [...] (no full log-softmax materialised)."""
    return logits.gather(-1, ids.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


@torch.no_grad()
def entropy(logits: Tensor) -> Tensor:
    """Entropy of softmax(logits) over the last dim (computed in at least float32)."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


@torch.no_grad()
def mass_on(logits: Tensor, token_ids: Tensor | Sequence[int] | None) -> Tensor:
    """Probability mass softmax(logits) puts on `token_ids` at each position (0 for none)."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    if token_ids is None:
        return logits.new_zeros(logits.shape[:-1])
    ids = torch.as_tensor(token_ids, dtype=torch.long, device=logits.device).reshape(-1)
    if ids.numel() == 0:
        return logits.new_zeros(logits.shape[:-1])
    return torch.softmax(logits, dim=-1)[..., ids].sum(-1)
