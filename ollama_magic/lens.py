"""The teaching lens: an answer's tokens tinted by how sure the model was of each (HTML).

Pure functions over :class:`~ollama_magic.logprobs.Logprobs`; no IPython here. Every token and
alternative is model output, so all of it is escaped. The markup uses only what JupyterLab's
sanitiser keeps when it re-renders an untrusted notebook: ``span``/``div``/``table`` elements with
``title`` and inline ``background-color``, ``color``, ``border-bottom`` and ``white-space``
styles. Colour is never the only channel: each band also has its own underline, shown in the
legend, and every token's probability is in its tooltip.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from .logprobs import Logprobs
from .markdown import safe_markdown
from .result import OllamaResponse

#: (lowest probability, label, inline style). The first band has no mark at all, so the
#: usual, confident text stays quiet and costs few bytes.
BANDS: tuple[tuple[float, str, str], ...] = (
    (0.9, "90% or more", ""),
    (0.6, "60–90%", "background-color:#fff1b8;color:#000;border-bottom:1px dotted #8a6d00"),
    (0.3, "30–60%", "background-color:#ffd29e;color:#000;border-bottom:2px dashed #a34d00"),
    (0.1, "10–30%", "background-color:#ffab91;color:#000;border-bottom:2px solid #b02a00"),
    (0.0, "under 10%", "background-color:#ff7b7b;color:#000;border-bottom:3px double #7a0000"),
)
#: Tokens the summary lists as the least confident.
LEAST_CONFIDENT = 5
_PLAIN = "border-bottom:1px solid transparent"
_BOX = "white-space:pre-wrap;line-height:1.7;font-family:monospace"


def band(probability: float) -> int:
    """The index in :data:`BANDS` of a probability.

    >>> band(0.95), band(0.6), band(0.05)
    (0, 1, 4)
    """
    for index, (lowest, _, _) in enumerate(BANDS):
        if probability >= lowest:
            return index
    return len(BANDS) - 1


def shown(token: str) -> str:
    """A token as the tooltip names it: quoted, with whitespace made visible.

    >>> shown(" a\\n")
    '“ a\\\\n”'
    """
    visible = token.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
    return f"“{visible}”"


def percent(logprob: float) -> str:
    """A log-probability as a short percentage.

    >>> percent(0.0), percent(math.log(0.4213)), percent(-20)
    ('100%', '42.1%', '<0.1%')
    """
    p = math.exp(logprob) * 100
    if p >= 99.95:
        return "100%"
    if p < 0.05:
        return "<0.1%"
    return f"{p:.1f}%"


def tooltip(token: str, logprob: float, top: Sequence[tuple[str, float]]) -> str:
    """The tooltip text of one token: its probability, then the alternatives with theirs."""
    lines = [f"{shown(token)} {percent(logprob)} (logprob {logprob:.3f})"]
    lines += [f"{rank}. {shown(alt)} {percent(lp)}" for rank, (alt, lp) in enumerate(top, 1)]
    return "\n".join(lines)


def token_span(
    token: str, logprob: float, top: Sequence[tuple[str, float]], *, live: bool = False
) -> str:
    """One token as HTML: tinted and underlined by its band, with a tooltip (not ``live``)."""
    text = html.escape(token, quote=False)
    style = BANDS[band(math.exp(logprob))][2]
    if live:
        return f'<span style="{style}">{text}</span>' if style else text
    title = html.escape(tooltip(token, logprob, top), quote=True).replace("\n", "&#10;")
    styled = f' style="{style}"' if style else ""
    return f'<span{styled} title="{title}">{text}</span>'


def token_spans(
    logprobs: Logprobs, start: int = 0, end: int | None = None, *, live: bool = False
) -> str:
    """Tokens ``start:end`` as HTML spans, joined."""
    stop = len(logprobs) if end is None else end
    top = (lambda i: ()) if live else logprobs.top
    return "".join(
        token_span(logprobs.token(i), logprobs.logprob(i), top(i), live=live)
        for i in range(start, stop)
    )


def legend_html() -> str:
    """The key of the bands: a sample of each tint and underline with its probability range."""
    samples = "".join(
        f'<span style="{style or _PLAIN}">&nbsp;{label}&nbsp;</span> ' for _, label, style in BANDS
    )
    return (
        '<div style="font-size:small;margin-bottom:0.4em">How sure the model was of each token: '
        f"{samples}· hover a token for its alternatives</div>"
    )


def summary_text(logprobs: Logprobs, count: int = LEAST_CONFIDENT) -> str:
    """One line: perplexity, mean entropy over the alternatives and the least confident tokens."""
    parts = [f"{len(logprobs):,} tokens", f"perplexity {logprobs.perplexity:.3f}"]
    entropy = logprobs.mean_entropy
    if entropy is not None:
        parts.append(f"mean entropy {entropy:.3f} bits over the alternatives")
    sure = math.log(BANDS[0][0])
    least = [
        f"{shown(logprobs.token(i))} {percent(logprobs.logprob(i))}"
        for i in logprobs.least_confident(count)
        if logprobs.logprob(i) < sure
    ]
    parts.append("least confident: " + ", ".join(least) if least else "every token 90% or more")
    return " · ".join(parts)


def summary_html(logprobs: Logprobs, count: int = LEAST_CONFIDENT) -> str:
    return (
        '<div style="font-size:small;margin-top:0.4em">'
        f"{html.escape(summary_text(logprobs, count), quote=False)}</div>"
    )


def lens_html(logprobs: Logprobs, note: str = "") -> str:
    """The whole lens: legend, the tinted answer, the summary (and a closing note)."""
    closing = f'<div style="font-size:small"><em>{html.escape(note)}</em></div>' if note else ""
    return (
        f'<div class="ollama-magic-lens">{legend_html()}'
        f'<div style="{_BOX}">{token_spans(logprobs)}</div>'
        f"{summary_html(logprobs)}{closing}</div>"
    )


def no_logprobs_line(result: OllamaResponse) -> str:
    """Why the lens is missing, in one line (empty when the answer has logprobs)."""
    if result.logprobs or not result:
        return ""
    if (result.provenance or {}).get("replayed_from"):
        return (
            "This answer was replayed from the answer log, which keeps no token "
            "log-probabilities: run the cell without --cache to see the lens."
        )
    host = result.host or "the server"
    return (
        f"{host} sent no token log-probabilities, so there is no lens: Ollama returns them "
        "from version 0.12.11 (`ollama --version`); OpenAI-compatible servers need logprobs "
        "support."
    )


def plain(text: str, limit: int = 2000) -> str:
    """The ``text/plain`` fallback: the answer, or its start when it is long."""
    text = str.__str__(text)
    return (
        text if len(text) <= limit else f"{text[:limit]}… [{len(text) - limit:,} more characters]"
    )


def lens_bundle(result: OllamaResponse, out_name: str, note: str = "") -> dict[str, Any]:
    """The saved output: the lens as HTML, the answer as safe Markdown and as plain text."""
    markdown = safe_markdown(result) if result else ""
    notes = " ".join(part for part in (note, no_logprobs_line(result)) if part)
    if notes:
        markdown = (
            f"{markdown}\n\n*{safe_markdown(notes)}*" if markdown else f"*{safe_markdown(notes)}*"
        )
    markdown = markdown or "*(empty answer)*"
    data: dict[str, Any] = {"text/markdown": markdown, "text/plain": plain(result)}
    if result.logprobs:
        data["text/html"] = lens_html(result.logprobs, note)
        data["text/markdown"] += "\n\n" + safe_markdown(summary_text(result.logprobs))
    return data


def compare_lens_html(answers: dict[str, OllamaResponse]) -> str:
    """Several models' lenses side by side, one column each, under one legend."""
    cells = []
    for model, result in answers.items():
        body = (
            f'<div style="{_BOX}">{token_spans(result.logprobs)}</div>'
            f"{summary_html(result.logprobs)}"
            if result.logprobs
            else f"<div><em>{html.escape(no_logprobs_line(result) or 'no answer')}</em></div>"
        )
        cells.append(
            f'<td style="vertical-align:top;text-align:left;width:{100 // max(len(answers), 1)}%">'
            f"<strong>{html.escape(model)}</strong>{body}</td>"
        )
    return f"{legend_html()}<table><tr>{''.join(cells)}</tr></table>"
