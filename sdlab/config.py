"""Typed run configuration: dataclasses, YAML loading and `key.sub=value` overrides.

Why dataclasses and not Hydra: the schema is the documentation. Every key has a type and a
default, unknown keys and out-of-range values are rejected with the dotted key in the message,
and a run's full resolved config is written next to its metrics. Names follow verl (which the
study used) where verl has one: `rollout.n`, `actor.clip_ratio_low/high`, `actor.loss_agg_mode`,
`advantage.norm_adv_by_std_in_grpo`, `actor.ppo_mini_batch_size`; docs/config.md maps them to TRL.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# ---------------------------------------------------------------------------- name lists
# The one home of every set of choices; the modules that implement them import these.

CONTEXT_LEVELS = ("none", "feedback", "demo_answer", "demo", "answer", "solution", "feedback_attempt")
"""Teacher context levels (feedback_attempt: "Your answer X is incorrect."). Append new levels at
the end: guided samples of `sdlab info` / `sdlab sft` are seeded by a level's index here."""
ALGORITHMS = ("grpo", "sdpo")
LOSS_AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")
SFT_LOSS_MODES = ("token-mean", "seq-mean-token-mean")
DISTILLATION_MODES = ("topk", "full", "sampled_token")
TEACHER_KINDS = ("frozen", "ema", "live")
GRADERS = ("strict", "math_verify", "paper")
ROLLOUT_BACKENDS = ("hf", "vllm")
HF_ENGINES = ("loop", "generate")
"""rollout.hf_engine: sdlab's decoding loop (finished rows leave the batch) or transformers.generate."""
PARALLEL_STRATEGIES = ("none", "ddp", "fsdp")
LR_SCHEDULES = ("constant", "cosine", "linear")
DTYPES = ("auto", "float32", "bfloat16", "float16")
TRUNCATION_SIDES = ("left", "right")
"""Which end of a too-long prompt is kept: left keeps the end (TRL), right keeps the start (lasgroup)."""
EPISTEMIC_MODES = ("paper", "word")
"""Epistemic-word counting: paper = lower-cased substrings (the study's rule), word = whole words."""


from .errors import ConfigError  # noqa: E402  (defined with the other user errors)


@dataclass
class ModelConfig:
    name_or_path: str = "organism"
    """Hub id, local path, or `organism` for the model organism's pretrained base."""
    dtype: str = "auto"
    """Compute dtype: auto | float32 | bfloat16 | float16. auto = bfloat16 on GPUs that support it,
    else float32. Trainable weights stay in model.master_dtype (autocast computes in this dtype)."""
    master_dtype: str = "float32"
    """Dtype of the trainable weights and the optimizer states: float32 (default; mixed precision
    when dtype is lower) or bfloat16 / float16 for pure low-precision training (warned: small
    updates round away). Frozen teachers and references are kept in the compute dtype."""
    device: str = "auto"
    """auto | cpu | cuda | cuda:N | mps. Under `accelerate launch` the accelerator's device wins."""
    trust_remote_code: bool = False
    attn_implementation: str | None = None
    gradient_checkpointing: bool = False
    """Recompute each decoder layer in the backward (non-reentrant) instead of keeping its activations."""
    cpu_threads: int | None = None
    """torch CPU threads (None = torch's default, one per core). Tiny models run fastest with 1,
    and OpenMP threads that spin on a busy machine can slow them down tenfold."""


@dataclass
class DataConfig:
    train: str = "organism:rl"
    """Benchmark name (dapo_math, gsm8k, ...), a .jsonl/.parquet path, a hub dataset id, or organism:rl."""
    split: str = "train"
    fields: dict[str, str] = field(default_factory=dict)
    """Field mapping for custom files: {id, prompt, answer, solution, source} -> column (dotted ok)."""
    coverage: int | None = None
    """Task coverage |D|: keep only this many problems (a fixed, seeded subset)."""
    prompt_template: str = "boxed"
    """boxed | plain | a custom string containing {problem}."""
    system_prompt: str | None = None
    enable_thinking: bool | None = None
    """Passed to the chat template (Qwen3); None leaves the template's default."""
    train_batch_size: int = 8
    """Prompts per training step (verl data.train_batch_size)."""
    max_prompt_length: int = 2048
    shuffle: bool = True


