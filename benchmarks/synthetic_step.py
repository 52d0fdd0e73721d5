"""One training update on synthetic responses (random token ids, no generation), for benchmarks.

The trainer is the real one (`sdlab.engine.trainer.Trainer`); only its inputs are synthetic: R
rows of a prompt of P tokens and a response of T random tokens, half with advantage +1 and half
-1, and for SDPO a teacher prompt of P + C tokens. `build_trainer` can take a model object built
in memory (a random-init model of a real architecture from a config file), so nothing is
downloaded and nothing is written to disk.
"""

from __future__ import annotations

import json
import resource
import tempfile
import time
from pathlib import Path

import torch

from sdlab.config import load_config
from sdlab.engine import trainer as trainer_mod
from sdlab.engine.trainer import Rollouts, Scores, TeacherInputs


def model_from_config(config_path: str | Path, *, device: str, dtype: torch.dtype = torch.float32,
                      vocab_size: int | None = None, hidden: int | None = None, layers: int | None = None):
    """A random-init causal LM of the architecture in a config.json (shapes may be overridden)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    data = json.loads(Path(config_path).read_text())
    for key, value in (("vocab_size", vocab_size), ("hidden_size", hidden), ("num_hidden_layers", layers)):
        if value is not None:
            data[key] = value
    if hidden is not None:
        data["intermediate_size"] = 3 * hidden
        data["head_dim"] = max(8, hidden // data["num_attention_heads"])
    config = AutoConfig.for_model(data.pop("model_type"), **data)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model


def build_trainer(model, *overrides: str, device: str = "cpu"):
    """A Trainer around `model` (in memory) with a tiny local tokenizer and a one-problem dataset."""
    from sdlab.testing import char_tokenizer

    root = Path(tempfile.mkdtemp(prefix="sdlab-bench-"))
    data = root / "data.jsonl"
    data.write_text(json.dumps({"id": "q", "problem": "1+1?", "answer": "2"}) + "\n")
    tokenizer = char_tokenizer()

    def load(cfg, organism=None, device=None, trainable=True):
        return model, tokenizer, "in-memory"

    def load_teacher(path, cfg, device=None, *, trainable=False, dtype=None):
        """A frozen / EMA teacher of the same architecture (its weights do not matter for timing)."""
        from transformers import AutoModelForCausalLM

        with torch.device(device):
            return AutoModelForCausalLM.from_config(model.config, dtype=dtype).eval()

    originals = trainer_mod.load_model_and_tokenizer, trainer_mod.load_model
    trainer_mod.load_model_and_tokenizer, trainer_mod.load_model = load, load_teacher
    try:
        cfg = load_config(None, [f"data.train={data}", f"output_dir={root / 'run'}", f"model.device={device}",
                                 "logging.progress=false", "checkpoint.save_final_model=false", *overrides])
        return trainer_mod.Trainer(cfg)
    finally:
        trainer_mod.load_model_and_tokenizer, trainer_mod.load_model = originals


def synthetic_inputs(trainer, *, rows: int, prompt_tokens: int, response_tokens: int, context_tokens: int = 512,
                     seed: int = 0):
    vocab = trainer.accelerator.unwrap_model(trainer.model).config.vocab_size
    g = torch.Generator().manual_seed(seed)

    def ids(n):
        return torch.randint(0, vocab, (n,), generator=g).tolist()

    prompts = [ids(prompt_tokens) for _ in range(rows)]
    responses = [ids(response_tokens) for _ in range(rows)]
    problems = [trainer.problems[0]] * rows
    r = Rollouts(problems=problems, prompt_ids=prompts, response_ids=responses,
                 rollout_logprobs=[[-2.0] * response_tokens for _ in range(rows)], truncated=[False] * rows,
                 group_ids=[i // max(1, trainer.cfg.rollout.n) for i in range(rows)], minibatch=[0] * rows)
    adv = torch.tensor([1.0 if i % 2 == 0 else -1.0 for i in range(rows)])
    s = Scores(texts=[""] * rows, rewards=(adv > 0).float(), advantages=adv, feedbacks=[""] * rows)
    t = None
    if trainer.cfg.algorithm == "sdpo":
        t = TeacherInputs([p + ids(context_tokens) for p in prompts], torch.ones(rows))
    return r, s, t


def peak_bytes(device: str) -> int:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def timed_update(trainer, inputs, *, device: str, optimizer_step: bool = True) -> dict:
    """Seconds and peak memory of one update (forward, backward and — unless disabled — the optimizer step)."""
    if not optimizer_step:
        trainer.optimizer.step = lambda *a, **k: None
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    before = peak_bytes(device)
    t0 = time.perf_counter()
    trainer.update(*inputs)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    after = peak_bytes(device)
    r = inputs[0]
    tokens = sum(len(p) + len(x) for p, x in zip(r.prompt_ids, r.response_ids))
    return {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds,
            "peak_mb": after / 2**20, "peak_over_start_mb": (after - before) / 2**20}
