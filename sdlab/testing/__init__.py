"""Tiny, locally built models and tokenizers for tests and benchmarks (no hub downloads).

`tiny_model_dir(path, arch=...)` writes a randomly initialised causal LM of a real transformers
architecture (Qwen3, Llama, Qwen2) plus a small tokenizer with a chat template, with
`save_pretrained`, so every code path that loads "a model by path" is exercised exactly as for a
hub model.

`sdlab.testing.pool_tasks` holds small tasks (sleep, crash, allocate, ...) for testing the
verifier worker pool.  Test helpers only: no library module imports `sdlab.testing`.  Importing
this package is cheap (torch / transformers are imported by the functions that need them), so a
verifier worker can import `sdlab.testing.pool_tasks` without loading torch.
"""

from __future__ import annotations

import string
from pathlib import Path

SPECIAL = ["<pad>", "<eos>", "<unk>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
PIECES = ["\\boxed{", "wait", "hmm", "maybe", "check", "Answer:"]

# A minimal ChatML template with Qwen3's enable_thinking switch.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
)


def char_tokenizer(*, chat_template: bool = True, extra_vocab: int = 0):
    """Characters of printable ASCII + a few multi-character pieces, as a fast HF tokenizer
    (a `PreTrainedTokenizerFast`).

    `extra_vocab` pads the vocabulary with unused tokens (e.g. to 32k for memory benchmarks)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab_list = SPECIAL + PIECES + [c for c in string.printable if c not in "\x0b\x0c"]
    vocab_list += [f"<extra_{i}>" for i in range(extra_vocab)]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(vocab_list))}
    merges_needed = [p for p in PIECES + SPECIAL]
    # A Unigram-free approach: WordPiece-like greedy longest match via the BPE model with merges
    # would be overkill; a WordLevel model over a pre-tokenizer that splits pieces then chars works.
    pattern = "|".join(_escape(p) for p in sorted(merges_needed, key=len, reverse=True)) + "|."
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"], padding_side="left",
    )
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def _escape(s: str) -> str:
    import re

    return re.escape(s)


def tiny_model_dir(path: str | Path, *, arch: str = "qwen3", hidden: int = 64, layers: int = 2,
                   extra_vocab: int = 0, seed: int = 0, chat_template: bool = True) -> Path:
    """Write a random tiny causal LM + tokenizer to `path` (idempotent) and return the path."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    path = Path(path)
    if (path / "config.json").exists():
        return path
    tokenizer = char_tokenizer(chat_template=chat_template, extra_vocab=extra_vocab)
    common = dict(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
        tie_word_embeddings=True,
    )
    model_type = {"qwen3": "qwen3", "llama": "llama", "qwen2": "qwen2"}[arch]
    if model_type == "qwen3":
        common["head_dim"] = hidden // 4
    config = AutoConfig.for_model(model_type, **common)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path
