"""Load and save causal LMs the Hugging Face way: hub id or local path in, `save_pretrained` out.

The organism (`name_or_path: organism`) resolves to its cached pretrained base, so the same
engine trains a 0.6M-parameter world model and Qwen3-8B.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from .config import ModelConfig


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


def load_tokenizer(path: str, *, trust_remote_code: bool = False):
    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        if tok.eos_token is None:
            raise ValueError(f"tokenizer of {path} has neither a pad nor an eos token")
        tok.pad_token = tok.eos_token
    return tok


def load_model(path: str, cfg: ModelConfig, device: torch.device | None = None):
    device = device or resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    kwargs = {"dtype": dtype, "trust_remote_code": cfg.trust_remote_code}
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    return model.to(device)


def load_model_and_tokenizer(cfg: ModelConfig, organism_overrides: dict | None = None, device=None):
    path = resolve_model_path(cfg.name_or_path, organism_overrides)
    tokenizer = load_tokenizer(path, trust_remote_code=cfg.trust_remote_code)
    model = load_model(path, cfg, device)
    return model, tokenizer, path


def save_model(model, tokenizer, out_dir: str | Path) -> Path:
    """`save_pretrained` with safetensors, plus the tokenizer, so the folder loads by path anywhere."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
