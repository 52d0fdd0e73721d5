"""GRPO / DAPO policy loss: clipped surrogate, optional dual clip, rollout IS weights, k3 KL.

Per token (verl `compute_policy_loss_vanilla` semantics):

    r     = exp(clamp(logp - old, -20, 20))
    l     = max(-A * r, -A * clip(r, 1 - clip_ratio_low, 1 + clip_ratio_high))
    l     = min(l, -A * clip_ratio_c)          for A < 0, when clip_ratio_c is set (dual clip)
    l     = l * rho                             rollout IS weights rho (detached), if given
    l     = l + kl_coef * k3                    k3 = exp(ref - logp) - (ref - logp) - 1, clamped as verl

then aggregated with `aggregation.aggregate` (global normalisers). The dual clip is equivalent, in
value and gradient, to TRL's `delta` (two-sided clipping) when clip_ratio_c >= 1 + clip_ratio_high.

Differences from TRL 1.16 `GRPOTrainer._compute_loss` (all outside normal operating ranges, or
opt-in there):
  * the log-ratio is clamped to [-20, 20] before exp (TRL: unclamped);
  * k3 is clamped as in verl (exp argument to [-20, 20], result to [-10, 10]) and is *not*
    multiplied by the ratio: TRL's default `use_bias_correction_kl=True` multiplies k3 by the
    differentiable ratio, which gives the same value on-policy (ratio == 1) but a different
    gradient; with `use_bias_correction_kl=False` they agree;
  * rollout IS weights multiply only the policy term, never the KL term (as TRL does with its vLLM
    IS ratio).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .aggregation import aggregate, check_mode, masked_mean

LOG_RATIO_CLAMP = 20.0
KL_CLAMP = 10.0


def kl_k3(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """Per-token k3 estimator of KL(pi || ref) ("low_var_kl"), clamped as verl."""
    d = ref_logprobs - logprobs
    k3 = torch.exp(d.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)) - d - 1
    return k3.clamp(-KL_CLAMP, KL_CLAMP)


@torch.no_grad()
def rollout_is_weights(old_logprobs: Tensor, rollout_logprobs: Tensor, cap: float | None = 2.0) -> Tensor:
    """Token-level trainer-vs-sampler IS weights min(exp(old - rollout), cap), detached.

    Corrects for the sampler's (e.g. vLLM's) log-probs differing from the trainer's recomputed
    pi_old. `cap=None` disables the upper truncation. There is no lower clip.
    """
    w = torch.exp((old_logprobs - rollout_logprobs).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP))
    return w if cap is None else w.clamp(max=cap)


def policy_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_ratio_low: float = 0.2,
    clip_ratio_high: float = 0.28,
    clip_ratio_c: float | None = None,
    rollout_is_weights: Tensor | None = None,
    ref_logprobs: Tensor | None = None,
    kl_coef: float = 0.0,
    loss_agg_mode: str = "token-mean",
    num_tokens: Tensor | float,
    num_seqs: Tensor | float,
    loss_scale_factor: float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped policy-gradient loss over the given rows and diagnostics.

    logprobs [B, T] (with grad), old_logprobs [B, T], advantages [B] (one per sequence, broadcast
    over tokens) or [B, T], mask [B, T]. num_tokens / num_seqs / loss_scale_factor: see
    `aggregation.aggregate` (counts over the whole mini-batch).

    Returns (loss, stats). stats are detached 0-dim tensors, each a *token mean over the mask of
    the given rows* except `ratio/max` (a max over them); the caller reduces them across
    micro-batches and ranks (token-weighted means; max for `ratio/max`):
      clip_frac        tokens where the clipped term was selected (= low + high)
      clip_frac/low    ratio < 1 - clip_ratio_low and A < 0
      clip_frac/high   ratio > 1 + clip_ratio_high and A > 0
      dual_clip_frac   tokens where the dual clip (A < 0, -A*c selected) was active
      ratio/mean, ratio/max
      kl               mean k3 (only when ref_logprobs is given)
      rollout_is/mean  mean rollout IS weight (only when given)
    """
    check_mode(loss_agg_mode)
    if clip_ratio_c is not None and clip_ratio_c <= 1.0:
        raise ValueError(f"clip_ratio_c must be > 1 (dual clip), got {clip_ratio_c}")
    if kl_coef != 0.0 and ref_logprobs is None:
        raise ValueError("kl_coef != 0 needs ref_logprobs")
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(-1)
    advantages = advantages.to(logprobs.dtype)
    mask = mask.to(logprobs.dtype)

    log_ratio = (logprobs - old_logprobs).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_ratio_low, 1.0 + clip_ratio_high)
    per_token = torch.maximum(unclipped, clipped)
    clip_active = clipped > unclipped
    if clip_ratio_c is not None:
        bound = -advantages * clip_ratio_c
        dual_active = (advantages < 0) & (per_token > bound)
        per_token = torch.where(advantages < 0, torch.minimum(per_token, bound), per_token)
    else:
        dual_active = torch.zeros_like(clip_active)
    if rollout_is_weights is not None:
        per_token = per_token * rollout_is_weights.detach().to(per_token.dtype)
    kl = None
    if ref_logprobs is not None:
        kl = kl_k3(logprobs, ref_logprobs.detach())
        if kl_coef != 0.0:
            per_token = per_token + kl_coef * kl

    loss = aggregate(per_token, mask, loss_agg_mode, num_tokens=num_tokens, num_seqs=num_seqs,
                     loss_scale_factor=loss_scale_factor)

    with torch.no_grad():
        r = ratio.detach()
        a = advantages.detach().expand_as(r)
        stats = {
            "clip_frac": masked_mean(clip_active.to(r.dtype), mask),
            "clip_frac/low": masked_mean(((r < 1.0 - clip_ratio_low) & (a < 0)).to(r.dtype), mask),
            "clip_frac/high": masked_mean(((r > 1.0 + clip_ratio_high) & (a > 0)).to(r.dtype), mask),
            "dual_clip_frac": masked_mean(dual_active.to(r.dtype), mask),
            "ratio/mean": masked_mean(r, mask),
            "ratio/max": r.masked_fill(mask <= 0, float("-inf")).max() if bool((mask > 0).any()) else r.new_tensor(1.0),
        }
        if kl is not None:
            stats["kl"] = masked_mean(kl.detach(), mask)
        if rollout_is_weights is not None:
            stats["rollout_is/mean"] = masked_mean(rollout_is_weights.detach().to(r.dtype), mask)
    return loss, stats
