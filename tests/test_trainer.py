"""End-to-end training on a tiny local Qwen3: GRPO and SDPO (every context level), determinism,
micro-batch invariance, checkpoint contents, and a SIGKILL + resume run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sdlab.config import CONTEXT_LEVELS, load_config
from sdlab.engine import trainer as trainer_mod
from sdlab.engine.metrics import read_metrics


def make_cfg(model, data, out, *overrides):
    return load_config(None, [
        f"model.name_or_path={model}", f"data.train={data}", f"output_dir={out}", "model.device=cpu",
        "reward.grader=strict", "rollout.n=4", "rollout.max_new_tokens=8", "data.train_batch_size=4",
        "steps=2", "actor.lr=1e-3", "actor.micro_batch_size=4", "logging.progress=false",
        "sdpo.distillation_topk=8", "sdpo.max_reprompt_len=512", *overrides,
    ])


@pytest.fixture
def fake_grader(monkeypatch):
    """Reward responses that contain the digit 1: gives varied rewards on a random model."""
    from sdlab.rewards import GradeResult

    def grade_many(responses, golds, grader="math_verify", *, truncated=None, reveal_answer=False, timeout=5.0):
        return [GradeResult(correct="1" in r, pred=None, reason="correct" if "1" in r else "incorrect",
                            feedback="" if "1" in r else "Your answer is incorrect.") for r in responses]

    monkeypatch.setattr(trainer_mod, "grade_many", grade_many)


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "final" / "model.safetensors"))


def strip_time(rows):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


def test_grpo_run_writes_everything(tiny_qwen3, toy_data, tmp_path, fake_grader):
    out = tmp_path / "run"
    cfg = make_cfg(tiny_qwen3, toy_data, out, "checkpoint.save_every=1", "eval.every=1",
                   f"eval.benchmarks=[{toy_data}]", "eval.limit=2", "eval.n=2")
    trainer_mod.train(cfg)
    rows = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2]
    for key in ("reward/mean", "reward/std", "frac_reward_zero_std", "actor/entropy", "actor/grad_norm", "actor/lr",
                "actor/clip_frac", "response_length/mean", "response_length/max", "response_length/clip_ratio",
                "actor/loss"):
        assert key in rows[1], key
    assert any(k.startswith("eval/") and k.endswith("/accuracy") for k in rows[0])
    assert (out / "config.yaml").exists() and (out / "final" / "model.safetensors").exists()
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == ["step-1", "step-2"]
    step2 = out / "checkpoints" / "step-2"
    for f in ("model/model.safetensors", "state/.metadata", "rng/rank-0.safetensors", "trainer_state.json",
              "MANIFEST.json", "COMPLETE"):
        assert (step2 / f).exists(), f
    assert json.loads((step2 / "trainer_state.json").read_text())["sampler"]
    assert (out / "eval" / "step-2").exists()
    # the weights moved
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_qwen3).state_dict()
    final = final_weights(out)
    assert any(not torch.equal(base[k], final[k]) for k in final)


@pytest.mark.parametrize("level", CONTEXT_LEVELS)
def test_sdpo_every_context_level(tiny_qwen3, toy_data, tmp_path, fake_grader, level):
    out = tmp_path / level
    cfg = make_cfg(tiny_qwen3, toy_data, out, "algorithm=sdpo", f"teacher_context={level}", "steps=1")
    trainer_mod.train(cfg)
    row = read_metrics(out / "metrics.jsonl")[-1]
    for key in ("sdpo/distilled_fraction", "sdpo/teacher_prompt_truncated", "sdpo/divergence", "sdpo/teacher_entropy",
                "sdpo/teacher_epistemic_mass", "sdpo/student_epistemic_mass", "actor/entropy"):
        assert key in row, key
    if level in ("answer", "none", "solution"):
        assert row["sdpo/distilled_fraction"] == 1.0
    if level == "none":  # frozen teacher == student at step 0 on the same prompt
        assert row["sdpo/divergence"] < 1e-6


@pytest.mark.parametrize("mode, alpha", [("full", 0.5), ("sampled_token", 1.0), ("topk", 0.0)])
def test_sdpo_divergence_modes(tiny_qwen3, toy_data, tmp_path, fake_grader, mode, alpha):
    out = tmp_path / mode
    cfg = make_cfg(tiny_qwen3, toy_data, out, "algorithm=sdpo", "teacher_context=answer", "steps=1",
                   f"sdpo.distillation_mode={mode}", f"sdpo.alpha={alpha}", "sdpo.teacher.kind=ema",
                   "sdpo.distillation_weight=0.5")
    trainer_mod.train(cfg)
    assert read_metrics(out / "metrics.jsonl")[-1]["sdpo/divergence"] > 0


def test_runs_are_deterministic_and_micro_batch_invariant(tiny_qwen3, toy_data, tmp_path, fake_grader):
    common = ("algorithm=sdpo", "teacher_context=demo", "sdpo.distillation_weight=0.5", "actor.ppo_mini_batch_size=2")
    trainer_mod.train(make_cfg(tiny_qwen3, toy_data, tmp_path / "a", *common))
    trainer_mod.train(make_cfg(tiny_qwen3, toy_data, tmp_path / "b", *common))
    trainer_mod.train(make_cfg(tiny_qwen3, toy_data, tmp_path / "c", *common, "actor.micro_batch_size=1"))
    a, b, c = (final_weights(tmp_path / x) for x in "abc")
    for k in a:
        assert torch.equal(a[k], b[k]), k
        assert torch.allclose(a[k], c[k], atol=1e-5), k
    assert strip_time(read_metrics(tmp_path / "a" / "metrics.jsonl")) == strip_time(
        read_metrics(tmp_path / "b" / "metrics.jsonl"))


def _cli(args, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "sdlab.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


REAL_MODEL_SETTINGS = ("model.gradient_checkpointing=true", "model.dtype=bfloat16",
                       "actor.max_tokens_per_micro_batch=300", "actor.logits_chunk_size=4")


@pytest.mark.parametrize("extra", [(), REAL_MODEL_SETTINGS], ids=["default", "real-model-settings"])
def test_sigkill_and_resume_matches_uninterrupted_run(tiny_qwen3, toy_data, tmp_path, extra):
    """SDPO (EMA teacher, half GRPO) with the real strict grader: killed with SIGKILL mid-run and
    resumed, it ends with the same weights and metrics lines as an uninterrupted run — also with
    the settings of the real-model recipes (checkpointing, bf16 compute on fp32 masters, a token
    budget per micro-batch, a chunked head)."""
    overrides = [f"model.name_or_path={tiny_qwen3}", f"data.train={toy_data}", "model.device=cpu",
                 "reward.grader=strict", "rollout.n=4", "rollout.max_new_tokens=8", "data.train_batch_size=4",
                 "steps=6", "actor.lr=1e-3", "logging.progress=false", "algorithm=sdpo", "teacher_context=answer",
                 "sdpo.teacher.kind=ema", "sdpo.distillation_weight=0.5", "sdpo.distillation_topk=8",
                 "checkpoint.save_every=1", "checkpoint.keep_last=10", "actor.ppo_mini_batch_size=2", *extra]
    full, killed = tmp_path / "full", tmp_path / "killed"
    p = _cli(["train", *overrides, f"output_dir={full}"])
    assert p.wait(timeout=300) == 0, p.stdout.read()
    p = _cli(["train", *overrides, f"output_dir={killed}"])
    deadline = time.time() + 240
    while not (killed / "checkpoints" / "step-3" / "COMPLETE").exists():
        assert p.poll() is None, p.stdout.read()
        assert time.time() < deadline
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (killed / "final").exists()
    p = _cli(["train", *overrides, f"output_dir={killed}", "--resume"])
    assert p.wait(timeout=300) == 0, p.stdout.read()
    a, b = final_weights(full), final_weights(killed)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert strip_time(read_metrics(full / "metrics.jsonl")) == strip_time(read_metrics(killed / "metrics.jsonl"))
    # the whole training state (policy, AdamW, EMA teacher) is byte-identical
    ma, mb = (json.loads((run / "checkpoints" / "step-6" / "MANIFEST.json").read_text())["files"]
              for run in (full, killed))
    state = [k for k in ma if k.startswith("state/") and k.endswith(".distcp")]
    assert state and all(ma[k]["sha256"] == mb[k]["sha256"] for k in state)
