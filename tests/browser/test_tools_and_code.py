"""``--tools``, ``--code`` and ``%ollama fix`` in JupyterLab, in headless Chromium.

What a person sees: each tool call shown while the answer is still coming, then the answer,
both kept in the saved notebook; the code of an answer in a new cell below; a fix for a
failing cell below it, the failing cell untouched.
"""

from __future__ import annotations

import nbformat
from tool_replies import ollama_calls

from ollama_magic.testing import Gate, Reply

from .jupyter_ui import CELLS, NotebookPage, assert_no_widget_left, write_notebook

WEATHER = '''\
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"sunny, 21 C in {city}"
'''
ATTACK = "<img src=x onerror=window.__attacked=1>"


def open_and_start(nb: NotebookPage, root, name: str, *cells: str) -> None:
    write_notebook(root / name, *cells)
    nb.open(name)
    nb.start_kernel()


def source(nb: NotebookPage, index: int) -> str:
    return nb.cell(index).locator(".cm-content").inner_text()


def cell_count(nb: NotebookPage) -> int:
    return nb.page.locator(CELLS).count()


def test_tool_calls_show_as_they_happen_then_the_answer_and_both_are_saved(lab_page, root, fake):
    nb = lab_page
    answer_may_start = Gate()
    fake.enqueue(ollama_calls(("get_weather", {"city": "Paris"}, "c1"), ("shell", {"cmd": ATTACK})))
    fake.enqueue(Reply.answer(["No umbrella ", "*needed*."], before=answer_may_start))
    open_and_start(
        nb,
        root,
        "tools.ipynb",
        WEATHER,
        "%%ollama llama3.2 --tools get_weather -o umbrella\nUmbrella in Paris?",
    )
    nb.run_and_wait(1)
    try:
        nb.run(2)
        assert answer_may_start.wait_reached(timeout=30)
        # The model's second turn is held back: the calls are on screen, the answer is not.
        traces = nb.output(2).locator(".jp-RenderedMarkdown", has_text="▸ ")
        traces.nth(1).wait_for()
        nb.page.wait_for_function(
            "node => node.textContent.includes('Error: there is no tool named')",
            arg=traces.nth(1).element_handle(),
        )
        first, second = traces.nth(0).inner_text(), traces.nth(1).inner_text()
        assert 'get_weather(city="Paris")' in first and "→ sunny, 21 C in Paris" in first
        assert ATTACK in second  # shown as text
        assert nb.prompt(2) == "[*]:"
        nb.screenshot(2, "lab-tools-calls.png")
    finally:
        answer_may_start.open()
    nb.wait_executed(2)
    answer = nb.output(2).locator(".jp-RenderedMarkdown", has_text="No umbrella")
    answer.wait_for()
    assert answer.locator("em").inner_text() == "needed"
    assert traces.count() == 2  # the calls stay above the answer
    assert nb.output(2).locator("img").count() == 0
    assert nb.page.evaluate("() => window.__attacked === undefined")
    assert_no_widget_left(nb, 2)
    nb.screenshot(2, "lab-tools-final.png")
    nb.save("tools.ipynb")
    saved = nbformat.read(root / "tools.ipynb", as_version=4)
    kept = [
        o["data"]["text/markdown"]
        for o in saved.cells[2].outputs
        if not o.get("data", {}).get("text/markdown", "<small>").startswith("<small>")
    ]  # the calls and the answer, not the footer line under it
    assert len(kept) == 3
    assert 'get_weather(city="Paris")' in kept[0] and "→ sunny" in kept[0]
    assert "no tool named 'shell'" in kept[1]
    assert kept[2].startswith("No umbrella *needed*.")


def test_code_from_an_answer_appears_in_a_new_cell_below(lab_page, root, fake):
    nb = lab_page
    fake.enqueue(Reply.answer(["Like this:\n```python\n", "import math\n", "print(math.tau)\n```"]))
    open_and_start(nb, root, "code.ipynb", "%%ollama llama3.2 --code\nShow tau.")
    assert cell_count(nb) == 2
    nb.run_and_wait(1)
    nb.cell(2).wait_for()
    assert cell_count(nb) == 3
    assert source(nb, 1) == "%%ollama llama3.2 --code\nShow tau."
    assert source(nb, 2) == "import math\nprint(math.tau)"
    nb.screenshot(2, "lab-code-new-cell.png")


def test_fix_after_a_zero_division_inserts_the_fix_below_and_leaves_the_cell(lab_page, root, fake):
    nb = lab_page
    failing = "total = 10\ncount = 0\ntotal / count"
    fixed = "total = 10\ncount = 0\ntotal / count if count else 0"
    fake.enqueue(Reply.answer(["count is 0.\n\n```python\n", fixed, "\n```"]))
    open_and_start(nb, root, "fix.ipynb", failing, "%ollama fix llama3.2")
    nb.run_and_wait(1)
    assert nb.output(1).locator(".jp-RenderedText", has_text="ZeroDivisionError").count()
    nb.run_and_wait(2)
    nb.cell(3).wait_for()
    assert cell_count(nb) == 4
    assert source(nb, 1) == failing  # untouched
    assert source(nb, 3) == fixed
    (chat,) = [r.json() for r in fake.requests if r.path == "/api/chat"]
    prompt = chat["messages"][-1]["content"]
    assert failing in prompt and "ZeroDivisionError: division by zero" in prompt
    nb.screenshot(3, "lab-fix-new-cell.png")
