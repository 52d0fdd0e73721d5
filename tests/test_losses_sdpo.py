"""SDPO losses: hand vectors S1-S5 (algorithms.md §3.3) and float64 parity with TRL 1.16.0.

TRL is only an oracle here (`trl.experimental.sdpo.loss_utils` and
`SDPOTrainer._compute_self_distillation_loss`, called on a trainer built without __init__ as in
algorithms.md §3.2).
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from types import SimpleNamespace as NS

import pytest
import torch

from sdlab.algorithms import sdpo
from sdlab.algorithms.logits import entropy, mass_on, token_logprobs

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

F64 = torch.float64
TOL = dict(rtol=0, atol=1e-9)

S_LOGITS = torch.tensor([2.0, 1.0, 0.0, -1.0], dtype=F64)
T_LOGITS = torch.tensor([0.5, 1.5, 0.0, -0.5], dtype=F64)


def close(a, b, atol=1e-9):
    torch.testing.assert_close(torch.as_tensor(a, dtype=F64), torch.as_tensor(b, dtype=F64), rtol=0, atol=atol)


def teacher_topk_logp(teacher_logits, ids):
    return teacher_logits.gather(-1, ids) - torch.logsumexp(teacher_logits, dim=-1, keepdim=True)


# ----------------------------------------------------------------------------- hand vectors


@pytest.mark.parametrize("alpha,expected", [
    (0.0, 0.40336368), (1.0, 0.43721737), (0.5, 0.10080734), (0.25, 0.07491545),
    (0.1, 0.03607901), (0.01, 0.00399022), (0.9, 0.03839240), (0.99, 0.00431672),
])
def test_s1_full_vocabulary(alpha, expected):
    close(sdpo.full_vocab_loss(S_LOGITS, T_LOGITS, alpha), expected, atol=1e-8)


def test_s1_direction_and_probabilities():
    ps, pt = S_LOGITS.softmax(-1), T_LOGITS.softmax(-1)
    close(ps, [0.64391426, 0.23688282, 0.08714432, 0.03205860], atol=1e-8)
    close(pt, [0.21309730, 0.57925853, 0.12925005, 0.07839412], atol=1e-8)
    ls, lt = ps.log(), pt.log()
    close(sdpo.divergence(ls, lt, 0.0), (pt * (lt - ls)).sum())  # KL(T || S)
    close(sdpo.divergence(ls, lt, 1.0), (ps * (ls - lt)).sum())  # KL(S || T)


@pytest.mark.parametrize("add_tail,alpha,expected", [
    (True, 0.0, 0.39755898), (True, 0.5, 0.09979091), (True, 1.0, 0.43407702),
    (False, 0.0, 0.46211716), (False, 0.5, 0.11094407), (False, 1.0, 0.46211716),
])
def test_s2_topk_student_support(add_tail, alpha, expected):
    ids = sdpo.student_topk(S_LOGITS, 2)
    assert ids.tolist() == [0, 1]
    close(sdpo.topk_loss(S_LOGITS, teacher_topk_logp(T_LOGITS, ids), ids, alpha, add_tail), expected, atol=1e-8)


def test_tail_bucket_and_renormalize():
    lp = torch.log(torch.tensor([0.5, 0.2], dtype=F64))
    close(sdpo.add_tail(lp).exp(), [0.5, 0.2, 0.3])
    close(sdpo.renormalize(lp).exp(), [5 / 7, 2 / 7])
    # captured mass 1 (up to rounding): tail clamped, finite
    full = torch.log_softmax(torch.tensor([1.0, 2.0], dtype=F64), -1)
    assert torch.isfinite(sdpo.add_tail(full)).all()


def test_s3_sampled_token_value_and_gradient():
    s = S_LOGITS.clone().requires_grad_(True)
    y = torch.tensor(1)
    ls, lt = token_logprobs(s, y), token_logprobs(T_LOGITS, y)
    close(ls, -1.44018970, atol=1e-8)
    close(lt, -0.54600639, atol=1e-8)
    loss = sdpo.sampled_token_loss(ls, lt)
    close(loss, 1.28779359, atol=1e-8)
    loss.backward()
    close(s.grad, [0.57577738, -0.68236665, 0.07792300, 0.02866627], atol=1e-8)


def test_exact_reverse_kl_gradient_differs_from_sampled_token():
    s = S_LOGITS.clone().requires_grad_(True)
    sdpo.full_vocab_loss(s, T_LOGITS, 1.0).backward()
    close(s.grad, [0.43052064, -0.31538594, -0.07245185, -0.04268285], atol=1e-8)


@pytest.mark.parametrize("p,p_old,w", [(0.4, 0.1, 2.0), (0.3, 0.2, 1.5), (0.05, 0.5, 0.1)])
def test_s4_is_clip(p, p_old, w):
    ls = torch.tensor(math.log(p), dtype=F64, requires_grad=True)
    weight = sdpo.is_clip_weights(ls, torch.tensor(math.log(p_old), dtype=F64), 2.0)
    close(weight, w)
    assert not weight.requires_grad
    close(sdpo.is_clip_weights(ls, torch.tensor(math.log(p_old), dtype=F64), None), p / p_old)


S5_LOSS = torch.tensor([[0.3, 0.5, 0.1], [0.9, 0, 0], [0.2, 0.4, 0]], dtype=F64)
S5_MASK = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0]], dtype=F64)
S5_SD = torch.tensor([1, 1, 0], dtype=F64)


def test_s5_aggregation():
    close(sdpo.distillation_loss(S5_LOSS, S5_MASK, S5_SD, num_seqs=3), 0.4)
    # micro-batches with the global sequence count add up to the mini-batch value
    parts = [sdpo.distillation_loss(S5_LOSS[i : i + 1], S5_MASK[i : i + 1], S5_SD[i : i + 1],
                                    num_seqs=torch.tensor(3.0))
             for i in range(3)]
    close(sum(parts), 0.4)
    # logged-metric variant (global token mean) differs: 0.45
    dm = S5_MASK * S5_SD[:, None]
    close((S5_LOSS * dm).sum() / dm.sum(), 0.45)


def test_validate_sdpo_options():
    sdpo.validate_sdpo_options("sampled_token", 1.0)
    sdpo.validate_sdpo_options("topk", 0.5, 100)
    sdpo.validate_sdpo_options("full", 0.0)
    with pytest.raises(ValueError, match="only supports reverse KL"):
        sdpo.validate_sdpo_options("sampled_token", 0.5)
    with pytest.raises(ValueError, match="unknown distillation mode"):
        sdpo.validate_sdpo_options("topk_logits", 0.5, 10)
    with pytest.raises(ValueError, match="topk >= 1"):
        sdpo.validate_sdpo_options("topk", 0.5, None)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        sdpo.validate_sdpo_options("full", 1.5)
    with pytest.raises(ValueError, match="is_clip"):
        sdpo.validate_sdpo_options("full", 1.0, is_clip=0.0)


def test_zero_probability_entries_do_not_produce_nan():
    ls = torch.tensor([0.0, float("-inf")], dtype=F64, requires_grad=True)
    lt = torch.log(torch.tensor([0.5, 0.5], dtype=F64))
    val = sdpo.divergence(ls, lt, 1.0)
    close(val, math.log(2))
    val.backward()
    assert torch.isfinite(ls.grad).all()


# ----------------------------------------------------------------------------- the mode switch


@pytest.mark.parametrize("mode,alpha", [("full", 0.5), ("topk", 0.5), ("topk", 0.0), ("sampled_token", 1.0)])
def test_per_token_loss_is_the_named_support(mode, alpha):
    s, t = rand_logits(11), rand_logits(12)
    y = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(13))
    got = sdpo.per_token_loss(mode, s, t, y, alpha=alpha, topk=4, add_tail=True)
    if mode == "full":
        want = sdpo.full_vocab_loss(s, t, alpha)
    elif mode == "topk":
        ids = sdpo.student_topk(s, 4)
        want = sdpo.topk_loss(s, teacher_topk_logp(t, ids), ids, alpha, True)
    else:
        want = sdpo.sampled_token_loss(token_logprobs(s, y), token_logprobs(t, y))
    close(got, want, atol=0)
    with pytest.raises(ValueError, match="unknown distillation mode"):
        sdpo.per_token_loss("topk_logits", s, t, y, alpha=alpha)


def test_logit_helpers():
    logits = rand_logits(14)
    close(entropy(logits), -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1), atol=1e-12)
    close(mass_on(logits, [2, 5]), logits.softmax(-1)[..., [2, 5]].sum(-1), atol=1e-12)
    close(mass_on(logits, None), torch.zeros(B, T))
    assert entropy(logits.to(torch.bfloat16)).dtype == torch.float32


# ----------------------------------------------------------------------------- TRL parity

B, T, V = 4, 6, 37


@pytest.fixture(scope="module")
def lu():
    pytest.importorskip("trl")
    from trl.experimental.sdpo import loss_utils

    return loss_utils


def rand_logits(seed, shape=(B, T, V), scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=F64) * scale


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 1.0])
def test_trl_divergence(lu, alpha):
    ls = torch.log_softmax(rand_logits(0), -1)
    lt = torch.log_softmax(rand_logits(1), -1)
    close(sdpo.divergence(ls, lt, alpha), lu.compute_divergence(ls, lt, alpha), atol=1e-12)
    # top-k-sized supports too (with tail)
    k = sdpo.add_tail(ls[..., :5])
    q = sdpo.add_tail(lt[..., :5])
    close(sdpo.divergence(k, q, alpha), lu.compute_divergence(k, q, alpha), atol=1e-12)
    close(sdpo.add_tail(ls[..., :5]), lu.add_tail_bucket(ls[..., :5]), atol=1e-12)


def _value_and_grad(fn, logits):
    x = logits.clone().requires_grad_(True)
    val = fn(x)
    (val * torch.linspace(0.5, 1.5, val.numel(), dtype=F64).reshape(val.shape)).sum().backward()
    return val.detach(), x.grad


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 1.0])
def test_trl_full_logit_loss(lu, alpha):
    s, t = rand_logits(2), rand_logits(3)
    ours = _value_and_grad(lambda x: sdpo.full_vocab_loss(x, t, alpha), s)
    ref = _value_and_grad(lambda x: lu.compute_full_logit_self_distillation_loss(x, t, distillation_alpha=alpha), s)
    close(ours[0], ref[0], atol=1e-12)
    close(ours[1], ref[1], atol=1e-12)


@pytest.mark.parametrize("add_tail", [True, False])
@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 1.0])
def test_trl_topk_loss(lu, alpha, add_tail):
    s, t = rand_logits(4), rand_logits(5)
    k = 7

    def ours_fn(x):
        ids = sdpo.student_topk(x, k)
        return sdpo.topk_loss(x, teacher_topk_logp(t, ids), ids, alpha, add_tail)

    ours = _value_and_grad(ours_fn, s)
    ref = _value_and_grad(lambda x: lu.compute_topk_self_distillation_loss(
        x, t, distillation_topk=k, distillation_alpha=alpha, distillation_add_tail=add_tail), s)
    close(ours[0], ref[0], atol=1e-12)
    close(ours[1], ref[1], atol=1e-12)


def test_trl_topk_loss_via_chunked_engine_path(lu):
    """Engine path: both models' logits from hidden states, a chunk of positions at a time
    (`map_chunks` + `per_token_loss`), equal TRL on the full logits — values and gradients."""
    from sdlab.engine.head import map_chunks

    g = torch.Generator().manual_seed(9)
    hs = torch.randn(B * T, 10, generator=g, dtype=F64, requires_grad=True)
    ht = torch.randn(B * T, 10, generator=g, dtype=F64)
    ws, wt = torch.randn(V, 10, generator=g, dtype=F64), torch.randn(V, 10, generator=g, dtype=F64)
    temp, k = 0.8, 5
    y = torch.zeros(B * T, dtype=torch.long)
    (ours,) = map_chunks(lambda h, t, ids: (sdpo.per_token_loss("topk", h @ ws.T / temp, t @ wt.T / temp, ids,
                                                                 alpha=0.5, topk=k, add_tail=True),), 3, hs, ht, y)
    ours.sum().backward()
    hs_ref = hs.detach().clone().requires_grad_(True)
    ref = lu.compute_topk_self_distillation_loss((hs_ref @ ws.T / temp).view(B, T, V), (ht @ wt.T / temp).view(B, T, V),
                                                 distillation_topk=k, distillation_alpha=0.5,
                                                 distillation_add_tail=True)
    ref.sum().backward()
    close(ours.view(B, T), ref, atol=1e-12)
    close(hs.grad, hs_ref.grad, atol=1e-12)


def test_trl_sampled_token_loss(lu):
    s, t = rand_logits(6), rand_logits(7)
    y = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(8))
    ours = _value_and_grad(lambda x: sdpo.sampled_token_loss(token_logprobs(x, y), token_logprobs(t, y)), s)
    ref = _value_and_grad(lambda x: lu.compute_sampled_token_self_distillation_loss(x, t, y, distillation_alpha=1.0), s)
    close(ours[0], ref[0], atol=1e-12)
    close(ours[1], ref[1], atol=1e-12)
    with pytest.raises(ValueError):
        lu.compute_sampled_token_self_distillation_loss(s, t, y, distillation_alpha=0.5)


def test_trl_importance_sampling_clipping(lu):
    g = torch.Generator().manual_seed(11)
    loss = torch.rand(B, T, generator=g, dtype=F64)
    ls = -torch.rand(B, T, generator=g, dtype=F64) * 3
    old = ls + torch.randn(B, T, generator=g, dtype=F64)
    for clip in (2.0, 1.3):
        close(loss * sdpo.is_clip_weights(ls, old, clip), lu.apply_importance_sampling_clipping(loss, ls, old, clip),
              atol=1e-12)


# --- SDPOTrainer._compute_self_distillation_loss


@pytest.fixture(scope="module")
def sdpo_trainer_cls():
    pytest.importorskip("trl")
    from trl.experimental.sdpo import sdpo_trainer

    return sdpo_trainer


def make_sdpo_stub(mod, **args):
    t = object.__new__(mod.SDPOTrainer)
    defaults = dict(distillation_mode="full_logits", distillation_topk=None, distillation_alpha=1.0,
                    distillation_add_tail=False, distillation_is_clip=2.0)
    defaults.update(args)
    t.args = NS(**defaults)
    t.accelerator = NS(gather=lambda x: x)
    t._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
    return t


def random_masks(seed, b=B, t=T):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    lengths[0] = t
    cm = (torch.arange(t)[None, :] < lengths[:, None]).to(F64)
    sd = torch.tensor([1.0, 0.0] + [float(x) for x in torch.randint(0, 2, (b - 2,), generator=g)], dtype=F64)
    return cm, sd


def test_trl_s5_injected(sdpo_trainer_cls, monkeypatch):
    monkeypatch.setattr(sdpo_trainer_cls, "compute_full_logit_self_distillation_loss", lambda *a, **k: S5_LOSS)
    t = make_sdpo_stub(sdpo_trainer_cls)
    logits = torch.zeros(3, 3, 4, dtype=F64)
    loss = t._compute_self_distillation_loss(
        NS(training=True), {},
        NS(completion_ids=torch.zeros(3, 3, dtype=torch.long), completion_mask=S5_MASK,
           loss_mask=S5_MASK * S5_SD[:, None], student_logits=logits, teacher_logits=logits))
    close(loss, 0.4)
    close(t._metrics["train"]["self_distillation/distillation_loss"][0], 0.45)


CASES = [
    dict(mode="full", trl="full_logits", alpha=0.0, add_tail=False),
    dict(mode="full", trl="full_logits", alpha=0.5, add_tail=False),
    dict(mode="topk", trl="topk_logits", alpha=0.5, add_tail=True),
    dict(mode="topk", trl="topk_logits", alpha=0.0, add_tail=False),
    dict(mode="topk", trl="topk_logits", alpha=1.0, add_tail=True),
    dict(mode="sampled_token", trl="sampled_token", alpha=1.0, add_tail=False),
]


@pytest.mark.parametrize("with_old", [False, True])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['mode']}-a{c['alpha']}-tail{int(c['add_tail'])}")
def test_trl_self_distillation_loss(sdpo_trainer_cls, case, with_old):
    k = 6
    seed = 20 + CASES.index(case) + 10 * with_old
    s, tl = rand_logits(seed), rand_logits(seed + 100)
    y = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))
    cm, sd = random_masks(seed)
    old = None
    if with_old:
        old = token_logprobs(s, y) + 0.6 * torch.randn(B, T, generator=torch.Generator().manual_seed(seed), dtype=F64)

    def ours_fn(x):
        logp = token_logprobs(x, y)
        if case["mode"] == "full":
            pt = sdpo.full_vocab_loss(x, tl, case["alpha"])
        elif case["mode"] == "topk":
            ids = sdpo.student_topk(x, k)
            pt = sdpo.topk_loss(x, teacher_topk_logp(tl, ids), ids, case["alpha"], case["add_tail"])
        else:
            pt = sdpo.sampled_token_loss(logp, token_logprobs(tl, y))
        if old is not None:
            pt = pt * sdpo.is_clip_weights(logp, old, 2.0)
        return sdpo.distillation_loss(pt, cm, sd, num_seqs=B)

    stub = make_sdpo_stub(sdpo_trainer_cls, distillation_mode=case["trl"], distillation_topk=k,
                          distillation_alpha=case["alpha"], distillation_add_tail=case["add_tail"])

    def ref_fn(x):
        inputs = {} if old is None else {"old_per_token_logps": old}
        return stub._compute_self_distillation_loss(
            NS(training=True), inputs,
            NS(completion_ids=y, completion_mask=cm, loss_mask=cm * sd[:, None], student_logits=x, teacher_logits=tl))

    ours, ref = _value_and_grad(ours_fn, s), _value_and_grad(ref_fn, s)
    close(ours[0], ref[0], atol=1e-12)
    close(ours[1], ref[1], atol=1e-12)
    assert ours[0].abs() > 1e-6
