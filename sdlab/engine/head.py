"""Everything computed from a model's output distribution, from hidden states, a chunk at a time.

At the study's shapes one fp32 tensor of (response tokens x vocabulary) is 11.6 GiB (20,480 x
151,936), so no such tensor may exist — for the student or the teacher, in any objective. The
engine therefore runs the decoder once (`response_hidden`: the model's own forward, with the LM
head recording its input instead of computing logits, so wrappers such as DDP and FSDP see an
ordinary forward), keeps the last hidden states of the N response tokens ([N, H]), and computes
logits, log-probs, entropies, top-k sets and divergences `chunk_size` positions at a time
(`map_chunks`). When gradients are needed each chunk runs under activation checkpointing, so the
backward recomputes a chunk's logits instead of keeping them: at any moment at most one chunk's
[chunk_size, V] logits (and their gradient) are alive. Student, teacher, reference, old
log-probs, SFT and the information lens all go through here.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from ..algorithms.logits import entropy, mass_on, token_logprobs
from .batch import PackedBatch


def unwrap(model):
    """The HF model inside a DDP / accelerate wrapper (FSDP2 modules are the model itself)."""
    return model.module if hasattr(model, "module") else model


def _decoder_output(model, batch: PackedBatch) -> Tensor:
    """The input of the model's LM head (the last hidden states, [R, S, H]) from the model's own
    forward, with the head replaced for that call by one that records its input and returns an
    empty tensor: the forward's own post-processing (soft-capping, scaling) runs on nothing, and
    no logits are formed. `LMHead` applies head and post-processing chunk by chunk."""
    head = unwrap(model).get_output_embeddings()
    if head is None:
        raise TypeError(f"{type(unwrap(model)).__name__} has no output embeddings (LM head)")
    seen: list[Tensor] = []

    def record(hidden: Tensor) -> Tensor:
        seen.append(hidden)
        return hidden.new_empty((*hidden.shape[:-1], 0))

    head.forward = record
    try:
        model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
              use_cache=False)
    finally:
        del head.forward
    if len(seen) != 1:
        raise RuntimeError(f"{type(unwrap(model)).__name__}: expected one call of the LM head per forward, "
                           f"saw {len(seen)}")
    return seen[0]


class LMHead:
    """logits = head(h) with the model's own output transforms, in at least float32, / temperature."""

    def __init__(self, model, temperature: float = 1.0):
        inner = unwrap(model)
        self.module = inner.get_output_embeddings()
        cfg = getattr(inner, "config", None)
        self.softcap = getattr(cfg, "final_logit_softcapping", None)  # Gemma 2/3
        self.scale = getattr(cfg, "logit_scale", None)  # Cohere
        self.divide = getattr(cfg, "logits_scaling", None)  # Granite
        self.temperature = float(temperature)

    def __call__(self, hidden: Tensor) -> Tensor:
        logits = self.module(hidden)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        if self.scale not in (None, 1.0):
            logits = logits * self.scale
        if self.divide not in (None, 1.0):
            logits = logits / self.divide
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits / self.temperature if self.temperature != 1.0 else logits


def response_hidden(model, batch: PackedBatch, temperature: float = 1.0) -> tuple[Tensor, LMHead]:
    """([N, H] last hidden states predicting the N response tokens, the model's LM head)."""
    hidden = _decoder_output(model, batch)
    return hidden.reshape(-1, hidden.shape[-1])[batch.token_index], LMHead(model, temperature)


def map_chunks(fn: Callable[..., tuple[Tensor, ...]], chunk_size: int, *inputs: Tensor | None) -> tuple[Tensor, ...]:
    """fn over [N, ...] inputs `chunk_size` rows at a time; outputs ([n] or [n, k] tensors per
    chunk) are concatenated. With gradients enabled every chunk is checkpointed (non-reentrant):
    its activations, the [n, V] logits above all, are recomputed in the backward, not kept.
    None inputs are passed through as None."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    n = next(x.shape[0] for x in inputs if x is not None)
    grad = torch.is_grad_enabled()
    outs: list[tuple[Tensor, ...]] = []
    for s in range(0, n, chunk_size):
        args = [None if x is None else x[s : s + chunk_size] for x in inputs]
        outs.append(checkpoint(fn, *args, use_reentrant=False) if grad else fn(*args))
    if not outs:  # no tokens: run fn on an empty chunk for the output shapes
        return fn(*[None if x is None else x[:0] for x in inputs])
    return tuple(torch.cat(parts) for parts in zip(*outs))


def score_tokens(hidden: Tensor, head: LMHead, tokens: Tensor, chunk_size: int, *,
                 extra_ids: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """(log-probs of `tokens` [N] — with gradient when enabled —, entropy [N], mass on extra_ids [N])."""

    def fn(h, ids):
        logits = head(h)
        return token_logprobs(logits, ids), entropy(logits), mass_on(logits, extra_ids)

    return map_chunks(fn, chunk_size, hidden, tokens)
