"""The self-distillation teacher's weights: frozen (the initial model), EMA, or live (the student).

frozen and ema keep a separate copy of the initial weights in memory (on one device this is a
plain deep copy; sharded setups should build it from the model path instead). A frozen teacher
only runs forward passes, so it is kept in the compute dtype (`frozen_dtype`, e.g. bf16 while the
student's masters are fp32); an EMA teacher keeps the student's dtype, since its small updates
would round away in bf16. The EMA rule is θ_T ← (1 − r)·θ_T + r·θ_S, applied once per training
step after all mini-batch updates.
"""

from __future__ import annotations

import copy

import torch

from ..config import TEACHER_KINDS


class Teacher:
    def __init__(self, kind: str, student: torch.nn.Module, update_rate: float = 0.05, *,
                 frozen_dtype: torch.dtype | None = None):
        self.kind = kind
        self.update_rate = update_rate
        self._student = student
        if kind == "live":
            self.model = None
        elif kind in ("frozen", "ema"):
            self.model = copy.deepcopy(_unwrap(student)).eval()
            if kind == "frozen" and frozen_dtype is not None:
                self.model.to(frozen_dtype)
            for p in self.model.parameters():
                p.requires_grad_(False)
        else:
            raise ValueError(f"sdpo.teacher.kind: unknown kind {kind!r} ({' | '.join(TEACHER_KINDS)})")

    def module(self) -> torch.nn.Module:
        """The network to run (under no_grad) on teacher inputs."""
        return _unwrap(self._student) if self.model is None else self.model

    @torch.no_grad()
    def step(self) -> None:
        if self.kind != "ema" or self.update_rate == 0:
            return
        ema_update_(self.model.parameters(), _unwrap(self._student).parameters(), self.update_rate)

    def state_dict(self) -> dict[str, torch.Tensor] | None:
        """Only the EMA teacher has state of its own; a frozen teacher is the initial model.
        Tied tensors (embeddings = LM head) are stored once."""
        if self.kind != "ema":
            return None
        seen, out = set(), {}
        for k, v in self.model.state_dict().items():
            if v.data_ptr() not in seen:
                seen.add(v.data_ptr())
                out[k] = v
        return out

    def load_state_dict(self, state: dict[str, torch.Tensor] | None) -> None:
        if self.kind != "ema":
            return
        if state is None:
            raise RuntimeError("checkpoint has no teacher.safetensors but sdpo.teacher.kind=ema")
        self.model.load_state_dict(state, strict=False)


@torch.no_grad()
def ema_update_(teacher_params, student_params, rate: float) -> None:
    for t, s in zip(teacher_params, student_params):
        t.lerp_(s.detach().to(t.dtype), rate)


def _unwrap(model):
    return model.module if hasattr(model, "module") else model