@dataclass
class RolloutConfig:
    backend: str = "hf"
    """hf (the trainer's own model, in-process) | vllm."""
    hf_engine: str = "loop"
    """Decoding engine of backend hf: loop (sdlab's loop: finished rows leave the batch) | generate
    (transformers.generate). Both return the same samples for the same seeds; loop is faster."""
    n: int = 8
    """Samples per prompt (the GRPO group size)."""
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256
    """Response budget (verl data.max_response_length)."""
    generation_batch_size: int = 256
    """Sequences (prompt copies) per generate call; bounds rollout memory. Results do not depend on it."""
    vllm_gpu_memory_utilization: float = 0.3
    """Share of GPU memory the colocated vLLM engine may take (backend vllm); the rest is the trainer's."""


@dataclass
class RewardConfig:
    grader: str = "math_verify"
    """strict | math_verify | paper."""
    timeout: float = 5.0
    reveal_answer_in_feedback: bool = False


@dataclass
class AdvantageConfig:
    norm_adv_by_std_in_grpo: bool = True
    epsilon: float = 1e-6


@dataclass
class ActorConfig:
    lr: float = 1e-6
    warmup_steps: int = 0
    lr_schedule: str = "constant"
    """constant | cosine | linear (after warmup)."""
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    ppo_mini_batch_size: int | None = None
    """Prompts per optimizer step; None = the whole rollout batch (on-policy, one update)."""
    ppo_epochs: int = 1
    micro_batch_size: int = 8
    """Sequences per forward/backward when max_tokens_per_micro_batch is unset; gradients accumulate
    to the mini-batch. Results do not depend on it."""
    max_tokens_per_micro_batch: int | None = None
    """Token budget per forward/backward (verl ppo_max_token_len_per_gpu): rows are grouped by length so a
    micro-batch holds at most this many tokens (prompt + response; the teacher's longer prompt for SDPO),
    replacing micro_batch_size. None = fixed micro_batch_size rows. Results do not depend on it."""
    pack_sequences: bool | None = None
    """Concatenate a micro-batch's rows into one sequence (position ids restart per row, no padding at
    all). None = auto: on with flash attention (varlen kernels), off otherwise (sdpa/eager would attend
    over the whole packed length with a block mask)."""
    logits_chunk_size: int = 1024
    """Positions whose logits exist at once when log-probs, entropies, top-k and divergences are
    computed from hidden states (student, teacher, reference, SFT, info); bounds the logits memory to
    chunk x vocabulary."""
    clip_ratio_low: float = 0.2
    clip_ratio_high: float = 0.28
    clip_ratio_c: float | None = None
    """Dual-clip constant (verl clip_ratio_c, e.g. 3.0); None disables."""
    loss_agg_mode: str = "token-mean"
    loss_scale_factor: int | None = None
    """Dr. GRPO normaliser; None = rollout.max_new_tokens."""
    use_kl_loss: bool = False
    kl_loss_coef: float = 0.001
    rollout_is: str | None = "token"
    """Token-level importance correction against the rollout log-probs: token | None."""
    rollout_is_threshold: float = 2.0


@dataclass
class TeacherConfig:
    kind: str = "frozen"
    """frozen (initial weights, the study's main setting) | ema | live (current weights)."""
    update_rate: float = 0.05
    """EMA rate r: teacher <- (1 - r) teacher + r student, once per training step."""


@dataclass
class SDPOConfig:
    distillation_weight: float = 1.0
    """w in loss = (1 - w) GRPO + w SD."""
    alpha: float = 0.5
    """0 = KL(teacher||student), 1 = KL(student||teacher), in between the generalized JSD."""
    distillation_mode: str = "topk"
    """topk (student top-k + tail bucket) | full (whole vocabulary) | sampled_token (requires alpha=1)."""
    distillation_topk: int = 100
    distillation_add_tail: bool = True
    is_clip: float | None = 2.0
    success_reward_threshold: float = 0.5
    dont_reprompt_on_self_success: bool = True
    max_reprompt_len: int = 10240
    reprompt_truncation: str = "left"
    """left keeps the end of the teacher prompt (TRL); right keeps its start (lasgroup)."""
    templates: dict[str, str] = field(default_factory=dict)
    """Teacher prompt template per context level; missing levels use the reference defaults."""
    teacher: TeacherConfig = field(default_factory=TeacherConfig)


