"""Load and save causal LMs the Hugging Face way: hub id or local path in, `save_pretrained` out.

The organism (`name_or_path: organism`) resolves to its cached pretrained base, so the same
engine trains a 0.6M-parameter world model and Qwen3-8B.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from .config import ConfigError, ModelConfig

log = logging.getLogger(__name__)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def resolve_model_path(name_or_path: str, organism_overrides: dict | None = None) -> str:
    """Map the `organism` alias to its pretrained checkpoint (building it once, cached)."""
    if name_or_path == "organism" or name_or_path.startswith("organism:"):
        from .organism.registry import organism_base_path

        return str(organism_base_path(organism_overrides or {}))
    return name_or_path


def check_model_path(name: str) -> None:
    """Fail in one line for a local model path that is not a saved model (the hub client would
    report it as four chained tracebacks, or as a misleading tokenizer error)."""
    p = Path(name).expanduser()
    if p.is_dir():
        if not (p / "config.json").exists():
            raise ConfigError(f"model {name}: the folder has no config.json, so it is not a saved Hugging Face model "
                              "(a run's model is in <run>/final or <run>/checkpoints/step-N/model)")
        return
    if p.exists():
        raise ConfigError(f"model {name}: is a file; give a model folder or a hub id")
    if name.startswith(("/", "./", "../", "~")) or name.count("/") > 1:
        raise ConfigError(f"model {name}: no such folder (and not a hub id, which looks like org/name)")


def _loading(name: str, what: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except OSError as e:  # the hub client's "not found / offline / gated" errors
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"model {name}: cannot load its {what}: {first}") from None


def load_tokenizer(path: str, *, trust_remote_code: bool = False):
    check_model_path(path)
    tok = _loading(path, "tokenizer", AutoTokenizer.from_pretrained, path, trust_remote_code=trust_remote_code)
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        if tok.eos_token is None:
            raise ValueError(f"tokenizer of {path} has neither a pad nor an eos token")
        tok.pad_token = tok.eos_token
    return tok


@dataclass(frozen=True)
class Precision:
    """How a model is stored and computed.

    compute: the dtype matrix multiplies run in (`model.dtype`); master: the dtype of trainable
    weights and of the optimizer's states (`model.master_dtype`). The default, bf16 compute with
    fp32 masters, keeps small updates: at lr 1e-6 an AdamW step changes a weight by ~1e-6, which
    rounds away in bf16 (8 bits of mantissa) for almost every weight, but not in fp32.
    """

    compute: torch.dtype
    master: torch.dtype

    @property
    def mixed(self) -> bool:
        return self.compute != self.master

    def autocast(self, device: torch.device):
        """The context in which the policy computes (autocast when compute and master differ)."""
        if not self.mixed:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.compute)


def resolve_precision(cfg: ModelConfig, device: torch.device) -> Precision:
    compute = resolve_dtype(cfg.dtype, device)
    master = resolve_dtype(cfg.master_dtype, device) if cfg.master_dtype != "float32" else torch.float32
    if master != torch.float32:
        log.warning("model.master_dtype=%s: weights and optimizer states are kept in %s (pure low-precision "
                    "training); small updates round away — use the default float32 masters unless memory forces it",
                    cfg.master_dtype, master)
    return Precision(compute=compute, master=master)


def load_model(path: str, cfg: ModelConfig, device: torch.device | None = None, *, trainable: bool = True,
               dtype: torch.dtype | None = None):
    """The model on `device`: trainable weights in the master dtype (`resolve_precision`), a model
    that is only evaluated in the compute dtype (or `dtype` when given). With
    `model.gradient_checkpointing` every decoder layer is checkpointed (non-reentrant: correct with
    frozen inputs, no-grad teachers and DDP/FSDP); transformers checkpoints only in training mode,
    which the trainer keeps the policy in."""
    device = device or resolve_device(cfg.device)
    precision = resolve_precision(cfg, device)
    kwargs = {"dtype": dtype or (precision.master if trainable else precision.compute),
              "trust_remote_code": cfg.trust_remote_code}
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    check_model_path(path)
    model = _loading(path, "weights", AutoModelForCausalLM.from_pretrained, path, **kwargs)
    if trainable and cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    model = model.to(device)
    return model.train() if trainable else model.eval()


def load_model_and_tokenizer(cfg: ModelConfig, organism_overrides: dict | None = None, device=None, *,
                             trainable: bool = True):
    path = resolve_model_path(cfg.name_or_path, organism_overrides)
    tokenizer = load_tokenizer(path, trust_remote_code=cfg.trust_remote_code)
    model = load_model(path, cfg, device, trainable=trainable)
    return model, tokenizer, path


def save_model(model, tokenizer, out_dir: str | Path) -> Path:
    """`save_pretrained` with safetensors, plus the tokenizer, so the folder loads by path anywhere."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
