"""Self-distillation (SDPO) objective: per-token divergences between student and teacher.

Student S = pi_theta(. | x, y<t), teacher T = pi_T(. | x', y<t) on the *same* sampled response, x'
the re-prompt. All log-probs come from logits / temperature. The teacher is always treated as a
constant (its inputs are detached here; the engine also runs it under no_grad).

Divergence D_alpha summed over the support (the last dim):
    alpha = 0      KL(T || S)  ("forward")
    alpha = 1      KL(S || T)  ("reverse")
    0 < alpha < 1  (1 - alpha) KL(S || M) + alpha KL(T || M),  log M = logaddexp(ls + log(1-alpha), lt + log alpha)
The generalized JSD tends to 0 at both ends, so it is discontinuous with the endpoint cases.

Supports:
    full            full vocabulary                              -> `full_vocab_loss`
    topk            the student's top-k ids, log-probs normalised over the full vocabulary, then a
                    tail bucket log(1 - sum p_topk) appended (add_tail) or renormalised over the
                    top-k                                        -> `topk_loss`
    sampled_token   only the sampled token: sg(ls - lt) * ls (alpha must be 1)
                                                                 -> `sampled_token_loss`

`per_token_loss(mode, ...)` picks the support; the engine calls it on a chunk of positions at a
time with both models' logits for that chunk (`sdlab.engine.head`), so no B x T x V tensor of
either model ever exists.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..config import DISTILLATION_MODES
from .logits import token_logprobs

LOG_RATIO_CLAMP = 20.0
TAIL_MAX_LOG_MASS = -1e-7


# --------------------------------------------------------------------------- validation


def validate_sdpo_options(mode: str, alpha: float, topk: int | None = None, *, add_tail: bool = True,
                          is_clip: float | None = None) -> None:
    """Raise ValueError with a clear message for an unsupported combination of options."""
    if mode not in DISTILLATION_MODES:
        raise ValueError(f"unknown distillation mode {mode!r}; expected one of {', '.join(DISTILLATION_MODES)}")
    if not (0.0 <= float(alpha) <= 1.0):
        raise ValueError(f"distillation alpha must be in [0, 1] (0 = KL(T||S), 1 = KL(S||T)), got {alpha}")
    if mode == "sampled_token" and float(alpha) != 1.0:
        raise ValueError(
            "distillation mode 'sampled_token' only supports reverse KL: it requires alpha=1.0 "
            f"(got alpha={alpha}); use mode 'topk' or 'full' for alpha < 1")
    if mode == "topk" and (topk is None or int(topk) < 1):
        raise ValueError(f"distillation mode 'topk' needs topk >= 1, got {topk!r}")
    if is_clip is not None and not is_clip > 0:
        raise ValueError(f"is_clip must be > 0 or None, got {is_clip}")


# --------------------------------------------------------------------------- divergences


def _kl(lp: Tensor, lq: Tensor) -> Tensor:
    """Elementwise p * (log p - log q); entries with p == 0 contribute exactly 0."""
    p = lp.exp()
    return p * torch.where(p > 0, lp - lq, torch.zeros_like(lp))


def divergence(student_logp: Tensor, teacher_logp: Tensor, alpha: float) -> Tensor:
    """D_alpha(S, T) summed over the last dim (see the module docstring)."""
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    ls, lt = student_logp, teacher_logp
    if alpha == 0.0:
        return _kl(lt, ls).sum(-1)
    if alpha == 1.0:
        return _kl(ls, lt).sum(-1)
    lm = torch.logaddexp(ls + math.log1p(-alpha), lt + math.log(alpha))
    return ((1.0 - alpha) * _kl(ls, lm) + alpha * _kl(lt, lm)).sum(-1)


def add_tail(logp_topk: Tensor) -> Tensor:
    """Append the tail bucket log(1 - sum_k p_k) to top-k log-probs: [..., k] -> [..., k+1]."""
    captured = torch.logsumexp(logp_topk, dim=-1, keepdim=True).clamp(max=TAIL_MAX_LOG_MASS)
    return torch.cat([logp_topk, torch.log(-torch.expm1(captured))], dim=-1)


_add_tail = add_tail


def renormalize(logp: Tensor) -> Tensor:
    """Renormalise log-probs over the last dim (the conditional distribution on the support)."""
    return logp - torch.logsumexp(logp, dim=-1, keepdim=True)


# --------------------------------------------------------------------------- supports


def student_topk(student_logits: Tensor, k: int) -> Tensor:
    """Ids [..., k] of the student's k largest logits (the top-k support); no gradient."""
    k = min(int(k), student_logits.shape[-1])
    return torch.topk(student_logits.detach(), k, dim=-1).indices


