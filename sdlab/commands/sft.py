"""`sdlab sft CONFIG.yaml [key.sub=value ...] [--guidance LEVEL] [--traces-only] [--from-traces FILE]`

Off-policy self-distillation, the study's §4 (Table 2): generate traces with and without
guidance, keep the correct ones, fine-tune on them with a plain causal-LM loss.

1. Sample rollout.n unguided responses per training problem (data.train) and grade them.
   Optionally keep only problems solved LO..HI times (`sft.solve_range=[1,4]`, the study).
2. guidance != none: build the guided prompt with the trainer's teacher templates
   (sdpo.templates; demo / demo_answer show the first correct unguided response, the study's
   s = correct_solutions[0]; answer the gold; solution the reference; feedback the grader's
   feedback on a failed response) and sample one guided response per unguided response that
   has that context.
3. Keep the responses graded correct (sft.traces_per_problem per problem, first in sample
   order; the grader fails truncated responses). The training example is always (plain prompt x, trace y).
4. Write OUTPUT_DIR/traces.jsonl (guidance, lengths, epistemic counts) and generations.jsonl.
5. Fine-tune: NLL of the response tokens only, AdamW (actor.lr, betas, weight_decay), warmup and
   actor.lr_schedule over the SFT steps, actor.grad_clip, sft.batch_size traces per step in
   micro-batches of actor.micro_batch_size; deterministic on CPU. Saves OUTPUT_DIR/final
   (save_pretrained) and metrics.jsonl. With eval.benchmarks set, the final model (and the
   base model at step 0 when eval.at_start) is evaluated, as for `sdlab train`.

SFT-only keys live under `sft.` (a `sft:` section in the YAML or `sft.key=value` overrides);
they are read here and never reach `sdlab.config`:
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import zlib
from pathlib import Path
from typing import Any


from ..config import SFTConfig

__doc__ += "\n".join(
    f"  sft.{f.name} (default {f.default!r})" for f in dataclasses.fields(SFTConfig)
) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="YAML config (omit to use the defaults); may contain an sft: section")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, incl. sft.* keys (sft.epochs=2)")
    p.add_argument("--guidance", default=None, help="none | feedback | demo_answer | demo | answer | solution (= sft.guidance)")
    p.add_argument("--traces-only", action="store_true", help="generate and write traces.jsonl, do not train")
    p.add_argument("--from-traces", default=None, metavar="FILE", help="train on the traces in this JSONL instead of generating")
    p.add_argument("--print-config", action="store_true", help="print the resolved config (with the sft section) and exit")


def run(args) -> int:
    config, overrides = args.config, list(args.overrides)
    if config and "=" in config and not config.endswith((".yaml", ".yml")):
        overrides.insert(0, config)
        config = None
    cfg, sft = load_sft_config(config, overrides, guidance=args.guidance)
    if args.print_config:
        import yaml

        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        return 0
    run_sft(cfg, sft, traces_only=args.traces_only, from_traces=args.from_traces)
    return 0


# ---------------------------------------------------------------------------- config


def load_sft_config(path: str | None, overrides: list[str] = (), *, guidance: str | None = None):
    """(Config, SFTConfig): the typed config, validated as for `sdlab train`, and its `sft` section."""
    from ..config import load_config

    cfg = load_config(path, list(overrides) + ([f"sft.guidance={guidance}"] if guidance is not None else []))
    return cfg, cfg.sft


# ---------------------------------------------------------------------------- pipeline


def run_sft(cfg, sft: SFTConfig, *, traces_only: bool = False, from_traces: str | None = None) -> dict[str, Any]:
    """The whole command; returns the last metrics record."""
    import torch
    import yaml

    from ..analysis.info_cli import PromptBuilder
    from ..data.problems import DataError
    from ..data.sources import load_source
    from ..engine.metrics import MetricsWriter, rewind_metrics
    from ..models import load_model_and_tokenizer, resolve_device, save_model
    from ..rollout import make_backend

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    device = resolve_device(cfg.model.device)
    torch.manual_seed(cfg.seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    model, tokenizer, _ = load_model_and_tokenizer(cfg.model, cfg.organism, device=device)
    prompts = PromptBuilder(tokenizer, template=cfg.data.prompt_template, system_prompt=cfg.data.system_prompt,
                            enable_thinking=cfg.data.enable_thinking, max_prompt_length=cfg.data.max_prompt_length,
                            max_context_length=cfg.sdpo.max_reprompt_len, truncation=cfg.sdpo.reprompt_truncation)
    rewind_metrics(out / "metrics.jsonl", -1)  # a fresh run: earlier lines move to metrics.orphaned.jsonl
    metrics = MetricsWriter(out, tensorboard=cfg.logging.tensorboard, wandb=cfg.logging.wandb,
                            wandb_project=cfg.logging.wandb_project, run_name=cfg.logging.run_name,
                            config=cfg.to_dict())
    backend = None
    if not (traces_only and from_traces) and (from_traces is None or cfg.eval.benchmarks):
        backend = make_backend(cfg.rollout.backend, model, tokenizer, batch_size=cfg.rollout.generation_batch_size,
                               gpu_memory_utilization=cfg.rollout.vllm_gpu_memory_utilization)
    try:
        if from_traces:
            traces = read_traces(from_traces, tokenizer, prompts)
            record: dict[str, Any] = {}
        else:
            problems = load_source(cfg.data.train, coverage=cfg.data.coverage, fields=cfg.data.fields,
                                   split=cfg.data.split, organism=cfg.organism)
            if not problems:
                raise DataError(f"data.train={cfg.data.train!r} yielded no problems")
            traces, generations, record = generate_traces(backend, tokenizer, problems, prompts, cfg, sft)
            _write_jsonl(out / "generations.jsonl", generations)
        _write_jsonl(out / "traces.jsonl", [t.to_dict() for t in traces])
        record.update(trace_stats(traces))
        if traces_only:
            metrics.log(0, record)
            _print_summary(record, out, trained=False)
            return record
        if not traces:
            raise DataError("no correct traces to fine-tune on (see generations.jsonl); try more samples "
                             "(rollout.n), more problems, or --from-traces")
        if cfg.eval.benchmarks and cfg.eval.at_start:
            record.update(run_eval(backend, tokenizer, model, prompts, cfg, out, step=0))
        metrics.log(0, record)
        last = train_sft(model, tokenizer, traces, cfg, sft, metrics)
        if cfg.checkpoint.save_final_model:
            save_model(model, tokenizer, out / "final")
        if cfg.eval.benchmarks:
            last.update(run_eval(backend, tokenizer, model, prompts, cfg, out, step=last["step"]))
        metrics.log(last["step"], {k: v for k, v in last.items() if k != "step"})
        _print_summary({**record, **last}, out, trained=True)
        return last
    finally:
        metrics.close()


def generate_traces(backend, tokenizer, problems, prompts, cfg, sft: SFTConfig):
    """Steps 1-3: (traces, generation records for generations.jsonl, generation metrics)."""
    from ..algorithms.sft import select_traces
    from ..analysis.epistemic import count_epistemic
    from ..analysis.info_cli import (Job, generate_graded, group_by_problem, level_contexts, parse_solve_range,
                                     select_problems)
    from ..rollout import SamplingParams, sample_seed

    r = cfg.rollout
    params = SamplingParams(r.temperature, r.top_p, r.top_k, r.max_new_tokens)
    grading = dict(grader=cfg.reward.grader, timeout=cfg.reward.timeout, reveal_answer=cfg.reward.reveal_answer_in_feedback)
    key = zlib.crc32(b"sdlab-sft")
    jobs = [Job(pi, k, prompts.prompt_ids(p), sample_seed(cfg.seed, key, 0, pi, k))
            for pi, p in enumerate(problems) for k in range(r.n)]
    unguided = generate_graded(backend, tokenizer, problems, jobs, params, level="none", **grading)
    groups = group_by_problem(unguided)
    keep = select_problems(groups, parse_solve_range(sft.solve_range))
    guided = []
    if sft.guidance == "none":
        candidates = {pi: groups[pi] for pi in keep}
    else:
        level = sft.guidance
        gjobs = []
        for pi in keep:
            p = problems[pi]
            ctxs = level_contexts(level, p, prompts.user_text(p), groups[pi], exclude_self=False,
                                  templates=cfg.sdpo.templates, success_threshold=cfg.sdpo.success_reward_threshold)
            for g, c in zip(groups[pi], ctxs):
                if c.distilled:
                    gjobs.append(Job(pi, g.sample, prompts.context_ids(c.text),
                                     sample_seed(cfg.seed, key, 1 + _level_index(level), pi, g.sample)))
        guided = generate_graded(backend, tokenizer, problems, gjobs, params, level=level, **grading)
        candidates = group_by_problem(guided)
    traces = select_traces(problems, [prompts.prompt_ids(p) for p in problems], [prompts.user_text(p) for p in problems],
                           candidates, guidance=sft.guidance, per_problem=sft.traces_per_problem,
                           problem_filter=[pi for pi in keep if pi in candidates], max_problems=sft.max_problems)
    epistemic = {id(g): sum(count_epistemic(g.text, mode="paper").values()) for g in unguided + guided}
    records = [{"kind": kind, "guidance": g.level, "problem_id": g.problem_id, "sample": g.sample,
                "prompt_tokens": len(g.prompt_ids), "response": g.text, "num_tokens": len(g.response_ids),
                "truncated": g.truncated, "correct": g.correct, "reason": g.reason, "epistemic": epistemic[id(g)]}
               for kind, gens in (("unguided", unguided), ("guided", guided)) for g in gens]

    def stats(prefix, gens):
        graded = [g for g in gens if g.correct is not None]
        if not graded:
            return {f"{prefix}/samples": 0}
        n = len(graded)
        return {f"{prefix}/samples": n, f"{prefix}/accuracy": sum(bool(g.correct) for g in graded) / n,
                f"{prefix}/length": sum(len(g.response_ids) for g in graded) / n,
                f"{prefix}/epistemic": sum(epistemic[id(g)] for g in graded) / n}

    record = {"gen/problems": len(problems), "gen/problems_selected": len(keep),
              **stats("gen/unguided", unguided), **(stats("gen/guided", guided) if sft.guidance != "none" else {})}
    return traces, records, record


def _level_index(level: str) -> int:
    from ..config import CONTEXT_LEVELS

    return CONTEXT_LEVELS.index(level)


def trace_stats(traces) -> dict[str, Any]:
    if not traces:
        return {"traces/count": 0, "traces/problems": 0}
    n = len(traces)
    tokens = sum(t.num_tokens for t in traces)
    return {"traces/count": n, "traces/problems": len({t.problem_id for t in traces}),
            "traces/length": tokens / n, "traces/epistemic": sum(t.epistemic for t in traces) / n,
            "traces/epistemic_per_1k_tokens": 1000.0 * sum(t.epistemic for t in traces) / max(1, tokens)}


def read_traces(path: str | Path, tokenizer, prompts) -> list:
    """Traces from a JSONL file (ours, or hand-written). Each row needs `response` or
    `response_ids`, and `prompt_ids`, or `prompt` (the user message; the chat template is applied),
    or `problem` (the bare problem; the prompt template is applied too). Rows with
    `"correct": false` are skipped. A response given as text gets the EOS token appended."""
    from ..algorithms.sft import Trace
    from ..analysis.epistemic import count_epistemic
    from ..data.problems import DataError, Problem

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"traces file not found: {p}")
    traces = []
    eos = tokenizer.eos_token_id
    for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{p}:{lineno}: invalid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{p}:{lineno}: expected a JSON object")
        if row.get("correct") is False:
            continue
        if "prompt_ids" in row:
            prompt_ids, prompt_text = [int(t) for t in row["prompt_ids"]], row.get("prompt", "")
        elif "prompt" in row:
            prompt_text = str(row["prompt"])
            prompt_ids = prompts.render(prompt_text)
        elif "problem" in row:
            prompt_text = prompts.user_text(Problem(id="", prompt=str(row["problem"]), answer=""))
            prompt_ids = prompts.render(prompt_text)
        else:
            raise DataError(f"{p}:{lineno}: a trace needs prompt_ids, prompt or problem")
        if "response_ids" in row:
            response_ids = [int(t) for t in row["response_ids"]]
            response = row.get("response") or tokenizer.decode(response_ids, skip_special_tokens=True)
        elif "response" in row:
            response = str(row["response"])
            response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + ([eos] if eos is not None else [])
        else:
            raise DataError(f"{p}:{lineno}: a trace needs response or response_ids")
        if not prompt_ids or not response_ids:
            raise DataError(f"{p}:{lineno}: empty prompt or response")
        traces.append(Trace(
            problem_id=str(row.get("problem_id", f"{p.stem}-{lineno}")), guidance=str(row.get("guidance", "none")),
            sample=int(row.get("sample", 0)), prompt_ids=prompt_ids, response_ids=response_ids, prompt=prompt_text,
            response=response, epistemic=sum(count_epistemic(response, mode="paper").values()),
            guided_prompt_tokens=int(row.get("guided_prompt_tokens", len(prompt_ids))),
        ))
    return traces


def train_sft(model, tokenizer, traces, cfg, sft: SFTConfig, metrics) -> dict[str, Any]:
    """Step 5: the fine-tuning loop. Logs every step but the last, whose record it returns (with
    its step number) so that the caller can add the final evaluation to it."""
    import math

    import torch

    from ..algorithms.sft import batches, lr_at, sft_micro_loss, truncate_example

    a = cfg.actor
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    examples, cut, dropped = [], 0, 0
    for t in traces:
        r = truncate_example(t.prompt_ids, t.response_ids, sft.max_length)
        if r is None:
            dropped += 1
            continue
        examples.append((t.prompt_ids, r[0]))
        cut += int(r[1])
    if not examples:
        raise ValueError(f"every trace's prompt is longer than sft.max_length={sft.max_length}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=a.betas, weight_decay=a.weight_decay)
    steps_per_epoch = math.ceil(len(examples) / sft.batch_size)
    total = sft.epochs * steps_per_epoch
    model.train()
    step, last = 0, {}
    for epoch in range(sft.epochs):
        epoch_nll, epoch_tokens = 0.0, 0
        for rows in batches(len(examples), sft.batch_size, epoch=epoch, seed=cfg.seed, shuffle=sft.shuffle):
            lr = lr_at(step, total, a.lr, warmup_steps=a.warmup_steps, schedule=a.lr_schedule)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            num_tokens = sum(len(examples[i][1]) for i in rows)
            loss_sum, nll_sum = 0.0, 0.0
            for k in range(0, len(rows), a.micro_batch_size):
                mrows = rows[k : k + a.micro_batch_size]
                loss, nll = sft_micro_loss(model, [examples[i][0] for i in mrows], [examples[i][1] for i in mrows], pad_id,
                                           mode=sft.loss_agg_mode, num_tokens=float(num_tokens), num_seqs=float(len(rows)))
                loss.backward()
                loss_sum += float(loss.detach())
                nll_sum += nll
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip)
            optimizer.step()
            step += 1
            epoch_nll += nll_sum
            epoch_tokens += num_tokens
            last = {"sft/loss": loss_sum, "sft/nll_per_token": nll_sum / max(1, num_tokens), "sft/lr": lr,
                    "sft/grad_norm": float(grad_norm), "sft/tokens": num_tokens, "sft/sequences": len(rows),
                    "sft/epoch": epoch}
            if step == 1:
                last.update({"sft/examples": len(examples), "sft/responses_cut": cut, "sft/traces_dropped": dropped,
                             "sft/total_steps": total})
            if step % steps_per_epoch == 0:
                last["sft/epoch_nll_per_token"] = epoch_nll / max(1, epoch_tokens)
            if step < total:
                metrics.log(step, last)
    model.eval()
    return {"step": step, **last}  # the caller logs the last step (with the final evaluation)


def run_eval(backend, tokenizer, model, prompts, cfg, out: Path, *, step: int) -> dict[str, Any]:
    """eval.benchmarks with the eval.* settings (as the trainer's in-training evaluation)."""
    from ..data.sources import load_source
    from ..evaluation.runner import EvalSettings, evaluate

    e = cfg.eval
    backend.update_weights(model)
    settings = EvalSettings(n=e.n, temperature=e.temperature, top_p=e.top_p, top_k=e.top_k,
                            max_new_tokens=e.max_new_tokens or cfg.rollout.max_new_tokens,
                            grader=cfg.reward.grader, timeout=cfg.reward.timeout, seed=cfg.seed)
    res: dict[str, Any] = {}
    for name in e.benchmarks:
        problems = load_source(name, organism=cfg.organism, limit=e.limit)
        summary, samples = evaluate(backend, tokenizer, problems, settings, name=name,
                                    prompt_ids_fn=prompts.prompt_ids, prompt_text_fn=prompts.user_text)
        label = name if re.fullmatch(r"[\w.:-]+", name) else Path(name).stem  # a file path -> its stem
        for key in ("accuracy", "pass@1", f"pass@{e.n}", "response_length", "truncation_rate", "epistemic"):
            if key in summary:
                res[f"eval/{label}/{key}"] = summary[key]
        if e.save_samples:
            _write_jsonl(out / "eval" / f"step-{step}" / f"{label.replace(':', '_')}.jsonl", samples)
    return res


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(path)


def _print_summary(record: dict, out: Path, *, trained: bool) -> None:
    keys = [k for k in record if k.startswith(("gen/", "traces/", "eval/"))] + \
        [k for k in ("sft/loss", "sft/epoch_nll_per_token") if k in record]
    for k in keys:
        v = record[k]
        print(f"{k:<36}{v:.4f}" if isinstance(v, float) else f"{k:<36}{v}")
    print(f"wrote {out / 'traces.jsonl'}" + (f", {out / 'final'}, {out / 'metrics.jsonl'}" if trained else ""))