@dataclass
class EvalConfig:
    benchmarks: list[str] = field(default_factory=list)
    every: int = 0
    """Evaluate every N steps (and at the end); 0 disables in-training evaluation."""
    at_start: bool = True
    """Also evaluate the initial model (logged as step 0) when eval.every > 0."""
    n: int = 1
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 0
    max_new_tokens: int | None = None
    """None = rollout.max_new_tokens."""
    limit: int | None = None
    """Problems per benchmark (first N); None = all."""
    save_samples: bool = True


@dataclass
class LoggingConfig:
    tensorboard: bool = False
    wandb: bool = False
    wandb_project: str = "sdlab"
    run_name: str | None = None
    progress: bool = True


@dataclass
class CheckpointConfig:
    save_every: int = 0
    """Save every N steps (and at the end); 0 = only at the end."""
    keep_last: int = 2
    save_final_model: bool = True


@dataclass
class ParallelConfig:
    strategy: str = "ddp"
    """How several processes share the work: none (one process) | ddp (a full replica per process;
    refused over ~1B parameters) | fsdp (FSDP2: every decoder layer and the root sharded over the
    processes, fp32 master shards, compute in model.dtype, fp32 gradient reduction). Launch with
    `torchrun --nproc_per_node=N -m sdlab.cli train ...` or `accelerate launch --config_file
    configs/accelerate/multi_gpu.yaml -m sdlab.cli train ...`; with one process ddp = none."""


@dataclass
class SFTConfig:
    """Off-policy self-distillation (`sdlab sft`): SFT on correct traces generated with a context."""

    guidance: str = "none"
    """Context the traces are generated with: none | feedback | demo_answer | demo | answer | solution."""
    epochs: int = 3
    batch_size: int = 8
    """Traces per optimizer step (micro-batches of actor.micro_batch_size sequences)."""
    max_length: int = 4096
    """Prompt + response tokens per example; longer responses are cut at the end."""
    traces_per_problem: int = 1
    """Correct traces kept per problem, first in sample order (the study: 1); 0 = all."""
    solve_range: list[int] | None = None
    """[LO, HI]: keep problems with LO..HI of the rollout.n unguided responses correct (the study: [1, 4])."""
    max_problems: int | None = None
    """Stop after this many problems with a trace (the study collects 800)."""
    loss_agg_mode: str = "token-mean"
    """token-mean (NLL per response token of the batch) | seq-mean-token-mean."""
    shuffle: bool = True


@dataclass
class Config:
    algorithm: str = "grpo"
    teacher_context: str = "answer"
    """What the self-distillation teacher sees: none | feedback | demo_answer | demo | answer | solution."""
    seed: int = 0
    steps: int = 10
    """Training steps (rollout batches); verl trainer.total_training_steps."""
    output_dir: str = "runs/default"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    advantage: AdvantageConfig = field(default_factory=AdvantageConfig)
    actor: ActorConfig = field(default_factory=ActorConfig)
    sdpo: SDPOConfig = field(default_factory=SDPOConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    organism: dict[str, Any] = field(default_factory=dict)
    """Overrides of the organism's WorldConfig when model/data use the organism."""

    def validate(self) -> "Config":
        _validate(self)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


# ---------------------------------------------------------------------------- building


def _type_hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML value to the declared type, or raise ConfigError naming the key."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return _build(tp, value, key + ".")
    if tp is Any:
        return value
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return str(value)
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {tp}")


def _build(cls, data: dict[str, Any], prefix: str = ""):
    hints = _type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]!s}; valid keys here: {', '.join(sorted(names))}"
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def _deep_set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {dotted}: {p} is not a section")
        node = nxt
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`a.b=value` -> ("a.b", YAML-parsed value). `a.b=` sets an empty string."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has no key")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"override {key}: cannot parse value {raw!r}: {e}") from None
    return key, value


