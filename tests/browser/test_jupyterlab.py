"""%%ollama in JupyterLab, in headless Chromium: what a person sees while and after it streams.

The fake Ollama holds each answer at gates, so every snapshot of the page is taken at a known
point of the stream: the test waits (Playwright) until the page shows exactly the text sent so
far, looks, then opens the next gate. Screenshots go to test-artifacts/browser/.
"""

from __future__ import annotations

import subprocess
import sys

import nbformat

from ollama_magic.testing import Gate, Reply

from .jupyter_ui import (
    PLAN,
    WIDGET_MIME,
    NotebookPage,
    assert_no_widget_left,
    flush_tasks,
    gated_answer,
    run_to_the_plan_list,
    write_notebook,
)


def open_and_start(nb: NotebookPage, root, name: str, *cells: str) -> None:
    write_notebook(root / name, *cells)
    nb.open(name)
    nb.start_kernel()


def test_text_grows_live_as_markdown_and_ends_as_one_answer(lab_page, root, fake):
    nb = lab_page
    reply, gates = gated_answer(PLAN)
    fake.enqueue(reply)
    open_and_start(nb, root, "stream.ipynb", "%%ollama llama3.2\nMake a plan.")
    try:
        nb.run(1)
        lengths: list[int] = []
        statuses: list[str] = []
        for number, gate in enumerate(gates):
            length, status = nb.wait_for_stage(1, PLAN, number, gate)
            lengths.append(length)
            statuses.append(status)
            assert nb.prompt(1) == "[*]:"  # still running
            nb.screenshot(1, f"lab-streaming-{number + 1}.png")
            gate.open()
    finally:
        for gate in gates:
            gate.open()
    nb.wait_executed(1)
    assert lengths == sorted(lengths) and len(set(lengths)) == len(lengths), lengths
    for status in statuses:
        assert status.startswith("llama3.2 · answering") and "tokens" in status, statuses
    md = nb.markdown(1)
    md.wait_for()
    assert md.locator("pre code").inner_text().strip() == "print('done')"
    assert md.locator("li").all_inner_texts() == ["first step", "second step"]
    assert md.locator("em").inner_text() == "first"
    assert md.locator("strong").inner_text() == "second"
    assert nb.output(1).inner_text().count("first step") == 1
    assert nb.status(1).inner_text().startswith("llama3.2 · ")  # the footer
    assert_no_widget_left(nb, 1)
    nb.screenshot(1, "lab-final.png")


def test_thinking_shows_while_thinking_and_collapses_when_the_answer_starts(lab_page, root, fake):
    nb = lab_page
    thought, answered = Gate(), Gate()
    fake.enqueue(
        Reply.stream(
            Reply.thinking("Six"),
            Reply.pause(0.05),
            Reply.thinking(" times seven."),
            thought,
            Reply.token("It is"),
            Reply.pause(0.05),
            Reply.token(" *42*."),
            answered,
            Reply.done(),
        )
    )
    open_and_start(nb, root, "think.ipynb", "%%ollama qwen3:8b\n6 × 7?")
    output = nb.output(1)
    try:
        nb.run(1)
        assert thought.wait_reached(timeout=30)
        details = nb.thinking(1)
        nb.page.wait_for_function(
            "node => node.textContent.includes('Six times seven.')", arg=output.element_handle()
        )
        assert details.locator("summary").inner_text() == "Thinking…"
        assert details.get_attribute("open") is not None
        assert "thinking" in nb.status(1).inner_text()
        nb.screenshot(1, "lab-thinking.png")
        thought.open()
        assert answered.wait_reached(timeout=30)
        nb.page.wait_for_function(
            "node => node.textContent.includes('Thought for')", arg=output.element_handle()
        )
        details = nb.thinking(1)
        assert details.get_attribute("open") is None  # collapsed
        assert not details.get_by_text("Six times seven.").is_visible()
        nb.page.wait_for_function(
            "node => node.textContent.includes('It is 42.')", arg=output.element_handle()
        )
        assert "answering" in nb.status(1).inner_text()
        nb.screenshot(1, "lab-thought.png")
    finally:
        thought.open()
        answered.open()
    nb.wait_executed(1)
    md = nb.markdown(1)
    md.wait_for()
    assert md.inner_text().strip() == "It is 42."
    assert md.locator("em").inner_text() == "42"
    assert "Six times" not in md.inner_text()  # thinking is not part of the answer
    assert_no_widget_left(nb, 1)


