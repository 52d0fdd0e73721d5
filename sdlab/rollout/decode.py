"""sdlab's own decoding loop on a Hugging Face causal LM: finished rows leave the batch.

`transformers.generate` keeps every row of the batch until the last one ends, so with response
lengths spread from tens to thousands of tokens most of each late decoding step is spent on rows
that are already done. This loop is the same computation without that dead weight:

- each distinct prompt is prefilled once and its cache rows copied to its rollout.n samples;
- prefill and decode call the model exactly as `generate` does (left padding, 2D attention mask,
  position ids from the mask's cumulative sum, `logits_to_keep=1`, a dynamic KV cache), and every
  token is drawn by the same counter-based sampler (`sampling.sample_tokens`) with the same
  (seed, position) counter, so each sample's tokens depend only on its own seed;
- rows that emitted EOS are removed from the batch (KV cache, mask and positions index-selected
  along the batch dimension) once they make up `compact_fraction` of it;
- the KV cache is preallocated in chunks instead of `torch.cat`-ing every layer's whole cache at
  every step (`_ChunkedLayer`);
- attention lets SDPA broadcast the key/value heads of grouped-query attention
  (`enable_gqa=True`) instead of materialising `repeat_kv` copies of the whole cache at every
  step, as transformers' `sdpa` integration does whenever there is a padding mask on CPU.

On CPU each of these is bitwise neutral for a row whose batch neighbours change: SDPA, the
sampler and the cache are row-independent, and strided cache views give the same results as
contiguous copies. The one source of difference is the matrix multiplications, whose float
rounding can depend on the number of rows in the batch (below ~64 rows on this machine's BLAS),
which already makes `generate` itself batch-dependent in the last bits: log-probs agree with the
`generate` path to ~1e-6 and tokens are the same unless a uniform falls within that distance of
a CDF boundary. `tests/test_rollout_loop.py` checks both paths against each other.
"""

from __future__ import annotations

import contextlib
from typing import Sequence

import torch
import torch.nn.functional as F
from transformers import AttentionInterface, DynamicCache
from transformers.cache_utils import DynamicLayer
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from .base import Rollout, SamplingParams
from .sampling import sample_tokens

GQA_SDPA = "sdlab_sdpa_gqa"


def _sdpa_gqa(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, is_causal=None, **kwargs):
    """transformers' `sdpa` attention with the key/value heads broadcast by SDPA (no repeat_kv copy)."""
    groups = getattr(module, "num_key_value_groups", 1)
    is_causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    # same rule as transformers' sdpa integration: the causal flag only for a maskless prefill
    is_causal = query.shape[2] > 1 and attention_mask is None and is_causal
    out = F.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling, is_causal=is_causal,
        enable_gqa=groups > 1,
    )
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(GQA_SDPA, _sdpa_gqa)
AttentionMaskInterface.register(GQA_SDPA, sdpa_mask)


@contextlib.contextmanager
def _gqa_attention(model):
    """Switch an `sdpa` model to the GQA-broadcasting SDPA for the duration of the block."""
    config = model.config
    previous = getattr(config, "_attn_implementation", None)
    if previous != "sdpa":
        yield
        return
    config._attn_implementation = GQA_SDPA
    try:
        yield
    finally:
        config._attn_implementation = previous


