r"""Lexical pre-filters applied to an extracted answer before it reaches sympy.

Model output is untrusted input to ``latex2sympy`` / ``parse_expr`` / ``simplify``.  Power
towers, huge exponents, huge literals and factorials of large numbers make sympy (or a
single C-level big-int operation) run for minutes or exhaust memory, and signals cannot
interrupt them (ecosystem.md §4.6).  These checks are cheap, pure-Python and linear-ish in
the (already length-capped) answer; they run before any pool task is submitted.  The pool's
hard deadline remains the real guarantee; the guards just keep obvious attacks from
costing a full deadline each.

:func:`check_answer` returns ``None`` when the answer may go to sympy, else a short reason
(``"too_long"``, ``"power_tower"``, ``"too_many_powers"``, ``"exponent_too_large"``,
``"literal_too_long"``, ``"factorial_too_large"``, ``"factorial_of_expression"``,
``"nesting_too_deep"``, ``"non_math_text"``).  The grader reports it as
``"rejected:<reason>"``.

The gold answer is trusted: every limit is relaxed to what the gold itself uses, so a
gold such as ``2^{3^{4}}`` still admits a prediction of the same shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache

__all__ = ["GuardLimits", "DEFAULT_LIMITS", "check_answer", "power_height", "profile"]


@dataclass(frozen=True)
class GuardLimits:
    max_length: int = 300
    """Characters of the extracted answer (the longest MATH-500 answer has 159)."""
    max_power_height: int = 1
    """Nesting of ``^``/``**``: 1 admits ``a^b``; ``a^{b^c}`` (a 3-level tower) is rejected."""
    max_powers: int = 12
    """Number of ``^``/``**`` operators."""
    max_exponent_digits: int = 4
    """Digits of any number inside an exponent (``2^{12345}`` is rejected)."""
    max_literal_digits: int = 50
    """Digits of one numeric literal (thousands separators included in the run)."""
    max_factorial: int = 5000
    """Largest literal ``n`` admitted in ``n!``."""
    max_nesting: int = 16
    """Depth of ``{ ( [`` nesting."""
    max_foreign_letters: int = 3
    """Letters outside Latin/Greek (CJK, Cyrillic, ...): answers are math, not prose."""


DEFAULT_LIMITS = GuardLimits()

_MAX_POWER_OPS = 200
_DIGIT_RUN_RE = re.compile(r"\d(?:\d|,(?=\d)|\{,\}(?=\d)|\\[,;:! ](?=\d)|[ \t](?=\d))*")
_FACT_LIT_RE = re.compile(r"(?<![\d.])(\d+)\s*!")
_OPENERS, _CLOSERS = "{([", "})]"
_PAIRS = {"{": "}", "(": ")", "[": "]"}


def _pow_op_at(s: str, i: int) -> int:
    if s.startswith("**", i):
        return 2
    if i < len(s) and s[i] == "^":
        return 1
    return 0


def _match_close(s: str, j: int) -> int:
    """Index of the bracket closing s[j] (same kind, nesting aware); len(s)-1 if none."""
    open_c, close_c = s[j], _PAIRS[s[j]]
    depth = 0
    i = j
    while i < len(s):
        c = s[i]
        if c == "\\" and open_c == "{":
            i += 2
            continue
        if c == open_c:
            depth += 1
        elif c == close_c:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return len(s) - 1


def _read_group(s: str, j: int) -> tuple[str, int]:
    """The operand starting at j (exponent or factorial argument): content and end index."""
    n = len(s)
    while j < n and s[j] in " \t":
        j += 1
    if j >= n:
        return "", j
    c = s[j]
    if c in "+-":
        content, k = _read_group(s, j + 1)
        return c + content, k
    if c in _PAIRS:
        k = _match_close(s, j)
        return s[j + 1 : k], k + 1
    if c == "\\":
        k = j + 1
        while k < n and s[k].isalpha():
            k += 1
        if k == j + 1:
            return s[j : j + 2], j + 2
        name = s[j + 1 : k]
        if name == "left":
            # \left( ... \right): take up to the matching \right
            depth, m = 0, k
            while m < n:
                if s.startswith("\\left", m):
                    depth += 1
                elif s.startswith("\\right", m):
                    depth -= 1
                    if depth == 0:
                        m += 6
                        if m < n:
                            m += 1
                        return s[k:m], m
                m += 1
            return s[k:], n
        # command arguments: \frac{..}{..}, \sqrt[3]{..}
        while k < n and s[k] in "{[":
            e = _match_close(s, k)
            k = e + 1
        return s[j:k], k
    if c.isdigit() or c == ".":
        k = j
        while k < n and (s[k].isdigit() or s[k] == "."):
            k += 1
        return s[j:k], k
    return c, j + 1


def _power_ops(s: str) -> list[tuple[int, int]]:
    """``(position, span_end)`` of every ``^``/``**``; the span covers the exponent group and,
    for a chain ``a^b^c``, the next operator (``a^b^c == a^(b^c)``)."""
    ops = []
    i, n = 0, len(s)
    while i < n:
        op = _pow_op_at(s, i)
        if not op:
            i += 1
            continue
        _, k = _read_group(s, i + op)
        while k < n and s[k] in " \t":
            k += 1
        ops.append((i, k + 1 if _pow_op_at(s, k) else k))
        i += op
    return ops


def power_height(s: str, max_ops: int = 200) -> int:
    """Height of the tallest power tower: ``5`` -> 0, ``5^5`` -> 1, ``5^{5^5}`` and
    ``2**30**5`` -> 2 (levels = height + 1).  More than ``max_ops`` operators: 99."""
    ops = _power_ops(s)
    if len(ops) > max_ops:
        return 99
    heights = [0] * len(ops)
    for idx in range(len(ops) - 1, -1, -1):  # inner (later) operators first
        pos, end = ops[idx]
        best, j = 0, idx + 1
        while j < len(ops) and ops[j][0] < end:
            best = max(best, heights[j])
            j += 1
        heights[idx] = 1 + best
    return max(heights, default=0)


def _exponents(s: str) -> list[str]:
    out = []
    i = 0
    while i < len(s):
        op = _pow_op_at(s, i)
        if op:
            content, _ = _read_group(s, i + op)
            out.append(content)
            i += op
        else:
            i += 1
    return out


def _nesting(s: str) -> int:
    depth = best = 0
    for c in s:
        if c in _OPENERS:
            depth += 1
            best = max(best, depth)
        elif c in _CLOSERS:
            depth = max(0, depth - 1)
    return best


def _foreign_letters(s: str) -> int:
    return sum(1 for c in s if ord(c) > 0x24F and c.isalpha() and not (0x370 <= ord(c) <= 0x3FF))


def _digits(run: str) -> int:
    return sum(ch.isdigit() for ch in run)


def _factorials(s: str) -> tuple[int, bool]:
    """(largest literal n in n!, whether a group containing powers/factorials is factorialed)."""
    biggest = 0
    for m in _FACT_LIT_RE.finditer(s):
        lit = m.group(1)
        biggest = max(biggest, int(lit) if len(lit) <= 60 else 10**60)
    group_fact = False
    if s.count("!") > 200:
        return biggest, True
    for i, c in enumerate(s):
        if c == "!" and i > 0:
            k = i - 1
            while k >= 0 and s[k] in " \t":
                k -= 1
            if k >= 0 and s[k] in ")}]":
                # find the opening bracket
                close_c = s[k]
                open_c = {")": "(", "}": "{", "]": "["}[close_c]
                depth, m = 0, k
                while m >= 0:
                    if s[m] == close_c:
                        depth += 1
                    elif s[m] == open_c:
                        depth -= 1
                        if depth == 0:
                            break
                    m -= 1
                inner = s[max(m, 0) : k]
                if "^" in inner or "**" in inner or "!" in inner:
                    group_fact = True
    return biggest, group_fact


@lru_cache(maxsize=4096)
def profile(s: str) -> dict:
    """Statistics the guards look at (used for relaxing limits to the gold's own shape)."""
    powers = s.count("^") + s.count("**")
    literal_digits = max((_digits(r) for r in _DIGIT_RUN_RE.findall(s)), default=0)
    if powers > _MAX_POWER_OPS:  # only reachable for a (trusted) gold: do not analyse
        height, exp_digits = 99, literal_digits
    else:
        height = power_height(s)
        exp_digits = max((_digits(r) for e in _exponents(s) for r in _DIGIT_RUN_RE.findall(e)), default=0)
    fact, group_fact = _factorials(s)
    return {
        "length": len(s),
        "power_height": height,
        "powers": powers,
        "exponent_digits": exp_digits,
        "literal_digits": literal_digits,
        "factorial": fact,
        "group_factorial": group_fact,
        "nesting": _nesting(s),
        "foreign_letters": _foreign_letters(s),
    }


@lru_cache(maxsize=4096)
def _relaxed(gold: str, limits: GuardLimits) -> GuardLimits:
    if len(gold) > 5000:  # absurd gold: only relax the length
        return replace(limits, max_length=max(limits.max_length, 2 * len(gold)))
    g = profile(gold)
    return GuardLimits(
        max_length=max(limits.max_length, 2 * g["length"] + 20),
        max_power_height=max(limits.max_power_height, g["power_height"]),
        max_powers=max(limits.max_powers, g["powers"]),
        max_exponent_digits=max(limits.max_exponent_digits, g["exponent_digits"]),
        max_literal_digits=max(limits.max_literal_digits, g["literal_digits"]),
        max_factorial=max(limits.max_factorial, g["factorial"]),
        max_nesting=max(limits.max_nesting, g["nesting"]),
        max_foreign_letters=max(limits.max_foreign_letters, g["foreign_letters"]),
    )


def check_answer(answer: str, gold: str | None = None, limits: GuardLimits | None = None) -> str | None:
    """``None`` if ``answer`` may be handed to sympy, else the reason for rejecting it."""
    lim = limits or DEFAULT_LIMITS
    if gold:
        lim = _relaxed(gold, lim)
    if len(answer) > lim.max_length:
        return "too_long"
    if _foreign_letters(answer) > lim.max_foreign_letters:
        return "non_math_text"
    if _nesting(answer) > lim.max_nesting:
        return "nesting_too_deep"
    if answer.count("^") + answer.count("**") > lim.max_powers:
        return "too_many_powers"
    p = profile(answer)
    if p["power_height"] > lim.max_power_height:
        return "power_tower"
    if p["exponent_digits"] > lim.max_exponent_digits:
        return "exponent_too_large"
    if p["literal_digits"] > lim.max_literal_digits:
        return "literal_too_long"
    if p["factorial"] > lim.max_factorial:
        return "factorial_too_large"
    if p["group_factorial"] and not (gold and profile(gold)["group_factorial"]):
        return "factorial_of_expression"
    return None
