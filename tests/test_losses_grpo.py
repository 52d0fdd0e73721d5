"""GRPO/DAPO losses: advantages, clipping, KL, aggregation — hand vectors G1-G4, G7
(algorithms.md §3.4) and float64 parity with TRL 1.16.0 `GRPOTrainer._compute_loss`.

TRL is only an oracle: `_compute_loss` is called on a trainer built without __init__ whose
`_get_per_token_logps_and_entropies` returns given log-probs (algorithms.md §3.2).
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from types import SimpleNamespace as NS

import pytest
import torch

from sdlab.algorithms import advantages as adv
from sdlab.algorithms import grpo
from sdlab.algorithms.aggregation import LOSS_AGG_MODES, aggregate, batch_normalizers

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

F64 = torch.float64


def close(a, b, atol=1e-9):
    a, b = torch.as_tensor(a, dtype=F64), torch.as_tensor(b, dtype=F64)
    torch.testing.assert_close(a, b.expand_as(a) if b.dim() == 0 else b, rtol=0, atol=atol)


def t64(x):
    return torch.tensor(x, dtype=F64)


# ----------------------------------------------------------------------------- G1 advantages


def test_g1_verl_epsilon():
    r = t64([1, 0, 0, 1])
    close(adv.group_advantages(r, 4), [0.86602390, -0.86602390, -0.86602390, 0.86602390], atol=1e-8)
    close(adv.group_advantages(r, 4, norm_by_std=False), [0.5, -0.5, -0.5, 0.5])


def test_g1_trl_epsilon():
    close(adv.group_advantages(t64([1, 0, 0, 1]), 4, epsilon=1e-4), [0.86587543, -0.86587543, -0.86587543, 0.86587543],
          atol=1e-8)
    close(adv.group_advantages(t64([1, 0, 0, 0]), 4, epsilon=1e-4), [1.49970006] + [-0.49990002] * 3, atol=1e-8)
    dapo = adv.group_advantages(t64([-1, 1, 1, 1, -1, -1, -1, -1]), 8, epsilon=1e-4)
    close(dapo, [-0.72449884, 1.20749807, 1.20749807, 1.20749807] + [-0.72449884] * 4, atol=1e-8)


def test_g1_zero_variance_singletons_and_ids():
    r = t64([0.1, 0.1, 0.1, 1.0, 0.0, 0.0, 0.0, 0.0, 0.7])
    ids = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 3])  # groups of 3, 4, 1, 1
    a = adv.group_advantages(r, ids)
    assert a[:3].tolist() == [0.0, 0.0, 0.0]  # exactly 0
    close(a[7:], r[7:] / (1 + 1e-6))  # verl: size-1 group -> mean 0, std 1
    close(adv.group_advantages(r, ids, norm_by_std=False)[7:], r[7:])
    # permuting samples (non-consecutive ids) permutes the advantages
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(0))
    close(adv.group_advantages(r[perm], ids[perm]), a[perm])
    assert adv.frac_zero_std_groups(r, ids) == pytest.approx(3 / 4)
    assert adv.frac_zero_std_groups(t64([1, 0, 1, 1, 0, 0]), 2) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        adv.group_advantages(r, 4)  # 9 not divisible by 4
    assert adv.group_advantages(torch.tensor([1.0, 0.0]), 2).dtype == torch.float32


def test_g1_trl_nanstd_oracle():
    pytest.importorskip("trl")
    from trl.trainer.utils import nanstd

    g = torch.Generator().manual_seed(1)
    r = (torch.randint(0, 3, (24,), generator=g).to(F64)
         + torch.rand(24, generator=g, dtype=F64) * (torch.arange(24) < 12))
    grouped = r.view(-1, 6)
    mean = grouped.mean(1, keepdim=True)
    std = torch.stack([nanstd(row) for row in grouped]).unsqueeze(1)
    expected = ((grouped - mean) / (std + 1e-4)).view(-1)
    # nanstd's Bessel factor count / (count - 1) is an int/int division, i.e. float32: ~4e-8 relative
    close(adv.group_advantages(r, 6, epsilon=1e-4), expected, atol=1e-6)
    exact = ((grouped - mean) / (grouped.std(1, keepdim=True) + 1e-4)).view(-1)
    close(adv.group_advantages(r, 6, epsilon=1e-4), exact, atol=1e-12)


# ----------------------------------------------------------------------------- G2-G4, G7

G2_MASK = t64([[1, 1, 1], [1, 1, 0]])
G2_A = t64([1.0, -1.0])
G2_OLD = t64([[-1.0, -0.5, -2.0], [-0.3, -1.2, -0.7]])
G2_LOGP = t64([[-0.7768564487, -0.5, -2.3566749439], [-0.6566749439, -0.9376357355, -0.7]])


def g2_loss(mode, hi, **kw):
    n_tok, n_seq = batch_normalizers(G2_MASK)
    return grpo.policy_loss(G2_LOGP, G2_OLD, G2_A, G2_MASK, clip_ratio_low=0.2, clip_ratio_high=hi,
                            loss_agg_mode=mode, num_tokens=n_tok, num_seqs=n_seq, loss_scale_factor=4, **kw)


@pytest.mark.parametrize("hi,expected", [
    (0.2, {"seq-mean-token-mean": 0.04166667, "token-mean": -0.16, "seq-mean-token-sum-norm": -0.10}),
    (0.28, {"seq-mean-token-mean": 0.03333333, "token-mean": -0.17, "seq-mean-token-sum-norm": -0.10625}),
])
def test_g2_losses(hi, expected):
    close(torch.exp(G2_LOGP - G2_OLD) * G2_MASK, t64([[1.25, 1, 0.7], [0.7, 1.3, 0]]), atol=1e-9)
    for mode, value in expected.items():
        close(g2_loss(mode, hi)[0], value, atol=1e-8)


def test_g2_stats():
    _, stats = g2_loss("token-mean", 0.28)
    close(stats["clip_frac"], 0.2)  # only (1, 0): ratio 0.7 < 0.8 with A < 0
    close(stats["clip_frac/low"], 0.2)
    close(stats["clip_frac/high"], 0.0)
    close(stats["ratio/max"], 1.3)
    close(stats["ratio/mean"], (1.25 + 1 + 0.7 + 0.7 + 1.3) / 5)
    _, stats = g2_loss("token-mean", 0.2)
    close(stats["clip_frac"], 0.4)
    close(stats["clip_frac/high"], 0.2)
    assert all(not v.requires_grad and v.dim() == 0 for v in stats.values())


@pytest.mark.parametrize("ratio,a,c,expected", [
    (1.5, 1.0, None, -1.28), (0.5, 1.0, None, -0.5), (1.5, -1.0, None, 1.5), (0.5, -1.0, None, 0.8),
    (4.0, -1.0, None, 4.0), (4.0, -1.0, 3.0, 3.0), (1.5, -1.0, 3.0, 1.5), (4.0, 1.0, 3.0, -1.28),
])
def test_g3_clipping_cases(ratio, a, c, expected):
    old = t64([[-1.0]])
    loss, stats = grpo.policy_loss(old + math.log(ratio), old, t64([a]), t64([[1.0]]), clip_ratio_low=0.2,
                                   clip_ratio_high=0.28, clip_ratio_c=c, num_tokens=1, num_seqs=1)
    close(loss, expected, atol=1e-12)
    close(stats["dual_clip_frac"], 1.0 if (c is not None and expected == c) else 0.0)


def test_g4_kl():
    logp, ref = t64([[-1.0]]), t64([[-1.5]])
    close(grpo.kl_k3(logp, ref), 0.10653066, atol=1e-8)
    close(logp - ref, 0.5)  # k1
    close(0.5 * (logp - ref) ** 2, 0.125)  # k2
    loss, stats = grpo.policy_loss(logp, logp, t64([0.0]), t64([[1.0]]), ref_logprobs=ref, kl_coef=1.0,
                                   num_tokens=1, num_seqs=1)
    close(loss, 0.10653066, atol=1e-8)
    close(stats["kl"], 0.10653066, atol=1e-8)
    # verl clamps: exp argument to +-20, result to [-10, 10]
    assert grpo.kl_k3(t64([-40.0]), t64([0.0])).item() == 10.0
    with pytest.raises(ValueError, match="ref_logprobs"):
        grpo.policy_loss(logp, logp, t64([0.0]), t64([[1.0]]), kl_coef=1.0, num_tokens=1, num_seqs=1)


def test_g7_on_policy():
    a = math.sqrt(3) / 2
    lengths = [4, 2, 1, 3]
    mask = (torch.arange(4)[None] < torch.tensor(lengths)[:, None]).to(F64)
    logp = -torch.rand(4, 4, generator=torch.Generator().manual_seed(0), dtype=F64)
    A = t64([a, -a, -a, a])
    n_tok, n_seq = batch_normalizers(mask)
    kw = dict(num_tokens=n_tok, num_seqs=n_seq)
    close(grpo.policy_loss(logp, logp, A, mask, loss_agg_mode="seq-mean-token-mean", **kw)[0], 0.0, atol=1e-15)
    close(grpo.policy_loss(logp, logp, A, mask, loss_agg_mode="token-mean", **kw)[0], -0.34641016, atol=1e-8)


def test_rollout_is_weights():
    old = t64([[math.log(0.4), math.log(0.3), math.log(0.05)]]).requires_grad_(True)
    roll = t64([[math.log(0.1), math.log(0.2), math.log(0.5)]])
    w = grpo.rollout_is_weights(old, roll, cap=2.0)
    close(w, [[2.0, 1.5, 0.1]])
    assert not w.requires_grad
    close(grpo.rollout_is_weights(old, roll, cap=None), [[4.0, 1.5, 0.1]])
    # the weights scale the policy term only
    logp = t64([[-1.0, -2.0, -0.5]])
    loss, _ = grpo.policy_loss(logp, logp, t64([1.0]), torch.ones(1, 3, dtype=F64), rollout_is_weights=w,
                               num_tokens=3, num_seqs=1)
    close(loss, -(2.0 + 1.5 + 0.1) / 3)


def test_aggregate_modes_and_validation():
    with pytest.raises(ValueError, match="unknown loss aggregation mode"):
        aggregate(torch.ones(1, 1), torch.ones(1, 1), "token-sum", num_tokens=1, num_seqs=1)
    with pytest.raises(ValueError, match="loss_scale_factor"):
        aggregate(torch.ones(1, 1), torch.ones(1, 1), "seq-mean-token-sum-norm", num_tokens=1, num_seqs=1)
    with pytest.raises(ValueError, match="unknown loss aggregation mode"):
        grpo.policy_loss(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1), torch.ones(1, 1),
                         loss_agg_mode="dapo", num_tokens=1, num_seqs=1)
    # empty mask: 0, not NaN
    z = aggregate(torch.ones(2, 3), torch.zeros(2, 3), "token-mean", num_tokens=torch.tensor(0.0), num_seqs=2)
    assert z.item() == 0.0


@pytest.mark.parametrize("mode", LOSS_AGG_MODES)
def test_micro_batches_sum_to_mini_batch(mode):
    """Global normalisers: any split of the rows into micro-batches gives the same loss and gradient."""
    g = torch.Generator().manual_seed(5)
    b, t = 6, 7
    logp = (-torch.rand(b, t, generator=g, dtype=F64) * 2).requires_grad_(True)
    old = logp.detach() + 0.3 * torch.randn(b, t, generator=g, dtype=F64)
    A = torch.randn(b, generator=g, dtype=F64)
    mask = (torch.arange(t)[None] < torch.randint(0, t + 1, (b,), generator=g)[:, None]).to(F64)
    n_tok, n_seq = batch_normalizers(mask)
    kw = dict(loss_agg_mode=mode, num_tokens=n_tok, num_seqs=n_seq, loss_scale_factor=t, clip_ratio_c=3.0)
    full, _ = grpo.policy_loss(logp, old, A, mask, **kw)
    (g_full,) = torch.autograd.grad(full, logp)
    parts = sum(grpo.policy_loss(logp[r], old[r], A[r], mask[r], **kw)[0] for r in ([0, 1], [2], [3, 4, 5]))
    (g_parts,) = torch.autograd.grad(parts, logp)
    close(parts, full, atol=1e-12)
    close(g_parts, g_full, atol=1e-12)


# ----------------------------------------------------------------------------- TRL parity

B, T, L_MAX = 4, 6, 8
TRL_LOSS = {"bnpo": "token-mean", "dapo": "token-mean", "grpo": "seq-mean-token-mean",
            "dr_grpo": "seq-mean-token-sum-norm"}


@pytest.fixture(scope="module")
def grpo_trainer_cls():
    pytest.importorskip("trl")
    from trl import GRPOTrainer

    return GRPOTrainer


def trl_loss(cls, loss_type, logps, inputs, *, beta=0.0, eps=(0.2, 0.28), delta=None, bias_kl=True):
    t = object.__new__(cls)
    t._get_per_token_logps_and_entropies = lambda *a, **k: (logps, torch.zeros_like(logps), None)
    t.loss_type = loss_type
    t.beta = beta
    t.epsilon_low, t.epsilon_high = eps
    t.importance_sampling_level = "token"
    t.top_entropy_quantile = 1.0
    t.off_policy_mask_threshold = None
    t.use_vllm = False
    t.vllm_importance_sampling_correction = False
    t.aux_loss_enabled = False
    t._entropy_bonus_enabled = False
    t.max_completion_length = L_MAX
    t.current_gradient_accumulation_steps = 1
    t.model = NS(training=True)
    t.args = NS(delta=delta, use_bias_correction_kl=bias_kl, steps_per_generation=1)
    t.accelerator = NS(num_processes=1, gather=lambda x: x, reduce=lambda x, reduction: x,
                       gather_for_metrics=lambda x: x)
    t._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
    return t._compute_loss(None, inputs), t._metrics["train"]


def random_batch(seed, per_token_adv=False, spread=0.4):
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(B, T, generator=g, dtype=F64) * 3
    old = logp + spread * torch.randn(B, T, generator=g, dtype=F64)  # ratios on both sides of the clip range
    ref = logp + 0.5 * torch.randn(B, T, generator=g, dtype=F64)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T
    mask = (torch.arange(T)[None] < lengths[:, None]).to(F64)
    A = torch.randn(B, T, generator=g, dtype=F64) if per_token_adv else torch.randn(B, generator=g, dtype=F64)
    return logp, old, ref, mask, A


def both(cls, loss_type, seed, *, with_old, beta=0.0, delta=None, bias_kl=False, per_token_adv=False, spread=0.4):
    logp, old, ref, mask, A = random_batch(seed, per_token_adv, spread)
    x_ours = logp.clone().requires_grad_(True)
    x_trl = logp.clone().requires_grad_(True)
    n_tok, n_seq = batch_normalizers(mask)
    ours, stats = grpo.policy_loss(
        x_ours, old if with_old else x_ours.detach(), A, mask, clip_ratio_low=0.2, clip_ratio_high=0.28,
        clip_ratio_c=delta, ref_logprobs=ref if beta else None, kl_coef=beta, loss_agg_mode=TRL_LOSS[loss_type],
        num_tokens=n_tok, num_seqs=n_seq, loss_scale_factor=L_MAX)
    inputs = dict(prompt_ids=torch.zeros(B, 2, dtype=torch.long), prompt_mask=torch.ones(B, 2, dtype=torch.long),
                  completion_ids=torch.zeros(B, T, dtype=torch.long), completion_mask=mask, advantages=A,
                  num_items_in_batch=mask.sum())
    if with_old:
        inputs["old_per_token_logps"] = old
    if beta:
        inputs["ref_per_token_logps"] = ref
    ref_loss, metrics = trl_loss(cls, loss_type, x_trl, inputs, beta=beta, delta=delta, bias_kl=bias_kl)
    ours.backward()
    ref_loss.backward()
    return (ours, x_ours.grad, stats), (ref_loss, x_trl.grad, metrics)


@pytest.mark.parametrize("with_old", [False, True])
@pytest.mark.parametrize("loss_type", list(TRL_LOSS))
def test_trl_policy_loss(grpo_trainer_cls, loss_type, with_old):
    (ours, g_ours, stats), (ref, g_ref, metrics) = both(grpo_trainer_cls, loss_type, 40 + with_old, with_old=with_old)
    close(ours, ref, atol=1e-12)
    close(g_ours, g_ref, atol=1e-12)
    close(stats["clip_frac"], metrics["clip_ratio/region_mean"][0], atol=1e-12)
    close(stats["clip_frac/low"], metrics["clip_ratio/low_mean"][0], atol=1e-12)
    close(stats["clip_frac/high"], metrics["clip_ratio/high_mean"][0], atol=1e-12)
    if with_old:
        assert stats["clip_frac"] > 0  # the test exercises clipping


@pytest.mark.parametrize("loss_type", list(TRL_LOSS))
def test_trl_per_token_advantages(grpo_trainer_cls, loss_type):
    (ours, g_ours, _), (ref, g_ref, _) = both(grpo_trainer_cls, loss_type, 50, with_old=True, per_token_adv=True)
    close(ours, ref, atol=1e-12)
    close(g_ours, g_ref, atol=1e-12)


@pytest.mark.parametrize("with_old", [False, True])
@pytest.mark.parametrize("loss_type", list(TRL_LOSS))
def test_trl_kl_without_bias_correction(grpo_trainer_cls, loss_type, with_old):
    (ours, g_ours, stats), (ref, g_ref, metrics) = both(grpo_trainer_cls, loss_type, 60 + with_old, with_old=with_old,
                                                        beta=0.05, bias_kl=False)
    close(ours, ref, atol=1e-12)
    close(g_ours, g_ref, atol=1e-12)
    close(stats["kl"], metrics["kl"][0], atol=1e-12)


@pytest.mark.parametrize("loss_type", list(TRL_LOSS))
def test_trl_kl_bias_corrected_on_policy_values(grpo_trainer_cls, loss_type):
    """TRL's default multiplies k3 by the (differentiable) ratio: same value on-policy, other gradient."""
    (ours, g_ours, _), (ref, g_ref, _) = both(grpo_trainer_cls, loss_type, 70, with_old=False, beta=0.3, bias_kl=True)
    close(ours, ref, atol=1e-12)
    assert not torch.allclose(g_ours, g_ref)


@pytest.mark.parametrize("loss_type", ["dapo", "grpo"])
def test_trl_delta_equals_dual_clip(grpo_trainer_cls, loss_type):
    """verl's dual clip c (A < 0) and TRL's two-sided delta agree when c >= 1 + eps_high."""
    (ours, g_ours, stats), (ref, g_ref, _) = both(grpo_trainer_cls, loss_type, 82, with_old=True, delta=1.6,
                                                  spread=1.0)
    close(ours, ref, atol=1e-12)
    close(g_ours, g_ref, atol=1e-12)
    assert stats["dual_clip_frac"] > 0
