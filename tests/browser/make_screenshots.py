"""Make the README screenshots: a %%ollama cell mid-stream and finished, in JupyterLab.

    python tests/browser/make_screenshots.py [OUTPUT_DIR]   # default: docs/screenshots

Uses the same machinery as the browser tests (a fake Ollama in this process, JupyterLab on
loopback, Debian's headless Chromium). The answer is held at a gate half-way, so the
"streaming" picture always shows the same moment: thinking collapsed, status line counting,
the answer so far already rendered as Markdown (bold, the list).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
for _path in (HERE.parents[1], HERE.parent):  # the repository and tests/, run from anywhere
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from browser.jupyter_ui import (  # noqa: E402
    REPO,
    JupyterServer,
    NotebookPage,
    launch_chromium,
    write_notebook,
)
from ollama_magic.testing import FakeOllama, Gate, Reply, split_tokens  # noqa: E402

PROMPT = "What is a Python generator? Show a short example."
THINKING = (
    "The user wants a definition and an example. A generator is a function that uses "
    "yield; keep it short and show iteration."
)
ANSWER_HEAD = (
    "A **generator** is a function that *yields* values one at a time instead of "
    "returning a whole list. It pauses at each `yield` and resumes when asked for the "
    "next value, so:\n\n"
    "- it uses constant memory, even for huge or endless sequences;\n"
    "- values are computed only when they are needed.\n\n"
)
ANSWER_TAIL = (
    "```python\n"
    "def countdown(n):\n"
    "    while n > 0:\n"
    "        yield n\n"
    "        n -= 1\n"
    "\n"
    "for i in countdown(3):\n"
    "    print(i)  # 3, 2, 1\n"
    "```\n\n"
    "Call `next()` on it to step through by hand."
)


def scripted_answer(gate: Gate, delay: float = 0.03) -> Reply:
    steps: list = []
    for piece in split_tokens(THINKING):
        steps += [Reply.pause(delay), Reply.thinking(piece)]
    head = split_tokens(ANSWER_HEAD)
    for piece in head:
        steps += [Reply.pause(delay), Reply.token(piece)]
    steps.append(gate)
    for piece in split_tokens(ANSWER_TAIL):
        steps += [Reply.pause(delay / 3), Reply.token(piece)]
    steps.append(Reply.done())
    return Reply.stream(*steps)


def shoot(nb: NotebookPage, path: Path) -> None:
    """The notebook panel from its toolbar down to just below the last cell."""
    panel = nb.page.locator(".jp-NotebookPanel:visible").bounding_box()
    last = nb.cell(1).bounding_box()
    assert panel is not None and last is not None
    bottom = min(last["y"] + last["height"] + 12, panel["y"] + panel["height"])
    clip = {**panel, "height": bottom - panel["y"]}
    nb.page.screenshot(path=str(path), clip=clip)


def main(argv: list[str]) -> int:
    from playwright.sync_api import sync_playwright

    out = Path(argv[0]) if argv else REPO / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    gate = Gate()
    with (
        FakeOllama(models=("llama3.2",), thinking_models=("qwen3:8b",)) as fake,
        tempfile.TemporaryDirectory() as tmp,
    ):
        root = Path(tmp) / "root"
        root.mkdir()
        server = JupyterServer(
            "lab", root, {"OLLAMA_HOST": fake.host}, Path(tmp) / "server.log"
        ).start()
        try:
            fake.enqueue(scripted_answer(gate))
            write_notebook(root / "generators.ipynb", f"%%ollama qwen3:8b\n{PROMPT}")
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                page = browser.new_page(viewport={"width": 1000, "height": 760})
                nb = NotebookPage(page, server).open("generators.ipynb")
                page.keyboard.press("Control+B")  # hide the file browser
                nb.start_kernel()
                nb.run(1)
                assert gate.wait_reached(timeout=60)
                output = nb.output(1)
                output.locator("li").nth(1).wait_for()
                page.wait_for_function(
                    "node => node.textContent.includes('Thought for')"
                    " && node.textContent.includes('needed.')",
                    arg=output.element_handle(),
                )
                shoot(nb, out / "streaming.png")
                gate.open()
                nb.wait_executed(1)
                nb.markdown(1).locator("pre code").wait_for()
                page.wait_for_function(
                    "node => node.textContent.includes('tokens/s')",
                    arg=output.element_handle(),
                )
                shoot(nb, out / "final.png")
                browser.close()
        finally:
            gate.open()
            server.stop()
    print(f"wrote {out / 'streaming.png'} and {out / 'final.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
