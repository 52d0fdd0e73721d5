"""Atomic, resumable checkpoints that never unpickle untrusted objects.

Layout of `<output_dir>/checkpoints/step-<N>/`:
  model/                 save_pretrained (safetensors) + tokenizer: loadable by path on its own
  optimizer.pt           optimizer state (torch.save; loaded with weights_only=True)
  teacher.safetensors    EMA teacher weights (only for sdpo.teacher.kind=ema)
  rng.safetensors        torch CPU (+CUDA) RNG states
  trainer_state.json     step, data-sampler position, python/numpy RNG, LR
  COMPLETE               written last
A checkpoint is written into a temporary folder and renamed into place, so a crash leaves either
nothing or a whole checkpoint; loaders only consider folders with COMPLETE.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

_STEP_DIR = re.compile(r"^step-(\d+)$")


def _fsync_tree(path: Path) -> None:
    for p in path.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    py = random.getstate()
    np_state = np.random.get_state()
    plain = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    return tensors, plain


def set_rng_state(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("torch_cuda_"))]
        if states:
            torch.cuda.set_rng_state_all(states)
    v, internal, gauss = plain["python"]
    random.setstate((v, tuple(internal), gauss))
    n = plain["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))


def save_checkpoint(
    root: Path,
    step: int,
    *,
    model,
    tokenizer,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    teacher_state: dict[str, torch.Tensor] | None = None,
    keep_last: int = 2,
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step}"
    tmp = root / f".tmp-step-{step}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    model.save_pretrained(tmp / "model", safe_serialization=True)
    tokenizer.save_pretrained(tmp / "model")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    if teacher_state is not None:
        save_file({k: v.detach().contiguous().cpu() for k, v in teacher_state.items()}, str(tmp / "teacher.safetensors"))
    tensors, plain = rng_state()
    save_file(tensors, str(tmp / "rng.safetensors"))
    (tmp / "trainer_state.json").write_text(json.dumps({**state, "rng": plain, "step": step}))
    _fsync_tree(tmp)
    (tmp / "COMPLETE").write_text("ok\n")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    prune(root, keep_last)
    return final


def complete_checkpoints(root: Path) -> list[tuple[int, Path]]:
    if not root.exists():
        return []
    found = []
    for p in root.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and (p / "COMPLETE").exists():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(root: Path) -> Path | None:
    found = complete_checkpoints(root)
    return found[-1][1] if found else None


def prune(root: Path, keep_last: int) -> None:
    for _, p in complete_checkpoints(root)[:-keep_last]:
        shutil.rmtree(p, ignore_errors=True)
    for p in root.glob(".tmp-step-*"):
        if not p.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(p, ignore_errors=True)


def load_checkpoint(path: Path, *, model, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    """Restore model weights, optimizer and RNG in place; return (trainer state, teacher weights)."""
    weights: dict[str, torch.Tensor] = {}
    for f in sorted((path / "model").glob("*.safetensors")):
        weights.update(load_file(str(f)))
    inner = model.module if hasattr(model, "module") else model
    missing, unexpected = inner.load_state_dict(weights, strict=False)
    # tied embeddings are saved once; anything else missing is a real error
    missing = [k for k in missing if not _is_tied(inner, k)]
    if missing or unexpected:
        raise RuntimeError(f"{path}: checkpoint does not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True, map_location="cpu"))
    state = json.loads((path / "trainer_state.json").read_text())
    set_rng_state(load_file(str(path / "rng.safetensors")), state.pop("rng"))
    teacher = load_file(str(path / "teacher.safetensors")) if (path / "teacher.safetensors").exists() else None
    return state, teacher


def _is_tied(model, key: str) -> bool:
    tied = getattr(model, "_tied_weights_keys", None) or {}
    keys = tied.keys() if isinstance(tied, dict) else tied
    return key in keys or (getattr(model.config, "tie_word_embeddings", False) and key.endswith("lm_head.weight"))
