"""Atomic, verified, resumable checkpoints, written by every process together.

Layout of `<output_dir>/checkpoints/step-<N>/`:
  model/               save_pretrained (safetensors) + tokenizer: loadable on its own, whole (every
                       rank's shard gathered; written by rank 0)
  state/               torch.distributed.checkpoint (DCP): the policy, the optimizer and the EMA
                       teacher, sharded as they live (each rank writes its own shards); loads
                       into any number of processes, with or without sharding
  rng/rank-<R>.*       each process's random generators
  trainer_state.json   step, data-sampler position, LR
  MANIFEST.json        the size and SHA-256 of every file above
  COMPLETE             written last
Every file goes into a temporary folder that is renamed into place, so a crash leaves either no
checkpoint or a whole one; the temporary folder is removed on any failure, and a full disk is
reported as such. Loading verifies the manifest first: a damaged checkpoint is named in one line
and skipped for the newest intact one. DCP's `.metadata` file is a pickle of DCP's own types, so
it is only read after the manifest has verified it: load checkpoints your runs wrote, never ones
you were sent. Tensors load with `weights_only=True`; nothing else is unpickled.
On several nodes every process writes into the same folder: output_dir must be on a shared file
system.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..errors import UserError
from ..io import sha256_file
from . import parallel

log = logging.getLogger(__name__)

_STEP_DIR = re.compile(r"^step-(\d+)$")
MANIFEST = "MANIFEST.json"


class CheckpointError(UserError, RuntimeError):
    """A checkpoint cannot be written or read; the message says which and why, in one line."""


# ---------------------------------------------------------------------------- random generators


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


# ---------------------------------------------------------------------------- state dicts


def _module(model):
    return model.module if hasattr(model, "module") and not parallel.is_sharded(model) else model


def _optimizer(optimizer):
    return getattr(optimizer, "optimizer", optimizer)  # accelerate's wrapper


def training_state(model, optimizer, teacher=None) -> dict[str, Any]:
    """The DCP state: sharded tensors as they live (plain tensors without sharding)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    m = _module(model)
    state = {"model": get_model_state_dict(m), "optimizer": get_optimizer_state_dict(m, _optimizer(optimizer))}
    if teacher is not None:
        state["teacher"] = get_model_state_dict(teacher)
    return state


def _set_training_state(state: dict[str, Any], model, optimizer, teacher=None) -> None:
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    m = _module(model)
    set_model_state_dict(m, state["model"])
    set_optimizer_state_dict(m, _optimizer(optimizer), state["optimizer"])
    if teacher is not None:
        set_model_state_dict(teacher, state["teacher"])


def export_model(model, tokenizer, out_dir: Path) -> None:
    """save_pretrained of the whole model (gathered from every rank; a collective, rank 0 writes)."""
    full = parallel.full_state_dict(model)
    if parallel.rank() == 0:
        module = _module(model)
        # tied weights (embeddings = LM head) arrive gathered as separate tensors: keep each parameter once
        keep = {n for n, _ in module.named_parameters()} | {n for n, _ in module.named_buffers()}
        full = {k: v for k, v in full.items() if k in keep}
        module.save_pretrained(out_dir, state_dict=full, safe_serialization=True)
        tokenizer.save_pretrained(out_dir)


# ---------------------------------------------------------------------------- manifest


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name not in (MANIFEST, "COMPLETE"))


def write_manifest(folder: Path) -> None:
    """Sizes and checksums of every file, computed by all ranks (each takes every world-th file)."""
    files = _files(folder)
    mine = {str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
            for i, p in enumerate(files) if i % parallel.world_size() == parallel.rank()}
    entries: dict[str, Any] = {}
    for part in parallel.gather_objects(mine):
        entries.update(part)
    if parallel.rank() == 0:
        (folder / MANIFEST).write_text(json.dumps({"files": entries}, indent=1, sort_keys=True))


def verify(folder: Path) -> str | None:
    """None if every file of the manifest is there with its size and checksum, else the first
    problem, in words. Checksums are split over the ranks; the verdict is the same on all."""
    problem = None
    try:
        manifest = json.loads((folder / MANIFEST).read_text())["files"]
        if not isinstance(manifest, dict):
            raise ValueError("not a mapping")
    except (OSError, ValueError, KeyError, TypeError) as e:
        problem = f"no readable {MANIFEST} ({type(e).__name__})"
        manifest = {}
    if problem is None:
        for i, (name, entry) in enumerate(sorted(manifest.items())):
            p = folder / name
            if not p.is_file():
                problem = f"{name} is missing"
            elif p.stat().st_size != entry.get("bytes"):
                problem = f"{name} has {p.stat().st_size} bytes, the manifest says {entry.get('bytes')}"
            elif i % parallel.world_size() == parallel.rank() and sha256_file(p) != entry.get("sha256"):
                problem = f"{name} does not match its checksum"
            if problem:
                break
        try:
            json.loads((folder / "trainer_state.json").read_text())
        except (OSError, ValueError) as e:
            problem = problem or f"trainer_state.json is unreadable ({type(e).__name__})"
    problems = [p for p in parallel.gather_objects(problem) if p]
    return problems[0] if problems else None


# ---------------------------------------------------------------------------- save


