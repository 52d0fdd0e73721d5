"""Rollout backends: `hf` (the trainer's HF model: sdlab's decoding loop or transformers.generate) and `vllm`."""

from .base import Rollout, RolloutBackend, SamplingParams, context_slot, problem_seed, sample_seed, stream_key


def make_backend(name: str, model, tokenizer, *, batch_size: int = 64, hf_engine: str = "loop",
                 gpu_memory_utilization: float = 0.3, max_model_len: int | None = None, seed: int = 0,
                 dtype=None) -> RolloutBackend:
    """hf_engine: sdlab's decoding loop (`loop`) or `transformers.generate`. dtype: the compute dtype
    for vLLM's own copy of the weights (default: the model's). (A sharded model generates with its
    parameters gathered once, see `sdlab.engine.parallel.gathered`.)"""
    if name == "hf":
        from .hf import HFRolloutBackend

        return HFRolloutBackend(model, tokenizer, batch_size=batch_size, engine=hf_engine)
    if name == "vllm":
        from .vllm import VLLMRolloutBackend

        return VLLMRolloutBackend(model, tokenizer, gpu_memory_utilization=gpu_memory_utilization,
                                  max_model_len=max_model_len, seed=seed, dtype=dtype)
    from ..config import ROLLOUT_BACKENDS

    raise ValueError(f"rollout.backend: unknown backend {name!r} ({' | '.join(ROLLOUT_BACKENDS)})")


__all__ = ["Rollout", "RolloutBackend", "SamplingParams", "context_slot", "make_backend", "problem_seed",
           "sample_seed", "stream_key"]