def test_answers_that_arrive_at_once_end_as_their_final_markdown(lab_page, root, fake):
    """Unpaced answers with thinking: the collapse, the final answer and the footer arrive
    back to back, in several cells one after the other."""
    nb = lab_page
    cells = [f"%%ollama qwen3:8b\nQuestion {n}" for n in range(3)]
    for n in range(3):
        fake.enqueue(Reply.answer([f"**Answer {n}**"], thinking=[f"thought {n}"]))
    open_and_start(nb, root, "race.ipynb", *cells)
    for n in range(3):
        nb.run_and_wait(n + 1)
    for n in range(3):
        md = nb.markdown(n + 1)
        md.wait_for()
        assert md.locator("strong").inner_text() == f"Answer {n}"
        assert_no_widget_left(nb, n + 1)


def test_unknown_model_is_a_short_error_and_the_next_cell_works(lab_page, root, fake):
    nb = lab_page
    open_and_start(nb, root, "error.ipynb", "%%ollama nosuchmodel\nHi", "%%ollama llama3.2\nAgain")
    nb.run_and_wait(1)
    error = nb.errors(1)
    error.wait_for()
    text = error.inner_text().strip()
    assert text.startswith("Model not found"), text
    assert "ollama pull nosuchmodel" in text
    assert "Traceback" not in text and len(text.splitlines()) <= 3, text
    assert_no_widget_left(nb, 1)
    nb.run_and_wait(2)
    assert nb.markdown(2).inner_text().strip() == "You said: Again"
    nb.screenshot(1, "lab-error.png")


def test_stop_button_ends_the_stream_and_keeps_the_partial_text(lab_page, root, fake):
    nb = lab_page
    gate = Gate()
    fake.enqueue(
        Reply.answer(["Partial", " answer", " never", " sent"], gate=gate, gate_after=2, delay=0.05)
    )
    open_and_start(nb, root, "stop.ipynb", "%%ollama llama3.2\nTalk.")
    try:
        nb.run(1)
        assert gate.wait_reached(timeout=30)
        nb.wait_text(nb.live_answer(1), "Partial answer")
        nb.interrupt()
        nb.wait_executed(1)
        assert fake.wait_for_hangup(timeout=10)
    finally:
        gate.open()
    md = nb.markdown(1)
    md.wait_for()
    assert md.inner_text().startswith("Partial answer")
    assert "stopped after 14 characters" in md.inner_text()
    assert "never" not in nb.output(1).inner_text()
    assert nb.errors(1).inner_text().startswith("Interrupted")
    assert_no_widget_left(nb, 1)
    nb.screenshot(1, "lab-interrupted.png")


HOSTILE = (
    "Careful: <script>window.__pwned=1</script> and "
    '<img src=x onerror="window.__pwned=2"> and [click](javascript:window.__pwned=3) done.'
)