class _ChunkedLayer(DynamicLayer):
    """A DynamicLayer whose keys/values live in a buffer grown in chunks, returned as views.

    `DynamicLayer.update` concatenates, i.e. copies the layer's whole cache at every decoding step.
    """

    def __init__(self, chunk: int = 256):
        super().__init__()
        self.chunk = chunk
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None
        self._len = 0

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = key_states.shape[-2]
        need = self._len + n
        if self._k is None or need > self._k.shape[-2]:
            capacity = need + max(self.chunk, need // 2)
            b, h, _, d = key_states.shape
            k = key_states.new_empty((b, h, capacity, d))
            v = value_states.new_empty((b, value_states.shape[1], capacity, value_states.shape[-1]))
            if self._len:
                k[:, :, : self._len] = self._k[:, :, : self._len]
                v[:, :, : self._len] = self._v[:, :, : self._len]
            self._k, self._v = k, v
        self._k[:, :, self._len : need] = key_states
        self._v[:, :, self._len : need] = value_states
        self._len = need
        self.keys, self.values = self._k[:, :, :need], self._v[:, :, :need]
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self._k is not None:
            self._k = self._k.index_select(0, indices)
            self._v = self._v.index_select(0, indices)
            self.keys, self.values = self._k[:, :, : self._len], self._v[:, :, : self._len]

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self._k is not None:
            self._k = self._k.repeat_interleave(repeats, dim=0)
            self._v = self._v.repeat_interleave(repeats, dim=0)
            self.keys, self.values = self._k[:, :, : self._len], self._v[:, :, : self._len]

    def reset(self) -> None:
        self._k = self._v = None
        self._len = 0
        super().reset()

    def crop(self, tokens_to_remove: int) -> None:  # pragma: no cover - not used by the loop
        raise NotImplementedError("_ChunkedLayer does not crop")


def _make_cache(model, chunked: bool) -> DynamicCache:
    cache = DynamicCache(config=model.config)
    if chunked:
        # plain full-attention layers only; sliding-window / linear-attention layers keep their own class
        cache.layers = [_ChunkedLayer() if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


@torch.no_grad()
def decode(
    model,
    prompts: Sequence[list[int]],
    seeds: Sequence[int],
    params: SamplingParams,
    *,
    eos: Sequence[int],
    pad: int,
    compact_fraction: float = 0.125,
    chunked_cache: bool = True,
    gqa_attention: bool = True,
    shared_prefill: bool = True,
) -> list[Rollout]:
    """Sample one response per prompt; row i uses seeds[i]. See the module docstring.

    compact_fraction: finished rows are removed from the batch once they are at least this share
    of it (0 = as soon as any row ends). Removing copies the KV cache, so waiting a little trades
    some dead-row compute for fewer copies; the result does not depend on it. chunked_cache,
    gqa_attention, shared_prefill: the other optimisations, on by default (off for ablations).
    """
    if len(prompts) != len(seeds):
        raise ValueError("decode: one seed per prompt is required")
    if not prompts:
        return []
    if any(len(p) == 0 for p in prompts):
        raise ValueError("decode: every prompt needs at least one token")
    device = next(model.parameters()).device
    n, width, steps = len(prompts), max(len(p) for p in prompts), params.max_new_tokens
    # GRPO repeats every prompt rollout.n times: prefill each distinct prompt once, then copy its
    # cache rows (same width, so the same padding, mask and positions as a full-batch prefill)
    first: dict[tuple[int, ...], int] = {}
    if shared_prefill:
        source = torch.tensor([first.setdefault(tuple(p), len(first)) for p in prompts], dtype=torch.long)
        distinct = list(first)
    else:
        source, distinct = torch.arange(n), list(prompts)
    input_ids = torch.full((len(distinct), width), pad, dtype=torch.long)
    attention = torch.zeros((len(distinct), width), dtype=torch.long)
    for i, p in enumerate(distinct):
        input_ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
        attention[i, width - len(p) :] = 1
    input_ids, attention, source = input_ids.to(device), attention.to(device), source.to(device)
    # as transformers.generate: positions count attended tokens; a mask without padding is dropped
    positions = (attention.cumsum(-1) - 1).masked_fill(attention == 0, 0)
    mask = None if bool(attention.all()) else attention
    all_seeds = torch.tensor([int(s) for s in seeds], dtype=torch.int64, device=device)
    eos_t = torch.tensor(sorted(set(int(e) for e in eos)), dtype=torch.long, device=device)

    tokens_out = torch.full((n, max(steps, 0)), pad, dtype=torch.long, device=device)
    logp_out = torch.zeros((n, max(steps, 0)), dtype=torch.float32, device=device)
    lengths = torch.full((n,), steps, dtype=torch.long, device=device)
    ended = torch.zeros(n, dtype=torch.bool, device=device)

    was_training = model.training
    model.eval()
    cache = _make_cache(model, chunked_cache)
    attn_ctx = _gqa_attention(model) if gqa_attention else contextlib.nullcontext()
    try:
        with attn_ctx:
            out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                        use_cache=True, logits_to_keep=1)
            logits = out.logits[:, -1].to(dtype=torch.float32, copy=True)
            del out
            if len(distinct) < n:
                cache.batch_select_indices(source)
                logits, positions = logits[source], positions[source]
                mask = None if mask is None else mask[source]
            rows = torch.arange(n, device=device)  # batch row -> original prompt index
            alive = torch.ones(n, dtype=torch.bool, device=device)
            last_pos = positions[:, -1]
            for t in range(steps):
                live = alive.nonzero().squeeze(1)
                all_live = len(live) == len(rows)
                orig = rows if all_live else rows[live]
                tok, lp = sample_tokens(logits if all_live else logits[live], all_seeds[orig], t,
                                        params.temperature, params.top_k, params.top_p)
                tokens_out[orig, t] = tok
                logp_out[orig, t] = lp
                done = torch.isin(tok, eos_t)
                if bool(done.any()):
                    fin = orig[done]
                    lengths[fin] = t + 1
                    ended[fin] = True
                    alive[live[done]] = False
                if t + 1 == steps or not bool(alive.any()):
                    break
                step_tokens = torch.full((len(rows),), pad, dtype=torch.long, device=device)
                step_tokens[live] = tok  # finished rows are fed padding, as in generate
                dead = len(rows) - int(alive.sum())
                if dead and dead >= compact_fraction * len(rows):
                    keep = alive.nonzero().squeeze(1)
                    cache.batch_select_indices(keep)
                    rows, alive, step_tokens, last_pos = rows[keep], alive[keep], step_tokens[keep], last_pos[keep]
                    if mask is not None:
                        mask = mask[keep]
                if mask is not None:
                    mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=-1)
                last_pos = last_pos + 1
                out = model(input_ids=step_tokens[:, None], attention_mask=mask, position_ids=last_pos[:, None],
                            past_key_values=cache, use_cache=True)
                logits = out.logits[:, -1].to(dtype=torch.float32, copy=True)
                del out
    finally:
        model.train(was_training)
    tokens_out, logp_out, lengths, ended = tokens_out.cpu(), logp_out.cpu(), lengths.cpu(), ended.cpu()
    return [
        Rollout(list(p), tokens_out[i, : lengths[i]].tolist(), logp_out[i, : lengths[i]].tolist(), not bool(ended[i]))
        for i, p in enumerate(prompts)
    ]
