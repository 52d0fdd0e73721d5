"""Pack (context, response) pairs into right-padded tensors and score the response tokens.

Every forward pass in the engine — student, teacher, reference, evaluation scoring — goes through
`response_hidden` / `response_logits`, which return tensors aligned with the *response* positions
only ([B, L, ...], L = longest response), so objectives never see prompt positions or padding.
Sequences start at position 0 and are right-padded, so default position ids are correct.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PackedBatch:
    input_ids: torch.Tensor  # [B, S]
    attention_mask: torch.Tensor  # [B, S]
    response_index: torch.Tensor  # [B, L] position whose logits predict response token t
    response_ids: torch.Tensor  # [B, L] (pad 0)
    response_mask: torch.Tensor  # [B, L] float

    def to(self, device) -> "PackedBatch":
        return PackedBatch(*(t.to(device) for t in (self.input_ids, self.attention_mask, self.response_index, self.response_ids, self.response_mask)))


def pack(contexts: list[list[int]], responses: list[list[int]], pad_id: int) -> PackedBatch:
    if len(contexts) != len(responses):
        raise ValueError("pack: contexts and responses differ in length")
    seq_len = max(len(c) + len(r) for c, r in zip(contexts, responses))
    resp_len = max(1, max(len(r) for r in responses))
    b = len(contexts)
    input_ids = torch.full((b, seq_len), pad_id, dtype=torch.long)
    attention = torch.zeros((b, seq_len), dtype=torch.long)
    index = torch.zeros((b, resp_len), dtype=torch.long)
    resp_ids = torch.zeros((b, resp_len), dtype=torch.long)
    resp_mask = torch.zeros((b, resp_len), dtype=torch.float32)
    for i, (c, r) in enumerate(zip(contexts, responses)):
        if not c:
            raise ValueError("pack: every sequence needs at least one context token")
        n = len(c) + len(r)
        input_ids[i, :n] = torch.tensor(c + r, dtype=torch.long)
        attention[i, :n] = 1
        if r:
            index[i, : len(r)] = torch.arange(len(c) - 1, len(c) - 1 + len(r))
            resp_ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            resp_mask[i, : len(r)] = 1.0
    return PackedBatch(input_ids, attention, index, resp_ids, resp_mask)


def _gather_positions(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x [B, S, D] -> [B, L, D] at index [B, L]."""
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def decoder_and_head(model):
    """(base model returning hidden states, output projection) of a causal LM."""
    inner = model.module if hasattr(model, "module") else model
    head = inner.get_output_embeddings()
    base = inner.get_decoder() if hasattr(inner, "get_decoder") else None
    if base is None or head is None:
        raise TypeError(f"{type(inner).__name__}: cannot split into decoder and LM head")
    return base, head


def response_hidden(model, batch: PackedBatch) -> tuple[torch.Tensor, torch.nn.Module]:
    """Last hidden states at the response positions, and the LM head (logits = head(h)).

    Used where the full [B, L, V] logits must not be materialised at once (teacher top-k).
    """
    base, head = decoder_and_head(model)
    out = base(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
    return _gather_positions(out.last_hidden_state, batch.response_index), head


def response_logits(model, batch: PackedBatch, temperature: float = 1.0) -> torch.Tensor:
    """Logits at response positions, divided by the sampling temperature: [B, L, V]."""
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
    logits = _gather_positions(out.logits, batch.response_index).float()
    return logits / temperature if temperature != 1.0 else logits