def merge_overrides(data: dict[str, Any], overrides: list[str] | dict[str, Any]) -> dict[str, Any]:
    items = overrides.items() if isinstance(overrides, dict) else map(parse_override, overrides)
    for key, value in items:
        _deep_set(data, key, value)
    return data


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> {dotted key: leaf} (the inverse of `merge_overrides` on a fresh dict). An
    empty mapping stays a leaf ({})."""
    if not isinstance(tree, dict) or (not tree and prefix):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | dict[str, Any] = ()) -> Config:
    """Load a YAML file (optional), apply overrides, build and validate the Config."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file not found: {p}")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: invalid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: the top level must be a mapping")
    data = merge_overrides(data, overrides or [])
    return config_from_dict(data)


def config_from_dict(data: dict[str, Any]) -> Config:
    return _build(Config, data).validate()


# ---------------------------------------------------------------------------- validation


def _check(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{key}: {msg}")


def _one_of(value: Any, options: tuple, key: str) -> None:
    _check(value in options, key, f"{value!r} is not one of {', '.join(map(str, options))}")


def _validate(c: Config) -> None:
    _one_of(c.algorithm, ALGORITHMS, "algorithm")
    _one_of(c.teacher_context, CONTEXT_LEVELS, "teacher_context")
    _check(c.steps >= 1, "steps", "must be >= 1")
    _check(c.model.cpu_threads is None or c.model.cpu_threads >= 1, "model.cpu_threads", "must be >= 1")
    _one_of(c.model.dtype, DTYPES, "model.dtype")
    _one_of(c.model.master_dtype, DTYPES[1:], "model.master_dtype")
    _check(c.data.train_batch_size >= 1, "data.train_batch_size", "must be >= 1")
    _check(c.data.coverage is None or c.data.coverage >= 1, "data.coverage", "must be >= 1")
    _check(c.data.max_prompt_length >= 1, "data.max_prompt_length", "must be >= 1")
    r = c.rollout
    _one_of(r.backend, ROLLOUT_BACKENDS, "rollout.backend")
    _one_of(r.hf_engine, HF_ENGINES, "rollout.hf_engine")
    _check(r.n >= 1, "rollout.n", "must be >= 1")
    if r.n == 1 and (c.algorithm == "grpo" or c.sdpo.distillation_weight < 1):
        raise ConfigError("rollout.n=1: a group of one sample has a group-relative advantage of 0, so GRPO would train "
                          "with zero gradient forever; use rollout.n >= 2")
    _check(r.temperature > 0, "rollout.temperature", "must be > 0")
    _check(0 < r.top_p <= 1, "rollout.top_p", "must be in (0, 1]")
    _check(r.top_k >= 0, "rollout.top_k", "must be >= 0 (0 disables)")
    _check(r.max_new_tokens >= 1, "rollout.max_new_tokens", "must be >= 1")
    _check(r.generation_batch_size >= 1, "rollout.generation_batch_size", "must be >= 1")
    _one_of(c.reward.grader, GRADERS, "reward.grader")
    _check(c.reward.timeout > 0, "reward.timeout", "must be > 0")
    _check(c.advantage.epsilon >= 0, "advantage.epsilon", "must be >= 0")
    a = c.actor
    _check(a.lr >= 0, "actor.lr", "must be >= 0")
    _check(a.warmup_steps >= 0, "actor.warmup_steps", "must be >= 0")
    _one_of(a.lr_schedule, LR_SCHEDULES, "actor.lr_schedule")
    _check(a.grad_clip > 0, "actor.grad_clip", "must be > 0")
    _check(a.ppo_epochs >= 1, "actor.ppo_epochs", "must be >= 1")
    _check(a.micro_batch_size >= 1, "actor.micro_batch_size", "must be >= 1")
    budget = a.max_tokens_per_micro_batch
    _check(budget is None or budget >= 1, "actor.max_tokens_per_micro_batch", "must be >= 1 or null")
    _check(a.logits_chunk_size >= 1, "actor.logits_chunk_size", "must be >= 1")
    if a.ppo_mini_batch_size is not None:
        _check(a.ppo_mini_batch_size >= 1, "actor.ppo_mini_batch_size", "must be >= 1")
        _check(
            c.data.train_batch_size % a.ppo_mini_batch_size == 0,
            "actor.ppo_mini_batch_size",
            f"must divide data.train_batch_size ({c.data.train_batch_size})",
        )
    _check(0 <= a.clip_ratio_low < 1, "actor.clip_ratio_low", "must be in [0, 1)")
    _check(a.clip_ratio_high >= 0, "actor.clip_ratio_high", "must be >= 0")
    _check(a.clip_ratio_c is None or a.clip_ratio_c > 1, "actor.clip_ratio_c", "must be > 1")
    _one_of(a.loss_agg_mode, LOSS_AGG_MODES, "actor.loss_agg_mode")
    _check(a.loss_scale_factor is None or a.loss_scale_factor >= 1, "actor.loss_scale_factor", "must be >= 1")
    _check(a.kl_loss_coef >= 0, "actor.kl_loss_coef", "must be >= 0")
    _check(a.rollout_is in (None, "token"), "actor.rollout_is", "must be token or null")
    _check(a.rollout_is_threshold > 0, "actor.rollout_is_threshold", "must be > 0")
    s = c.sdpo
    _check(0 <= s.distillation_weight <= 1, "sdpo.distillation_weight", "must be in [0, 1]")
    _check(0 <= s.alpha <= 1, "sdpo.alpha", "must be in [0, 1]")
    _one_of(s.distillation_mode, DISTILLATION_MODES, "sdpo.distillation_mode")
    _check(s.distillation_topk >= 1, "sdpo.distillation_topk", "must be >= 1")
    _check(s.is_clip is None or s.is_clip > 0, "sdpo.is_clip", "must be > 0 or null")
    _check(s.max_reprompt_len >= 1, "sdpo.max_reprompt_len", "must be >= 1")
    _one_of(s.reprompt_truncation, TRUNCATION_SIDES, "sdpo.reprompt_truncation")
    _one_of(s.teacher.kind, TEACHER_KINDS, "sdpo.teacher.kind")
    _check(0 <= s.teacher.update_rate <= 1, "sdpo.teacher.update_rate", "must be in [0, 1]")
    for level in s.templates:
        _one_of(level, CONTEXT_LEVELS, f"sdpo.templates.{level}")
    if c.algorithm == "sdpo":
        if s.distillation_mode == "sampled_token" and s.alpha != 1.0:
            raise ConfigError(
                "sdpo.distillation_mode=sampled_token only supports reverse KL: it requires sdpo.alpha=1.0 "
                f"(got {s.alpha})"
            )
        if a.use_kl_loss:
            raise ConfigError(
                "actor.use_kl_loss: a KL penalty to the reference cannot be combined with algorithm=sdpo "
                "(the teacher already anchors the student; the reference implementations forbid it)"
            )
    e = c.eval
    _check(e.every >= 0, "eval.every", "must be >= 0")
    _check(e.n >= 1, "eval.n", "must be >= 1")
    _check(e.temperature >= 0, "eval.temperature", "must be >= 0 (0 = greedy)")
    _check(0 < e.top_p <= 1, "eval.top_p", "must be in (0, 1]")
    _check(e.limit is None or e.limit >= 1, "eval.limit", "must be >= 1")
    f = c.sft
    _one_of(f.guidance, CONTEXT_LEVELS, "sft.guidance")
    _check(f.epochs >= 1, "sft.epochs", "must be >= 1")
    _check(f.batch_size >= 1, "sft.batch_size", "must be >= 1")
    _check(f.max_length >= 2, "sft.max_length", "must be >= 2")
    _check(f.traces_per_problem >= 0, "sft.traces_per_problem", "must be >= 0 (0 = all)")
    _check(f.max_problems is None or f.max_problems >= 1, "sft.max_problems", "must be >= 1")
    _one_of(f.loss_agg_mode, SFT_LOSS_MODES, "sft.loss_agg_mode")
    if f.solve_range is not None:
        _check(len(f.solve_range) == 2 and 0 <= f.solve_range[0] <= f.solve_range[1], "sft.solve_range",
               f"expected [LO, HI] with 0 <= LO <= HI, got {f.solve_range!r}")
    _one_of(c.parallel.strategy, PARALLEL_STRATEGIES, "parallel.strategy")
    _check(c.checkpoint.save_every >= 0, "checkpoint.save_every", "must be >= 0")
    _check(c.checkpoint.keep_last >= 1, "checkpoint.keep_last", "must be >= 1")
