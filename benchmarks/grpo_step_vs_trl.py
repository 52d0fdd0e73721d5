"""Wall time of one GRPO step, sdlab vs TRL 1.16.0 `GRPOTrainer`, on the same ~1M-parameter model.

One step = 16 prompts x 8 samples, 64 new tokens, generation + reward + one optimizer update,
on CPU with transformers.generate in both. Both runs use the same tiny Qwen3 checkpoint (built
locally), the same prompts, the same cheap reward, token-level loss aggregation and no KL.
The script runs the two trainers one after the other and reports the median of several timed
steps each (after one warm-up step), the ratio TRL / sdlab, and sdlab's own split of its step
into generation and update (from the metrics each step returns).

    python benchmarks/grpo_step_vs_trl.py [--repeats 5] [--threads 2] [--device cpu] [--micro-batch 32]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROMPTS = 16
SAMPLES = 8
NEW_TOKENS = 64


def make_problems(path: Path) -> list[dict]:
    rows = [{"id": f"q{i}", "problem": f"What is {i} + {i + 3}?", "answer": str(2 * i + 3)} for i in range(64)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def reward_text(text: str) -> float:
    """Same cheap reward in both trainers: fraction of digits in the response."""
    return sum(c.isdigit() for c in text) / max(1, len(text))


def time_sdlab(model_dir: Path, data: Path, out: Path, steps: int, device: str,
               micro_batch: int) -> tuple[list[float], list[dict]]:
    from sdlab.config import load_config
    from sdlab.engine import trainer as trainer_mod
    from sdlab.rewards import GradeResult

    def grade_many(responses, golds, grader="strict", *, truncated=None, reveal_answer=False, timeout=5.0):
        return [GradeResult(correct=reward_text(r) > 0.1, pred=None, reason="bench", feedback="") for r in responses]

    trainer_mod.grade_many = grade_many
    cfg = load_config(None, [
        f"model.name_or_path={model_dir}", f"data.train={data}", f"output_dir={out}", f"model.device={device}",
        f"data.train_batch_size={PROMPTS}", f"rollout.n={SAMPLES}", f"rollout.max_new_tokens={NEW_TOKENS}",
        "rollout.temperature=1.0", "actor.lr=1.0e-5", f"actor.micro_batch_size={micro_batch}", f"steps={steps + 1}",
        "logging.progress=false", "checkpoint.save_final_model=false", "data.prompt_template=plain",
    ])
    tr = trainer_mod.Trainer(cfg)
    times, metrics = [], []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        m = tr.step()
        tr.step_idx += 1
        if i:
            times.append(time.perf_counter() - t0)
            metrics.append(m)
    return times, metrics


def time_trl(model_dir: Path, problems: list[dict], out: Path, steps: int, device: str) -> list[float]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    ds = Dataset.from_list([{"prompt": p["problem"]} for p in problems])
    args = GRPOConfig(
        output_dir=str(out), per_device_train_batch_size=PROMPTS * SAMPLES, gradient_accumulation_steps=1,
        num_generations=SAMPLES, max_completion_length=NEW_TOKENS, max_steps=steps + 1, learning_rate=1e-5,
        logging_steps=1000, save_strategy="no", report_to=[], use_cpu=device == "cpu", bf16=False,
        temperature=1.0, beta=0.0, loss_type="bnpo", disable_dropout=True, dataloader_num_workers=0, seed=0,
        gradient_checkpointing=False,
    )
    model = AutoModelForCausalLM.from_pretrained(model_dir)

    def reward(completions, **kw):
        return [reward_text(c) for c in completions]

    stamps: list[float] = []

    class Stamp(TrainerCallback):
        def on_step_begin(self, *a, **k):
            stamps.append(time.perf_counter())

        def on_step_end(self, *a, **k):
            stamps.append(time.perf_counter())

    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=ds, processing_class=tok,
                          callbacks=[Stamp()])
    trainer.train()
    durations = [stamps[i + 1] - stamps[i] for i in range(0, len(stamps) - 1, 2)]
    return durations[1:]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5, help="timed steps per trainer (after one warm-up step)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--micro-batch", type=int, default=32,
                   help="sdlab's actor.micro_batch_size (TRL runs the whole step, 128 rows, in one batch)")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from sdlab.testing import tiny_model_dir

    root = Path(tempfile.mkdtemp(prefix="sdlab-bench-"))
    model_dir = tiny_model_dir(root / "model", arch="qwen3", hidden=args.hidden, layers=args.layers)
    from transformers import AutoModelForCausalLM

    n_params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(model_dir).parameters())
    problems = make_problems(root / "data.jsonl")
    sd, split = time_sdlab(model_dir, root / "data.jsonl", root / "sdlab-run", args.repeats, args.device,
                           args.micro_batch)
    trl = time_trl(model_dir, problems, root / "trl-run", args.repeats, args.device)
    ms, mt = statistics.median(sd), statistics.median(trl)
    result = {
        "model_parameters": n_params, "prompts": PROMPTS, "samples_per_prompt": SAMPLES, "new_tokens": NEW_TOKENS,
        "device": args.device, "threads": args.threads, "sdlab_step_seconds": sd, "trl_step_seconds": trl,
        "sdlab_micro_batch": args.micro_batch,
        "sdlab_generate_median_s": round(statistics.median(m["time/generate"] for m in split), 3),
        "sdlab_update_median_s": round(statistics.median(m["time/update"] for m in split), 3),
        "sdlab_median_s": round(ms, 3), "trl_median_s": round(mt, 3), "speedup_trl_over_sdlab": round(mt / ms, 2),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
