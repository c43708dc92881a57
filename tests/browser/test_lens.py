"""The --logprobs lens in JupyterLab, in headless Chromium: tinted live, and after an untrusted
reload (JupyterLab then sanitises the saved HTML), with hostile tokens shown as text."""

from __future__ import annotations

import math

import nbformat

from ollama_magic.testing import Gate, Reply, Token

from .jupyter_ui import NotebookPage, assert_no_widget_left, write_notebook

HOSTILE = '<img src=x onerror="window.__pwned=1">'
STEPS = [
    Token("Canberra", math.log(0.42), (("Canberra", math.log(0.42)), (HOSTILE, math.log(0.3)))),
    Token(" is", 0.0, ((" is", 0.0), (" was", -9.0))),
    Token(HOSTILE, math.log(0.05), ((" it", math.log(0.6)), (HOSTILE, math.log(0.05)))),
]


def tinted(nb: NotebookPage, index: int) -> list[dict]:
    """Each token span of the saved lens: its text, tooltip and painted background."""
    return nb.output(index).evaluate(
        """node => Array.from(node.querySelectorAll('span[title]')).map(span => ({
            text: span.textContent, title: span.title,
            background: getComputedStyle(span).backgroundColor,
            underline: getComputedStyle(span).borderBottomStyle}))"""
    )


def check_lens(nb: NotebookPage, index: int) -> None:
    spans = tinted(nb, index)
    assert [s["text"] for s in spans] == ["Canberra", " is", HOSTILE]  # text, not an image
    assert nb.output(index).locator("img").count() == 0
    unpainted = ("rgba(0, 0, 0, 0)", "transparent")
    assert spans[0]["background"] not in unpainted and spans[0]["underline"] == "dashed"
    assert spans[1]["background"] in unpainted and spans[1]["underline"] == "none"
    assert spans[2]["underline"] == "double"
    assert "42.0%" in spans[0]["title"] and f"2. “{HOSTILE}” 30.0%" in spans[0]["title"]
    assert "perplexity" in nb.output(index).inner_text()
    assert nb.page.evaluate("typeof window.__pwned") == "undefined"


def test_lens_is_tinted_live_and_survives_an_untrusted_reload(lab_page, root, fake):
    nb = lab_page
    gate = Gate()
    fake.enqueue(Reply.stream(STEPS[0], STEPS[1], gate, STEPS[2], Reply.done()))
    write_notebook(root / "lens.ipynb", "%%ollama llama3.2 --logprobs 2\nThe capital?")
    nb.open("lens.ipynb")
    nb.start_kernel()
    try:
        nb.run(1)
        gate.wait_reached(30)
        live = nb.output(1).locator("span[style*='background-color']")
        live.first.wait_for()  # the first token, tinted while the answer streams
        assert live.first.inner_text() == "Canberra"
    finally:
        gate.open()
    nb.wait_executed(1)
    nb.output(1).locator("span[title]").nth(2).wait_for()
    check_lens(nb, 1)
    assert_no_widget_left(nb, 1)
    nb.save("lens.ipynb")

    # A copy with other content has no trusted signature: JupyterLab sanitises its HTML.
    saved = nbformat.read(root / "lens.ipynb", as_version=4)
    assert "text/html" in saved.cells[1].outputs[0].data
    saved.metadata["copied"] = True
    # Control: an attribute outside the sanitiser's list, which a trusted notebook would keep.
    saved.cells[1].outputs[0].data["text/html"] += '<b class="control" data-x="1">control</b>'
    nbformat.write(saved, root / "lens-copy.ipynb")
    nb.reload("lens-copy.ipynb")
    nb.output(1).locator("span[title]").nth(2).wait_for()
    control = nb.output(1).locator("b.control")
    assert control.inner_text() == "control" and control.get_attribute("data-x") is None
    check_lens(nb, 1)
    nb.screenshot(1, "lab-lens-untrusted.png")
