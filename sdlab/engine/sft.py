"""Off-policy self-distillation, the study's §4 (Table 2): generate traces with and without
guidance, keep the correct ones, fine-tune on them with a plain causal-LM loss (`sdlab sft`).

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
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..algorithms.context import level_contexts
from ..algorithms.sft import Trace, select_traces, sft_loss, truncate_example
from ..analysis.epistemic import count_epistemic
from ..config import Config
from ..data.problems import DataError, Problem
from ..data.prompts import PromptBuilder
from ..data.sources import load_source
from ..evaluation.runner import EvalSettings, evaluate_benchmarks, load_eval_sets
from ..evaluation.sampling import Job, generate_graded, group_by_problem, parse_solve_range, select_problems
from ..io import read_jsonl, write_jsonl
from ..models import load_model_and_tokenizer, resolve_device, resolve_precision, save_model
from ..rollout import SamplingParams, context_slot, make_backend, problem_seed
from .batch import pack, packing_enabled, plan_micro_batches
from .head import response_hidden, score_tokens
from .metrics import MetricsWriter, rewind_metrics
from .runs import run_folder
from .schedule import lr_at

__all__ = ["batches", "generate_traces", "read_traces", "run_sft", "sft_micro_loss", "trace_stats", "train_sft"]

SEED_STREAM = "sdlab-sft"


def run_sft(cfg: Config, *, traces_only: bool = False, from_traces: str | None = None,
            overwrite: bool = False) -> dict[str, Any]:
    """The whole pipeline (steps 1-5; `cfg.sft` holds the SFT keys) in a checked, locked output
    folder; returns the last metrics record (with the generation and trace statistics)."""
    with run_folder(cfg.output_dir, overwrite=overwrite):
        return _run_sft(cfg, traces_only=traces_only, from_traces=from_traces)


def _run_sft(cfg: Config, *, traces_only: bool, from_traces: str | None) -> dict[str, Any]:
    out = Path(cfg.output_dir)
    cfg.save(out / "config.yaml")
    problems = None
    if not from_traces:  # the data first: a bad data file is reported before the model loads
        problems = load_source(cfg.data.train, coverage=cfg.data.coverage, fields=cfg.data.fields,
                               split=cfg.data.split, organism=cfg.organism)
        if not problems:
            raise DataError(f"data.train={cfg.data.train!r} holds no problems")
    device = resolve_device(cfg.model.device)
    torch.manual_seed(cfg.seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    model, tokenizer, _ = load_model_and_tokenizer(cfg.model, cfg.organism, device=device)
    prompts = PromptBuilder.from_config(tokenizer, cfg)
    rewind_metrics(out / "metrics.jsonl", -1)  # a fresh run: earlier lines move to metrics.orphaned.jsonl
    metrics = MetricsWriter(out, tensorboard=cfg.logging.tensorboard, wandb=cfg.logging.wandb,
                            wandb_project=cfg.logging.wandb_project, run_name=cfg.logging.run_name,
                            config=cfg.to_dict())
    backend = None
    if not (traces_only and from_traces) and (from_traces is None or cfg.eval.benchmarks):
        backend = make_backend(cfg.rollout.backend, model, tokenizer, batch_size=cfg.rollout.generation_batch_size,
                               hf_engine=cfg.rollout.hf_engine,
                               gpu_memory_utilization=cfg.rollout.vllm_gpu_memory_utilization)
    try:
        if from_traces:
            traces = read_traces(from_traces, tokenizer, prompts)
            record: dict[str, Any] = {}
        else:
            traces, generations, record = generate_traces(backend, tokenizer, problems, prompts, cfg)
            write_jsonl(out / "generations.jsonl", generations)
        write_jsonl(out / "traces.jsonl", [t.to_dict() for t in traces])
        record.update(trace_stats(traces))
        if traces_only:
            metrics.log(0, record)
            return record
        if not traces:
            raise DataError("no correct traces to fine-tune on (see generations.jsonl); try more samples "
                            "(rollout.n), more problems, or --from-traces")
        eval_sets = load_eval_sets(cfg)
        if eval_sets and cfg.eval.at_start:
            record.update(_evaluate(backend, tokenizer, model, prompts, cfg, eval_sets, out, step=0))
        metrics.log(0, record)
        last = train_sft(model, tokenizer, traces, cfg, metrics)
        if cfg.checkpoint.save_final_model:
            save_model(model, tokenizer, out / "final")
        if eval_sets:
            last.update(_evaluate(backend, tokenizer, model, prompts, cfg, eval_sets, out, step=last["step"]))
        metrics.log(last["step"], {k: v for k, v in last.items() if k != "step"})
        return {**record, **last}
    finally:
        metrics.close()


def generate_traces(backend, tokenizer, problems: Sequence[Problem], prompts: PromptBuilder, cfg: Config):
    """Steps 1-3: (traces, generation records for generations.jsonl, generation metrics)."""
    sft, r = cfg.sft, cfg.rollout
    params = SamplingParams(r.temperature, r.top_p, r.top_k, r.max_new_tokens)
    grading = dict(grader=cfg.reward.grader, timeout=cfg.reward.timeout,
                   reveal_answer=cfg.reward.reveal_answer_in_feedback)
    jobs = [Job(pi, k, prompts.prompt_ids(p), problem_seed(cfg.seed, SEED_STREAM, pi, k, slot=0))
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
                                     problem_seed(cfg.seed, SEED_STREAM, pi, g.sample, slot=context_slot(level))))
        guided = generate_graded(backend, tokenizer, problems, gjobs, params, level=level, **grading)
        candidates = group_by_problem(guided)
    traces = select_traces(problems, [prompts.prompt_ids(p) for p in problems],
                           [prompts.user_text(p) for p in problems],
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


def trace_stats(traces: Sequence[Trace]) -> dict[str, Any]:
    if not traces:
        return {"traces/count": 0, "traces/problems": 0}
    n = len(traces)
    tokens = sum(t.num_tokens for t in traces)
    return {"traces/count": n, "traces/problems": len({t.problem_id for t in traces}),
            "traces/length": tokens / n, "traces/epistemic": sum(t.epistemic for t in traces) / n,
            "traces/epistemic_per_1k_tokens": 1000.0 * sum(t.epistemic for t in traces) / max(1, tokens)}


def read_traces(path: str | Path, tokenizer, prompts: PromptBuilder) -> list[Trace]:
    """Traces from a JSONL file (ours, or hand-written). Each row needs `response` or
    `response_ids`, and `prompt_ids`, or `prompt` (the user message; the chat template is applied),
    or `problem` (the bare problem; the prompt template is applied too). Rows with
    `"correct": false` are skipped. A response given as text gets the EOS token appended."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"traces file not found: {p}")
    traces = []
    eos = tokenizer.eos_token_id
    for lineno, row in read_jsonl(p):
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
            response_ids = (tokenizer(response, add_special_tokens=False)["input_ids"]
                            + ([eos] if eos is not None else []))
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


