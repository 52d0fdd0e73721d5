"""The training loop: rollouts -> rewards -> objective -> update.

One loop serves GRPO and SDPO; they differ only in the objective and whether a teacher is built.
Read `Trainer.step` top to bottom for one training step.

Data-parallel layout (accelerate): every process draws the same global batch of prompts; each
mini-batch of M prompts is split into W equal slices, one per process. Each sample's tokens come
from its own counter-based seed, and every loss is normalised by counts over the *global*
mini-batch, so W processes compute the same update as one process on the same global batch.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from ..algorithms import advantages as adv_lib
from ..algorithms import grpo, sdpo
from ..algorithms.context import build_teacher_contexts
from ..algorithms.logits import entropy, mass_on, token_logprobs
from ..algorithms.teacher import Teacher
from ..analysis.epistemic import count_epistemic, epistemic_token_ids
from ..config import Config, ConfigError
from ..data.problems import DataError, DataSampler, Problem
from ..data.prompts import PromptBuilder
from ..data.sources import load_source
from ..evaluation.runner import EvalSettings, Shard, evaluate_benchmarks, load_eval_sets
from ..models import load_model, load_model_and_tokenizer, resolve_device, resolve_precision
from ..rewards import grade_many
from ..rewards import summarize as summarize_grades
from ..rollout import SamplingParams, make_backend, sample_seed
from . import checkpoint as ckpt
from . import parallel
from .batch import pack, packing_enabled, plan_micro_batches
from .head import map_chunks, response_hidden, score_tokens
from .metrics import MetricsWriter, rewind_metrics
from .runs import check_resume_config, run_folder
from .schedule import lr_at

log = logging.getLogger(__name__)


@dataclass
class Rollouts:
    """What one step sampled on this process: one row per response."""

    problems: list[Problem]
    prompt_ids: list[list[int]]
    response_ids: list[list[int]]
    rollout_logprobs: list[list[float]]
    truncated: list[bool]
    group_ids: list[int]
    minibatch: list[int]


@dataclass
class Scores:
    """What the grader said about each row, and the group-relative advantages."""

    texts: list[str]
    rewards: torch.Tensor
    advantages: torch.Tensor
    feedbacks: list[str]
    attempts: list[str | None] | None = None
    """The grader's extracted answer of each row (None when it has none), for `feedback_attempt`."""


@dataclass
class TeacherInputs:
    """The self-distillation teacher's prompt for each row, and which rows are distilled."""

    prompt_ids: list[list[int]]
    distilled: torch.Tensor


