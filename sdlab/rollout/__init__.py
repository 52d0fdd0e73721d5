"""Rollout backends: `hf` (the trainer's HF model: sdlab's decoding loop or transformers.generate) and `vllm`."""

from .base import Rollout, RolloutBackend, SamplingParams, sample_seed


def make_backend(name: str, model, tokenizer, *, batch_size: int = 64, hf_engine: str = "loop",
                 **kwargs) -> RolloutBackend:
    if name == "hf":
        from .hf import HFRolloutBackend

        return HFRolloutBackend(model, tokenizer, batch_size=batch_size, engine=hf_engine)
    if name == "vllm":
        from .vllm import VLLMRolloutBackend

        return VLLMRolloutBackend(model, tokenizer, **kwargs)
    raise ValueError(f"rollout.backend: unknown backend {name!r} (hf | vllm)")


__all__ = ["Rollout", "RolloutBackend", "SamplingParams", "sample_seed", "make_backend"]
