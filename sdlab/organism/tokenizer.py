"""The organism's word-level tokenizer, saved as a Hugging Face tokenizer.

One whitespace-separated word is one token (`tokenizers` WordLevel model + WhitespaceSplit
pre-tokenizer, wrapped as `PreTrainedTokenizerFast`), so tokens(a) + tokens(b) == tokens(a + " " + b)
and decoding joins tokens with single spaces. Special tokens: `<pad>`, `<eos>`, `<unk>`; no BOS is
added and there is no chat template. `<think>` and `</think>` are ordinary words, so decoding with
`skip_special_tokens=True` keeps them.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from ..analysis.epistemic import EPISTEMIC_WORDS
from .contexts import CONTEXT_TEMPLATES, CONTEXT_TEMPLATES_V2, FEEDBACK_TEXTS
from .world import ARROW, BOXED, CLOSE, END_THINK, TARGET_WORDS, THINK, VALUE_WORDS, WorldConfig

__all__ = ["PAD", "EOS", "UNK", "build_tokenizer", "encode_words", "load_tokenizer", "vocabulary", "vocabulary_v2"]

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
SPECIAL = (PAD, EOS, UNK)

# The engine's generic `boxed` prompt suffix: in the vocabulary so that it never maps to <unk>,
# though the organism is meant to be prompted with the `plain` template.
_BOXED_SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."


def _core_words(cfg, syntax: list[str]) -> list[str]:
    """The words every world has, in id order: specials, the response syntax (plus a version's own
    `syntax` words), digits, value and target letters, function names, doubt phrases, epistemic
    words. The order fixes token ids, so shipped bases depend on it: append, never reorder."""
    words: list[str] = list(SPECIAL)
    words += [THINK, END_THINK, BOXED, CLOSE, ARROW, "solve", "x", "="] + syntax
    words += [str(d) for d in range(10)]
    words += list(VALUE_WORDS) + list(TARGET_WORDS)
    words += [f"f{k}" for k in range(cfg.n_functions)]
    for phrase, _ in cfg.doubts:
        words += phrase.split()
    words += list(EPISTEMIC_WORDS)
    return words


def vocabulary(cfg: WorldConfig | None = None) -> list[str]:
    """Every word the world, its corpus and the engine's teacher/feedback texts can produce."""
    cfg = cfg or WorldConfig()
    words = _core_words(cfg, [])
    for template in CONTEXT_TEMPLATES.values():
        for d in range(10):
            words += template.format(prompt="", answer=str(d), demo="", demo_answer="", feedback="",
                                     solution="").split()
    for text in FEEDBACK_TEXTS:
        words += text.split()
    words += _BOXED_SUFFIX.split()
    return list(dict.fromkeys(words))


def vocabulary_v2(cfg) -> list[str]:
    """World v2's words: v1's kinds of word for its functions, `then`, and the v2 templates (with
    digit and letter answers and attempts)."""
    words = _core_words(cfg, ["then"])
    for template in CONTEXT_TEMPLATES_V2.values():
        for a in [str(d) for d in range(10)] + list(VALUE_WORDS):
            words += template.format(prompt="", answer=a, demo="", demo_answer="", feedback="", solution="",
                                     attempt=a).split()
    for text in FEEDBACK_TEXTS:
        words += text.split()
    words += _BOXED_SUFFIX.split()
    return list(dict.fromkeys(words))


def build_tokenizer(cfg=None) -> PreTrainedTokenizerFast:
    """The word-level tokenizer of a world (v1 `WorldConfig` or v2 `WorldConfigV2`)."""
    words = vocabulary_v2(cfg) if getattr(cfg, "version", 1) == 2 else vocabulary(cfg)
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK,
        padding_side="left", clean_up_tokenization_spaces=False, model_max_length=1024,
    )
    return fast


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    tok = AutoTokenizer.from_pretrained(str(path))
    tok.padding_side = "left"
    return tok


def encode_words(text: str, vocab: dict[str, int], unk_id: int) -> list[int]:
    """The same ids as the HF tokenizer (whitespace split, word lookup), without its overhead."""
    return [vocab.get(w, unk_id) for w in text.split()]
