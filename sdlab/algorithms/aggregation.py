"""Loss aggregation with *global* normalisers.

`aggregate` returns sum_{i,t} w_i * m_{i,t} * l_{i,t} over the rows it is given, where the weight
uses counts of the whole mini-batch (all micro-batches, all data-parallel ranks):

    token-mean               w = 1 / num_tokens                     (verl default; TRL bnpo / dapo)
    seq-mean-token-mean      w = 1 / (max(1, len_i) * num_seqs)     (original GRPO; TRL grpo)
    seq-mean-token-sum-norm  w = 1 / (loss_scale_factor * num_seqs) (Dr. GRPO; TRL dr_grpo with
                                                                    loss_scale_factor = max length)

So summing the results of every micro-batch (and every rank) gives exactly the mini-batch
aggregate, independent of how the mini-batch was split. Called on one full batch with that
batch's `batch_normalizers`, it equals TRL's `bnpo`/`dapo` (single process), `grpo` and `dr_grpo`.
"""

from __future__ import annotations

from torch import Tensor

from ..config import LOSS_AGG_MODES


def check_mode(mode: str) -> str:
    if mode not in LOSS_AGG_MODES:
        raise ValueError(f"unknown loss aggregation mode {mode!r}; expected one of {', '.join(LOSS_AGG_MODES)}")
    return mode


def _at_least_one(x, like: Tensor):
    if isinstance(x, Tensor):
        return x.to(device=like.device, dtype=like.dtype).clamp_min(1)
    return max(float(x), 1.0)


def batch_normalizers(mask: Tensor) -> tuple[Tensor, int]:
    """(num_tokens, num_seqs) of a batch: total mask tokens and number of rows (empty rows count)."""
    return mask.sum(), int(mask.shape[0])


def aggregate(
    per_token: Tensor,
    mask: Tensor,
    mode: str,
    *,
    num_tokens: Tensor | float,
    num_seqs: Tensor | float,
    loss_scale_factor: float | None = None,
) -> Tensor:
    """Sum over the given rows of weight * mask * per_token (see the module docstring).

    num_tokens / num_seqs: mask tokens / sequences of the whole mini-batch (clamped to >= 1).
    loss_scale_factor: required for `seq-mean-token-sum-norm` (typically the max response length).
    """
    check_mode(mode)
    mask = mask.to(per_token.dtype)
    masked = per_token * mask
    if mode == "token-mean":
        return masked.sum() / _at_least_one(num_tokens, per_token)
    if mode == "seq-mean-token-mean":
        per_seq = masked.sum(-1) / mask.sum(-1).clamp_min(1)
        return per_seq.sum() / _at_least_one(num_seqs, per_token)
    if loss_scale_factor is None or float(loss_scale_factor) <= 0:
        raise ValueError("loss_agg_mode 'seq-mean-token-sum-norm' needs a positive loss_scale_factor "
                         f"(e.g. the maximum response length), got {loss_scale_factor!r}")
    return masked.sum() / (float(loss_scale_factor) * _at_least_one(num_seqs, per_token))


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Token mean of x over mask (0 for an empty mask)."""
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp_min(1)
