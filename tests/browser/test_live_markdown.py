"""The live answer in JupyterLab without a widget manager: Markdown rendered while it streams.

The server of this module runs JupyterLab with ``@jupyter-widgets/jupyterlab-manager``
disabled, as when the kernel has ipywidgets but the server lacks jupyterlab_widgets: the answer
must still stream, render, end once, survive a save and reload, and a kernel restart.
"""

from __future__ import annotations

from collections.abc import Iterator

import nbformat
import pytest

from ollama_magic.testing import FakeOllama

from .jupyter_ui import (
    ARTIFACTS,
    PLAN,
    JupyterServer,
    NotebookPage,
    assert_no_widget_left,
    gated_answer,
    missing,
    run_to_the_plan_list,
    write_notebook,
)

WIDGET_MANAGER = "@jupyter-widgets/jupyterlab-manager"


@pytest.fixture(scope="module")
def bare_lab(fake: FakeOllama, tmp_path_factory) -> Iterator[JupyterServer]:
    reason = missing("playwright", "jupyterlab")
    if reason:
        pytest.skip(reason)
    server = JupyterServer(
        "lab",
        tmp_path_factory.mktemp("bare-lab-root"),
        env={"OLLAMA_HOST": fake.host},
        log=ARTIFACTS / "bare-lab-server.log",
        disabled_extensions=(WIDGET_MANAGER,),
    ).start()
    yield server
    server.stop()


@pytest.fixture
def page(browser, bare_lab, fake) -> Iterator[NotebookPage]:
    fake.reset()
    context = browser.new_context(viewport={"width": 1100, "height": 820})
    context.set_default_timeout(30_000)
    tab = context.new_page()
    try:
        yield NotebookPage(tab, bare_lab)
    finally:
        context.close()
        bare_lab.shutdown_kernels()


def answer_text(nb: NotebookPage, index: int) -> str:
    return nb.output(index).inner_text()


def test_markdown_renders_while_streaming_and_does_not_change_at_the_end(page, bare_lab, fake):
    nb = page
    reply, gates = gated_answer(PLAN)
    fake.enqueue(reply)
    write_notebook(bare_lab.root / "live.ipynb", "%%ollama llama3.2\nMake a plan.")
    nb.open("live.ipynb")
    nb.start_kernel()
    output = nb.output(1)
    try:
        nb.run(1)
        assert gates[0].wait_reached(timeout=30)
        gates[0].open()
        # After the list: bold and list items are rendered, no raw Markdown syntax is shown.
        assert gates[1].wait_reached(timeout=30)
        output.locator("li").nth(1).wait_for()
        assert output.locator("li").all_inner_texts() == ["first step", "second step"]
        assert output.locator("strong").inner_text() == "second"
        live_text = answer_text(nb, 1)
        assert "**" not in live_text and "- " not in live_text
        gates[1].open()
        # Before the last part: the answer is still running, text is rendered Markdown.
        assert gates[2].wait_reached(timeout=30)
        nb.page.wait_for_function(
            "node => node.textContent.includes('Then run this:')",
            arg=output.element_handle(),
        )
        assert nb.prompt(1) == "[*]:"
        nb.screenshot(1, "bare-lab-streaming.png")
        before_code = output.locator(".jp-RenderedMarkdown").all_inner_texts()
        gates[2].open()
    finally:
        for gate in gates:
            gate.open()
    nb.wait_executed(1)
    code = output.locator("pre code")
    code.wait_for()
    assert code.inner_text().strip() == "print('done')"
    final = output.locator(".jp-RenderedMarkdown").first.inner_text()
    for block in before_code[:-1]:  # completed blocks read the same after the end
        assert block.strip() in final
    assert "Loading widget" not in answer_text(nb, 1)
    assert answer_text(nb, 1).count("first step") == 1
    assert_no_widget_left(nb, 1)
    nb.screenshot(1, "bare-lab-final.png")


@pytest.mark.parametrize("how", ["server", "toolbar"])
def test_restart_mid_answer_keeps_the_partial_text_through_save_and_reload(
    page, bare_lab, fake, how
):
    """A restart asked of the server (another tab, a script) lets the kernel's note reach the
    cell. JupyterLab's own restart button stops listening to the old kernel first, so there the
    cell keeps what it showed at that moment: the text that arrived, never less."""
    nb = page
    reply, gates = gated_answer(PLAN)
    fake.enqueue(reply)
    name = f"restart-{how}.ipynb"
    write_notebook(bare_lab.root / name, "%%ollama llama3.2\nMake a plan.")
    nb.open(name)
    nb.start_kernel()
    try:
        run_to_the_plan_list(nb, gates)
        if how == "toolbar":
            nb.restart()
            nb.wait_kernel_ready()
        else:
            kernel = bare_lab.api("GET", "/api/sessions")[0]["kernel"]["id"]
            bare_lab.api("POST", f"/api/kernels/{kernel}/restart", timeout=60)
            nb.output(1).get_by_text("the kernel stopped").wait_for()
        nb.save(name)
    finally:
        for gate in gates:
            gate.open()
    saved = nbformat.read(bare_lab.root / name, as_version=4)
    shown = "\n".join(o.get("data", {}).get("text/markdown", "") for o in saved.cells[1].outputs)
    assert "**second** step" in shown and "Here is a plan:" in shown
    if how == "server":
        assert "the kernel stopped (kernel shutdown for a restart) before the answer ended" in shown
    nb.reload(name)
    output = nb.output(1)
    output.locator("li").nth(1).wait_for()
    assert output.locator("strong").inner_text() == "second"
    assert "widget" not in output.inner_text().lower()  # no "Error displaying widget"
