r"""Answer extraction and normalisation (pure Python, bounded time, no sympy).

Extraction
----------
* :func:`extract_boxed` returns the content of the **last** ``\boxed{...}`` / ``\fbox{...}``
  (brace matched, escaped braces ``\{`` ``\}`` ignored) or of the ``\boxed 5`` short form.
  An unterminated last box (``\boxed{5``) gives ``None``: the answer is incomplete, so it
  is treated as missing, never as the content of an earlier box.
* Policy for repeated boxes: **only the last box counts**.  ``\boxed{840} and \boxed{840}``
  therefore extracts ``840`` (correct for gold 840), and ``\boxed{1} ... \boxed{2}``
  extracts ``2``.  (math-verify 0.8/0.9 joins all boxes, reads ``840,840`` as a thousands
  separator and scores 840840; we do not.)
* :func:`extract_answer_line` returns the text after the last ``Answer:`` (DAPO style,
  case-insensitive, up to the end of that line).
* :func:`extract_answer` = last box, else last ``Answer:`` line, else ``None``.

Normalisation (:func:`normalize_answer`, used by the strict grader and the string fast path)
----------------------------------------------------------------------------------------------
Unwraps a box; removes ``$``, ``\(``/``\)``/``\[``/``\]``, ``\left``/``\right`` (and
``\big`` sizes), ``\displaystyle``, spacing macros; unwraps ``\text{..}``, ``\textbf``,
``\mathrm``, ``\mbox``, ...; ``\dfrac``/``\tfrac`` -> ``\frac``; ``\frac12`` ->
``\frac{1}{2}``, ``\sqrt2`` -> ``\sqrt{2}``; removes degrees (``^\circ``, ``°``) and
percent signs; removes thousands separators (``1,000`` and ``1{,}000``); drops a leading
single-letter assignment (``x=5`` -> ``5``); drops trailing full stops and all whitespace;
canonicalises plain numbers (``027`` / ``27.0`` / ``+27`` -> ``27``, ``0.50`` -> ``0.5``).
"""

from __future__ import annotations

import re

__all__ = [
    "extract_boxed",
    "extract_answer_line",
    "extract_answer",
    "normalize_answer",
    "strip_math_delimiters",
    "find_matching_brace",
]

MAX_NORMALIZE_CHARS = 2000
"""Answers longer than this get only whitespace and ``$`` removal."""

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_ANSWER_LINE_RE = re.compile(r"(?i)answer\s*:[ \t]*([^\n]*)")


def find_matching_brace(s: str, open_idx: int) -> int | None:
    """Index of the ``}`` closing the ``{`` at ``open_idx``; ``None`` if unterminated.

    A backslash escapes the next character, so ``\\{`` and ``\\}`` do not count."""
    depth = 0
    i, n = open_idx, len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def extract_boxed(text: str | None) -> str | None:
    r"""Content of the last ``\boxed{..}`` / ``\fbox{..}`` (or ``\boxed 5``) in ``text``.

    ``None`` when there is no box, when the last box is unterminated, or when it is empty
    (``\boxed{}``, ``\boxed{ }``)."""
    if not text:
        return None
    last = None
    for m in _BOX_RE.finditer(text):
        last = m
    if last is None:
        return None
    i, n = last.end(), len(text)
    while i < n and text[i] in " \t":
        i += 1
    if i >= n:
        return None
    if text[i] == "{":
        j = find_matching_brace(text, i)
        if j is None:
            return None
        content = text[i + 1 : j]
    else:
        if i == last.end():  # "\boxedx": not the short form, just an unknown macro
            return None
        m = re.match(r"[^\s$]+", text[i:])
        content = m.group(0) if m else ""
    content = content.strip()
    return content or None


def extract_answer_line(text: str | None) -> str | None:
    """Text after the last ``Answer:`` (case-insensitive) up to the end of its line."""
    if not text:
        return None
    last = None
    for m in _ANSWER_LINE_RE.finditer(text):
        last = m
    if last is None:
        return None
    content = last.group(1).strip()
    return content or None


def extract_answer(text: str | None) -> str | None:
    """Last box; else last ``Answer:`` line (whose own box, if any, is unwrapped); else None."""
    boxed = extract_boxed(text)
    if boxed is not None:
        return boxed
    if text and _BOX_RE.search(text):
        return None  # a box exists but is unterminated/empty: do not fall back to prose
    return extract_answer_line(text)


# --------------------------------------------------------------------------- normalisation

