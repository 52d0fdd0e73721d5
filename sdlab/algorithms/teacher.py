"""The self-distillation teacher's weights: frozen (the initial model), EMA, or live (the student).

frozen and ema run a separate module holding the initial weights. The trainer builds it from the
model path with the student's sharding plan (`module=`); without one it is a deep copy of the
student (one device). A frozen teacher only runs forward passes, so the trainer keeps it in the
compute dtype (e.g. bf16 while the student's masters are fp32); an EMA teacher keeps the masters'
dtype, since its small updates would round away in bf16. The EMA rule is
θ_T ← (1 − r)·θ_T + r·θ_S, once per training step after all mini-batch updates, shard by shard.
Its weights are part of the training state (saved and restored with the checkpoint).
"""

from __future__ import annotations

import copy

import torch

from ..config import TEACHER_KINDS


class Teacher:
    def __init__(self, kind: str, student: torch.nn.Module, update_rate: float = 0.05, *,
                 module: torch.nn.Module | None = None):
        if kind not in TEACHER_KINDS:
            raise ValueError(f"sdpo.teacher.kind: unknown kind {kind!r} ({' | '.join(TEACHER_KINDS)})")
        self.kind = kind
        self.update_rate = update_rate
        self._student = student
        self.model = None
        if kind in ("frozen", "ema"):
            self.model = (module if module is not None else copy.deepcopy(_unwrap(student))).eval()
            for p in self.model.parameters():
                p.requires_grad_(False)

    def module(self) -> torch.nn.Module:
        """The network to run (under no_grad) on teacher inputs."""
        return _unwrap(self._student) if self.model is None else self.model

    @torch.no_grad()
    def step(self) -> None:
        if self.kind != "ema" or self.update_rate == 0:
            return
        ema_update_(self.model.parameters(), _unwrap(self._student).parameters(), self.update_rate)

    @property
    def state_module(self) -> torch.nn.Module | None:
        """The module whose weights belong to the training state (only the EMA teacher's)."""
        return self.model if self.kind == "ema" else None


@torch.no_grad()
def ema_update_(teacher_params, student_params, rate: float) -> None:
    """Elementwise on each tensor's local shard: teacher and student are sharded by the same plan
    (DTensors), so their local shards line up; plain tensors are their own shard."""
    for t, s in zip(teacher_params, student_params):
        lt, ls = _local(t), _local(s)
        if lt.shape != ls.shape:
            raise RuntimeError(f"EMA teacher and student are sharded differently "
                               f"({tuple(lt.shape)} vs {tuple(ls.shape)})")
        lt.lerp_(ls.detach().to(lt.dtype), rate)


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if hasattr(t, "to_local") else t


def _unwrap(model):
    return model.module if hasattr(model, "module") else model
