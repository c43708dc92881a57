"""%%ollama in Notebook 7 (``jupyter notebook``), in headless Chromium.

Notebook 7 is built from JupyterLab's parts but is its own application (one document per page,
its own kernel status and widget manager set-up), so the live widget and its replacement are
checked there too.
"""

from __future__ import annotations

import nbformat

from .jupyter_ui import (
    PLAN,
    WIDGET_MIME,
    assert_no_widget_left,
    gated_answer,
    write_notebook,
)


def test_notebook7_streams_live_then_saves_plain_markdown(notebook7_page, root, fake):
    nb = notebook7_page
    reply, gates = gated_answer(PLAN)
    fake.enqueue(reply)
    write_notebook(root / "nb7.ipynb", "%%ollama llama3.2\nMake a plan.")
    nb.open("nb7.ipynb")
    nb.start_kernel()
    lengths = []
    try:
        nb.run(1)
        for number, gate in enumerate(gates):
            length, status = nb.wait_for_stage(1, PLAN, number, gate)
            lengths.append(length)
            assert status.startswith("llama3.2 · answering")
            if number == 1:
                nb.screenshot(1, "notebook7-streaming.png")
            gate.open()
    finally:
        for gate in gates:
            gate.open()
    nb.wait_executed(1)
    assert lengths == sorted(set(lengths)), lengths
    md = nb.markdown(1)
    md.wait_for()
    assert md.locator("pre code").inner_text().strip() == "print('done')"
    assert md.locator("li").count() == 2
    assert md.locator("em").inner_text() == "first"
    assert md.locator("strong").inner_text() == "second"
    assert_no_widget_left(nb, 1)
    nb.screenshot(1, "notebook7-final.png")

    nb.save("nb7.ipynb")
    saved = nbformat.read(root / "nb7.ipynb", as_version=4)
    assert "widgets" not in saved.metadata
    output, footer = saved.cells[1].outputs  # the answer, then the footer line
    assert footer.data["text/plain"].startswith("llama3.2 · ")
    assert output.output_type == "display_data" and WIDGET_MIME not in output.data
    assert output.data["text/plain"] == "".join(token for part in PLAN for token in part)
