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


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="hub id, local path, run folder's final/ or checkpoint model/, or 'organism'")
    p.add_argument("--benchmarks", required=True, help="comma-separated: aime24,aime25,amc23,math500,gsm8k,dapo_math, a .jsonl/.parquet path, organism:ood ...")
    p.add_argument("--n", type=int, default=1, help="samples per problem (avg@n, pass@k for k<=n)")
    p.add_argument("--temperature", type=float, default=0.6)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--max-new-tokens", type=int, default=1024)
    p.add_argument("--grader", default="math_verify", choices=["strict", "math_verify", "paper"])
    p.add_argument("--timeout", type=float, default=5.0, help="grader deadline per answer (seconds)")
    p.add_argument("--limit", type=int, default=None, help="first N problems of each benchmark")
    p.add_argument("--prompt-template", default="boxed", help="boxed | plain | a string with {problem}")
    p.add_argument("--system-prompt", default=None)
    thinking = p.add_mutually_exclusive_group()
    thinking.add_argument("--enable-thinking", dest="enable_thinking", action="store_true", default=None)
    thinking.add_argument("--no-thinking", dest="enable_thinking", action="store_false")
    p.add_argument("--backend", default="hf", choices=["hf", "vllm"])
    p.add_argument("--batch-size", type=int, default=64, help="prompts per generate call (hf backend)")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="folder with local benchmark copies (default: $SDLAB_DATA_DIR or ../shared/data)")
    p.add_argument("--out", required=True, help="output folder")


def run(args) -> int:
    from ..config import ModelConfig
    from ..data.prompts import build_messages, render_prompt
    from ..data.sources import load_source
    from ..models import load_model_and_tokenizer
    from ..rollout import make_backend
    from .runner import EvalSettings, evaluate

    if args.data_dir:
        import os

        os.environ["SDLAB_DATA_DIR"] = args.data_dir
    model, tokenizer, path = load_model_and_tokenizer(ModelConfig(name_or_path=args.model, device=args.device, dtype=args.dtype))
    backend = make_backend(args.backend, model, tokenizer, batch_size=args.batch_size)
    settings = EvalSettings(n=args.n, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                            max_new_tokens=args.max_new_tokens, grader=args.grader, timeout=args.timeout, seed=args.seed)

    def user_text(problem) -> str:
        return build_messages(problem.prompt, args.prompt_template, args.system_prompt)[-1]["content"]

    def prompt_ids(problem) -> list[int]:
        text = render_prompt(tokenizer, build_messages(problem.prompt, args.prompt_template, args.system_prompt),
                             enable_thinking=args.enable_thinking)
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summaries, all_samples = {}, []
    for name in [b for b in args.benchmarks.split(",") if b]:
        problems = load_source(name, limit=args.limit)
        summary, samples = evaluate(backend, tokenizer, problems, settings, name=name,
                                    prompt_ids_fn=prompt_ids, prompt_text_fn=user_text)
        summaries[name] = summary
        all_samples += samples
    meta = {"model": args.model, "resolved_model": str(path), "n": args.n, "temperature": args.temperature,
            "top_p": args.top_p, "top_k": args.top_k, "max_new_tokens": args.max_new_tokens, "grader": args.grader,
            "seed": args.seed, "prompt_template": args.prompt_template, "enable_thinking": args.enable_thinking}
    (out / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in all_samples))
    (out / "summary.json").write_text(json.dumps({"settings": meta, "benchmarks": summaries}, indent=2))
    print(format_table(summaries, args.n))
    return 0


def format_table(summaries: dict, n: int) -> str:
    head = f"{'benchmark':<14}{'problems':>9}{'avg@' + str(n):>9}{'95% CI':>17}{'pass@' + str(n):>9}{'length':>9}{'trunc':>7}{'epist.':>8}"
    lines = [head, "-" * len(head)]
    for name, s in summaries.items():
        if "accuracy" not in s:
            lines.append(f"{name:<14}{s['problems']:>9}   (no gradable samples)")
            continue
        lo, hi = s["accuracy_ci95"]
        lines.append(
            f"{name:<14}{s['problems']:>9}{100 * s['accuracy']:>8.1f}%{f'[{100 * lo:.1f}, {100 * hi:.1f}]':>17}"
            f"{100 * s.get(f'pass@{n}', s['accuracy']):>8.1f}%{s['response_length']:>9.0f}{100 * s['truncation_rate']:>6.0f}%"
            f"{s['epistemic']:>8.2f}"
        )
        if s.get("excluded_problems"):
            lines.append(f"  excluded (gold answer does not parse): {', '.join(s['excluded_problems'])}")
    return "\n".join(lines)
