"""Rollout backend on the trainer's own Hugging Face model, with one of two decoding engines.

- `engine="loop"` (the default): sdlab's decoding loop (decode.py), which drops finished rows
  from the batch and avoids per-step copies of the KV cache.
- `engine="generate"`: `transformers.generate`. Sampling is done by a logits processor that draws
  each row's token with the counter-based sampler (see sampling.py) and masks every other token,
  so `generate` runs in greedy mode and never touches the global random stream. Everything else
  — KV cache, left padding, EOS stopping, any architecture `generate` supports — is
  transformers' own.

Both draw every token from the same (seed, position) counter with the same sampler, so they
return the same samples (tests/test_rollout_loop.py).
"""

from __future__ import annotations

from typing import Sequence

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from ..config import HF_ENGINES
from .base import Rollout, SamplingParams
from .sampling import sample_tokens


class _CounterSampler(LogitsProcessor):
    def __init__(self, seeds: torch.Tensor, prompt_len: int, params: SamplingParams):
        self.seeds = seeds
        self.prompt_len = prompt_len
        self.params = params
        self.logprobs: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        position = input_ids.shape[1] - self.prompt_len
        p = self.params
        tokens, logp = sample_tokens(scores, self.seeds, position, p.temperature, p.top_k, p.top_p)
        self.logprobs.append(logp)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(-1, tokens.unsqueeze(-1), 0.0)
        return out


def eos_ids(tokenizer, model=None) -> list[int]:
    """All ids that end a response: the tokenizer's EOS plus the model's generation-config EOS ids."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen = getattr(model, "generation_config", None)
    extra = getattr(gen, "eos_token_id", None)
    if isinstance(extra, int):
        ids.add(extra)
    elif extra:
        ids.update(int(i) for i in extra)
    if not ids:
        raise ValueError("the tokenizer has no eos_token; set one so responses can end")
    return sorted(ids)


class HFRolloutBackend:
    """Generates with the trainer's own model object (so weights never need syncing)."""

    def __init__(self, model, tokenizer, *, batch_size: int = 64, engine: str = "loop"):
        if engine not in HF_ENGINES:
            raise ValueError(f"rollout.hf_engine: unknown engine {engine!r} ({' | '.join(HF_ENGINES)})")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.engine = engine
        self.eos = eos_ids(tokenizer, model)
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos[0]

    def update_weights(self, model) -> None:
        self.model = model

    @torch.no_grad()
    def generate(self, prompts: Sequence[list[int]], seeds: Sequence[int], params: SamplingParams) -> list[Rollout]:
        if len(prompts) != len(seeds):
            raise ValueError("generate: one seed per prompt is required")
        out: list[Rollout] = []
        for start in range(0, len(prompts), self.batch_size):
            end = start + self.batch_size
            out.extend(self._generate(prompts[start:end], seeds[start:end], params))
        return out

    def _generate(self, prompts, seeds, params: SamplingParams) -> list[Rollout]:
        if self.engine == "loop":
            from .decode import decode

            return decode(self.model, prompts, seeds, params, eos=self.eos, pad=self.pad)
        model = self.model
        device = next(model.parameters()).device
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            input_ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            attention[i, width - len(p) :] = 1
        sampler = _CounterSampler(torch.tensor(list(seeds), dtype=torch.int64, device=device), width, params)
        gen_config = GenerationConfig(
            do_sample=False,
            max_new_tokens=params.max_new_tokens,
            eos_token_id=self.eos,
            pad_token_id=self.pad,
        )
        was_training = model.training
        model.eval()
        try:
            sequences = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                generation_config=gen_config,
                logits_processor=LogitsProcessorList([sampler]),
            )
        finally:
            model.train(was_training)
        generated = sequences[:, width:].cpu()
        logprobs = torch.stack(sampler.logprobs, dim=1).cpu() if sampler.logprobs else torch.zeros(len(prompts), 0)
        eos = set(self.eos)
        rollouts = []
        for i, p in enumerate(prompts):
            row = generated[i].tolist()
            end = next((j + 1 for j, t in enumerate(row) if t in eos), None)
            truncated = end is None
            end = min(len(row), params.max_new_tokens) if truncated else end
            rollouts.append(Rollout(list(p), row[:end], logprobs[i, :end].tolist(), truncated))
        return rollouts
