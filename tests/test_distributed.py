"""Several processes (CPU, gloo) compute the run of one process on the same global batch.

- DDP through `accelerate launch` and FSDP2 (`parallel.strategy=fsdp`, sdlab's own `fully_shard`)
  through `accelerate launch` and `torchrun`: the same final weights (float tolerance), metrics
  and in-training evaluation as one process; the exported `final/` loads with `from_pretrained`;
  the EMA teacher's state in the last checkpoint matches;
- under FSDP2 each rank holds about half of the policy's and the teacher's parameters;
- SIGKILL mid-run + `--resume` under FSDP2 equals the uninterrupted FSDP2 run, and a resume with
  one process (the checkpoint reshards) continues it;
- the launch guards: DDP over ~1B parameters and DeepSpeed are refused in one line.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sdlab.engine.metrics import read_metrics

from .conftest import PROBLEMS

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
ONE = [sys.executable, "-m", "sdlab.cli", "train"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "sdlab.cli",
            "train"]
ACCELERATE = ["accelerate", "launch", "--cpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
              "--dynamo_backend", "no", "-m", "sdlab.cli", "train"]
needs_accelerate = pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate CLI not installed")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "toy.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    return path


def overrides(model, data, *extra):
    return [f"model.name_or_path={model}", f"data.train={data}", "model.device=cpu", "reward.grader=strict",
            "rollout.n=4", "rollout.max_new_tokens=8", "data.train_batch_size=4", "actor.ppo_mini_batch_size=2",
            "actor.micro_batch_size=3", "steps=2", "actor.lr=1e-3", "logging.progress=false", "algorithm=sdpo",
            "teacher_context=answer", "sdpo.distillation_weight=0.5", "sdpo.distillation_topk=8", *extra]


def run(cmd, *args, timeout=600, env=None):
    r = subprocess.run([*cmd, *args], env={**ENV, **(env or {})}, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def assert_same_run(one: Path, two: Path, *, atol=1e-5):
    a, b = load_file(str(one / "final" / "model.safetensors")), load_file(str(two / "final" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=atol, rtol=1e-4), k
    ma, mb = read_metrics(one / "metrics.jsonl"), read_metrics(two / "metrics.jsonl")
    assert [m["step"] for m in ma] == [m["step"] for m in mb]
    for x, y in zip(ma, mb):
        assert x.keys() == y.keys()
        for k, v in x.items():
            if k.startswith("time/") or not isinstance(v, float):
                continue
            assert y[k] == pytest.approx(v, rel=1e-4, abs=1e-5), k


def training_state(checkpoint: Path, tmp: Path) -> dict:
    """The DCP training state of a checkpoint as one flat dict of tensors (for comparison)."""
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    out = tmp / f"{checkpoint.parent.parent.name}-{checkpoint.name}.pt"
    dcp_to_torch_save(str(checkpoint / "state"), str(out))
    state = torch.load(out, weights_only=True)

    def flat(tree, prefix=""):
        for k, v in tree.items():
            if isinstance(v, dict):
                yield from flat(v, f"{prefix}{k}.")
            elif torch.is_tensor(v):
                yield f"{prefix}{k}", v

    return dict(flat(state))


EVAL = ("eval.every=1", "eval.n=2", "eval.temperature=1.0", "eval.top_p=1.0")


def _eval_overrides(data):
    return [f"eval.benchmarks=[{data}]"]


@needs_accelerate
def test_ddp_two_processes_match_one(tiny_qwen3, data, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    run(ONE, *overrides(tiny_qwen3, data), f"output_dir={one}")
    run(ACCELERATE, *overrides(tiny_qwen3, data), f"output_dir={two}")
    assert_same_run(one, two)


@needs_accelerate
@pytest.mark.parametrize("launcher", ["accelerate", "torchrun"])
def test_fsdp_two_processes_match_one(tiny_qwen3, data, tmp_path, launcher):
    one = tmp_path / "one"
    two = tmp_path / "two"
    common = [*overrides(tiny_qwen3, data, *EVAL, "sdpo.teacher.kind=ema", "checkpoint.save_every=1"),
              *_eval_overrides(data)]
    run(ONE, *common, f"output_dir={one}")
    run(ACCELERATE if launcher == "accelerate" else TORCHRUN, *common, "parallel.strategy=fsdp", f"output_dir={two}")
    assert_same_run(one, two)
    assert any(k.startswith("eval/") for k in read_metrics(two / "metrics.jsonl")[-1])  # evaluation ran on both ranks
    from transformers import AutoModelForCausalLM

    exported = AutoModelForCausalLM.from_pretrained(two / "checkpoints" / "step-2" / "model").state_dict()
    final = load_file(str(two / "final" / "model.safetensors"))
    assert all(torch.equal(exported[k], final[k]) for k in final)
    sa, sb = (training_state(run_dir / "checkpoints" / "step-2", tmp_path) for run_dir in (one, two))
    teacher = [k for k in sa if k.startswith("teacher.")]
    assert teacher and sa.keys() == sb.keys()
    for k in teacher:
        assert torch.allclose(sa[k], sb[k], atol=1e-5, rtol=1e-4), k


SHARDS = '''
import json, sys
from sdlab.config import load_config
from sdlab.engine.trainer import Trainer
from sdlab.engine.parallel import local
t = Trainer(load_config(None, sys.argv[1:]))
def frac(m):
    return sum(local(p).numel() for p in m.parameters()) / sum(p.numel() for p in m.parameters())
import os
from sdlab.engine.parallel import gathered
out = {"policy": frac(t.model), "teacher": frac(t.teacher.model)}
with gathered(t.model):  # generation: the whole model at hand, no collective per forward
    out["gathered"] = frac(t.model)
out["after"] = frac(t.model)
open(os.environ["SHARDS_OUT"] + f"/rank-{t.rank}.json", "w").write(json.dumps(out))
'''  # noqa: E501 (the script's text is kept byte for byte)


def test_fsdp_shards_the_policy_and_the_teacher(tiny_qwen3, data, tmp_path):
    script = tmp_path / "shards.py"
    script.write_text(SHARDS)
    run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)],
        *overrides(tiny_qwen3, data, "parallel.strategy=fsdp", f"output_dir={tmp_path / 'x'}"),
        env={"SHARDS_OUT": str(tmp_path)})
    fracs = [json.loads((tmp_path / f"rank-{k}.json").read_text()) for k in (0, 1)]
    assert len(fracs) == 2
    for f in fracs:
        assert 0.4 < f["policy"] < 0.6 and 0.4 < f["teacher"] < 0.6, f
        assert f["gathered"] == 1.0 and f["after"] == f["policy"], f


def test_fsdp_sigkill_resume_matches_and_reshards_to_one_process(tiny_qwen3, data, tmp_path):
    common = [*overrides(tiny_qwen3, data, "sdpo.teacher.kind=ema", "steps=4", "checkpoint.save_every=1",
                         "checkpoint.keep_last=10"), "parallel.strategy=fsdp"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    run(TORCHRUN, *common, f"output_dir={full}")
    p = subprocess.Popen([*TORCHRUN, *common, f"output_dir={killed}"], env=ENV, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 300
    while not (killed / "checkpoints" / "step-2" / "COMPLETE").exists():
        assert p.poll() is None, p.stdout.read()[-3000:]
        assert time.time() < deadline
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)  # the launcher and both ranks
    p.wait()
    assert not (killed / "final").exists()
    one = tmp_path / "one-process"
    shutil.copytree(killed, one)
    run(TORCHRUN, *common, f"output_dir={killed}", "--resume")
    assert_same_run(full, killed, atol=0)
    # the same checkpoint resumed by a single process (no sharding): the state loads resharded
    run(ONE, *[o for o in common if o != "parallel.strategy=fsdp"], f"output_dir={one}", "--resume")
    assert_same_run(full, one)


def test_launch_guards():
    from accelerate.utils import DistributedType

    from sdlab.config import ConfigError
    from sdlab.engine.parallel import check_strategy

    class Acc:
        def __init__(self, kind, n):
            self.distributed_type, self.num_processes = kind, n

    with pytest.raises(ConfigError, match="parallel.strategy=fsdp"):
        check_strategy("ddp", Acc(DistributedType.MULTI_GPU, 8), 8_000_000_000)
    with pytest.raises(ConfigError, match="DeepSpeed is not supported"):
        check_strategy("fsdp", Acc(DistributedType.DEEPSPEED, 8), 10)
    with pytest.raises(ConfigError, match="accelerate's FSDP plugin"):
        check_strategy("ddp", Acc(DistributedType.FSDP, 8), 10)
    check_strategy("ddp", Acc(DistributedType.MULTI_GPU, 2), 500_000_000)  # small models may replicate
    check_strategy("ddp", Acc(DistributedType.NO, 1), 8_000_000_000)  # one process: nothing is replicated