def full_vocab_loss(student_logits: Tensor, teacher_logits: Tensor, alpha: float) -> Tensor:
    """Per-token D_alpha over the full vocabulary: logits [B, T, V] (already / temperature) -> [B, T]."""
    ls = torch.log_softmax(student_logits, dim=-1)
    lt = torch.log_softmax(teacher_logits.detach(), dim=-1)
    return divergence(ls, lt, alpha)


def topk_loss(student_logits: Tensor, teacher_topk_logp: Tensor, topk_ids: Tensor, alpha: float,
              add_tail: bool) -> Tensor:
    """Per-token D_alpha on the student's top-k support -> [B, T].

    student_logits [B, T, V] (with grad; gradients flow through the full-vocabulary logsumexp),
    topk_ids [B, T, k] (from `student_topk`), teacher_topk_logp [B, T, k]: the teacher's log-probs
    normalised over the full vocabulary, gathered at topk_ids. add_tail: append the tail bucket
    (lasgroup default) instead of renormalising over the top-k (TRL default).
    """
    ls = student_logits.gather(-1, topk_ids) - torch.logsumexp(student_logits, dim=-1, keepdim=True)
    lt = teacher_topk_logp.detach().to(ls.dtype)
    if add_tail:
        ls, lt = _add_tail(ls), _add_tail(lt)
    else:
        ls, lt = renormalize(ls), renormalize(lt)
    return divergence(ls, lt, alpha)


def sampled_token_loss(student_token_logp: Tensor, teacher_token_logp: Tensor) -> Tensor:
    """sg(ls - lt) * ls on the sampled tokens [B, T] (alpha = 1 only; see `validate_sdpo_options`).

    Not a KL in value; its gradient sg(log p_S/p_T) grad log p_S(y_t) is the single-sample
    estimator of grad KL(S || T) when y_t ~ S.
    """
    return (student_token_logp - teacher_token_logp).detach() * student_token_logp


# --------------------------------------------------------------------------- the mode switch


def per_token_loss(mode: str, student_logits: Tensor, teacher_logits: Tensor, ids: Tensor, *, alpha: float,
                   topk: int = 100, add_tail: bool = True) -> Tensor:
    """Per-token divergence for one distillation mode: the only place the engine branches on
    `sdpo.distillation_mode`.

    student_logits [..., V] (already / temperature, with grad) and teacher_logits [..., V] (treated
    as constant) at the same positions, ids [...] the sampled tokens. The engine calls this on a
    chunk of positions at a time, so neither logits tensor ever spans the whole response.
    """
    teacher_logits = teacher_logits.detach()
    if mode == "full":
        return full_vocab_loss(student_logits, teacher_logits, alpha)
    if mode == "topk":
        support = student_topk(student_logits, topk)
        teacher_lp = teacher_logits.gather(-1, support) - torch.logsumexp(teacher_logits, dim=-1, keepdim=True)
        return topk_loss(student_logits, teacher_lp, support, alpha, add_tail)
    if mode == "sampled_token":
        return sampled_token_loss(token_logprobs(student_logits, ids), token_logprobs(teacher_logits, ids))
    raise ValueError(f"unknown distillation mode {mode!r}; expected one of {', '.join(DISTILLATION_MODES)}")


# --------------------------------------------------------------------------- IS and aggregation


@torch.no_grad()
def is_clip_weights(student_token_logp: Tensor, old_token_logp: Tensor, clip: float | None = 2.0) -> Tensor:
    """Distillation IS weights min(exp(clamp(sg(ls) - old, +-20)), clip), detached; no lower clip."""
    w = torch.exp((student_token_logp.detach() - old_token_logp).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP))
    return w if clip is None else w.clamp(max=clip)


def distillation_loss(per_token: Tensor, response_mask: Tensor, sd_mask: Tensor | None, *,
                      num_seqs: Tensor | float) -> Tensor:
    """Reference aggregation: sum over the given rows of per-sequence token means, / num_seqs.

    Token mask m = response_mask * sd_mask[:, None] (sd_mask: 1 for distilled samples; None = all).
    L = (1 / num_seqs) * sum_i sum_t m l / max(1, sum_t m), num_seqs counting *all* sequences of
    the mini-batch (not-distilled ones contribute 0). On a full batch with num_seqs = B this is
    TRL's `_compute_self_distillation_loss` and lasgroup with micro-batch 1.
    """
    mask = response_mask.to(per_token.dtype)
    if sd_mask is not None:
        mask = mask * sd_mask.to(per_token.dtype).unsqueeze(-1)
    per_seq = (per_token * mask).sum(-1) / mask.sum(-1).clamp_min(1)
    denom = num_seqs.to(per_token.dtype).clamp_min(1) if isinstance(num_seqs, Tensor) else max(float(num_seqs), 1.0)
    return per_seq.sum() / denom