class Trainer:
    def __init__(self, cfg: Config, accelerator: Accelerator | None = None):
        self.cfg = cfg
        device = resolve_device(cfg.model.device)
        self.accelerator = accelerator or Accelerator(cpu=device.type == "cpu")
        self.world = self.accelerator.num_processes
        self.rank = self.accelerator.process_index
        self.out = Path(cfg.output_dir)
        set_seed(cfg.seed)
        if cfg.model.cpu_threads:
            torch.set_num_threads(cfg.model.cpu_threads)
        if cfg.model.device == "cpu" or self.accelerator.device.type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)

        # the data first: a bad data file is reported before minutes of model loading
        self.problems = load_source(cfg.data.train, coverage=cfg.data.coverage, fields=cfg.data.fields,
                                    split=cfg.data.split, organism=cfg.organism)
        if not self.problems:
            raise DataError(f"data.train={cfg.data.train!r} holds no problems")
        device = self.accelerator.device
        model, self.tokenizer, self.model_path = load_model_and_tokenizer(cfg.model, cfg.organism, device=device)
        parallel.check_strategy(cfg.parallel.strategy, self.accelerator, sum(p.numel() for p in model.parameters()))
        self.precision = resolve_precision(cfg.model, device)
        self.sharded = cfg.parallel.strategy == "fsdp"
        if self.sharded:
            parallel.init_single_process_group(device)
            model = parallel.shard(model, compute_dtype=self.precision.compute)
        self.pad_id = self.tokenizer.pad_token_id
        self.packed = packing_enabled(cfg.actor.pack_sequences, model)
        sd = cfg.sdpo
        self.teacher = None
        if cfg.algorithm == "sdpo":
            self.teacher = Teacher(sd.teacher.kind, model, sd.teacher.update_rate,
                                   module=self._frozen_copy(sd.teacher.kind))
        self.reference = Teacher("frozen", model, module=self._frozen_copy("frozen")) if cfg.actor.use_kl_loss else None
        a = cfg.actor
        optimizer = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=a.betas, weight_decay=a.weight_decay)
        if self.sharded:  # FSDP2 is applied above; accelerate only provides the processes and devices
            self.model, self.optimizer = model, optimizer
        else:
            self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.backend = make_backend(cfg.rollout.backend, self.accelerator.unwrap_model(self.model), self.tokenizer,
                                    batch_size=cfg.rollout.generation_batch_size, hf_engine=cfg.rollout.hf_engine,
                                    gpu_memory_utilization=cfg.rollout.vllm_gpu_memory_utilization,
                                    max_model_len=cfg.data.max_prompt_length + cfg.rollout.max_new_tokens,
                                    seed=cfg.seed, dtype=self.precision.compute)

        self.sampler = DataSampler(len(self.problems), seed=cfg.seed, shuffle=cfg.data.shuffle)
        self.mini = a.ppo_mini_batch_size or cfg.data.train_batch_size
        if self.mini % self.world:
            raise ConfigError(f"actor.ppo_mini_batch_size ({self.mini}) must be divisible by the number of "
                              f"processes ({self.world})")
        self.prompts = PromptBuilder.from_config(self.tokenizer, cfg)
        self.epistemic_ids = epistemic_token_ids(self.tokenizer)
        self.step_idx = 0
        self._eval_sets: dict[str, list[Problem]] | None = None
        self._warned_cut, self._prompts_cut = False, 0.0
        self.metrics = MetricsWriter(self.out, tensorboard=cfg.logging.tensorboard, wandb=cfg.logging.wandb,
                                     wandb_project=cfg.logging.wandb_project, run_name=cfg.logging.run_name,
                                     config=cfg.to_dict(), enabled=self.accelerator.is_main_process)

    def _frozen_copy(self, kind: str):
        """A separate module with the initial weights, built from the model path with the student's
        plan: a frozen teacher / reference in the compute dtype, an EMA teacher in the masters'.
        A live teacher is the student itself (None)."""
        if kind == "live":
            return None
        cfg = self.cfg
        dtype = self.precision.compute if kind == "frozen" else self.precision.master
        module = load_model(self.model_path, cfg.model, self.accelerator.device, trainable=False, dtype=dtype)
        return parallel.shard(module, compute_dtype=self.precision.compute) if self.sharded else module

    def _compute(self):
        """The context of every forward pass: autocast for mixed precision, except under FSDP2,
        whose mixed-precision policy casts the gathered parameters itself."""
        return contextlib.nullcontext() if self.sharded else self.precision.autocast(self.accelerator.device)

    @contextlib.contextmanager
    def _generating(self):
        """The context of generation: as `_compute`, and with the HF backend on a sharded model the
        full parameters gathered once for the whole generate call (not per layer per token)."""
        with self._compute():
            if self.sharded and self.cfg.rollout.backend == "hf":
                with parallel.gathered(self.model):
                    yield
            else:
                yield

    # ------------------------------------------------------------------ lifecycle

    def train(self, resume: bool = False, on_step=None) -> dict[str, Any]:
        """Run to cfg.steps; `on_step(step)` is called after each step (progress reporting)."""
        cfg = self.cfg
        main = self.accelerator.is_main_process
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
        if resume:
            self._resume()
        elif main:
            rewind_metrics(self.out / "metrics.jsonl", -1)  # a fresh start: earlier lines move aside
        if main and (not resume or not (self.out / "config.yaml").exists()):
            cfg.save(self.out / "config.yaml")
        if cfg.eval.every and cfg.eval.at_start and self.step_idx == 0:
            self.metrics.log(0, self.run_eval())
        bar = _progress(cfg.logging.progress and self.accelerator.is_main_process, cfg.steps, self.step_idx, "train")
        last: dict[str, Any] = {}
        while self.step_idx < cfg.steps:
            t0 = time.perf_counter()
            last = self.step()
            self.step_idx += 1
            last["time/step"] = time.perf_counter() - t0
            if cfg.eval.every and (self.step_idx % cfg.eval.every == 0 or self.step_idx == cfg.steps):
                last.update(self.run_eval())
            self.metrics.log(self.step_idx, last)
            every = cfg.checkpoint.save_every
            if self.step_idx == cfg.steps or (every and self.step_idx % every == 0):
                self.save_checkpoint()
            if on_step is not None:
                on_step(self.step_idx)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(reward=f"{last.get('reward/mean', 0):.3f}",
                                len=f"{last.get('response_length/mean', 0):.0f}")
        if bar is not None:
            bar.close()
        if cfg.checkpoint.save_final_model:
            ckpt.export_model(self.model, self.tokenizer, self.out / "final")
        self.accelerator.wait_for_everyone()
        self.metrics.close()
        return last

    def _resume(self) -> None:
        path = ckpt.latest_checkpoint(self.out / "checkpoints")
        if self.accelerator.is_main_process:
            step = int(path.name.split("-")[1]) if path is not None else 0
            check_resume_config(self.out, self.cfg, step)
        if path is None:
            if self.accelerator.is_main_process:
                rewind_metrics(self.out / "metrics.jsonl", -1)
            return
        state = ckpt.load_checkpoint(path, model=self.model, optimizer=self.optimizer,
                                     teacher=self.teacher.state_module if self.teacher else None)
        self.step_idx = state["step"]
        self.sampler.load_state_dict(state["sampler"])
        if self.accelerator.is_main_process:
            rewind_metrics(self.out / "metrics.jsonl", self.step_idx)

    def save_checkpoint(self) -> None:
        """Every process takes part (sharded state, gathered HF export)."""
        self.accelerator.wait_for_everyone()
        ckpt.save_checkpoint(
            self.out / "checkpoints", self.step_idx, model=self.model, tokenizer=self.tokenizer,
            optimizer=self.optimizer,
            state={"sampler": self.sampler.state_dict(), "lr": self.lr_at(self.step_idx)},
            teacher=self.teacher.state_module if self.teacher else None, keep_last=self.cfg.checkpoint.keep_last,
        )

    def lr_at(self, step: int) -> float:
        a = self.cfg.actor
        return lr_at(step, self.cfg.steps, a.lr, warmup_steps=a.warmup_steps, schedule=a.lr_schedule)

    # ------------------------------------------------------------------ one step

    def step(self) -> dict[str, Any]:
        """One training step: rollouts -> rewards -> (teacher inputs) -> update."""
        cfg = self.cfg
        t0 = time.perf_counter()
        rollouts = self.rollout([self.problems[i] for i in self.sampler.next(cfg.data.train_batch_size)])
        t_gen = time.perf_counter() - t0
        scores, metrics = self.score(rollouts)
        t_reward = time.perf_counter() - t0 - t_gen
        teacher_inputs = None
        if cfg.algorithm == "sdpo":
            teacher_inputs, teacher_metrics = self.build_teacher_inputs(rollouts, scores)
            metrics.update(teacher_metrics)
        metrics.update(self.update(rollouts, scores, teacher_inputs))
        self.backend.update_weights(self.accelerator.unwrap_model(self.model))
        if self.teacher is not None:
            self.teacher.step()
        metrics["data/prompt_truncated"] = self._reduce_means({"x": (self._prompts_cut, 1)})["x"]
        metrics["time/generate"] = t_gen
        metrics["time/reward"] = t_reward
        metrics["time/update"] = time.perf_counter() - t0 - t_gen - t_reward
        return metrics

    def rollout(self, problems: list[Problem]) -> Rollouts:
        """Generate rollout.n responses for this process's slice of every mini-batch."""
        cfg, n = self.cfg, self.cfg.rollout.n
        per_rank = self.mini // self.world
        local: list[tuple[int, Problem, int]] = []
        for j, start in enumerate(range(0, len(problems), self.mini)):
            lo = start + self.rank * per_rank
            local += [(g, problems[g], j) for g in range(lo, lo + per_rank)]
        prompts, seeds, owners = [], [], []
        for g, p, j in local:
            ids = self.prompts.prompt_ids(p)
            for k in range(n):
                prompts.append(ids)
                seeds.append(sample_seed(cfg.seed, self.step_idx, g, k))
                owners.append((g, p, j))
        cut = sum(p.id in self.prompts.cut for _, p, _ in local)
        if cut and not self._warned_cut:
            self._warned_cut = True
            log.warning("prompts longer than data.max_prompt_length=%d tokens are cut to their last %d tokens "
                        "(%d in this step; the metric data/prompt_truncated counts them)",
                        cfg.data.max_prompt_length, cfg.data.max_prompt_length, cut)
        self._prompts_cut = cut / max(1, len(local))
        r = cfg.rollout
        with self._generating():
            params = SamplingParams(r.temperature, r.top_p, r.top_k, r.max_new_tokens)
            out = self.backend.generate(prompts, seeds, params)
        return Rollouts(
            problems=[o[1] for o in owners],
            prompt_ids=prompts,
            response_ids=[x.response_ids for x in out],
            rollout_logprobs=[x.logprobs for x in out],
            truncated=[x.truncated for x in out],
            group_ids=[o[0] for o in owners],
            minibatch=[o[2] for o in owners],
        )

    def score(self, r: Rollouts) -> tuple[Scores, dict[str, Any]]:
        """Grade every response; (scores, reward / length / epistemic metrics over all processes)."""
        cfg = self.cfg
        texts = [self.tokenizer.decode(ids, skip_special_tokens=True) for ids in r.response_ids]
        results = grade_many(texts, [p.answer for p in r.problems], cfg.reward.grader, truncated=r.truncated,
                             reveal_answer=cfg.reward.reveal_answer_in_feedback, timeout=cfg.reward.timeout)
        rewards = torch.tensor([x.reward for x in results], dtype=torch.float32)
        scores = Scores(texts=texts, rewards=rewards, feedbacks=[x.feedback for x in results],
                        attempts=[x.pred for x in results],
                        advantages=adv_lib.group_advantages(rewards, cfg.rollout.n,
                                                            norm_by_std=cfg.advantage.norm_adv_by_std_in_grpo,
                                                            epsilon=cfg.advantage.epsilon))
        lengths = torch.tensor([len(x) for x in r.response_ids], dtype=torch.float32)
        groups = rewards.view(-1, cfg.rollout.n)
        epi = torch.tensor([sum(count_epistemic(t, mode="paper").values()) for t in texts], dtype=torch.float32)
        stats = {
            "reward": (rewards.sum(), len(rewards)),
            "reward_sq": ((rewards ** 2).sum(), len(rewards)),
            "zero_std_groups": (((groups.max(1).values - groups.min(1).values) == 0).float().sum(), groups.shape[0]),
            "response_length/mean": (lengths.sum(), len(lengths)),
            "response_length/clip_ratio": (torch.tensor(r.truncated, dtype=torch.float32).sum(), len(lengths)),
            "epistemic/mean": (epi.sum(), len(epi)),
        }
        for key, value in summarize_grades(results).items():
            stats[key] = (torch.tensor(float(value)), 1)
        out = self._reduce_means(stats)
        mean = out.pop("reward")
        out["reward/mean"] = mean
        out["reward/std"] = math.sqrt(max(0.0, out.pop("reward_sq") - mean**2))
        out["frac_reward_zero_std"] = out.pop("zero_std_groups")
        for key in summarize_grades(results):  # counts, not means
            out[key] = out[key] * self.world
        out["response_length/max"] = self._reduce_max(lengths.max() if len(lengths) else torch.tensor(0.0))
        return scores, out

    def build_teacher_inputs(self, r: Rollouts, scores: Scores) -> tuple[TeacherInputs, dict[str, Any]]:
        """Teacher prompt per row (context level `teacher_context`) and the distillation mask."""
        cfg, sd = self.cfg, self.cfg.sdpo
        contexts = build_teacher_contexts(
            cfg.teacher_context,
            prompts=[self.prompts.user_text(p) for p in r.problems], responses=scores.texts,
            rewards=scores.rewards.tolist(), group_ids=r.group_ids, answers=[p.answer for p in r.problems],
            solutions=[p.solution for p in r.problems], feedbacks=scores.feedbacks,
            success_threshold=sd.success_reward_threshold, exclude_self=sd.dont_reprompt_on_self_success,
            templates=sd.templates, attempts=scores.attempts,
        )
        prompt_ids, truncated = [], []
        for c in contexts:
            ids, cut = self.prompts.context(c.text)
            prompt_ids.append(ids)
            truncated.append(cut)
        distilled = torch.tensor([c.distilled for c in contexts], dtype=torch.float32)
        n = len(contexts)
        return TeacherInputs(prompt_ids, distilled), self._reduce_means({
            "sdpo/distilled_fraction": (distilled.sum(), n),
            "sdpo/teacher_prompt_truncated": (torch.tensor(truncated, dtype=torch.float32).sum(), n),
            "sdpo/teacher_prompt_length": (torch.tensor([len(t) for t in prompt_ids], dtype=torch.float32).sum(), n),
        })

    # ------------------------------------------------------------------ update

    def update(self, r: Rollouts, scores: Scores, teacher_inputs: TeacherInputs | None) -> dict[str, Any]:
        """ppo_epochs passes over the mini-batches, one optimizer step per mini-batch."""
        cfg, a = self.cfg, self.cfg.actor
        self.model.train()  # generation may have left eval mode; checkpointing only runs in training mode
        rows_by_mb: dict[int, list[int]] = {}
        for i, j in enumerate(r.minibatch):
            rows_by_mb.setdefault(j, []).append(i)
        on_policy = len(rows_by_mb) == 1 and a.ppo_epochs == 1 and cfg.rollout.backend == "hf"
        old = None if on_policy else self._old_logprobs(r)
        lr = self.lr_at(self.step_idx)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        acc: dict[str, list[float]] = {}
        grad_norms = []
        for _ in range(a.ppo_epochs):
            for j in sorted(rows_by_mb):
                grad_norms.append(self._minibatch_update(r, scores, teacher_inputs, rows_by_mb[j], old, acc))
        out = self._reduce_means({k: (float(np.sum(v[0::2])), float(np.sum(v[1::2]))) for k, v in acc.items()})
        out["actor/grad_norm"] = float(np.mean(grad_norms))
        out["actor/lr"] = lr
        return out

    def _micro_batches(self, r: Rollouts, rows: list[int], teacher_inputs: TeacherInputs | None) -> list[list[int]]:
        """The rows of a mini-batch grouped into forward/backward passes (token budget or row count)."""
        a = self.cfg.actor

        def cost(i):
            n = len(r.prompt_ids[i]) + len(r.response_ids[i])
            return max(n, len(teacher_inputs.prompt_ids[i]) + len(r.response_ids[i])) if teacher_inputs else n

        groups = plan_micro_batches([cost(i) for i in rows], max_rows=a.micro_batch_size,
                                    max_tokens=a.max_tokens_per_micro_batch, packed=self.packed)
        return [[rows[k] for k in g] for g in groups]

    def _minibatch_update(self, r: Rollouts, scores: Scores, teacher_inputs: TeacherInputs | None, rows: list[int],
                          old: list[torch.Tensor] | None, acc) -> float:
        a = self.cfg.actor
        device = self.accelerator.device
        lengths = torch.tensor([len(r.response_ids[i]) for i in rows], dtype=torch.float32)
        num_tokens = self._reduce_sum(lengths.sum()).clamp_min(1.0)
        num_seqs = self._reduce_sum(torch.tensor(float(len(rows))))
        scale = self.world  # DDP averages gradients over processes; losses here are global sums
        self.optimizer.zero_grad(set_to_none=True)
        micro = self._micro_batches(r, rows, teacher_inputs)
        passes = self._passes(len(micro))
        total_loss = 0.0
        for m_idx in range(passes):
            sync = m_idx == passes - 1
            ddp_accumulate = not sync and self.world > 1 and not self.sharded
            with self.accelerator.no_sync(self.model) if ddp_accumulate else contextlib.nullcontext():
                if m_idx < len(micro):
                    loss, stats = self._micro_loss(r, scores, teacher_inputs, micro[m_idx], old, num_tokens.to(device),
                                                   num_seqs.to(device))
                else:  # this rank has fewer micro-batches than another: an idle pass, for FSDP's collectives
                    loss, _ = self._micro_loss(*self._idle_inputs(), [0], None, num_tokens.to(device),
                                               num_seqs.to(device))
                    loss, stats = loss * 0.0, {}
                self.accelerator.backward(loss * scale)
            self._release_frozen()
            total_loss += float(loss.detach())
            for k, (total, count) in stats.items():
                acc.setdefault(k, []).extend([float(total), float(count)])
        # the mini-batch loss is the sum over micro-batches and processes; count each update once
        acc.setdefault("actor/loss", []).extend([total_loss, 1.0 / self.world])
        if self.sharded:
            grad_norm = parallel.clip_grad_norm_(self.model.parameters(), a.grad_clip)
        else:
            grad_norm = self.accelerator.clip_grad_norm_(self.model.parameters(), a.grad_clip)
        self.optimizer.step()
        return float(grad_norm)

    def _passes(self, local: int) -> int:
        """Forward passes every rank runs: under FSDP each pass is a collective (parameters are
        gathered layer by layer), so all ranks run as many as the busiest one."""
        return parallel.all_max(local, self.accelerator.device) if self.sharded and self.world > 1 else local

    def _idle_inputs(self) -> tuple[Rollouts, Scores, TeacherInputs]:
        """One row of one padding token (its loss is multiplied by 0)."""
        pad = [self.pad_id]
        return (Rollouts([self.problems[0]], [pad], [pad], [[0.0]], [False], [0], [0]),
                Scores([""], torch.zeros(1), torch.zeros(1), [""]), TeacherInputs([pad], torch.zeros(1)))

    def _release_frozen(self) -> None:
        """Sharded frozen modules keep their root's gathered parameters after a forward; free them."""
        for t in (self.teacher, self.reference):
            if t is not None and t.model is not None:
                parallel.reshard(t.model)

    def _micro_loss(self, r: Rollouts, scores: Scores, teacher_inputs: TeacherInputs | None, rows, old,
                    num_tokens, num_seqs):
        """The loss of one micro-batch with the mini-batch's normalisers, and its token statistics.

        One decoder pass per model gives the last hidden states of the response tokens; every
        quantity of the output distributions (student log-probs and entropy, the teacher's
        divergence, the reference's log-probs) is computed from them a chunk of positions at a time
        (`map_chunks`), so no (tokens x vocabulary) tensor is ever alive."""
        cfg, a, ro, sd = self.cfg, self.cfg.actor, self.cfg.rollout, self.cfg.sdpo
        device = self.accelerator.device
        w = sd.distillation_weight if cfg.algorithm == "sdpo" else 0.0
        responses = [r.response_ids[i] for i in rows]
        batch = pack([r.prompt_ids[i] for i in rows], responses, self.pad_id, packed=self.packed).to(device)
        with self._compute():
            hidden, head = response_hidden(self.model, batch, ro.temperature)
            with torch.no_grad():
                t_hidden = t_head = ref_hidden = ref_head = None
                if w > 0.0:
                    tbatch = pack([teacher_inputs.prompt_ids[i] for i in rows], responses, self.pad_id,
                                  packed=self.packed).to(device)
                    t_hidden, t_head = response_hidden(self.teacher.module(), tbatch, ro.temperature)
                if self.reference is not None and w < 1.0:
                    ref_hidden, ref_head = response_hidden(self.reference.module(), batch, ro.temperature)

            def per_chunk(h, ids, th, rh):
                logits = head(h)
                logp = token_logprobs(logits, ids)
                out = [logp, entropy(logits), mass_on(logits, self.epistemic_ids)]
                with torch.no_grad():
                    t_logits = t_head(th) if th is not None else None
                    ref_lp = token_logprobs(ref_head(rh), ids) if rh is not None else torch.zeros_like(logp)
                if t_logits is None:
                    return (*out, ref_lp)
                div = sdpo.per_token_loss(sd.distillation_mode, logits, t_logits, ids, alpha=sd.alpha,
                                          topk=sd.distillation_topk, add_tail=sd.distillation_add_tail)
                return (*out, ref_lp, div, entropy(t_logits), mass_on(t_logits, self.epistemic_ids))

            per_token = [batch.to_rows(x) for x in map_chunks(per_chunk, a.logits_chunk_size, hidden, batch.tokens,
                                                              t_hidden, ref_hidden)]
        logp, ent, s_mass, ref_lp = per_token[:4]
        mask = batch.response_mask
        old_lp = logp.detach() if old is None else _stack_rows([old[i] for i in rows], logp.shape).to(device)
        n_tok = float(mask.sum())
        stats: dict[str, tuple[float, float]] = {"actor/entropy": (float((ent * mask).sum()), n_tok)}
        loss = torch.zeros((), device=device)
        if w < 1.0:
            is_w = None
            if a.rollout_is == "token" and old is not None:
                rollout_lp = _stack_rows([torch.tensor(r.rollout_logprobs[i]) for i in rows], logp.shape).to(device)
                is_w = grpo.rollout_is_weights(old_lp, rollout_lp, cap=a.rollout_is_threshold)
            pg_loss, pg_stats = grpo.policy_loss(
                logp, old_lp, scores.advantages[rows].to(device), mask,
                clip_ratio_low=a.clip_ratio_low, clip_ratio_high=a.clip_ratio_high, clip_ratio_c=a.clip_ratio_c,
                rollout_is_weights=is_w, ref_logprobs=ref_lp if self.reference is not None else None,
                kl_coef=a.kl_loss_coef if a.use_kl_loss else 0.0,
                loss_agg_mode=a.loss_agg_mode, num_tokens=num_tokens, num_seqs=num_seqs,
                loss_scale_factor=a.loss_scale_factor or ro.max_new_tokens,
            )
            loss = loss + (1.0 - w) * pg_loss
            for k, v in pg_stats.items():
                if not k.endswith("/max"):  # token means only; a max does not average across micro-batches
                    stats[f"actor/{k}"] = (float(v) * n_tok, n_tok)
        if w > 0.0:
            div, t_ent, t_mass = per_token[4:]
            if sd.is_clip is not None:
                div = div * sdpo.is_clip_weights(logp, old_lp, sd.is_clip)
            distilled = teacher_inputs.distilled[rows].to(device)
            loss = loss + w * sdpo.distillation_loss(div, mask, distilled, num_seqs=num_seqs)
            dmask = mask * distilled[:, None]
            stats.update({
                "sdpo/divergence": (float((div.detach() * dmask).sum()), float(dmask.sum())),
                "sdpo/teacher_entropy": (float((t_ent * mask).sum()), n_tok),
                "sdpo/teacher_epistemic_mass": (float((t_mass * mask).sum()), n_tok),
                "sdpo/student_epistemic_mass": (float((s_mass * mask).sum()), n_tok),
            })
        return loss, stats

    @torch.no_grad()
    def _old_logprobs(self, r: Rollouts) -> list[torch.Tensor]:
        """Log-probs of every sampled token under the current weights (PPO's pi_old)."""
        out: list[torch.Tensor] = [None] * len(r.response_ids)
        device = self.accelerator.device
        micro = self._micro_batches(r, list(range(len(out))), None)
        for m_idx in range(self._passes(len(micro))):
            rows = micro[m_idx] if m_idx < len(micro) else []
            prompts = [r.prompt_ids[i] for i in rows] or [[self.pad_id]]  # an idle pass (see _passes)
            responses = [r.response_ids[i] for i in rows] or [[self.pad_id]]
            batch = pack(prompts, responses, self.pad_id, packed=self.packed).to(device)
            with self._compute():
                hidden, head = response_hidden(self.model, batch, self.cfg.rollout.temperature)
                lp = batch.to_rows(score_tokens(hidden, head, batch.tokens, self.cfg.actor.logits_chunk_size)[0]).cpu()
            for j, i in enumerate(rows):
                out[i] = lp[j, : len(r.response_ids[i])]
        return out

    # ------------------------------------------------------------------ evaluation

    def run_eval(self) -> dict[str, Any]:
        """Evaluate eval.benchmarks, every process generating its share; metrics keyed eval/<bench>/..."""
        if self._eval_sets is None:
            self._eval_sets = load_eval_sets(self.cfg)
        main = self.accelerator.is_main_process
        samples_dir = self.out / "eval" / f"step-{self.step_idx}" if self.cfg.eval.save_samples and main else None
        shard = Shard(self.rank, self.world, parallel.gather_objects) if self.world > 1 else None
        with self._generating():
            out = evaluate_benchmarks(self.backend, self.tokenizer, self._eval_sets, EvalSettings.from_config(self.cfg),
                                      prompts=self.prompts, samples_dir=samples_dir, shard=shard)
        self.accelerator.wait_for_everyone()
        return out

    # ------------------------------------------------------------------ distributed helpers

    def _reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        t = t.detach().float().to(self.accelerator.device)
        return self.accelerator.reduce(t, reduction="sum") if self.world > 1 else t

    def _reduce_max(self, t: torch.Tensor) -> float:
        t = t.detach().float().to(self.accelerator.device)
        if self.world > 1:
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return float(t)

    def _reduce_means(self, stats: dict[str, tuple[Any, Any]]) -> dict[str, float]:
        """{key: (local sum, local count)} -> {key: global sum / global count}."""
        if not stats:
            return {}
        keys = sorted(stats)
        t = torch.tensor([[float(stats[k][0]), float(stats[k][1])] for k in keys], dtype=torch.float64)
        if self.world > 1:
            t = self.accelerator.reduce(t.to(self.accelerator.device), reduction="sum").cpu()
        return {k: float(t[i, 0] / t[i, 1]) if t[i, 1] > 0 else 0.0 for i, k in enumerate(keys)}


def _stack_rows(rows: list[torch.Tensor], shape) -> torch.Tensor:
    out = torch.zeros(shape, dtype=torch.float32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r.float()
    return out


def _progress(enabled: bool, total: int, initial: int, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True)


def train(cfg: Config, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """A whole run: its folder checked and locked, then Trainer(cfg).train()."""
    with run_folder(cfg.output_dir, resume=resume, overwrite=overwrite):
        return Trainer(cfg).train(resume=resume)
