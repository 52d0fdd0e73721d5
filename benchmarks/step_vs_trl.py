"""Wall time of one GRPO step, sdlab vs TRL 1.16.0 `GRPOTrainer`, side by side in one process.

    python benchmarks/step_vs_trl.py --workload reasoning [--steps 1] [--threads 2]
    python benchmarks/step_vs_trl.py --workload toy [--steps 5]

Workloads (both trainers get the same model files, prompts, sampling settings and reward):

- `reasoning` (default): shaped like RL on a reasoning model. A random-init Qwen3 (hidden 256,
  4 layers, 4 query / 2 key-value heads of 64, MLP 1,536, vocabulary 16,384, tied head: 9.7M
  parameters) built locally, 16 prompts x 8 samples, prompts of 56-169 tokens (chat template),
  up to 1,024 new tokens at temperature 1.0. EOS is made likely at every position (a shared
  offset on one embedding dimension, which cancels in the softmax, plus `--eos-bias` more on
  EOS's row of the tied head), most at the start, so response lengths spread from a few tokens
  to the 1,024 budget: at step 0, mean 274, p10 / p50 / p90 = 18 / 184 / 708, 6 of 128 truncated.
- `toy`: the earlier benchmark's workload (605k-parameter Qwen3, 64 new tokens, short prompts).

By default the two trainers are interleaved: TRL's `train()` runs its steps and, between two of
them (outside TRL's timed span), one sdlab step is run, so both see the same machine load. Each
trainer gets `--warmup` untimed steps first. Per trainer the script reports the step times and
the medians of the step and of its generate / update split:

- sdlab: `time/generate` (rollout), `time/reward`, `time/update` (loss, backward, optimizer,
  weight sync) from the metrics each step returns;
- TRL: time inside `model.generate` (generate), inside `_generate_and_score_completions` minus
  generate (reward, padding, bookkeeping: `other`), and the rest of the step (update).

Run time, reasoning: transformers.generate took 329 s for one step's rollouts on an idle 2-core machine
(rollout_paths.py), so each TRL step is several minutes and the default is one timed step per
trainer; use `--steps 3` on a quiet machine for medians (roughly three times as long).

The last line printed is one JSON object with at least `sdlab_step_s`, `trl_step_s` and
`trl_over_sdlab` (medians). `--sdlab-engine generate` runs sdlab with `transformers.generate`
instead of its own decoding loop (the state before the loop existed).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPTS = 16
SAMPLES = 8

WORKLOADS = {
    "reasoning": dict(hidden=256, layers=4, heads=4, kv_heads=2, intermediate=1536, vocab=16384, max_new_tokens=1024,
                      prompt_chars=(24, 150), steps=1, warmup=0, eos_bias=None),
    "toy": dict(hidden=128, layers=4, heads=4, kv_heads=2, intermediate=256, vocab=0, max_new_tokens=64,
                prompt_chars=None, steps=5, warmup=1, eos_bias=None),
}
EOS_OFFSET = 0.4
"""The shared value written into embedding dimension 0 of every token (see build_model)."""
DEFAULT_EOS_BIAS = 4.0


# ---------------------------------------------------------------- workload


def build_model(path: Path, *, hidden: int, layers: int, heads: int, kv_heads: int, intermediate: int, vocab: int,
                eos_bias: float | None, seed: int = 0, **_) -> Path:
    """A random-init Qwen3 + the char tokenizer of sdlab.testing (padded to `vocab` tokens), saved to `path`.

    With `eos_bias`, every token's embedding gets the same value EOS_OFFSET in dimension 0 and
    EOS's row EOS_OFFSET + eos_bias. Embeddings are tied, so the head adds EOS_OFFSET * h_0 to
    every logit (no effect on the softmax) and eos_bias * h_0 more to EOS's; the residual stream
    carries the offset, so h_0 stays large and positive and EOS gets a roughly constant
    per-token probability: geometric response lengths."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from sdlab.testing import char_tokenizer

    base = len(char_tokenizer())
    tok = char_tokenizer(extra_vocab=max(0, vocab - base))
    config = AutoConfig.for_model(
        "qwen3", vocab_size=len(tok), hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=hidden // heads,
        max_position_embeddings=4096, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
        bos_token_id=None, tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    if eos_bias is not None:
        with torch.no_grad():
            emb = model.get_input_embeddings().weight
            emb[:, 0] = EOS_OFFSET
            emb[tok.eos_token_id, 0] = EOS_OFFSET + eos_bias
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


def make_problems(path: Path, prompt_chars: tuple[int, int] | None, n: int = 64) -> list[dict]:
    if prompt_chars is None:  # toy: the earlier benchmark's prompts
        rows = [{"id": f"q{i}", "problem": f"What is {i} + {i + 3}?", "answer": str(2 * i + 3)} for i in range(n)]
    else:
        rng = random.Random(0)
        words = ["the", "sum", "of", "integers", "triangle", "prime", "find", "let", "such", "that", "x", "y", "n", "+",
                 "=", "*", "^", "2", "3", "7", "10", "100", "\\frac{1}{2}", "how", "many", "area", "is", "what"]
        rows = []
        for i in range(n):
            target = rng.randint(*prompt_chars)
            text = f"Problem {i}:"
            while len(text) < target:
                text += " " + rng.choice(words)
            rows.append({"id": f"q{i}", "problem": text, "answer": str(i)})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def reward_text(text: str) -> float:
    """Same cheap reward in both trainers: fraction of digits in the response."""
    return sum(c.isdigit() for c in text) / max(1, len(text))


# ---------------------------------------------------------------- sdlab


def make_sdlab(model_dir: Path, data: Path, out: Path, w: dict, args):
    from sdlab.config import load_config
    from sdlab.engine import trainer as trainer_mod
    from sdlab.rewards import GradeResult

    def grade_many(responses, golds, grader="strict", *, truncated=None, reveal_answer=False, timeout=5.0):
        return [GradeResult(correct=reward_text(r) > 0.1, pred=None, reason="bench", feedback="") for r in responses]

    trainer_mod.grade_many = grade_many
    cfg = load_config(None, [
        f"model.name_or_path={model_dir}", f"data.train={data}", f"output_dir={out}", f"model.device={args.device}",
        f"data.train_batch_size={PROMPTS}", f"rollout.n={SAMPLES}", f"rollout.max_new_tokens={w['max_new_tokens']}",
        "rollout.temperature=1.0", "actor.lr=1.0e-6", f"actor.micro_batch_size={args.micro_batch}", "steps=1000",
        "logging.progress=false", "checkpoint.save_final_model=false", "data.prompt_template=plain",
        f"rollout.hf_engine={args.sdlab_engine}", f"model.cpu_threads={args.threads}",
        *([f"actor.max_tokens_per_micro_batch={args.sdlab_max_tokens}"] if args.sdlab_max_tokens else []),
    ])
    return trainer_mod.Trainer(cfg)


def sdlab_step(tr) -> dict:
    t0 = time.perf_counter()
    m = tr.step()
    tr.step_idx += 1
    return {"step": time.perf_counter() - t0, "generate": m["time/generate"], "reward": m["time/reward"],
            "update": m["time/update"], "mean_length": m["response_length/mean"],
            "max_length": m["response_length/max"], "clip_ratio": m["response_length/clip_ratio"]}


# ---------------------------------------------------------------- TRL


def run_trl(model_dir: Path, problems: list[dict], out: Path, w: dict, args, steps: int,
            between_steps=None) -> list[dict]:
    """TRL GRPOTrainer for `steps` optimizer steps; `between_steps(i)` runs after step i (untimed)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    # conversational prompts: TRL applies the chat template as sdlab does -> the same prompt tokens
    ds = Dataset.from_list([{"prompt": [{"role": "user", "content": p["problem"]}]} for p in problems])
    micro = min(args.micro_batch, PROMPTS * SAMPLES)
    accumulation = PROMPTS * SAMPLES // micro
    config = GRPOConfig(
        output_dir=str(out), per_device_train_batch_size=micro, gradient_accumulation_steps=accumulation,
        num_generations=SAMPLES, max_completion_length=w["max_new_tokens"], max_steps=steps, learning_rate=1e-6,
        logging_steps=1, save_strategy="no", report_to=[], use_cpu=args.device == "cpu", bf16=False,
        temperature=1.0, top_p=1.0, top_k=0, beta=0.0, loss_type="bnpo", disable_dropout=True,
        dataloader_num_workers=0, seed=0, gradient_checkpointing=False, shuffle_dataset=True,
        use_transformers_continuous_batching=args.trl_continuous_batching,
    )
    model = AutoModelForCausalLM.from_pretrained(model_dir)

    def reward(completions, **kw):
        return [reward_text(c[0]["content"] if isinstance(c, list) else c) for c in completions]

    records: list[dict] = []
    timers = {"generate": 0.0, "gen_and_score": 0.0}

    def timed(fn, key):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                timers[key] += time.perf_counter() - t0
        return wrapper

    class Stamp(TrainerCallback):
        def on_step_begin(self, *a, **k):
            timers.update(generate=0.0, gen_and_score=0.0)
            self.t0 = time.perf_counter()

        def on_step_end(self, args_, state, control, **k):
            step = time.perf_counter() - self.t0
            metrics = trainer._metrics["train"]
            records.append({"step": step, "generate": timers["generate"],
                            "other": timers["gen_and_score"] - timers["generate"],
                            "update": step - timers["gen_and_score"],
                            "mean_length": metrics["completions/mean_length"][-1]
                            if metrics.get("completions/mean_length") else None,
                            "max_length": metrics["completions/max_length"][-1]
                            if metrics.get("completions/max_length") else None,
                            "clip_ratio": metrics["completions/clipped_ratio"][-1]
                            if metrics.get("completions/clipped_ratio") else None})
            if between_steps is not None:
                between_steps(len(records), records[-1])

    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=config, train_dataset=ds, processing_class=tok,
                          callbacks=[Stamp()])
    model.generate = timed(model.generate, "generate")
    if hasattr(model, "generate_batch"):
        model.generate_batch = timed(model.generate_batch, "generate")
    trainer._generate_and_score_completions = timed(trainer._generate_and_score_completions, "gen_and_score")
    trainer.train()
    return records


# ---------------------------------------------------------------- report


def _median(rows: list[dict], key: str):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return round(statistics.median(vals), 3) if vals else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", choices=sorted(WORKLOADS), default="reasoning")
    p.add_argument("--steps", type=int, default=None, help="timed steps per trainer (default: 1 reasoning, 5 toy)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed steps per trainer first (default: 0 reasoning, 1 toy)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--micro-batch", type=int, default=32, help="rows per forward/backward, both trainers")
    p.add_argument("--eos-bias", type=float, default=DEFAULT_EOS_BIAS,
                   help="reasoning: EOS logit push (see build_model)")
    p.add_argument("--sdlab-engine", choices=["loop", "generate"], default="loop", help="sdlab's rollout.hf_engine")
    p.add_argument("--sdlab-max-tokens", type=int, default=None,
                   help="sdlab's actor.max_tokens_per_micro_batch (rows grouped by length; "
                        "default: fixed --micro-batch rows)")
    p.add_argument("--trl-continuous-batching", action="store_true",
                   help="TRL with use_transformers_continuous_batching=True instead of its default generate")
    p.add_argument("--schedule", choices=["interleaved", "sequential"], default="interleaved")
    p.add_argument("--only", choices=["both", "sdlab", "trl"], default="both")
    p.add_argument("--json-out", type=Path, default=None, help="also write the final JSON here")
    args = p.parse_args(argv)
    w = dict(WORKLOADS[args.workload])
    steps = args.steps if args.steps is not None else w["steps"]
    warmup = args.warmup if args.warmup is not None else w["warmup"]
    if args.workload == "reasoning":
        w["eos_bias"] = args.eos_bias

    import torch

    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="sdlab-step-vs-trl-"))
    if args.workload == "toy":
        from sdlab.testing import tiny_model_dir

        model_dir = tiny_model_dir(root / "model", arch="qwen3", hidden=w["hidden"], layers=w["layers"])
    else:
        model_dir = build_model(root / "model", **w)
    from transformers import AutoModelForCausalLM

    n_params = sum(x.numel() for x in AutoModelForCausalLM.from_pretrained(model_dir).parameters())
    problems = make_problems(root / "data.jsonl", w["prompt_chars"])
    load_before = os.getloadavg()
    print(f"[step_vs_trl] workload={args.workload} params={n_params} steps={steps} warmup={warmup} "
          f"threads={args.threads} load={load_before[0]:.2f} dir={root}", flush=True)

    sd_rows: list[dict] = []
    trl_rows: list[dict] = []
    tr = make_sdlab(model_dir, root / "data.jsonl", root / "sdlab-run", w, args) if args.only != "trl" else None

    def one_sdlab(tag):
        row = sdlab_step(tr)
        print(f"[step_vs_trl] sdlab {tag}: " + json.dumps({k: round(v, 3) for k, v in row.items()}), flush=True)
        return row

    t_start = time.perf_counter()
    total = warmup + steps
    interleave = args.schedule == "interleaved" and args.only == "both"
    if tr is not None and (interleave or args.only == "sdlab"):
        for i in range(warmup):
            one_sdlab(f"warmup {i}")
    if args.only != "trl" and not interleave:
        sd_rows = [one_sdlab(f"step {i}") for i in range(steps)]
    if args.only != "sdlab":
        def between(i: int, record: dict) -> None:  # after TRL step i (1-based), outside its timed span
            label = f"warmup {i - 1}" if i <= warmup else f"step {i - warmup - 1}"
            print(f"[step_vs_trl] trl {label}: "
                  + json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in record.items()}), flush=True)
            if interleave and i > warmup:
                sd_rows.append(one_sdlab(f"step {i - warmup - 1}"))

        trl_rows = run_trl(model_dir, problems, root / "trl-run", w, args, total, between_steps=between)[warmup:]
    wall = time.perf_counter() - t_start
    load_after = os.getloadavg()

    result = {
        "workload": args.workload, "model_parameters": n_params, "prompts": PROMPTS, "samples_per_prompt": SAMPLES,
        "max_new_tokens": w["max_new_tokens"], "threads": args.threads, "device": args.device,
        "micro_batch": args.micro_batch, "sdlab_engine": args.sdlab_engine, "sdlab_max_tokens": args.sdlab_max_tokens,
        "trl_generation": "continuous_batching" if args.trl_continuous_batching else "generate",
        "schedule": args.schedule, "steps": steps, "warmup": warmup,
        "loadavg_1m_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "wall_s": round(wall, 1),
    }
    if sd_rows:
        result.update({
            "sdlab_step_s": _median(sd_rows, "step"), "sdlab_generate_s": _median(sd_rows, "generate"),
            "sdlab_update_s": _median(sd_rows, "update"), "sdlab_reward_s": _median(sd_rows, "reward"),
            "sdlab_mean_length": _median(sd_rows, "mean_length"),
            "sdlab_steps_s": [round(r["step"], 2) for r in sd_rows],
        })
    if trl_rows:
        result.update({
            "trl_step_s": _median(trl_rows, "step"), "trl_generate_s": _median(trl_rows, "generate"),
            "trl_update_s": _median(trl_rows, "update"), "trl_other_s": _median(trl_rows, "other"),
            "trl_mean_length": _median(trl_rows, "mean_length"), "trl_steps_s": [round(r["step"], 2) for r in trl_rows],
        })
    if sd_rows and trl_rows:
        result["trl_over_sdlab"] = round(result["trl_step_s"] / result["sdlab_step_s"], 2)
        result["trl_over_sdlab_generate"] = round(result["trl_generate_s"] / result["sdlab_generate_s"], 2)
        result["trl_over_sdlab_update"] = round(result["trl_update_s"] / result["sdlab_update_s"], 2)
    line = json.dumps(result)
    if args.json_out:
        args.json_out.write_text(line + "\n")
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
