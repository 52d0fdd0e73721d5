"""The report's HTML: sections, escaped tables, embedded PNG figures, marked epistemic words and
the self-contained page (inline CSS, no scripts, a Content-Security-Policy without network)."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from typing import Any, Sequence

__all__ = ["CSP", "Section", "esc", "figure_html", "fmt_num", "fmt_stat", "highlight_epistemic", "render_report",
           "slug", "table_html"]

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
SAMPLE_DISPLAY_CHARS = 6000


@dataclass
class Section:
    id: str
    title: str
    blocks: list[str]
    """HTML fragments (already escaped)."""
    intro: str = ""
    """Plain text shown under the heading (escaped when rendered)."""


def esc(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def figure_html(fig_id: str, png: bytes, caption: str, alt: str | None = None) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure id="{esc(fig_id)}"><img alt="{esc(alt or caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def table_html(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, table_id: str | None = None,
               raw: bool = False) -> str:
    """A table; cells are escaped unless raw=True (then they must be escaped HTML already)."""
    cell = (lambda c: str(c)) if raw else esc
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    attr = f' id="{esc(table_id)}"' if table_id else ""
    return f'<div class="scroll"><table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


_EPI_RE: re.Pattern | None = None


def highlight_epistemic(text: str) -> str:
    """HTML-escape `text` and wrap every epistemic word occurrence (the paper's case-insensitive
    substring rule, as counted by `count_epistemic(mode="paper")`) in <mark>."""
    global _EPI_RE
    if _EPI_RE is None:
        from ...analysis.epistemic import EPISTEMIC_WORDS

        _EPI_RE = re.compile("|".join(re.escape(w) for w in sorted(EPISTEMIC_WORDS, key=len, reverse=True)), re.I)
    out, pos = [], 0
    for m in _EPI_RE.finditer(text):
        out.append(html.escape(text[pos:m.start()]))
        out.append(f"<mark>{html.escape(m.group(0))}</mark>")
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


def clip(text: str, limit: int = SAMPLE_DISPLAY_CHARS) -> tuple[str, str, int]:
    """(head, tail, omitted characters) of a long text."""
    if len(text) <= limit:
        return text, "", 0
    head, tail = text[: int(limit * 0.75)], text[-int(limit * 0.25):]
    return head, tail, len(text) - len(head) - len(tail)


def fmt_num(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    v = float(v)
    if abs(v) < 0.5 * 10 ** -digits:
        v = 0.0  # no "-0.000"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.1f}"
    return f"{v:.{digits}f}"


def fmt_stat(s: dict[str, Any]) -> str:
    if not s or s.get("mean") is None:
        return "–"
    text = fmt_num(s["mean"])
    if s.get("ci_low") is not None:
        text += f" ± {fmt_num((s['ci_high'] - s['ci_low']) / 2)}"
    return f"{text} (n={s['n']})"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


CSS = """
body{font:14px/1.45 -apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1200px;
padding:1em 2em 4em;color:#1b1b1b;background:#fff}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
h3{margin-top:1.4em}.meta{color:#555}nav ul{columns:2;padding-left:1.2em}
figure{margin:1em 0;display:inline-block;max-width:100%}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#444;font-size:.92em;max-width:900px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:.5em 1.5em}
.grid figure{margin:.5em 0}
.scroll{overflow-x:auto}table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.3em .55em;text-align:left;vertical-align:top;white-space:nowrap}
th{background:#f4f6f8}tbody tr:nth-child(even){background:#fafafa}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:1em;margin:.5em 0 1.5em}
.pair pre{white-space:pre-wrap;word-break:break-word;background:#f8f8f8;border:1px solid #e3e3e3;padding:.7em;
margin:.3em 0;max-height:32em;overflow:auto;font-size:.85em}
mark{background:#ffe066;padding:0 .1em}.ok{color:#1a7f37}.bad{color:#c62828}.note{color:#666;font-size:.9em}
.omitted{display:block;color:#888;font-style:italic;margin:.4em 0}
"""


def render_report(sections: Sequence[Section], *, title: str, subtitle: str = "") -> str:
    """The HTML page: title, table of contents and sections (each section's blocks verbatim)."""
    toc = "".join(f'<li><a href="#{esc(s.id)}">{esc(s.title)}</a></li>' for s in sections)
    body = []
    for s in sections:
        intro = f"<p>{esc(s.intro)}</p>" if s.intro else ""
        body.append(f'<section id="{esc(s.id)}"><h2>{esc(s.title)}</h2>{intro}{"".join(s.blocks)}</section>')
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1><p class=\"meta\">{esc(subtitle)}</p>"
        f"<nav><ul>{toc}</ul></nav>{''.join(body)}</body></html>\n"
    )