def sft_micro_loss(model, prompts: Sequence[list[int]], responses: Sequence[list[int]], pad_id: int, *,
                   mode: str = "token-mean", num_tokens, num_seqs, chunk_size: int = 1024,
                   packed: bool = False) -> tuple[torch.Tensor, float]:
    """(loss of these rows with the batch's normalisers, their summed NLL) for one micro-batch; the
    log-probs come from hidden states a chunk at a time (`sdlab.engine.head`)."""
    device = next(model.parameters()).device
    batch = pack(list(prompts), list(responses), pad_id, packed=packed).to(device)
    hidden, head = response_hidden(model, batch)
    logp = batch.to_rows(score_tokens(hidden, head, batch.tokens, chunk_size)[0])
    loss = sft_loss(logp, batch.response_mask, mode=mode, num_tokens=num_tokens, num_seqs=num_seqs)
    return loss, float((-logp.detach() * batch.response_mask).sum())


def batches(n: int, batch_size: int, *, epoch: int, seed: int, shuffle: bool = True) -> list[list[int]]:
    """Example indices of one epoch split into batches; the order is a function of (seed, epoch)."""
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    return [[int(i) for i in order[k : k + batch_size]] for k in range(0, n, batch_size)]


def train_sft(model, tokenizer, traces: Sequence[Trace], cfg: Config, metrics) -> dict[str, Any]:
    """Step 5: the fine-tuning loop. Logs every step but the last, whose record it returns (with
    its step number) so that the caller can add the final evaluation to it."""
    a, sft = cfg.actor, cfg.sft
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
    device = next(model.parameters()).device
    precision = resolve_precision(cfg.model, device)
    packed = packing_enabled(a.pack_sequences, model)
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
            lengths = [len(examples[i][0]) + len(examples[i][1]) for i in rows]
            for micro in plan_micro_batches(lengths, max_rows=a.micro_batch_size,
                                            max_tokens=a.max_tokens_per_micro_batch, packed=packed):
                mrows = [rows[k] for k in micro]
                with precision.autocast(device):
                    loss, nll = sft_micro_loss(model, [examples[i][0] for i in mrows], [examples[i][1] for i in mrows],
                                               pad_id, mode=sft.loss_agg_mode, num_tokens=float(num_tokens),
                                               num_seqs=float(len(rows)), chunk_size=a.logits_chunk_size, packed=packed)
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


def _evaluate(backend, tokenizer, model, prompts, cfg: Config, eval_sets, out: Path, *, step: int) -> dict[str, Any]:
    """eval.benchmarks with the eval.* settings, as the trainer's in-training evaluation."""
    backend.update_weights(model)
    samples_dir = out / "eval" / f"step-{step}" if cfg.eval.save_samples else None
    return evaluate_benchmarks(backend, tokenizer, eval_sets, EvalSettings.from_config(cfg), prompts=prompts,
                               samples_dir=samples_dir)
