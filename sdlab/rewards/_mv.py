r"""Worker-side math-verify calls (run inside :mod:`sdlab.rewards.pool` worker processes;
nothing here runs in the caller).

math-verify's own timeouts are disabled (``parsing_timeout=None``, ``timeout_seconds=None``):
they rely on ``SIGALRM`` (main thread only, whole seconds, cannot interrupt C code).  The
pool's parent enforces a wall-clock deadline by killing the worker instead.

Both sides are parsed as ``\boxed{<answer>}``: parsing a bare gold such as ``3\sqrt{2}`` or
``y=2x+3`` without an anchor extracts only ``3`` / ``2`` (math-verify 0.9.0), and wrapping
the prediction means repeated boxes in the response never reach math-verify (we pass only
the content of the last box).
"""

from __future__ import annotations

import logging
from functools import lru_cache

_CONFIGURED = False


def _setup() -> None:
    global _CONFIGURED
    if not _CONFIGURED:
        # we disable math-verify's timeouts on purpose; silence its warning about it
        logging.getLogger("math_verify").setLevel(logging.ERROR)
        _CONFIGURED = True


def wrap(answer: str) -> str:
    s = answer.strip()
    if "\\boxed" in s or "\\fbox" in s:
        return s
    s = s.replace("\\$", "\x00").strip("$").replace("\x00", "\\$").strip()
    return "\\boxed{" + s + "}"


def _parse(text: str) -> list:
    from math_verify import parse

    _setup()
    return parse(text, parsing_timeout=None)


@lru_cache(maxsize=2048)
def parse_gold(gold: str) -> list:
    return _parse(wrap(gold))


def gold_parses(gold: str) -> bool:
    """Whether math-verify can parse the gold answer (``parse(...) != []``)."""
    return bool(parse_gold(gold))


def mv_compare(gold: str, pred: str) -> str:
    """``"equal"`` | ``"different"`` | ``"pred_unparseable"`` | ``"gold_unparseable"``."""
    from math_verify import verify

    g = parse_gold(gold)
    if not g:
        return "gold_unparseable"
    p = _parse(wrap(pred))
    if not p:
        return "pred_unparseable"
    return "equal" if verify(g, p, timeout_seconds=None) else "different"


def self_test() -> None:
    r"""Run once at worker start: math-verify must import and decide ``\frac{1}{2}`` = ``0.5``
    (catches a missing antlr4 runtime, which makes ``parse`` return ``[]`` for everything)."""
    got = mv_compare(r"\frac{1}{2}", "0.5")
    if got != "equal":
        raise RuntimeError(rf"math-verify self-test failed: gold \frac{{1}}{{2}} vs 0.5 gave {got!r}, not 'equal'")
