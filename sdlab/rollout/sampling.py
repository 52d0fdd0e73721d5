"""Counter-based token sampling: each sample draws its tokens from a hash of (seed, position).

Why: `torch.multinomial` consumes one global random stream, so the tokens a sample gets depend
on which other prompts share its batch, on the number of data-parallel processes and on the
point where a run was resumed. Drawing every token by inverse-CDF from a uniform that is a pure
function of (sample seed, position) removes all three dependencies, which is what makes a
resumed run bit-identical to an uninterrupted one and `accelerate launch` with 2 processes equal
to 1 process.
"""

from __future__ import annotations

import torch

_MASK53 = (1 << 53) - 1


def _to_signed(c: int) -> int:
    return c - (1 << 64) if c >= 1 << 63 else c


_M1 = _to_signed(0xBF58476D1CE4E5B9)
_M2 = _to_signed(0x94D049BB133111EB)
_GOLD = _to_signed(0x9E3779B97F4A7C15)


def _srl(x: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic)."""
    return (x >> s) & ((1 << (64 - s)) - 1)


def _mix(x: torch.Tensor) -> torch.Tensor:
    x = (x ^ _srl(x, 30)) * _M1
    x = (x ^ _srl(x, 27)) * _M2
    return x ^ _srl(x, 31)


def uniforms(seeds: torch.Tensor, position: int) -> torch.Tensor:
    """One float64 uniform in [0, 1) per seed for the given token position."""
    gold = torch.tensor(_GOLD, dtype=torch.int64, device=seeds.device)
    x = _mix(seeds.to(torch.int64) + gold * (position + 1))
    x = _mix(x + gold)
    return (_srl(x, 11) & _MASK53).to(torch.float64) / float(1 << 53)


def filter_logits(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """Temperature, then top-k, then nucleus (top-p) filtering; removed entries become -inf."""
    logits = logits.float() / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        # drop a token when the mass strictly before it already reaches top_p (keeps at least one)
        drop_sorted = (probs.cumsum(-1) - probs) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_tokens(
    logits: torch.Tensor, seeds: torch.Tensor, position: int, temperature: float, top_k: int, top_p: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one token per row; return (token ids, log-prob under the sampling distribution)."""
    if temperature == 0:
        tokens = logits.argmax(-1)
        return tokens, torch.zeros(tokens.shape, dtype=torch.float32, device=logits.device)
    filtered = filter_logits(logits, temperature, top_k, top_p)
    logp = filtered.log_softmax(-1)
    cdf = logp.double().exp().cumsum(-1)
    u = uniforms(seeds, position).to(cdf.device).unsqueeze(-1) * cdf[..., -1:]
    tokens = torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp_max(logits.shape[-1] - 1)
    return tokens, logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
