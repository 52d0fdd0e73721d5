"""`sdlab epistemic FILE [FILE2]`: epistemic-word statistics of saved responses (`sdlab.analysis.responses`).

Reads sdlab `samples.jsonl`, the study's `generated_responses` format, or plain JSONL with a
`response` / `text` field; with two files, the per-word change FILE2 - FILE1 with a bootstrap CI.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Sequence

from ..analysis.epistemic import EPISTEMIC_WORDS
from ..analysis.responses import ResponseSet, compare_epistemic, format_report, read_responses, summarize_epistemic
from ..config import EPISTEMIC_MODES as MODES
from ..data.problems import DataError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="responses JSONL (sdlab samples.jsonl, the study's generated_responses format, "
                                "or records with a 'response'/'text' field)")
    p.add_argument("file2", nargs="?", help="second responses file: report the per-word change FILE2 - FILE1")
    p.add_argument("--mode", choices=MODES, default="paper",
                   help="paper: lower-cased substring counts (the study's rule); word: whole words only")
    p.add_argument("--words", default=None, help="comma-separated word list (default: the study's ten words)")
    p.add_argument("--tokenizer", default=None, help="tokenizer path/id for per-1k-token rates (overrides num_tokens)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--unpaired", action="store_true", help="two files: resample the two sets independently")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")


def _parse_words(spec: str | None) -> list[str]:
    if spec is None:
        return list(EPISTEMIC_WORDS)
    words = [w.strip() for w in spec.split(",") if w.strip()]
    if not words:
        raise ValueError("--words is empty")
    return list(dict.fromkeys(words))


def _tokenize_counts(tokenizer_path: str, texts: Sequence[str]) -> list[int]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_path)
    out: list[int] = []
    for i in range(0, len(texts), 256):
        enc = tok(list(texts[i:i + 256]), add_special_tokens=False)["input_ids"]
        out += [len(x) for x in enc]
    return out


def _summarize_set(rs: ResponseSet, args, words, tokenizer_path) -> dict:
    if tokenizer_path:
        tokens, unit = _tokenize_counts(tokenizer_path, rs.texts), f"tokens ({tokenizer_path})"
    elif rs.num_tokens and all(t is not None for t in rs.num_tokens):
        tokens, unit = rs.num_tokens, "tokens (num_tokens field)"
    else:
        tokens, unit = None, "whitespace words (no token counts; pass --tokenizer for tokens)"
    s = summarize_epistemic(rs.texts, rs.correct, tokens, mode=args.mode, words=words,
                            groups=rs.groups, length_unit=unit)
    s["file"] = rs.path
    s["format"] = "+".join(sorted(rs.formats)) or "empty"
    return s


def run(args) -> int:
    words = _parse_words(args.words)
    a = read_responses(args.file)
    if len(a) == 0:
        raise DataError(f"{args.file}: no responses")
    out: dict[str, Any] = {"mode": args.mode, "words": words, "files": [str(args.file)]}
    out["summary"] = [_summarize_set(a, args, words, args.tokenizer)]
    if args.file2:
        b = read_responses(args.file2)
        if len(b) == 0:
            raise DataError(f"{args.file2}: no responses")
        out["files"].append(str(args.file2))
        out["summary"].append(_summarize_set(b, args, words, args.tokenizer))
        out["change"] = compare_epistemic(a, b, mode=args.mode, words=words,
                                          paired=False if args.unpaired else None,
                                          n_boot=args.n_boot, seed=args.seed)
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        print(format_report(out))
    return 0
