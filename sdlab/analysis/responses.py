"""Epistemic-word statistics of saved responses (`sdlab epistemic FILE [FILE2]`).

Input formats (JSONL, detected per line):
- sdlab `samples.jsonl`: `{"response", "correct"?, "num_tokens"?, "problem_id"?, "benchmark"?}`
- the study's format: `{"generated_responses": [...], <parallel correctness list>?, "id"?}`,
  one record per problem
- plain JSONL with a `response` or `text` field.

Reports per word and in total: the total count, the mean count per response (the study's E(y)),
the mean per problem, and the rate per 1,000 tokens (from `num_tokens`, or `--tokenizer`; else per
1,000 whitespace-separated words, as the output says), split by correct/incorrect when known.
With two files: the per-word change FILE2 - FILE1 of the mean count per response with a
bootstrap 95% interval over problems (paired when both files hold the same problems).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data.problems import DataError
from ..io import read_jsonl
from .epistemic import EPISTEMIC_WORDS, MODES, count_epistemic
from .stats import cluster_bootstrap_diff

__all__ = ["ResponseSet", "compare_epistemic", "format_report", "read_responses", "summarize_epistemic"]

TOTAL = "total"
_CORRECT_KEYS = ("correct", "corrects", "correctness", "is_correct", "scores", "score", "rewards", "reward", "acc")
_TOKEN_KEYS = ("num_tokens", "response_lengths", "response_length", "lengths", "token_counts")
_ID_KEYS = ("problem_id", "id", "unique_id", "idx", "index", "problem", "question", "prompt")


# --------------------------------------------------------------------------- reading


@dataclass
class ResponseSet:
    path: str
    texts: list[str] = field(default_factory=list)
    correct: list[bool | None] = field(default_factory=list)
    num_tokens: list[int | None] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    """Problem key of each response."""
    keyed: bool = True
    """Whether the problem keys come from the records (ids or problem text), not line numbers."""
    formats: set[str] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.texts)


def _as_correct(value: Any, where: str, key: str) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and math.isfinite(value):
        return value > 0
    raise DataError(f"{where}: field {key!r}: expected a boolean or a number, got {type(value).__name__}")


def _as_tokens(value: Any, where: str, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return int(value)
    raise DataError(f"{where}: field {key!r}: expected a non-negative number of tokens")


def _problem_key(rec: dict) -> str | None:
    for k in _ID_KEYS:
        v = rec.get(k)
        if isinstance(v, (str, int)) and not isinstance(v, bool) and str(v) != "":
            prefix = f"{rec['benchmark']}/" if isinstance(rec.get("benchmark"), str) else ""
            return f"{prefix}{k}={v}"
    return None


def read_responses(path: str | Path) -> ResponseSet:
    """Read one responses file (any of the supported formats, see module doc)."""
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{p} is a folder; pass a responses JSONL file (e.g. {p / 'samples.jsonl'})")
    if not p.is_file():
        raise FileNotFoundError(f"responses file not found: {p}")
    rs = ResponseSet(path=str(p))
    for lineno, rec in read_jsonl(p):
        where = f"{p}:{lineno}"
        if not isinstance(rec, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(rec).__name__}")
        key = _problem_key(rec)
        if key is None:
            rs.keyed = False
            key = f"line={lineno}"
        if "generated_responses" in rec:
            _read_study(rec, where, key, rs)
            rs.formats.add("study")
            continue
        text_key = "response" if "response" in rec else "text" if "text" in rec else None
        if text_key is None:
            raise DataError(f"{where}: no 'response', 'text' or 'generated_responses' field")
        text = rec[text_key]
        if not isinstance(text, str):
            raise DataError(f"{where}: field {text_key!r}: expected a string, got {type(text).__name__}")
        rs.texts.append(text)
        rs.correct.append(_as_correct(rec.get("correct"), where, "correct"))
        rs.num_tokens.append(_as_tokens(rec.get("num_tokens"), where, "num_tokens"))
        rs.groups.append(key)
        rs.formats.add("sdlab" if "problem_id" in rec else "plain")
    return rs


def _read_study(rec: dict, where: str, key: str, rs: ResponseSet) -> None:
    texts = rec["generated_responses"]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise DataError(f"{where}: field 'generated_responses': expected a list of strings")
    n = len(texts)
    correct: list[bool | None] = [None] * n
    for k in _CORRECT_KEYS:
        v = rec.get(k)
        if isinstance(v, list) and len(v) == n:
            correct = [_as_correct(x, where, k) for x in v]
            break
    tokens: list[int | None] = [None] * n
    for k in _TOKEN_KEYS:
        v = rec.get(k)
        if isinstance(v, list) and len(v) == n:
            tokens = [_as_tokens(x, where, k) for x in v]
            break
    rs.texts += texts
    rs.correct += correct
    rs.num_tokens += tokens
    rs.groups += [key] * n


# --------------------------------------------------------------------------- summaries


def _f(x: float) -> float | None:
    """JSON-safe float."""
    return None if x is None or not math.isfinite(x) else float(x)


def _count_matrix(responses: Sequence[str], mode: str, words: Sequence[str]) -> np.ndarray:
    """(N, W+1) counts, the last column the total."""
    m = np.zeros((len(responses), len(words) + 1), dtype=np.int64)
    for i, t in enumerate(responses):
        c = count_epistemic(t, mode, words)
        m[i, :-1] = [c[w] for w in words]
    m[:, -1] = m[:, :-1].sum(axis=1)
    return m


def _lengths(responses: Sequence[str], num_tokens: Sequence[int | None] | None) -> tuple[np.ndarray, str]:
    if num_tokens is not None and len(num_tokens) == len(responses) and all(t is not None for t in num_tokens):
        return np.asarray(num_tokens, dtype=np.float64), "tokens"
    return np.asarray([len(t.split()) for t in responses], dtype=np.float64), "words"


def _block(counts: np.ndarray, lengths: np.ndarray, words: Sequence[str], groups: Sequence[str] | None) -> dict:
    n = counts.shape[0]
    keys = list(words) + [TOTAL]
    tot = counts.sum(axis=0)
    length_sum = float(lengths.sum())
    n_problems = len(set(groups)) if groups is not None else None
    out: dict[str, Any] = {"n_responses": n, "mean_length": _f(length_sum / n) if n else None}
    if n_problems is not None:
        out["n_problems"] = n_problems
    per: dict[str, dict] = {}
    for j, k in enumerate(keys):
        d = {
            "total": int(tot[j]),
            "mean_per_response": _f(tot[j] / n) if n else None,
            "per_1k": _f(1000.0 * tot[j] / length_sum) if length_sum > 0 else None,
        }
        if n_problems:
            d["mean_per_problem"] = _f(tot[j] / n_problems)
        per[k] = d
    out["per_word"] = {k: per[k] for k in words}
    out[TOTAL] = per[TOTAL]
    return out


def summarize_epistemic(responses: Sequence[str], correct: Sequence[bool | None] | None = None,
                        num_tokens: Sequence[int | None] | None = None, *, mode: str = "paper",
                        words: Sequence[str] = EPISTEMIC_WORDS, groups: Sequence[str] | None = None,
                        length_unit: str | None = None) -> dict:
    """Epistemic statistics of a set of responses.

    Returns {"mode", "words", "length_unit", "n_responses", "mean_length", ["n_problems"],
    "per_word": {word: {"total", "mean_per_response", "per_1k", ["mean_per_problem"]}},
    "total": {...same keys...}, "by_correct": {"correct": {...}, "incorrect": {...}} | None}.
    Rates per 1,000 tokens use `num_tokens` when every response has one, else whitespace words
    (`length_unit` says which; pass it to label tokens counted by some other means)."""
    if mode not in MODES:
        raise ValueError(f"unknown counting mode {mode!r}; use one of {MODES}")
    words = list(words)
    counts = _count_matrix(responses, mode, words)
    lengths, unit = _lengths(responses, num_tokens)
    out: dict[str, Any] = {"mode": mode, "words": words, "length_unit": length_unit or unit}
    out.update(_block(counts, lengths, words, groups))
    out["by_correct"] = None
    if correct is not None and any(c is not None for c in correct):
        if len(correct) != len(responses):
            raise ValueError("correct must have one entry per response")
        by = {}
        for name, flag in (("correct", True), ("incorrect", False)):
            sel = np.array([c is flag for c in correct], dtype=bool)
            g = [groups[i] for i in np.flatnonzero(sel)] if groups is not None else None
            by[name] = _block(counts[sel], lengths[sel], words, g)
        unknown = sum(c is None for c in correct)
        if unknown:
            by["unknown_responses"] = unknown
        out["by_correct"] = by
    return out


def _group_sums(counts: np.ndarray, groups: Sequence[str], order: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    pos = {g: i for i, g in enumerate(order)}
    sums = np.zeros((len(order), counts.shape[1]), dtype=np.float64)
    sizes = np.zeros(len(order), dtype=np.float64)
    idx = np.array([pos[g] for g in groups], dtype=np.int64)
    np.add.at(sums, idx, counts)
    np.add.at(sizes, idx, 1.0)
    return sums, sizes


def compare_epistemic(a: ResponseSet, b: ResponseSet, *, mode: str = "paper", words: Sequence[str] = EPISTEMIC_WORDS,
                      paired: bool | None = None, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> dict:
    """Per-word change (b - a) of the mean count per response, with a bootstrap interval that
    resamples problems. paired=None pairs when both sets hold exactly the same keyed problems."""
    words = list(words)
    ca, cb = _count_matrix(a.texts, mode, words), _count_matrix(b.texts, mode, words)
    if len(a) == 0 or len(b) == 0:
        raise DataError(f"no responses in {a.path if len(a) == 0 else b.path}")
    same = a.keyed and b.keyed and set(a.groups) == set(b.groups)
    if paired is None:
        paired = same
    elif paired and not same:
        raise ValueError("paired comparison needs both files to hold the same problems (matching ids)")
    order_a = list(dict.fromkeys(a.groups))
    order_b = order_a if paired else list(dict.fromkeys(b.groups))
    sa, na = _group_sums(ca, a.groups, order_a)
    sb, nb = _group_sums(cb, b.groups, order_b)
    diff, lo, hi = cluster_bootstrap_diff(sa, na, sb, nb, paired=paired, n_boot=n_boot, alpha=alpha, seed=seed)
    keys = words + [TOTAL]
    mean_a, mean_b = sa.sum(0) / na.sum(), sb.sum(0) / nb.sum()
    change = {k: {"a": _f(mean_a[j]), "b": _f(mean_b[j]), "diff": _f(diff[j]), "ci_low": _f(lo[j]),
                  "ci_high": _f(hi[j])} for j, k in enumerate(keys)}
    return {"paired": bool(paired), "n_boot": n_boot, "alpha": alpha, "seed": seed,
            "unit": "problem", "per_word": {k: change[k] for k in words}, TOTAL: change[TOTAL]}


# --------------------------------------------------------------------------- table


def _num(x: float | None, fmt: str = "{:.3f}") -> str:
    return "-" if x is None else fmt.format(x)


def _summary_table(s: dict) -> list[str]:
    lines = [f"{s['file']}  [{s['format']}; {s['n_responses']} responses"
             + (f", {s['n_problems']} problems" if s.get("n_problems") else "") + f"; mode {s['mode']}]",
             f"  rates per 1,000 {s['length_unit']}; mean length {_num(s['mean_length'], '{:.1f}')}"]
    by = s.get("by_correct")
    head = f"  {'word':<14}{'total':>9}{'mean/resp':>11}{'per 1k':>9}"
    if by:
        head += f"{'correct':>10}{'incorrect':>11}"
    lines.append(head)
    rows = list(s["per_word"].items()) + [("TOTAL", s["total"])]
    for w, d in rows:
        line = f"  {w:<14}{d['total']:>9d}{_num(d['mean_per_response']):>11}{_num(d['per_1k']):>9}"
        if by:
            key = TOTAL if w == "TOTAL" else w

            def pick(blk):
                return blk[TOTAL] if key == TOTAL else blk["per_word"][key]

            line += (f"{_num(pick(by['correct'])['mean_per_response']):>10}"
                     f"{_num(pick(by['incorrect'])['mean_per_response']):>11}")
        lines.append(line)
    if by:
        lines.append(f"  correct: {by['correct']['n_responses']} responses, incorrect: {by['incorrect']['n_responses']}"
                     + (f", unknown: {by['unknown_responses']}" if by.get("unknown_responses") else "")
                     + " (columns: mean count per response)")
    return lines


def format_report(out: dict) -> str:
    lines: list[str] = []
    for s in out["summary"]:
        lines += _summary_table(s) + [""]
    ch = out.get("change")
    if ch:
        pct = int(round(100 * (1 - ch["alpha"])))
        lines.append(f"change FILE2 - FILE1 in mean count per response ({'paired' if ch['paired'] else 'unpaired'} "
                     f"bootstrap over problems, {ch['n_boot']} replicates, {pct}% CI)")
        lines.append(f"  {'word':<14}{'file1':>9}{'file2':>9}{'change':>10}   CI")
        for w, d in list(ch["per_word"].items()) + [("TOTAL", ch[TOTAL])]:
            lines.append(f"  {w:<14}{_num(d['a']):>9}{_num(d['b']):>9}{_num(d['diff'], '{:+.3f}'):>10}"
                         f"   [{_num(d['ci_low'], '{:+.3f}')}, {_num(d['ci_high'], '{:+.3f}')}]")
    return "\n".join(lines).rstrip()