def _needed_bytes(model, optimizer, root: Path) -> int:
    """What a checkpoint will take: the last one's size, else the tensors' (x1.1)."""
    done = complete_checkpoints(root)
    if done:
        return sum(p.stat().st_size for p in done[-1][1].rglob("*") if p.is_file())
    n = sum(parallel.local(p).numel() * parallel.local(p).element_size() for p in model.parameters())
    states = sum(parallel.local(t).numel() * parallel.local(t).element_size()
                 for s in _optimizer(optimizer).state.values() for t in s.values() if torch.is_tensor(t))
    return int(1.1 * (2 * n * parallel.world_size() + states * parallel.world_size()))


def _no_space(step: int, needed: int, free: int | None = None) -> CheckpointError:
    have = f", {free / 2**20:.0f} MB free" if free is not None else ""
    return CheckpointError(f"no space left on device while saving checkpoint step {step} "
                           f"(needs ~{needed / 2**20:.0f} MB{have}); free space or set checkpoint.keep_last lower")


def save_checkpoint(root: Path, step: int, *, model, tokenizer, optimizer, state: dict[str, Any], teacher=None,
                    keep_last: int = 2) -> Path:
    """Write step-N (a collective: every rank calls it). `teacher`: the EMA teacher module, whose
    weights are part of the training state (a frozen teacher is the initial model, rebuilt)."""
    final = root / f"step-{step}"
    tmp = root / f".tmp-step-{step}"
    needed = _needed_bytes(model, optimizer, root)
    error: str | None = None
    if parallel.rank() == 0:
        try:
            root.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(root).free
            if free < needed:
                error = str(_no_space(step, needed, free))
            else:
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir()
        except OSError as e:
            error = f"cannot write checkpoint step {step} under {root}: {e.strerror or e}"
    errors = [e for e in parallel.gather_objects(error) if e]
    if errors:
        raise CheckpointError(errors[0])
    try:
        _write(tmp, step, model=model, tokenizer=tokenizer, optimizer=optimizer, state=state, teacher=teacher)
    except Exception as e:
        if parallel.rank() == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        full = isinstance(e, OSError) and e.errno == errno.ENOSPC
        if not full and isinstance(e, RuntimeError):  # torch's writers report a full disk as a failed write
            try:
                full = shutil.disk_usage(root).free < needed
            except OSError:
                pass
        if full:
            raise _no_space(step, needed) from None
        raise
    if parallel.rank() == 0:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        prune(root, keep_last)
    parallel.barrier()
    return final


def _write(tmp: Path, step: int, *, model, tokenizer, optimizer, state, teacher) -> None:
    import torch.distributed.checkpoint as dcp

    parallel.barrier()  # rank 0 made the folder
    with warnings.catch_warnings():  # one process without a process group is what we mean
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.save(training_state(model, optimizer, teacher), checkpoint_id=str(tmp / "state"),
                 no_dist=not torch.distributed.is_initialized())
    export_model(model, tokenizer, tmp / "model")
    tensors, plain = rng_state()
    (tmp / "rng").mkdir(exist_ok=True)
    save_file(tensors, str(tmp / "rng" / f"rank-{parallel.rank()}.safetensors"))
    (tmp / "rng" / f"rank-{parallel.rank()}.json").write_text(json.dumps(plain))
    if parallel.rank() == 0:
        (tmp / "trainer_state.json").write_text(json.dumps({**state, "step": step}))
    parallel.barrier()
    write_manifest(tmp)
    if parallel.rank() == 0:
        for p in tmp.rglob("*"):
            if p.is_file():
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
        (tmp / "COMPLETE").write_text("ok\n")
    parallel.barrier()


# ---------------------------------------------------------------------------- find and load


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
    """The newest complete checkpoint whose files verify; damaged ones are named and skipped."""
    skipped = []
    for step, path in reversed(complete_checkpoints(root)):
        problem = verify(path)
        if problem is None:
            if skipped and parallel.rank() == 0:
                log.warning("checkpoint %s is damaged (%s); resuming from step-%d", skipped[0][0], skipped[0][1], step)
            return path
        skipped.append((path.name, problem))
    if skipped:
        raise CheckpointError(f"no intact checkpoint in {root}: {skipped[0][0]}: {skipped[0][1]}"
                              + (f" (and {len(skipped) - 1} older ones)" if len(skipped) > 1 else ""))
    return None


def prune(root: Path, keep_last: int) -> None:
    for _, p in complete_checkpoints(root)[:-keep_last]:
        shutil.rmtree(p, ignore_errors=True)


def load_checkpoint(path: Path, *, model, optimizer, teacher=None) -> dict[str, Any]:
    """Restore weights, optimizer, EMA teacher and this rank's RNG in place (a collective; any
    number of processes, whatever the number that saved it); return the trainer state."""
    import torch.distributed.checkpoint as dcp

    state = training_state(model, optimizer, teacher)
    try:
        with warnings.catch_warnings():  # one process without a process group is what we mean
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
            dcp.load(state, checkpoint_id=str(path / "state"), no_dist=not torch.distributed.is_initialized())
    except Exception as e:  # noqa: BLE001 - a structural mismatch, named in one line
        raise CheckpointError(f"{path}: its training state does not match this run's model/optimizer "
                              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    _set_training_state(state, model, optimizer, teacher)
    r = parallel.rank()
    rng = path / "rng" / f"rank-{r}.safetensors"
    if not rng.exists():  # resumed with more processes than saved it
        r, rng = 0, path / "rng" / "rank-0.safetensors"
    set_rng_state(load_file(str(rng)), json.loads((path / "rng" / f"rank-{r}.json").read_text()))
    return json.loads((path / "trainer_state.json").read_text())
