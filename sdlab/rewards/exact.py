r"""Exact rational evaluation of purely numeric answers (the verifier's sympy-free fast path).

math-verify compares numbers after rounding (``float_rounding=6``, ``numeric_precision=15``),
so ``\frac{1}{2006!}`` vs ``\frac{1}{2004!}`` or ``\frac{1}{2^{98}}`` vs ``\frac{1}{2^{99}}``
come out *equal* (Math-Verify#14).  For answers that are pure arithmetic on literals we
can decide exactly with :class:`fractions.Fraction` instead.

:func:`exact_value` accepts, on a normalised answer (see ``extract.normalize_answer``):
integers and decimals, ``+ - * / \cdot \times \div``, parentheses and braces,
``\frac{a}{b}``, powers ``a^{n}`` / ``a**n`` with an integer exponent, and ``n!``.
Anything else (symbols, ``\sqrt``, ``\pi``, ``\pm``, implicit multiplication, ``%``,
double factorials...) returns ``None`` and the answer goes to math-verify.  Every
operation is capped (result size in bits, factorial argument, exponent), so evaluation
is bounded in time and memory; an answer that would exceed a cap also returns ``None``.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

__all__ = ["exact_value", "ExactNumber"]

MAX_BITS = 400_000  # ~120k decimal digits
MAX_FACTORIAL = 10_000
MAX_TOKENS = 400

_TOKEN_RE = re.compile(r"\d+(?:\.\d*)?|\.\d+|\\[A-Za-z]+|\*\*|[-+*/^!(){}]")


class ExactNumber(tuple):
    """(value: Fraction, has_decimal: bool) -- ``has_decimal`` marks a decimal literal, whose
    intended value may be a rounding (``0.333333`` for 1/3)."""

    __slots__ = ()

    def __new__(cls, value: Fraction, has_decimal: bool):
        return super().__new__(cls, (value, has_decimal))

    @property
    def value(self) -> Fraction:
        return self[0]

    @property
    def has_decimal(self) -> bool:
        return self[1]


class _Unsupported(Exception):
    pass


def _bits(x: Fraction) -> int:
    return max(x.numerator.bit_length(), x.denominator.bit_length())


def _check(x: Fraction) -> Fraction:
    if _bits(x) > MAX_BITS:
        raise _Unsupported("too large")
    return x


class _Parser:
    def __init__(self, tokens: list[str]):
        self.t = tokens
        self.i = 0
        self.decimal = False

    def peek(self) -> str | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (expected is not None and tok != expected):
            raise _Unsupported(f"expected {expected!r}")
        self.i += 1
        return tok

    # expr := term (('+'|'-') term)*
    def expr(self) -> Fraction:
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            rhs = self.term()
            value = _check(value + rhs if op == "+" else value - rhs)
        return value

    # term := unary (('*'|'/'|'\cdot'|'\times'|'\div') unary)*
    def term(self) -> Fraction:
        value = self.unary()
        while self.peek() in ("*", "/", "\\cdot", "\\times", "\\div"):
            op = self.take()
            rhs = self.unary()
            if op in ("/", "\\div"):
                if rhs == 0:
                    raise _Unsupported("division by zero")
                value = _check(value / rhs)
            else:
                value = _check(value * rhs)
        return value

    # unary := ('+'|'-') unary | power
    def unary(self) -> Fraction:
        if self.peek() in ("+", "-"):
            op = self.take()
            v = self.unary()
            return -v if op == "-" else v
        return self.power()

    # power := postfix (('^'|'**') unary)?     (right associative through unary)
    def power(self) -> Fraction:
        base = self.postfix()
        if self.peek() in ("^", "**"):
            op = self.take()
            if op == "^":
                nxt = self.peek()
                # LaTeX "2^10" means 2^1 * 0: only braces or a single digit are unambiguous
                if nxt is not None and nxt[0].isdigit() and len(nxt) > 1:
                    raise _Unsupported("ambiguous exponent")
            exp = self.unary()
            if exp.denominator != 1:
                raise _Unsupported("fractional exponent")
            e = exp.numerator
            if base == 0 and e < 0:
                raise _Unsupported("zero to negative power")
            if base in (0, 1):
                return base
            if base == -1:
                return Fraction(1 if e % 2 == 0 else -1)
            if abs(e) * _bits(base) > MAX_BITS:
                raise _Unsupported("power too large")
            return _check(base**e)
        return base

    # postfix := atom '!'*
    def postfix(self) -> Fraction:
        value = self.atom()
        while self.peek() == "!":
            self.take()
            if self.peek() == "!":
                raise _Unsupported("double factorial")
            if value.denominator != 1 or value < 0 or value > MAX_FACTORIAL:
                raise _Unsupported("factorial argument")
            value = _check(Fraction(math.factorial(int(value))))
        return value

    def atom(self) -> Fraction:
        tok = self.take()
        if tok[0].isdigit() or tok[0] == ".":
            if "." in tok:
                self.decimal = True
            return Fraction(tok)
        if tok == "(":
            v = self.expr()
            self.take(")")
            return v
        if tok == "{":
            v = self.expr()
            self.take("}")
            return v
        if tok == "\\frac":
            num = self.braced()
            den = self.braced()
            if den == 0:
                raise _Unsupported("division by zero")
            return _check(num / den)
        raise _Unsupported(f"token {tok!r}")

    def braced(self) -> Fraction:
        self.take("{")
        v = self.expr()
        self.take("}")
        return v


def exact_value(s: str | None) -> ExactNumber | None:
    """Exact value of a purely numeric normalised answer, or ``None`` (unsupported/capped)."""
    if not s or len(s) > 2000 or "%" in s:
        return None
    tokens = _TOKEN_RE.findall(s)
    if "".join(tokens) != s or len(tokens) > MAX_TOKENS:
        return None  # characters outside the numeric grammar (letters, spaces, commas...)
    p = _Parser(tokens)
    try:
        value = p.expr()
        if p.i != len(tokens):
            return None
    except (_Unsupported, ZeroDivisionError, ValueError, OverflowError, RecursionError):
        return None
    return ExactNumber(value, p.decimal)