def test_untrusted_answer_cannot_run_script(lab_page, root, fake):
    nb = lab_page
    dialogs: list[str] = []

    def on_dialog(dialog) -> None:  # alert(), confirm(): only script can open one
        dialogs.append(dialog.message)
        dialog.dismiss()

    nb.page.on("dialog", on_dialog)
    fake.enqueue(Reply.answer([HOSTILE[:14], HOSTILE[14:50], HOSTILE[50:]]))
    open_and_start(nb, root, "hostile.ipynb", "%%ollama llama3.2\nHi")
    nb.run_and_wait(1)
    md = nb.markdown(1)
    md.wait_for()
    output = nb.output(1)
    assert output.locator("script").count() == 0
    assert output.locator("img").count() == 0
    assert "<script>window.__pwned=1</script>" in md.inner_text()  # shown as text
    assert '<img src=x onerror="window.__pwned=2">' in md.inner_text()
    links = md.locator("a")
    for number in range(links.count()):
        href = links.nth(number).get_attribute("href") or ""
        assert not href.strip().lower().startswith("javascript:"), href
    popups: list = []

    def on_page(page) -> None:
        popups.append(page)

    nb.page.context.on("page", on_page)
    link = md.get_by_text("click", exact=True)
    if link.count():
        link.click()
        flush_tasks(nb.page)
    for page in [nb.page, *popups]:
        assert page.evaluate("typeof window.__pwned") == "undefined", page.url
    # Control: the same click on a live javascript: link in the same place does run it.
    md.evaluate(
        """node => { const a = document.createElement('a'); a.className = 'control';
                    a.href = 'javascript:window.__control = 1'; a.textContent = 'control';
                    node.appendChild(a); }"""
    )
    md.locator("a.control").click()
    nb.page.wait_for_function("() => window.__control === 1")
    nb.page.remove_listener("dialog", on_dialog)
    nb.page.context.remove_listener("page", on_page)
    for popup in popups:
        popup.close()
    assert not dialogs
    assert_no_widget_left(nb, 1)


def test_saved_notebook_keeps_the_answer_without_widget_state(lab_page, root, fake):
    nb = lab_page
    answer = "Two things:\n\n1. **alpha**\n2. `beta`\n"
    fake.enqueue(Reply.answer(["Two things:\n\n", "1. **alpha**\n", "2. `beta`\n"], delay=0.02))
    open_and_start(nb, root, "saved.ipynb", "%%ollama llama3.2\nList two things.")
    nb.run_and_wait(1)
    nb.markdown(1).locator("strong").wait_for()
    nb.save("saved.ipynb")

    nb.reload("saved.ipynb")
    md = nb.markdown(1)
    md.wait_for()
    assert md.locator("strong").inner_text() == "alpha"
    assert md.locator("code").inner_text() == "beta"
    assert_no_widget_left(nb, 1)

    saved = nbformat.read(root / "saved.ipynb", as_version=4)
    assert "widgets" not in saved.metadata
    outputs = saved.cells[1].outputs
    # The answer, then the footer line.
    assert [o.output_type for o in outputs] == ["display_data", "display_data"]
    assert outputs[1].data["text/plain"].startswith("llama3.2 · ")
    assert WIDGET_MIME not in outputs[0].data
    assert outputs[0].data["text/plain"] == answer
    assert "**alpha**" in outputs[0].data["text/markdown"]

    html = subprocess.run(
        [sys.executable, "-m", "nbconvert", "--to", "html", "--stdout", str(root / "saved.ipynb")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "<strong>alpha</strong>" in html and "<code>beta</code>" in html
    assert WIDGET_MIME not in html


def test_page_reload_mid_answer_shows_the_text_so_far_and_the_kernel_finishes(lab_page, root, fake):
    nb = lab_page
    reply, gates = gated_answer(PLAN)
    fake.enqueue(reply)
    open_and_start(
        nb, root, "reload.ipynb", "%%ollama llama3.2\nMake a plan.", "print(len(ollama_response))"
    )
    try:
        run_to_the_plan_list(nb, gates)
        nb.save("reload.ipynb")
        # A browser reload while the kernel is still streaming the answer.
        nb.reload("reload.ipynb")
        output = nb.output(1)
        output.locator("li").nth(1).wait_for()
        assert output.locator("strong").inner_text() == "second"
        assert_no_widget_left(nb, 1)
    finally:
        for gate in gates:
            gate.open()
    # The kernel went on: the next cell, queued behind the answer, sees all of it.
    nb.wait_kernel_ready()
    nb.run_and_wait(2)
    whole = sum(len("".join(part)) for part in PLAN)
    nb.wait_text(nb.output(2), str(whole))
    assert_no_widget_left(nb, 1)
