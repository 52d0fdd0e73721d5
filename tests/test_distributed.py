"""`accelerate launch` with 2 CPU processes (gloo) computes the same run as 1 process on the
same global batch: the same final weights (to float tolerance) and the same metrics."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from sdlab.engine.metrics import read_metrics

from .test_trainer import PROBLEMS


@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate CLI not installed")
def test_two_processes_match_one(tiny_qwen3, tmp_path):
    data = tmp_path / "toy.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    overrides = [f"model.name_or_path={tiny_qwen3}", f"data.train={data}", "model.device=cpu", "reward.grader=strict",
                 "rollout.n=4", "rollout.max_new_tokens=8", "data.train_batch_size=4", "actor.ppo_mini_batch_size=2",
                 "actor.micro_batch_size=3", "steps=2", "actor.lr=1e-3", "logging.progress=false", "algorithm=sdpo",
                 "teacher_context=answer", "sdpo.distillation_weight=0.5", "sdpo.distillation_topk=8"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    one, two = tmp_path / "one", tmp_path / "two"
    r = subprocess.run([sys.executable, "-m", "sdlab.cli", "train", *overrides, f"output_dir={one}"],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["accelerate", "launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
                        "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "sdlab.cli", "train", *overrides,
                        f"output_dir={two}"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    a, b = load_file(str(one / "final" / "model.safetensors")), load_file(str(two / "final" / "model.safetensors"))
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k
    ma, mb = read_metrics(one / "metrics.jsonl"), read_metrics(two / "metrics.jsonl")
    assert [m["step"] for m in ma] == [m["step"] for m in mb]
    for x, y in zip(ma, mb):
        for k, v in x.items():
            if k.startswith("time/") or not isinstance(v, float):
                continue
            assert y[k] == pytest.approx(v, rel=1e-4, abs=1e-5), k
