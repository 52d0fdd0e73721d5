"""A run folder belongs to one run: a lock for the run's lifetime, no fresh run on top of an old
one, and a resume that keeps the experiment what it was.

- `RunLock`: an exclusive lock file (`<output_dir>/.lock`: pid, host, start time) created with
  O_EXCL. A second process is refused in one line naming the holder; a lock whose process is gone
  (same host, pid not alive) is stale and taken over.
- `prepare_run_folder`: a fresh run into a folder that already holds checkpoints or metrics is
  refused unless `--resume` (continue it) or `--overwrite` (the old folder is moved aside to
  `<output_dir>.replaced-<time>`, never deleted).
- `check_resume_config`: on `--resume` the saved `config.yaml` is compared with the new config.
  Keys that define the experiment (algorithm, model, data, seed, objective and sampling
  hyperparameters, ...) may not change: refused with the diff. Keys that only say how the run is
  executed or recorded (RESUMABLE_KEYS: steps, logging, evaluation and checkpoint cadence,
  device, threads, micro-batching, parallelism) may; the new config is recorded beside the
  original as `config.resume-<step>.yaml`, and `config.yaml` is never rewritten.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import yaml

from ..config import Config, ConfigError, flatten

LOCK = ".lock"
RESUMABLE_KEYS = (
    "steps", "output_dir", "logging.", "eval.every", "eval.at_start", "eval.save_samples", "checkpoint.",
    "model.device", "model.cpu_threads", "model.attn_implementation", "model.gradient_checkpointing",
    "actor.micro_batch_size", "actor.max_tokens_per_micro_batch", "actor.pack_sequences", "actor.logits_chunk_size",
    "rollout.generation_batch_size", "rollout.vllm_gpu_memory_utilization", "reward.timeout", "parallel.",
)
"""Config keys a resumed run may change (prefixes end with a dot): none of them changes what is learned."""


class RunFolderError(ConfigError):
    """The output folder cannot be used for this run; the message says why and what to do."""


def pid_alive(pid: int) -> bool:
    """Whether a process of this host with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class RunLock:
    """`with RunLock(folder):` — this process owns the folder until the block ends."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self.held = False

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> bool:
        self.release()
        return False

    def acquire(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": _dt.datetime.now().isoformat(timespec="seconds")}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None and not self._stale(holder):
                    raise RunFolderError(
                        f"{self.folder} is in use by pid {holder.get('pid')} on {holder.get('host')} since "
                        f"{holder.get('since')}; wait for it, or use another output_dir (if that process is gone, "
                        f"remove {self.path})") from None
                self.path.unlink(missing_ok=True)  # stale (or unreadable): take it over
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return
        raise RunFolderError(f"could not take the lock {self.path}: another process keeps creating it")

    def _holder(self) -> dict | None:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else None
        except (OSError, ValueError):
            return None

    @staticmethod
    def _stale(holder: dict) -> bool:
        return holder.get("host") == socket.gethostname() and not pid_alive(int(holder.get("pid", -1)))

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def holds_a_run(folder: Path) -> str | None:
    """What in `folder` belongs to an earlier run (checkpoints, metrics), in words; None if nothing."""
    from .checkpoint import complete_checkpoints

    ckpts = complete_checkpoints(folder / "checkpoints")
    metrics = folder / "metrics.jsonl"
    parts = []
    if ckpts:
        parts.append(f"checkpoints up to step {ckpts[-1][0]}")
    if metrics.exists() and metrics.stat().st_size > 0:
        parts.append("metrics.jsonl")
    if (folder / "final").exists():
        parts.append("final/")
    return ", ".join(parts) or None


def check_writable(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"output_dir {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise RunFolderError(f"output_dir {folder} is not writable: {e.strerror or e}") from None


def prepare_run_folder(folder: str | Path, *, resume: bool, overwrite: bool) -> Path | None:
    """Check (and for --overwrite, move aside) an output folder before a run starts; returns where
    the old contents went, if anywhere."""
    folder = Path(folder)
    check_writable(folder)
    if resume:
        return None
    old = holds_a_run(folder)
    if old is None:
        return None
    if not overwrite:
        raise RunFolderError(f"output_dir {folder} already holds a run ({old}); use --resume to continue it or "
                             f"--overwrite to move it aside and start afresh")
    lock = RunLock(folder)
    holder = lock._holder() if lock.path.exists() else None
    if holder is not None and not lock._stale(holder):
        raise RunFolderError(f"{folder} is in use by pid {holder.get('pid')} on {holder.get('host')}; "
                             "--overwrite does not take a running run's folder")
    aside = folder.with_name(f"{folder.name}.replaced-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    folder.rename(aside)
    folder.mkdir(parents=True)
    return aside


def _allowed(key: str) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in RESUMABLE_KEYS)


def config_diff(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    a, b = flatten(old), flatten(new)
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def check_resume_config(folder: Path, cfg: Config, step: int) -> Path | None:
    """Refuse a resume that changes the experiment; record an allowed change. Returns the file the
    changed config was written to (None when nothing changed or there is no saved config)."""
    saved = folder / "config.yaml"
    if not saved.exists():
        return None
    try:
        old = yaml.safe_load(saved.read_text()) or {}
    except yaml.YAMLError as e:
        raise RunFolderError(f"{saved}: the saved config does not parse ({e.__class__.__name__}); "
                             "cannot check the resume")
    diff = config_diff(old, yaml.safe_load(yaml.safe_dump(cfg.to_dict(), sort_keys=False)))  # tuples as YAML lists
    refused = [d for d in diff if not _allowed(d[0])]
    if refused:
        shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in refused[:6])
        more = f" (and {len(refused) - 6} more)" if len(refused) > 6 else ""
        raise RunFolderError(f"--resume would change the experiment recorded in {saved}: {shown}{more}. Resume with "
                             "the same settings, or start a new run in another output_dir")
    if not diff:
        return None
    out = folder / f"config.resume-{step}.yaml"
    out.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return out


def is_main_process() -> bool:
    """Rank 0 of a launch (torchrun / accelerate set RANK), known before any process group exists."""
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def run_folder(folder: str | Path, *, resume: bool = False, overwrite: bool = False):
    """The output folder, checked (and moved aside for --overwrite) and locked for the block, by
    the main process; a failure there ends the launch (torchrun stops the other ranks)."""
    if not is_main_process():
        yield
        return
    aside = prepare_run_folder(folder, resume=resume, overwrite=overwrite)
    if aside is not None:
        print(f"sdlab: moved the earlier run in {folder} to {aside}", file=sys.stderr)
    with RunLock(folder):
        yield
