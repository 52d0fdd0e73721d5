"""Rollout backends: `hf` (transformers.generate) and `vllm`."""

from .base import Rollout, RolloutBackend, SamplingParams, context_slot, problem_seed, sample_seed, stream_key


def make_backend(name: str, model, tokenizer, *, batch_size: int = 64, **kwargs) -> RolloutBackend:
    if name == "hf":
        from .hf import HFRolloutBackend

        return HFRolloutBackend(model, tokenizer, batch_size=batch_size)
    if name == "vllm":
        from .vllm import VLLMRolloutBackend

        return VLLMRolloutBackend(model, tokenizer, **kwargs)
    from ..config import ROLLOUT_BACKENDS

    raise ValueError(f"rollout.backend: unknown backend {name!r} ({' | '.join(ROLLOUT_BACKENDS)})")


__all__ = ["Rollout", "RolloutBackend", "SamplingParams", "context_slot", "make_backend", "problem_seed",
           "sample_seed", "stream_key"]
