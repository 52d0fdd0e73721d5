"""The training loop: rollouts -> rewards -> objective -> update.

One loop serves GRPO and SDPO; they differ only in the objective and whether a teacher is built.
Read `Trainer.step` top to bottom for one training step.

Data-parallel layout (accelerate): every process draws the same global batch of prompts; each
mini-batch of M prompts is split into W equal slices, one per process. Each sample's tokens come
from its own counter-based seed, and every loss is normalised by counts over the *global*
mini-batch, so W processes compute the same update as one process on the same global batch.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from ..algorithms import advantages as adv_lib
from ..algorithms import grpo, sdpo
from ..algorithms.aggregation import aggregate
from ..algorithms.context import build_teacher_contexts, truncate_ids
from ..algorithms.teacher import Teacher
from ..analysis.epistemic import EPISTEMIC_WORDS, count_epistemic
from ..config import Config
from ..data.problems import DataSampler, Problem
from ..data.prompts import build_messages, render_prompt
from ..data.sources import load_source
from ..evaluation.runner import EvalSettings, evaluate
from ..models import load_model_and_tokenizer, resolve_device, resolve_model_path
from ..rewards import grade_many
from ..rewards import summarize as summarize_grades
from ..rollout import SamplingParams, make_backend, sample_seed
from . import checkpoint as ckpt
from .batch import entropy, mass_on, pack, response_hidden, response_logits, token_logprobs
from .metrics import MetricsWriter, rewind_metrics


@dataclass
class Samples:
    """The local rollout batch of one training step, one row per sampled response."""

    problems: list[Problem]
    prompt_ids: list[list[int]]
    response_ids: list[list[int]]
    rollout_logprobs: list[list[float]]
    truncated: list[bool]
    group_ids: list[int]
    minibatch: list[int]
    rewards: torch.Tensor = None
    advantages: torch.Tensor = None
    texts: list[str] = field(default_factory=list)
    feedbacks: list[str] = field(default_factory=list)
    attempts: list[str | None] = field(default_factory=list)
    """The grader's extracted answer per sample (None when it has none), for `feedback_attempt`."""
    teacher_ids: list[list[int]] | None = None
    distilled: torch.Tensor | None = None


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

        model, self.tokenizer, self.model_path = load_model_and_tokenizer(cfg.model, cfg.organism, device=self.accelerator.device)
        self.pad_id = self.tokenizer.pad_token_id
        self.teacher = Teacher(cfg.sdpo.teacher.kind, model, cfg.sdpo.teacher.update_rate) if cfg.algorithm == "sdpo" else None
        self.reference = Teacher("frozen", model) if cfg.actor.use_kl_loss else None
        a = cfg.actor
        optimizer = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=a.betas, weight_decay=a.weight_decay)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.backend = make_backend(cfg.rollout.backend, self.accelerator.unwrap_model(self.model), self.tokenizer,
                                    batch_size=cfg.rollout.generation_batch_size,
                                    gpu_memory_utilization=cfg.rollout.vllm_gpu_memory_utilization)

        self.problems = load_source(cfg.data.train, coverage=cfg.data.coverage, fields=cfg.data.fields,
                                    split=cfg.data.split, organism=cfg.organism)
        if not self.problems:
            raise ValueError(f"data.train={cfg.data.train!r} yielded no problems")
        self.sampler = DataSampler(len(self.problems), seed=cfg.seed, shuffle=cfg.data.shuffle)
        self.mini = a.ppo_mini_batch_size or cfg.data.train_batch_size
        if self.mini % self.world:
            raise ValueError(f"actor.ppo_mini_batch_size ({self.mini}) must be divisible by the number of processes ({self.world})")
        self._prompt_cache: dict[str, list[int]] = {}
        self.epistemic_ids = _epistemic_token_ids(self.tokenizer)
        self.step_idx = 0
        self.metrics = MetricsWriter(self.out, tensorboard=cfg.logging.tensorboard, wandb=cfg.logging.wandb,
                                     wandb_project=cfg.logging.wandb_project, run_name=cfg.logging.run_name,
                                     config=cfg.to_dict(), enabled=self.accelerator.is_main_process)

    # ------------------------------------------------------------------ prompts

    def prompt_text(self, problem: Problem) -> str:
        """The user message: the problem inside the prompt template."""
        return build_messages(problem.prompt, self.cfg.data.prompt_template, self.cfg.data.system_prompt)[-1]["content"]

    def _render(self, user_text: str) -> list[int]:
        messages = build_messages(user_text, "plain", self.cfg.data.system_prompt)
        text = render_prompt(self.tokenizer, messages, enable_thinking=self.cfg.data.enable_thinking)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def prompt_ids(self, problem: Problem) -> list[int]:
        if problem.id not in self._prompt_cache:
            ids = self._render(self.prompt_text(problem))
            self._prompt_cache[problem.id] = ids[-self.cfg.data.max_prompt_length :]
        return self._prompt_cache[problem.id]

    # ------------------------------------------------------------------ lifecycle

    def train(self, resume: bool = False, on_step=None) -> dict[str, Any]:
        """Run to cfg.steps; `on_step(step)` is called after each step (progress reporting)."""
        cfg = self.cfg
        if self.accelerator.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            cfg.save(self.out / "config.yaml")
        if resume:
            self._resume()
        elif self.accelerator.is_main_process:
            rewind_metrics(self.out / "metrics.jsonl", -1)  # a fresh start: earlier lines move aside
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
            if self.step_idx == cfg.steps or (cfg.checkpoint.save_every and self.step_idx % cfg.checkpoint.save_every == 0):
                self.save_checkpoint()
            if on_step is not None:
                on_step(self.step_idx)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(reward=f"{last.get('reward/mean', 0):.3f}", len=f"{last.get('response_length/mean', 0):.0f}")
        if bar is not None:
            bar.close()
        if cfg.checkpoint.save_final_model and self.accelerator.is_main_process:
            self.accelerator.unwrap_model(self.model).save_pretrained(self.out / "final", safe_serialization=True)
            self.tokenizer.save_pretrained(self.out / "final")
        self.accelerator.wait_for_everyone()
        self.metrics.close()
        return last

    def _resume(self) -> None:
        path = ckpt.latest_checkpoint(self.out / "checkpoints")
        if path is None:
            if self.accelerator.is_main_process:
                rewind_metrics(self.out / "metrics.jsonl", -1)
            return
        state, teacher_state = ckpt.load_checkpoint(path, model=self.model, optimizer=self.optimizer)
        self.step_idx = state["step"]
        self.sampler.load_state_dict(state["sampler"])
        if self.teacher is not None:
            self.teacher.load_state_dict(teacher_state)
        if self.accelerator.is_main_process:
            rewind_metrics(self.out / "metrics.jsonl", self.step_idx)

    def save_checkpoint(self) -> None:
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            ckpt.save_checkpoint(
                self.out / "checkpoints", self.step_idx,
                model=self.accelerator.unwrap_model(self.model), tokenizer=self.tokenizer, optimizer=self.optimizer,
                state={"sampler": self.sampler.state_dict(), "lr": self.lr_at(self.step_idx)},
                teacher_state=self.teacher.state_dict() if self.teacher else None,
                keep_last=self.cfg.checkpoint.keep_last,
            )
        self.accelerator.wait_for_everyone()

    def lr_at(self, step: int) -> float:
        """Linear warmup over actor.warmup_steps, then constant / cosine / linear decay to 0."""
        a = self.cfg.actor
        if a.warmup_steps and step < a.warmup_steps:
            return a.lr * (step + 1) / a.warmup_steps
        if a.lr_schedule == "constant":
            return a.lr
        progress = (step - a.warmup_steps) / max(1, self.cfg.steps - a.warmup_steps)
        if a.lr_schedule == "cosine":
            return a.lr * 0.5 * (1 + math.cos(math.pi * progress))
        return a.lr * (1 - progress)

    # ------------------------------------------------------------------ one step

    def step(self) -> dict[str, Any]:
        cfg = self.cfg
        batch = self.sampler.next(cfg.data.train_batch_size)
        t0 = time.perf_counter()
        samples = self.rollout([self.problems[i] for i in batch])
        t_gen = time.perf_counter() - t0
        metrics = self.score(samples)
        t_reward = time.perf_counter() - t0 - t_gen
        if cfg.algorithm == "sdpo":
            metrics.update(self.build_teacher_inputs(samples))
        metrics.update(self.update(samples))
        self.backend.update_weights(self.accelerator.unwrap_model(self.model))
        if self.teacher is not None:
            self.teacher.step()
        metrics["time/generate"] = t_gen
        metrics["time/reward"] = t_reward
        metrics["time/update"] = time.perf_counter() - t0 - t_gen - t_reward
        return metrics

    def rollout(self, problems: list[Problem]) -> Samples:
        """Generate rollout.n responses for this process's slice of every mini-batch."""
        cfg, n = self.cfg, self.cfg.rollout.n
        per_rank = self.mini // self.world
        local: list[tuple[int, Problem, int]] = []
        for j, start in enumerate(range(0, len(problems), self.mini)):
            lo = start + self.rank * per_rank
            local += [(g, problems[g], j) for g in range(lo, lo + per_rank)]
        prompts, seeds, owners = [], [], []
        for g, p, j in local:
            ids = self.prompt_ids(p)
            for k in range(n):
                prompts.append(ids)
                seeds.append(sample_seed(cfg.seed, self.step_idx, g, k))
                owners.append((g, p, j))
        r = cfg.rollout
        rollouts = self.backend.generate(prompts, seeds, SamplingParams(r.temperature, r.top_p, r.top_k, r.max_new_tokens))
        return Samples(
            problems=[o[1] for o in owners],
            prompt_ids=prompts,
            response_ids=[x.response_ids for x in rollouts],
            rollout_logprobs=[x.logprobs for x in rollouts],
            truncated=[x.truncated for x in rollouts],
            group_ids=[o[0] for o in owners],
            minibatch=[o[2] for o in owners],
        )

    def score(self, s: Samples) -> dict[str, Any]:
        cfg = self.cfg
        s.texts = [self.tokenizer.decode(ids, skip_special_tokens=True) for ids in s.response_ids]
        results = grade_many(s.texts, [p.answer for p in s.problems], cfg.reward.grader, truncated=s.truncated,
                             reveal_answer=cfg.reward.reveal_answer_in_feedback, timeout=cfg.reward.timeout)
        s.feedbacks = [r.feedback for r in results]
        s.attempts = [r.pred for r in results]
        s.rewards = torch.tensor([r.reward for r in results], dtype=torch.float32)
        s.advantages = adv_lib.group_advantages(s.rewards, cfg.rollout.n, norm_by_std=cfg.advantage.norm_adv_by_std_in_grpo,
                                                epsilon=cfg.advantage.epsilon)
        lengths = torch.tensor([len(x) for x in s.response_ids], dtype=torch.float32)
        groups = s.rewards.view(-1, cfg.rollout.n)
        epi = torch.tensor([sum(count_epistemic(t, mode="paper").values()) for t in s.texts], dtype=torch.float32)
        stats = {
            "reward": (s.rewards.sum(), len(s.rewards)),
            "reward_sq": ((s.rewards ** 2).sum(), len(s.rewards)),
            "zero_std_groups": (((groups.max(1).values - groups.min(1).values) == 0).float().sum(), groups.shape[0]),
            "response_length/mean": (lengths.sum(), len(lengths)),
            "response_length/clip_ratio": (torch.tensor(s.truncated, dtype=torch.float32).sum(), len(lengths)),
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
        return out

    def build_teacher_inputs(self, s: Samples) -> dict[str, Any]:
        """Teacher prompt per sample (context level `teacher_context`) and the distillation mask."""
        cfg, sd = self.cfg, self.cfg.sdpo
        contexts = build_teacher_contexts(
            cfg.teacher_context,
            prompts=[self.prompt_text(p) for p in s.problems], responses=s.texts, rewards=s.rewards.tolist(),
            group_ids=s.group_ids, answers=[p.answer for p in s.problems], solutions=[p.solution for p in s.problems],
            feedbacks=s.feedbacks, success_threshold=sd.success_reward_threshold,
            exclude_self=sd.dont_reprompt_on_self_success, templates=sd.templates, attempts=s.attempts,
        )
        s.teacher_ids, truncated = [], []
        for c in contexts:
            ids, cut = truncate_ids(self._render(c.text), sd.max_reprompt_len, sd.reprompt_truncation)
            s.teacher_ids.append(ids)
            truncated.append(cut)
        s.distilled = torch.tensor([c.distilled for c in contexts], dtype=torch.float32)
        return self._reduce_means({
            "sdpo/distilled_fraction": (s.distilled.sum(), len(contexts)),
            "sdpo/teacher_prompt_truncated": (torch.tensor(truncated, dtype=torch.float32).sum(), len(contexts)),
            "sdpo/teacher_prompt_length": (torch.tensor([len(t) for t in s.teacher_ids], dtype=torch.float32).sum(), len(contexts)),
        })

    # ------------------------------------------------------------------ update

    def update(self, s: Samples) -> dict[str, Any]:
        cfg, a = self.cfg, self.cfg.actor
        rows_by_mb: dict[int, list[int]] = {}
        for i, j in enumerate(s.minibatch):
            rows_by_mb.setdefault(j, []).append(i)
        on_policy = len(rows_by_mb) == 1 and a.ppo_epochs == 1 and cfg.rollout.backend == "hf"
        old = None if on_policy else self._logprobs_no_grad(s)
        lr = self.lr_at(self.step_idx)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        acc: dict[str, list[float]] = {}
        grad_norms = []
        for _ in range(a.ppo_epochs):
            for j in sorted(rows_by_mb):
                rows = rows_by_mb[j]
                grad_norms.append(self._minibatch_update(s, rows, old, acc))
        out = self._reduce_means({k: (float(np.sum(v[0::2])), float(np.sum(v[1::2]))) for k, v in acc.items()})
        out["actor/grad_norm"] = float(np.mean(grad_norms))
        out["actor/lr"] = lr
        return out

    def _minibatch_update(self, s: Samples, rows: list[int], old: list[torch.Tensor] | None, acc) -> float:
        cfg, a = self.cfg, self.cfg.actor
        device = self.accelerator.device
        lengths = torch.tensor([len(s.response_ids[i]) for i in rows], dtype=torch.float32)
        num_tokens = self._reduce_sum(lengths.sum()).clamp_min(1.0)
        num_seqs = self._reduce_sum(torch.tensor(float(len(rows))))
        scale = self.world  # DDP averages gradients over processes; losses here are global sums
        self.optimizer.zero_grad(set_to_none=True)
        micro = [rows[k : k + a.micro_batch_size] for k in range(0, len(rows), a.micro_batch_size)]
        total_loss = 0.0
        for m_idx, mrows in enumerate(micro):
            sync = m_idx == len(micro) - 1
            ctx = self.accelerator.no_sync(self.model) if not sync and self.world > 1 else _nullcontext()
            with ctx:
                loss, stats = self._micro_loss(s, mrows, old, num_tokens.to(device), num_seqs.to(device))
                self.accelerator.backward(loss * scale)
            total_loss += float(loss.detach())
            for k, (total, count) in stats.items():
                acc.setdefault(k, []).extend([float(total), float(count)])
        # the mini-batch loss is the sum over micro-batches and processes; count each update once
        acc.setdefault("actor/loss", []).extend([total_loss, 1.0 / self.world])
        grad_norm = self.accelerator.clip_grad_norm_(self.model.parameters(), a.grad_clip)
        self.optimizer.step()
        return float(grad_norm)

    def _micro_loss(self, s: Samples, rows, old, num_tokens, num_seqs):
        cfg, a, r = self.cfg, self.cfg.actor, self.cfg.rollout
        device = self.accelerator.device
        batch = pack([s.prompt_ids[i] for i in rows], [s.response_ids[i] for i in rows], self.pad_id).to(device)
        mask = batch.response_mask
        logits = response_logits(self.model, batch, r.temperature)
        logp = token_logprobs(logits, batch.response_ids)
        old_lp = logp.detach() if old is None else _stack_rows([old[i] for i in rows], logp.shape).to(device)
        stats: dict[str, tuple[float, float]] = {}
        n_tok = float(mask.sum())
        with torch.no_grad():
            ent = entropy(logits)
            stats["actor/entropy"] = (float((ent * mask).sum()), n_tok)
        loss = torch.zeros((), device=device)
        w = cfg.sdpo.distillation_weight if cfg.algorithm == "sdpo" else 0.0
        if w < 1.0:
            is_w = None
            if a.rollout_is == "token" and old is not None:
                rollout_lp = _stack_rows([torch.tensor(s.rollout_logprobs[i]) for i in rows], logp.shape).to(device)
                is_w = grpo.rollout_is_weights(old_lp, rollout_lp, cap=a.rollout_is_threshold)
            ref_lp = None
            if self.reference is not None:
                with torch.no_grad():
                    ref_lp = token_logprobs(response_logits(self.reference.module(), batch, r.temperature), batch.response_ids)
            pg_loss, pg_stats = grpo.policy_loss(
                logp, old_lp, s.advantages[rows].to(device), mask,
                clip_ratio_low=a.clip_ratio_low, clip_ratio_high=a.clip_ratio_high, clip_ratio_c=a.clip_ratio_c,
                rollout_is_weights=is_w, ref_logprobs=ref_lp, kl_coef=a.kl_loss_coef if a.use_kl_loss else 0.0,
                loss_agg_mode=a.loss_agg_mode, num_tokens=num_tokens, num_seqs=num_seqs,
                loss_scale_factor=a.loss_scale_factor or r.max_new_tokens,
            )
            loss = loss + (1.0 - w) * pg_loss
            for k, v in pg_stats.items():
                if not k.endswith("/max"):  # token means only; a max does not average across micro-batches
                    stats[f"actor/{k}"] = (float(v) * n_tok, n_tok)
        if w > 0.0:
            sd_loss, sd_stats = self._distillation_loss(s, rows, logits, logp, old_lp, num_seqs)
            loss = loss + w * sd_loss
            stats.update(sd_stats)
        return loss, stats

    def _distillation_loss(self, s: Samples, rows, logits, logp, old_lp, num_seqs):
        cfg, sd = self.cfg, self.cfg.sdpo
        device = logits.device
        temp = cfg.rollout.temperature
        tbatch = pack([s.teacher_ids[i] for i in rows], [s.response_ids[i] for i in rows], self.pad_id).to(device)
        mask = tbatch.response_mask
        distilled = s.distilled[rows].to(device)
        teacher = self.teacher.module()
        with torch.no_grad():
            hidden, head = response_hidden(teacher, tbatch)
            if sd.distillation_mode == "full":
                t_logits = head(hidden).float() / temp
                t_ent, t_mass = entropy(t_logits), mass_on(t_logits, self.epistemic_ids)
                gathered = None
            else:
                ids = sdpo.student_topk(logits, sd.distillation_topk) if sd.distillation_mode == "topk" else tbatch.response_ids.unsqueeze(-1)
                gathered, t_ent, t_mass = sdpo.teacher_topk_logprobs_chunked(
                    hidden, head, ids, temp, sd.chunk_size, extra_ids=self.epistemic_ids)
        if sd.distillation_mode == "full":
            per_token = sdpo.full_vocab_loss(logits, t_logits, sd.alpha)
        elif sd.distillation_mode == "topk":
            per_token = sdpo.topk_loss(logits, gathered, ids, sd.alpha, sd.distillation_add_tail)
        else:
            per_token = sdpo.sampled_token_loss(logp, gathered.squeeze(-1))
        if sd.is_clip is not None:
            per_token = per_token * sdpo.is_clip_weights(logp, old_lp, sd.is_clip)
        loss = sdpo.distillation_loss(per_token, mask, distilled, num_seqs=num_seqs)
        dmask = mask * distilled[:, None]
        n_d, n_all = float(dmask.sum()), float(mask.sum())
        with torch.no_grad():
            s_mass = mass_on(logits, self.epistemic_ids)
        stats = {
            "sdpo/divergence": (float((per_token.detach() * dmask).sum()), n_d),
            "sdpo/teacher_entropy": (float((t_ent * mask).sum()), n_all),
            "sdpo/teacher_epistemic_mass": (float((t_mass * mask).sum()), n_all),
            "sdpo/student_epistemic_mass": (float((s_mass * mask).sum()), n_all),
        }
        return loss, stats

    @torch.no_grad()
    def _logprobs_no_grad(self, s: Samples) -> list[torch.Tensor]:
        """Log-probs of every sampled token under the current weights (PPO's π_old)."""
        out: list[torch.Tensor] = [None] * len(s.response_ids)
        mbs = self.cfg.actor.micro_batch_size
        for k in range(0, len(out), mbs):
            rows = list(range(k, min(len(out), k + mbs)))
            batch = pack([s.prompt_ids[i] for i in rows], [s.response_ids[i] for i in rows], self.pad_id).to(self.accelerator.device)
            lp = token_logprobs(response_logits(self.model, batch, self.cfg.rollout.temperature), batch.response_ids).cpu()
            for j, i in enumerate(rows):
                out[i] = lp[j, : len(s.response_ids[i])]
        return out

    # ------------------------------------------------------------------ evaluation

    def run_eval(self) -> dict[str, Any]:
        """Evaluate the benchmarks in eval.benchmarks on the main process; metrics keyed eval/<bench>/..."""
        cfg, e = self.cfg, self.cfg.eval
        out: dict[str, Any] = {}
        if self.accelerator.is_main_process:
            settings = EvalSettings(n=e.n, temperature=e.temperature, top_p=e.top_p, top_k=e.top_k,
                                    max_new_tokens=e.max_new_tokens or cfg.rollout.max_new_tokens,
                                    grader=cfg.reward.grader, timeout=cfg.reward.timeout, seed=cfg.seed)
            for name in e.benchmarks:
                problems = self._eval_problems(name)
                label = benchmark_label(name)
                summary, samples = evaluate(self.backend, self.tokenizer, problems, settings, name=name,
                                            prompt_ids_fn=self.prompt_ids, prompt_text_fn=self.prompt_text)
                for key in ("accuracy", "pass@1", f"pass@{e.n}", "response_length", "truncation_rate", "epistemic"):
                    if key in summary:
                        out[f"eval/{label}/{key}"] = summary[key]
                if e.save_samples:
                    _write_jsonl(self.out / "eval" / f"step-{self.step_idx}" / f"{label}.jsonl", samples)
        self.accelerator.wait_for_everyone()
        return out

    def _eval_problems(self, name: str) -> list[Problem]:
        if not hasattr(self, "_eval_cache"):
            self._eval_cache: dict[str, list[Problem]] = {}
        if name not in self._eval_cache:
            cfg = self.cfg
            self._eval_cache[name] = load_source(name, coverage=cfg.data.coverage if name.startswith("organism:") else None,
                                                 organism=cfg.organism, limit=cfg.eval.limit)
        return self._eval_cache[name]

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


def benchmark_label(name: str) -> str:
    """A short, file-name-safe label for a benchmark spec (a file path becomes its stem)."""
    if "/" in name or name.endswith((".jsonl", ".parquet", ".json")):
        name = Path(name).stem
    return "".join(c if c.isalnum() or c in "-_.:" else "_" for c in name)


def _stack_rows(rows: list[torch.Tensor], shape) -> torch.Tensor:
    out = torch.zeros(shape, dtype=torch.float32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r.float()
    return out


def _epistemic_token_ids(tokenizer) -> torch.Tensor:
    """Token ids that spell an epistemic word on their own (with or without a leading space or
    capital), for the per-position probability mass on epistemic words."""
    ids: set[int] = set()
    for w in EPISTEMIC_WORDS:
        for variant in (w, w.capitalize(), " " + w, " " + w.capitalize()):
            enc = tokenizer(variant, add_special_tokens=False)["input_ids"]
            if len(enc) == 1 and enc[0] != tokenizer.unk_token_id:
                ids.add(enc[0])
    return torch.tensor(sorted(ids), dtype=torch.long)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(path)


def _progress(enabled: bool, total: int, initial: int, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True)


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def train(cfg: Config, resume: bool = False) -> dict[str, Any]:
    return Trainer(cfg).train(resume=resume)
