"""The rollout interface: what the trainer and the evaluator need from a generation engine.

A backend turns token-id prompts into sampled responses with their sampling log-probs. Every
sample carries its own integer seed, so a backend can make each sample reproducible on its own
(the HF backend does; vLLM takes a per-request seed) — results then do not depend on batch
composition, the number of processes, or where a run was resumed.
"""

from __future__ import annotations

import zlib
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


def stream_key(name: str) -> int:
    """A stable integer for a named random stream (a benchmark name, "sdlab-sft")."""
    return zlib.crc32(name.encode())


def problem_seed(seed: int, stream: str, problem: int, sample: int, slot: int | None = None) -> int:
    """The seed of sample `sample` of problem `problem` (its index) in the named stream.

    Evaluation, the information lens and SFT's trace generation draw from these, so the same
    problem gets the same samples whatever else is evaluated with it, and `sdlab info`'s unguided
    samples are those of `sdlab eval` with the same seed. `slot` separates draws of one problem
    under different prompts: None for `sdlab eval` / `sdlab info` unguided samples, 0 for `sdlab
    sft`'s unguided ones, 1 + CONTEXT_LEVELS.index(level) for samples generated with a context.
    """
    parts = (seed, stream_key(stream)) + (() if slot is None else (slot,)) + (problem, sample)
    return sample_seed(*parts)


def context_slot(level: str) -> int:
    """`problem_seed`'s slot for samples generated with the context `level`."""
    from ..config import CONTEXT_LEVELS

    return 1 + CONTEXT_LEVELS.index(level)


def _mix64(z: int) -> int:
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)
