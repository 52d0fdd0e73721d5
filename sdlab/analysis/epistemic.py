"""Epistemic-word counting (study §4).

Two modes:
- `paper`: lower-case the whole response, then count non-overlapping substring occurrences of
  each word (Python `str.count`). This is the study's released definition, reproduced for
  parity: "check" also counts "checking", "likely" counts "unlikely", "hmm" counts once in
  "hmmm" and twice in "hmmmmmm".
- `word`: whole words only (`\\bword\\b`, case-insensitive).

Counts are raw per response (E(y) = sum over words), not normalised by length.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Mapping, Sequence

from ..config import EPISTEMIC_MODES as MODES

__all__ = ["EPISTEMIC_WORDS", "MODES", "count_epistemic", "count_many", "epistemic_token_ids", "total"]

EPISTEMIC_WORDS: tuple[str, ...] = (
    "wait", "hmm", "perhaps", "maybe", "actually", "alternatively", "seems", "might", "likely", "check",
)


@lru_cache(maxsize=256)
def _word_regex(word: str) -> re.Pattern:
    return re.compile(r"\b" + re.escape(word) + r"\b", re.IGNORECASE)


def count_epistemic(text: str, mode: str = "paper", words: Sequence[str] = EPISTEMIC_WORDS) -> dict[str, int]:
    """Per-word counts in one response, keyed by the words as given, in their order."""
    if mode == "paper":
        low = text.lower()
        return {w: low.count(w.lower()) for w in words}
    if mode == "word":
        return {w: len(_word_regex(w).findall(text)) for w in words}
    raise ValueError(f"unknown counting mode {mode!r}; use one of {MODES}")


def count_many(texts: Sequence[str], mode: str = "paper",
               words: Sequence[str] = EPISTEMIC_WORDS) -> list[dict[str, int]]:
    return [count_epistemic(t, mode, words) for t in texts]


def total(counts: Mapping[str, int] | str, mode: str = "paper", words: Sequence[str] = EPISTEMIC_WORDS) -> int:
    """E(y): the sum of the per-word counts (given the counts, or a text to count)."""
    if isinstance(counts, str):
        counts = count_epistemic(counts, mode, words)
    return int(sum(counts.values()))


def epistemic_token_ids(tokenizer):
    """Token ids that spell an epistemic word on their own (with or without a leading space or
    capital), as a LongTensor: where the trainer and the information lens read the probability
    mass a model puts on epistemic words at each position."""
    import torch

    ids: set[int] = set()
    for w in EPISTEMIC_WORDS:
        for variant in (w, w.capitalize(), " " + w, " " + w.capitalize()):
            enc = tokenizer(variant, add_special_tokens=False)["input_ids"]
            if len(enc) == 1 and enc[0] != tokenizer.unk_token_id:
                ids.add(enc[0])
    return torch.tensor(sorted(ids), dtype=torch.long)
