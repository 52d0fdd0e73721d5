"""Rollout backends: `hf` (transformers.generate) and `vllm`."""

from .base import Rollout, RolloutBackend, SamplingParams, sample_seed


def make_backend(name: str, model, tokenizer, *, prompts_per_call: int = 64, **kwargs) -> RolloutBackend:
    if name == "hf":
        from .hf import HFRolloutBackend

        return HFRolloutBackend(model, tokenizer, prompts_per_call=prompts_per_call)
    if name == "vllm":
        from .vllm import VLLMRolloutBackend

        return VLLMRolloutBackend(model, tokenizer, **kwargs)
    raise ValueError(f"rollout.backend: unknown backend {name!r} (hf | vllm)")


__all__ = ["Rollout", "RolloutBackend", "SamplingParams", "sample_seed", "make_backend"]
