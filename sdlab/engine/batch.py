"""Lay out (context, response) pairs for one forward pass, and group rows into micro-batches.

Every forward pass in the engine — student, teacher, reference, old log-probs, SFT, the
information lens — scores the *response* tokens of a `PackedBatch`. Two layouts:

- padded: one row per sequence, right-padded to the longest, with an attention mask;
- packed: all sequences concatenated into one row whose position ids restart at 0 for each
  sequence and no attention mask. transformers then keeps each sequence to itself (varlen
  kernels with flash-attention; a block-diagonal mask with sdpa / eager), so no padding token is
  ever computed.

Either way the objectives only see the N real response tokens, in row-major order: `token_index`
points at the hidden state that predicts each of them, and `to_rows` puts per-token values back
into a [B, L] grid (zeros at padding) for the per-sequence aggregation.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class PackedBatch:
    input_ids: torch.Tensor  # [R, S] (R = 1 when packed)
    attention_mask: torch.Tensor | None  # [R, S]; None when packed
    position_ids: torch.Tensor  # [R, S]
    token_index: torch.Tensor  # [N] flat index into the R x S positions of the hidden state predicting each token
    response_ids: torch.Tensor  # [B, L] (pad 0)
    response_mask: torch.Tensor  # [B, L] float

    def to(self, device) -> "PackedBatch":
        return PackedBatch(*(None if t is None else t.to(device)
                             for t in (getattr(self, f.name) for f in fields(self))))

    @property
    def tokens(self) -> torch.Tensor:
        """[N] the response tokens, row by row."""
        return self.response_ids[self.response_mask.bool()]

    def to_rows(self, values: torch.Tensor) -> torch.Tensor:
        """[N, ...] per-token values -> [B, L, ...] with zeros at padding (differentiable)."""
        b, length = self.response_mask.shape
        out = values.new_zeros((b * length, *values.shape[1:]))
        out = out.index_put((self.response_mask.reshape(-1).nonzero().squeeze(-1),), values)
        return out.reshape(b, length, *values.shape[1:])


def pack(contexts: list[list[int]], responses: list[list[int]], pad_id: int, *, packed: bool = False) -> PackedBatch:
    if len(contexts) != len(responses):
        raise ValueError("pack: contexts and responses differ in length")
    if any(not c for c in contexts):
        raise ValueError("pack: every sequence needs at least one context token")
    lengths = [len(c) + len(r) for c, r in zip(contexts, responses)]
    b = len(contexts)
    resp_len = max(1, max(len(r) for r in responses))
    resp_ids = torch.zeros((b, resp_len), dtype=torch.long)
    resp_mask = torch.zeros((b, resp_len), dtype=torch.float32)
    if packed:
        seq_len, rows = sum(lengths), 1
        starts = [sum(lengths[:i]) for i in range(b)]
    else:
        seq_len, rows = max(lengths), b
        starts = [i * seq_len for i in range(b)]
    input_ids = torch.full((rows * seq_len,), pad_id, dtype=torch.long)
    position_ids = torch.zeros((rows * seq_len,), dtype=torch.long)
    attention = torch.zeros((rows * seq_len,), dtype=torch.long)
    token_index = []
    for i, (c, r) in enumerate(zip(contexts, responses)):
        n, s = lengths[i], starts[i]
        input_ids[s : s + n] = torch.tensor(c + r, dtype=torch.long)
        position_ids[s : s + n] = torch.arange(n)
        attention[s : s + n] = 1
        if r:
            token_index.append(torch.arange(s + len(c) - 1, s + n - 1))
            resp_ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            resp_mask[i, : len(r)] = 1.0
    index = torch.cat(token_index) if token_index else torch.zeros(0, dtype=torch.long)
    shape = (rows, seq_len)
    return PackedBatch(input_ids.view(shape), None if packed else attention.view(shape), position_ids.view(shape),
                       index, resp_ids, resp_mask)


def plan_micro_batches(lengths: list[int], *, max_rows: int, max_tokens: int | None = None,
                       packed: bool = False) -> list[list[int]]:
    """Split rows (their sequence lengths given) into micro-batches.

    Without a token budget: consecutive groups of max_rows rows, in order. With one: rows sorted
    by length (longest first, ties in row order) and cut into consecutive groups whose cost stays
    within max_tokens — the sum of lengths when packed, rows x the longest length when padded —
    so rows of similar length share a micro-batch and padding is minimal. A row longer than the
    budget gets a micro-batch of its own. Every loss is normalised by counts over the whole
    mini-batch, so the grouping never changes an update.
    """
    if max_tokens is None:
        return [list(range(k, min(len(lengths), k + max_rows))) for k in range(0, len(lengths), max_rows)]
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    out: list[list[int]] = []
    group: list[int] = []
    for i in order:
        candidate = group + [i]
        cost = sum(lengths[j] for j in candidate) if packed else len(candidate) * max(lengths[j] for j in candidate)
        if group and cost > max_tokens:
            out.append(group)
            candidate = [i]
        group = candidate
    if group:
        out.append(group)
    return out


def packing_enabled(setting: bool | None, model) -> bool:
    """actor.pack_sequences; None (auto) packs when the attention kernel is varlen (flash attention),
    where a packed row costs exactly its tokens. With sdpa / eager a packed row attends over its
    whole length under a block-diagonal mask, so padding rows of similar length is cheaper."""
    if setting is not None:
        return setting
    return str(getattr(model.config, "_attn_implementation", "")).startswith("flash_attention")
