"""The rollout interface: what the trainer and the evaluator need from a generation engine.

A backend turns token-id prompts into sampled responses with their sampling log-probs. Every
sample carries its own integer seed, so a backend can make each sample reproducible on its own
(the HF backend does; vLLM takes a per-request seed) — results then do not depend on batch
composition, the number of processes, or where a run was resumed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    """0 means greedy decoding."""
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256


@dataclass
class Rollout:
    prompt_ids: list[int]
    response_ids: list[int]
    """Sampled tokens, ending with EOS unless truncated."""
    logprobs: list[float] = field(default_factory=list)
    """log-prob of each sampled token under the distribution it was drawn from (after temperature, top-k, top-p)."""
    truncated: bool = False
    """True when the response hit max_new_tokens without EOS."""


class RolloutBackend(Protocol):
    def generate(
        self, prompts: Sequence[list[int]], seeds: Sequence[int], params: SamplingParams
    ) -> list[Rollout]: ...

    def update_weights(self, model) -> None:
        """Make the backend sample from the trainer's current weights."""
        ...


def sample_seed(*parts: int) -> int:
    """A 62-bit seed derived from integers (run seed, step, prompt index, sample index ...)."""
    x = 0x9E3779B97F4A7C15
    for p in parts:
        x = _mix64((x ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF)
    return x & ((1 << 62) - 1)


def _mix64(z: int) -> int:
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)