_TEXT_MACROS = (
    "text", "textbf", "textit", "textrm", "textsf", "texttt", "textnormal", "mathrm", "mathbf",
    "mathit", "mathsf", "mathtt", "mathnormal", "boldsymbol", "mbox", "hbox", "operatorname",
)
_TEXT_RE = re.compile(r"\\(?:" + "|".join(_TEXT_MACROS) + r")\s*\{")
_SIZE_RE = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?:l|r|m)?(?![A-Za-z])")
_SPACING_RE = re.compile(r"\\(?:,|!|;|:|>| |quad(?![A-Za-z])|qquad(?![A-Za-z])|displaystyle(?![A-Za-z])"
                         r"|limits(?![A-Za-z]))")
_DEGREE_RE = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![A-Za-z])|\\degree(?![A-Za-z])|°")
_THOUSANDS_RE = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_NUMBER_RE = re.compile(r"([+-]?)(\d*)(?:\.(\d*))?")
_ASSIGN_RE = re.compile(r"^[A-Za-z]=(?!=)")


def _unwrap_macro(s: str, pattern: re.Pattern) -> str:
    """Replace ``\\macro{content}`` by ``content`` (brace matched), repeatedly."""
    for _ in range(200):  # bounded: every pass removes one macro
        m = pattern.search(s)
        if m is None:
            break
        open_idx = m.end() - 1
        close = find_matching_brace(s, open_idx)
        if close is None:
            s = s[: m.start()] + s[m.end() :]
        else:
            s = s[: m.start()] + s[open_idx + 1 : close] + s[close + 1 :]
    return s


def strip_math_delimiters(s: str) -> str:
    r"""Remove ``\$``, ``$`` and ``\(`` ``\)`` ``\[`` ``\]`` delimiters."""
    s = s.replace("\\$", "").replace("$", "")
    s = re.sub(r"\\[()\[\]]", "", s)
    return s.strip()


def _canonical_number(s: str) -> str:
    m = _NUMBER_RE.fullmatch(s)
    if m is None or not (m.group(2) or m.group(3)):
        return s
    sign, intpart, frac = m.group(1), m.group(2), m.group(3) or ""
    intpart = intpart.lstrip("0") or "0"
    frac = frac.rstrip("0")
    out = intpart + ("." + frac if frac else "")
    if sign == "-" and out != "0":
        out = "-" + out
    return out


def _unwrap_outer_braces(s: str) -> str:
    """``{{5}}`` -> ``5`` (only braces that enclose the whole string), in one linear pass."""
    if not s.startswith("{"):
        return s
    n = len(s)
    match: dict[int, int] = {}
    stack: list[int] = []
    i = 0
    while i < n:
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            match[stack.pop()] = i
        i += 1
    k = 0
    while 2 * k + 1 < n and s[k] == "{" and match.get(k) == n - 1 - k:
        k += 1
    return s[k : n - k] if k else s


def normalize_answer(answer: str | None) -> str:
    """Canonical string form of an answer for exact comparison ("" for nothing)."""
    if answer is None:
        return ""
    s = str(answer).strip()
    if len(s) > MAX_NORMALIZE_CHARS:
        # far longer than any real answer: only cheap linear clean-up, so that normalising
        # adversarial input stays fast (an identical long gold still compares equal)
        return re.sub(r"\s+", "", s.replace("$", ""))
    if _BOX_RE.search(s):
        boxed = extract_boxed(s)
        s = boxed if boxed is not None else ""  # empty or unterminated box: nothing
    s = strip_math_delimiters(s)
    s = s.replace("\u2212", "-").replace("\u00a0", " ")
    s = _SIZE_RE.sub("", s)
    s = _unwrap_macro(s, _TEXT_RE)
    s = _DEGREE_RE.sub("", s)
    s = _SPACING_RE.sub("", s)
    s = s.replace("\\%", "").replace("%", "")
    s = re.sub(r"\\[dt]frac(?![A-Za-z])", r"\\frac", s)
    s = re.sub(r"\s+", "", s)
    s = s.replace("{,}", ",")
    s = _THOUSANDS_RE.sub("", s)
    # \frac12 -> \frac{1}{2}, \frac1{2} -> \frac{1}{2}, \frac{1}2 -> \frac{1}{2}; \sqrt2 -> \sqrt{2}
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac(\d)\{", r"\\frac{\1}{", s)
    s = re.sub(r"\\frac(\{[^{}]*\})(\d)", r"\\frac\1{\2}", s)
    s = re.sub(r"\\sqrt(\d)", r"\\sqrt{\1}", s)
    s = s.rstrip(".")
    s = _ASSIGN_RE.sub("", s)
    s = _unwrap_outer_braces(s)
    s = _canonical_number(s)
    return s
