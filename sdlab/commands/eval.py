"""`sdlab eval`: sample, grade and summarise benchmarks for any model (a run's checkpoint, a hub id).

  sdlab eval --model Qwen/Qwen3-8B --benchmarks aime24,amc23 --n 16 --temperature 0.6 --top-p 0.95 \\
             --max-new-tokens 38912 --grader math_verify --out runs/eval-qwen3

Writes DIR/samples.jsonl (one line per sample) and DIR/summary.json, and prints a table.
Sampling is seeded per (seed, benchmark, problem, sample), so a re-run gives the same numbers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import ROLLOUT_BACKENDS
from .options import add_prompt_options, add_sampling_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True,
                   help="hub id, local path, run folder's final/ or checkpoint model/, or 'organism'")
    p.add_argument("--benchmarks", required=True,
                   help="comma-separated: aime24,aime25,amc23,math500,gsm8k,dapo_math, a .jsonl/.parquet path, "
                        "organism:ood ...")
    add_sampling_options(p, n=1, n_help="samples per problem (avg@n, pass@k for k<=n)")
    p.add_argument("--limit", type=int, default=None, help="first N problems of each benchmark")
    add_prompt_options(p)
    p.add_argument("--max-prompt-length", type=int, default=None,
                   help="keep the last N prompt tokens, as the trainer's data.max_prompt_length (default: no cut)")
    p.add_argument("--backend", default="hf", choices=ROLLOUT_BACKENDS)
    p.add_argument("--batch-size", type=int, default=64, help="prompts per generate call (hf backend)")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None,
                   help="folder with local benchmark copies (default: $SDLAB_DATA_DIR or ../shared/data)")
    p.add_argument("--out", required=True, help="output folder")


def run(args) -> int:
    from ..config import ConfigError, ModelConfig
    from ..data.prompts import PromptBuilder
    from ..data.sources import load_source
    from ..evaluation.runner import EvalSettings, evaluate, format_table
    from ..io import write_jsonl
    from ..models import load_model_and_tokenizer
    from ..rollout import make_backend

    if args.n < 1:
        raise ConfigError(f"--n: must be >= 1 (samples per problem), got {args.n}")
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit: must be >= 1, got {args.limit}")
    if args.data_dir:
        import os

        os.environ["SDLAB_DATA_DIR"] = args.data_dir
    model, tokenizer, path = load_model_and_tokenizer(
        ModelConfig(name_or_path=args.model, device=args.device, dtype=args.dtype))
    backend = make_backend(args.backend, model, tokenizer, batch_size=args.batch_size)
    settings = EvalSettings(n=args.n, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                            max_new_tokens=args.max_new_tokens, grader=args.grader, timeout=args.timeout,
                            seed=args.seed)
    prompts = PromptBuilder(tokenizer, template=args.prompt_template, system_prompt=args.system_prompt,
                            enable_thinking=args.enable_thinking, max_prompt_length=args.max_prompt_length)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summaries, all_samples = {}, []
    for name in [b for b in args.benchmarks.split(",") if b]:
        problems = load_source(name, limit=args.limit)
        summary, samples = evaluate(backend, tokenizer, problems, settings, name=name, prompts=prompts)
        summaries[name] = summary
        all_samples += samples
    meta = {"model": args.model, "resolved_model": str(path), "n": args.n, "temperature": args.temperature,
            "top_p": args.top_p, "top_k": args.top_k, "max_new_tokens": args.max_new_tokens, "grader": args.grader,
            "seed": args.seed, "prompt_template": args.prompt_template, "enable_thinking": args.enable_thinking,
            "max_prompt_length": args.max_prompt_length}
    write_jsonl(out / "samples.jsonl", all_samples)
    (out / "summary.json").write_text(json.dumps({"settings": meta, "benchmarks": summaries}, indent=2))
    print(format_table(summaries, args.n))
    return 0
