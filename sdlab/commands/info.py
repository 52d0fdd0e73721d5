"""`sdlab info`: the information lens and the study's Table 1 for any model (`sdlab.analysis.table1`).

  sdlab info --model deepseek-ai/DeepSeek-R1-Distill-Qwen-7B --benchmark dapo_math --limit 100 \\
             --contexts none,demo,demo_answer,answer --n 8 --temperature 0.6 --top-p 0.95 \\
             --max-new-tokens 32768 --solve-range 1-4 --out runs/info-r1

Writes OUT/info.json, OUT/table1.csv and OUT/samples.jsonl, and prints the table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import CONTEXT_LEVELS
from .options import add_prompt_options, add_sampling_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="hub id, local path, a run's final/ folder, or 'organism'")
    p.add_argument("--benchmark", required=True,
                   help="benchmark name (aime24, gsm8k, dapo_math, ...) or a .jsonl/.parquet file")
    p.add_argument("--contexts", default="none,demo,demo_answer,answer",
                   help=f"comma-separated context levels: {', '.join(CONTEXT_LEVELS)}")
    p.add_argument("--limit", type=int, default=None, help="first N problems")
    add_sampling_options(p, n=8, n_help="responses per problem, unguided and per context level")
    p.add_argument("--reveal-answer-in-feedback", action="store_true",
                   help="the feedback context may state the gold answer")
    p.add_argument("--solve-range", default=None, metavar="LO-HI",
                   help="keep problems with LO..HI of the n unguided responses correct (the study: 1-4 of 8)")
    p.add_argument("--templates", default=None, help="YAML file {level: template} overriding the teacher templates")
    p.add_argument("--max-context-tokens", type=int, default=None,
                   help="cap the context prompt (keeps its last tokens, as the trainer's reprompt_truncation=left)")
    add_prompt_options(p)
    p.add_argument("--score-temperature", type=float, default=1.0,
                   help="temperature of the scored distribution p (1 = the model itself)")
    p.add_argument("--batch-size", type=int, default=64, help="prompts per generate call")
    p.add_argument("--score-batch-size", type=int, default=8, help="sequences per scoring forward pass")
    p.add_argument("--token-level", action="store_true", help="also save per-token log-ratios in samples.jsonl")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--out", required=True, help="output folder")


def run(args) -> int:
    import torch

    from ..algorithms.context import load_templates
    from ..analysis.table1 import format_table, information_table, write_table_csv
    from ..config import ConfigError, ModelConfig
    from ..data.prompts import PromptBuilder
    from ..data.sources import load_source
    from ..evaluation.sampling import parse_solve_range
    from ..io import write_jsonl
    from ..models import load_model_and_tokenizer
    from ..rollout import SamplingParams, make_backend

    levels = [c.strip() for c in args.contexts.split(",") if c.strip()]
    bad = [c for c in levels if c not in CONTEXT_LEVELS]
    if bad or not levels:
        raise ConfigError(f"--contexts: {bad[0] if bad else '(empty)'!r} is not one of {', '.join(CONTEXT_LEVELS)}")
    if args.n < 1:
        raise ConfigError("--n: must be >= 1")
    solve_range = parse_solve_range(args.solve_range)
    templates = load_templates(args.templates)

    torch.manual_seed(args.seed)
    model, tokenizer, path = load_model_and_tokenizer(
        ModelConfig(name_or_path=args.model, device=args.device, dtype=args.dtype))
    problems = load_source(args.benchmark, limit=args.limit)
    if not problems:
        raise ConfigError(f"--benchmark {args.benchmark!r} yielded no problems")
    prompts = PromptBuilder(tokenizer, template=args.prompt_template, system_prompt=args.system_prompt,
                            enable_thinking=args.enable_thinking, max_context_length=args.max_context_tokens)
    table = information_table(
        model, tokenizer, problems, prompts, levels=levels, n=args.n,
        params=SamplingParams(args.temperature, args.top_p, args.top_k, args.max_new_tokens),
        backend=make_backend("hf", model, tokenizer, batch_size=args.batch_size), grader=args.grader,
        timeout=args.timeout, reveal_answer=args.reveal_answer_in_feedback, stream=args.benchmark, seed=args.seed,
        solve_range=solve_range, templates=templates, score_temperature=args.score_temperature,
        score_batch_size=args.score_batch_size, token_level=args.token_level)

    settings = {"model": args.model, "resolved_model": str(path), "benchmark": args.benchmark, "limit": args.limit,
                "problems_loaded": len(problems), "problems_kept": table.problems_kept,
                "solve_range": list(solve_range) if solve_range else None,
                "contexts": levels, "n": args.n, "temperature": args.temperature, "top_p": args.top_p,
                "top_k": args.top_k, "max_new_tokens": args.max_new_tokens, "grader": args.grader,
                "score_temperature": args.score_temperature,
                "prompt_template": args.prompt_template, "enable_thinking": args.enable_thinking, "seed": args.seed,
                "templates": templates or None, "max_context_tokens": args.max_context_tokens}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "info.json").write_text(json.dumps({"settings": settings, "contexts": table.results}, indent=2))
    write_table_csv(out / "table1.csv", table.results)
    write_jsonl(out / "samples.jsonl", table.rows)
    print(format_table(table.results, args.n))
    print(f"wrote {out / 'info.json'}, {out / 'table1.csv'}, {out / 'samples.jsonl'}")
    return 0
