"""One process trains a real model correctly: the policy is in training mode inside the loss,
checkpointed layers are recomputed in the backward, bf16 compute keeps fp32 master weights and
optimizer states (so a step at lr 1e-6 changes the weights), and token-budget micro-batches give
the same update as fixed micro-batches."""

from __future__ import annotations

import logging

import pytest
import torch

from sdlab.config import load_config
from sdlab.engine import trainer as trainer_mod
from sdlab.engine.trainer import Trainer


@pytest.fixture
def fake_grader(monkeypatch):
    """Reward responses that contain the digit 1: varied rewards (non-zero advantages) on a random model."""
    from sdlab.rewards import GradeResult

    def grade_many(responses, golds, grader="math_verify", *, truncated=None, reveal_answer=False, timeout=5.0):
        return [GradeResult(correct="1" in r, pred=None, reason="x", feedback="" if "1" in r else "Wrong.")
                for r in responses]

    monkeypatch.setattr(trainer_mod, "grade_many", grade_many)


def make_cfg(model, data, out, *overrides):
    return load_config(None, [f"model.name_or_path={model}", f"data.train={data}", f"output_dir={out}",
                              "model.device=cpu", "reward.grader=strict", "rollout.n=4", "rollout.max_new_tokens=12",
                              "data.train_batch_size=4", "steps=1", "logging.progress=false",
                              "sdpo.distillation_topk=8", *overrides])


def test_policy_trains_in_train_mode_and_checkpointing_recomputes(tiny_qwen3, toy_data, tmp_path, fake_grader):
    calls = {}
    for ckpt in (False, True):
        trainer = Trainer(make_cfg(tiny_qwen3, toy_data, tmp_path / str(ckpt), "algorithm=sdpo",
                                   f"model.gradient_checkpointing={str(ckpt).lower()}", "actor.micro_batch_size=16"))
        layer = trainer.model.model.layers[0]
        seen = []
        layer.register_forward_pre_hook(lambda mod, args: seen.append((mod.training, torch.is_grad_enabled())))
        trainer.step()
        with_grad = [training for training, grad in seen if grad]
        assert with_grad and all(with_grad), "the policy must be in training mode for every loss computation"
        calls[ckpt] = len(with_grad)
    assert calls[False] == 1  # one micro-batch: one forward with gradients
    assert calls[True] == 2  # the same forward, and its recomputation in the backward


def _one_update(trainer):
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.step()
    changed = total = 0
    for n, p in trainer.model.named_parameters():
        state = trainer.optimizer.state[p]
        if not state:
            continue
        touched = state["exp_avg"] != 0  # elements that received a gradient
        changed += int(((p.detach() != before[n]) & touched).sum())
        total += int(touched.sum())
    return changed / total


def test_bf16_compute_keeps_fp32_masters(tiny_qwen3, toy_data, tmp_path, fake_grader, caplog):
    trainer = Trainer(make_cfg(tiny_qwen3, toy_data, tmp_path / "mixed", "model.dtype=bfloat16", "actor.lr=1e-6"))
    assert trainer.precision.mixed and trainer.precision.compute == torch.bfloat16
    frac = _one_update(trainer)
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    for state in trainer.optimizer.state.values():
        assert state["exp_avg"].dtype == torch.float32 and state["exp_avg_sq"].dtype == torch.float32
    assert frac >= 0.99, f"only {frac:.1%} of the master weights changed at lr 1e-6"
    with caplog.at_level(logging.WARNING):
        pure = Trainer(make_cfg(tiny_qwen3, toy_data, tmp_path / "pure", "model.dtype=bfloat16",
                                "model.master_dtype=bfloat16", "actor.lr=1e-6"))
    assert "pure low-precision" in caplog.text
    assert all(p.dtype == torch.bfloat16 for p in pure.model.parameters())
    assert _one_update(pure) < 0.5  # what the fp32 masters are for: most bf16 updates round away


def test_frozen_teacher_lives_in_the_compute_dtype(tiny_qwen3, toy_data, tmp_path):
    trainer = Trainer(make_cfg(tiny_qwen3, toy_data, tmp_path / "t", "model.dtype=bfloat16", "algorithm=sdpo"))
    assert next(trainer.teacher.module().parameters()).dtype == torch.bfloat16
    ema = Trainer(make_cfg(tiny_qwen3, toy_data, tmp_path / "e", "model.dtype=bfloat16", "algorithm=sdpo",
                           "sdpo.teacher.kind=ema"))
    assert next(ema.teacher.module().parameters()).dtype == torch.float32  # EMA updates need the masters' precision


@pytest.mark.parametrize("algorithm", ["grpo", "sdpo"])
def test_token_budget_micro_batches_give_the_same_update(tiny_qwen3, toy_data, tmp_path, fake_grader, algorithm):
    """Fixed micro-batches of 2 rows vs a token budget (sorted by length, several rows per pass) vs
    packed sequences: the same weights after an update, in float64."""
    finals = {}
    for name, extra in {"fixed": ("actor.micro_batch_size=2",),
                        "budget": ("actor.max_tokens_per_micro_batch=500",),
                        "packed": ("actor.max_tokens_per_micro_batch=600", "actor.pack_sequences=true")}.items():
        torch.manual_seed(0)
        trainer = Trainer(make_cfg(tiny_qwen3, toy_data, tmp_path / name, f"algorithm={algorithm}",
                                   "actor.lr=1e-3", "actor.ppo_mini_batch_size=2", "rollout.backend=hf", *extra))
        trainer.model.double()
        if trainer.teacher is not None:
            trainer.teacher.model.double()
        groups = []
        original = trainer._micro_batches
        trainer._micro_batches = lambda *a: groups.append(original(*a)) or groups[-1]
        trainer.step()
        finals[name] = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
        sizes = sorted(len(g) for gs in groups for g in gs)
        if name == "fixed":
            assert set(sizes) == {2}
        else:
            assert max(sizes) > 2, sizes  # the budget put more rows in a pass
    for name in ("budget", "packed"):
        for k, v in finals["fixed"].items():
            torch.testing.assert_close(finals[name][k], v, rtol=0, atol=1e-10, msg=f"{name}: {k}")
