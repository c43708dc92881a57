"""%%ollama in a real kernel, checking what a front end receives over ZMQ."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kernel_driver import Execution, KernelDriver, Received, start_magic_kernel

from ollama_magic.testing import FakeOllama, Gate, Reply

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(models=("llama3.2", "qwen3:8b"), thinking_models=("qwen3:8b",)) as server:
        yield server


@pytest.fixture(scope="module")
def kernel(fake: FakeOllama) -> Iterator[KernelDriver]:
    with start_magic_kernel({"OLLAMA_HOST": fake.host}) as driver:
        yield driver


@pytest.fixture(autouse=True)
def _fresh_script(fake: FakeOllama) -> Iterator[None]:
    """Each test starts with an empty reply queue and no recorded requests."""
    fake.reset()
    yield
    fake.reset()


def final_output(run: Execution) -> dict:
    """The update that replaced the live widget: the output a saved notebook keeps."""
    updates = run.of_type("update_display_data")
    assert updates, [m.msg_type for m in run.messages]
    return updates[-1].content


def test_live_stream_then_markdown_replaces_widget(kernel, fake):
    tokens = [f" word{i}" for i in range(300)]
    fake.enqueue(Reply.answer(tokens))
    run = kernel.execute("%%ollama llama3.2\nCount.")
    assert run.status == "ok"
    text = "".join(tokens)
    # The live widget was displayed, with a display id to replace it later.
    shown = run.of_type("display_data")
    assert shown and WIDGET_MIME in shown[0].content["data"]
    display_id = shown[0].content["transient"]["display_id"]
    # Text reached the front end as deltas: every character exactly once, in order.
    assert run.stream_text == text
    # The final output replaces the widget in place, as plain Markdown + text.
    final = final_output(run)
    assert final["transient"]["display_id"] == display_id
    assert WIDGET_MIME not in final["data"]
    assert final["data"]["text/markdown"] == text
    # A long answer only begins in text/plain, which says where the whole text is.
    plain = final["data"]["text/plain"]
    head, pointer = plain.rsplit("\n", 1)
    assert 1000 <= len(head) <= 2000 and text.startswith(head)
    rest = len(text) - len(head)
    assert pointer == f"… [{rest:,} more characters; the whole answer is in `ollama_response`]"
    assert final["metadata"]["ollama_magic"]["done_reason"] == "stop"
    assert not run.of_type("execute_result")  # the magic returns nothing
    assert kernel.value("str(ollama_response) == " + repr(text))


def test_bytes_grow_linearly_and_updates_are_batched(kernel, fake):
    tokens = [f" t{i % 10}" for i in range(20_000)]  # sent as fast as the server can
    fake.enqueue(Reply.answer(tokens))
    run = kernel.execute("%%ollama llama3.2 -o long\nGo.")
    assert run.status == "ok"
    text_bytes = len("".join(tokens).encode())
    live = [m for m in run.messages if m.msg_type in ("stream", "comm_msg")]
    stream_msgs = run.of_type("stream")
    wire = sum(m.nbytes for m in live)
    # Linear: each update carries only new text, plus a bounded envelope.
    assert wire <= 2 * text_bytes + 1024 * len(live)
    assert sum(len(m.content["text"].encode()) for m in stream_msgs) == text_bytes
    # The saved output holds the answer once (as Markdown), not a second time as plain text.
    (final,) = run.of_type("update_display_data")
    assert text_bytes < final.nbytes < text_bytes + 5000
    # Batched: far fewer messages than tokens.
    assert len(stream_msgs) < len(tokens) / 10
    assert kernel.value("len(long)") == len("".join(tokens))


def test_first_token_is_shown_while_the_model_is_still_working(kernel, fake):
    gate = Gate()
    fake.enqueue(Reply.answer(["Hello", " world"], gate=gate, gate_after=1))
    seen: list[str] = []

    def on_message(msg: Received, run: Execution) -> None:
        if msg.msg_type == "stream":
            seen.append(msg.content["text"])
            gate.open()  # the server only continues once the first token was displayed

    run = kernel.execute("%%ollama llama3.2\nHi", on_message=on_message, timeout=30)
    gate.open()
    assert run.status == "ok"
    assert seen[0] == "Hello"
    assert "".join(seen) == "Hello world"


def test_status_line_reports_loading_then_tokens(kernel, fake):
    gate = Gate()
    fake.enqueue(Reply.answer(["a", "b"], before=gate))
    opened = []

    def on_message(msg: Received, run: Execution) -> None:
        if msg.msg_type == "comm_open" and not opened:
            opened.append(True)
            gate.open()

    run = kernel.execute("%%ollama llama3.2\nHi", on_message=on_message, timeout=30)
    gate.open()
    assert run.status == "ok"
    labels = [
        m.content["data"]["state"]["value"]
        for m in run.of_type("comm_open", "comm_msg")
        if "value" in m.content.get("data", {}).get("state", {})
        and isinstance(m.content["data"]["state"]["value"], str)
    ]
    assert any("loading model" in v for v in labels), labels
    assert any("answering" in v and " token" in v for v in labels), labels


def test_thinking_goes_to_its_own_section(kernel, fake):
    fake.enqueue(Reply.answer(["4"], thinking=["two", " plus two"]))
    run = kernel.execute("%%ollama qwen3:8b\n2+2?")
    assert run.status == "ok"
    assert run.stream_text == "two plus two4"  # both streamed live, into different outputs
    assert final_output(run)["data"]["text/plain"] == "4"
    assert kernel.value("ollama_response.thinking") == "two plus two"


def text_by_output_widget(run: Execution) -> dict[str | None, str]:
    """Replay a run as a front end does: which Output widget shows each piece of text.

    An Output widget shows the stream messages whose parent is the request its ``msg_id``
    names at the moment they arrive; text that no widget captures lands under ``None``.
    """
    capturing: dict[str, str] = {}
    shown: dict[str | None, str] = {}
    for m in run.messages:
        if m.msg_type in ("comm_open", "comm_msg"):
            state = m.content.get("data", {}).get("state", {})
            if "msg_id" in state:
                capturing[m.content["comm_id"]] = state["msg_id"]
        elif m.msg_type == "stream":
            parent = m.msg["parent_header"]["msg_id"]
            owner = next((c for c, mid in reversed(capturing.items()) if mid == parent), None)
            shown[owner] = shown.get(owner, "") + m.content["text"]
    return shown


@pytest.mark.parametrize("sender", ["iopub loop", "helper thread"])
def test_each_text_lands_in_its_own_output_widget(kernel, fake, sender):
    """Widget updates (which Output captures) and text keep their order, whoever sends them."""
    view = "__import__('ollama_magic.view').view"
    if sender == "iopub loop":  # what a standard ipykernel gets
        assert kernel.value(f"{view}._usable_iopub_thread(get_ipython().kernel) is not None")
    else:  # the fallback for kernels whose IOPub thread the package cannot use
        kernel.execute(
            f"_usable = {view}._usable_iopub_thread\n"
            f"{view}._usable_iopub_thread = lambda kernel: None"
        )
    answer = [f" a{i}" for i in range(200)]
    fake.enqueue(Reply.answer(answer, thinking=[f" t{i}" for i in range(200)]))
    try:
        run = kernel.execute("%%ollama qwen3:8b\n2+2?")
    finally:
        if sender != "iopub loop":
            kernel.execute(f"{view}._usable_iopub_thread = _usable")
    assert run.status == "ok"
    shown = text_by_output_widget(run)
    assert None not in shown, shown[None][:200]
    assert sorted(shown.values()) == sorted(
        ["".join(answer), kernel.value("ollama_response.thinking")]
    )


def test_untrusted_html_is_escaped_in_the_saved_output(kernel, fake):
    hostile = "<script>window.pwned=1</script> <img src=x onerror=alert(1)> `<b>code</b>`"
    fake.enqueue(Reply.answer([hostile]))
    run = kernel.execute("%%ollama llama3.2\nHi")
    md = final_output(run)["data"]["text/markdown"]
    assert "<script" not in md and "<img" not in md
    assert "`<b>code</b>`" in md  # code stays code
    assert kernel.value("str(ollama_response)") == hostile  # the variable is verbatim


def test_error_ends_cell_in_error_state_with_short_message(kernel, fake):
    run = kernel.execute("%%ollama llama9\nHi")
    assert run.status == "error"
    errors = run.of_type("error")
    assert len(errors) == 1
    traceback = "\n".join(errors[0].content["traceback"])
    assert "ollama pull llama9" in traceback
    assert "Traceback" not in traceback and len(traceback.splitlines()) <= 3
    assert kernel.value("ollama_response.error is not None")


def test_interrupt_stops_keeps_partial_and_hangs_up(kernel, fake):
    gate = Gate()
    fake.enqueue(Reply.answer(["partial", " answer", " never"], gate=gate, gate_after=2))
    interrupted: list[float] = []

    def on_message(msg: Received, run: Execution) -> None:
        if msg.msg_type == "stream" and "answer" in run.stream_text and not interrupted:
            interrupted.append(msg.time)
            kernel.km.interrupt_kernel()

    try:
        run = kernel.execute("%%ollama llama3.2\nHi", on_message=on_message, timeout=30)
    finally:
        gate.open()
    assert interrupted
    assert run.status == "error"
    assert run.reply["content"]["ename"] == "Interrupted"
    assert fake.wait_for_hangup(timeout=10)
    assert final_output(run)["data"]["text/plain"] == "partial answer"
    assert kernel.value("(str(ollama_response), ollama_response.interrupted)") == (
        "partial answer",
        True,
    )
    # The kernel is ready for the next cell.
    fake.enqueue(Reply.answer(["next"]))
    assert kernel.execute("%%ollama llama3.2\nAgain").status == "ok"


def test_interrupt_while_model_loads(kernel, fake):
    gate = Gate()
    fake.enqueue(Reply.stall(gate))
    sent: list[bool] = []

    def on_message(msg: Received, run: Execution) -> None:
        if msg.msg_type == "display_data" and not sent:
            sent.append(True)
            assert fake.wait_for_requests(1, timeout=10)  # the model is "loading"
            kernel.km.interrupt_kernel()

    try:
        run = kernel.execute("%%ollama llama3.2\nHi", on_message=on_message, timeout=30)
    finally:
        gate.open()
    assert run.reply["content"]["ename"] == "Interrupted"
    assert kernel.value("(str(ollama_response), ollama_response.interrupted)") == ("", True)


def test_cell_ids_from_the_front_end_key_conversation_turns(kernel, fake):
    fake.enqueue(Reply.answer(["A1"]), Reply.answer(["B1"]), Reply.answer(["A2"]))
    for cell_id, prompt in (("a", "first"), ("b", "second"), ("a", "first, edited")):
        run = kernel.execute(f"%%ollama llama3.2 --chat k\n{prompt}", cell_id=cell_id)
        assert run.status == "ok"
    history = "get_ipython().run_line_magic('ollama', 'history k').exchanges"
    assert kernel.value(f"[(e.prompt, e.answer) for e in {history}]") == [
        ("first, edited", "A2"),
        ("second", "B1"),
    ]


def test_thinking_section_collapses_when_the_answer_starts(kernel, fake):
    fake.enqueue(Reply.answer(["42"], thinking=["Let me see."]))
    run = kernel.execute("%%ollama qwen3:8b\nMeaning?")
    states = [
        m.content["data"]["state"]
        for m in run.of_type("comm_msg")
        if "state" in m.content.get("data", {})
    ]
    titles = [s["titles"] for s in states if "titles" in s]
    assert titles and titles[-1][0].startswith("Thought for")
    assert any(s.get("selected_index", 0) is None for s in states)


def test_trace_panel_shows_raw_lines_with_bounded_size(kernel, fake):
    fake.enqueue(Reply.answer([f" w{i}" for i in range(400)]))
    run = kernel.execute("%%ollama llama3.2 --trace\nGo")
    assert run.status == "ok"
    values = [
        m.content["data"]["state"]["value"]
        for m in run.of_type("comm_msg")
        if isinstance(m.content.get("data", {}).get("state", {}).get("value"), str)
        and m.content["data"]["state"]["value"].startswith("+")
    ]
    assert values
    last = values[-1].splitlines()
    assert len(last) == 200  # only the newest lines are kept
    assert '"done":true' in last[-1]
    assert run.stream_text == "".join(f" w{i}" for i in range(400))


def test_saved_output_carries_a_reproducibility_stamp(kernel, fake):
    fake.enqueue(Reply.answer(["ok"]))
    run = kernel.execute("%%ollama llama3.2 --seed 7 -t 0.1 --system 'Be brief.'\nHi")
    stamp = final_output(run)["metadata"]["ollama_magic"]
    assert stamp["model"] == "llama3.2"
    assert len(stamp["digest"]) == 64  # the exact weights, from /api/tags
    assert stamp["seed"] == 7 and stamp["options"] == {"temperature": 0.1, "seed": 7}
    assert stamp["system"] == "Be brief."
    assert stamp["host"] == f"http://{fake.host}"
    assert stamp["stats"]["eval_count"] == 1 and stamp["ollama_magic"]
    assert kernel.value("ollama_response.provenance['digest']") == stamp["digest"]
    assert kernel.value("ollama_response.request['options']['seed']") == 7


def test_text_beyond_latin1_arrives_intact_in_live_and_final_output(kernel, fake):
    # The view serialises these messages itself, in pieces; every character must survive.
    tokens = [f" café{i} 😀 “quoted” …" for i in range(200)]
    fake.enqueue(Reply.answer(tokens))
    run = kernel.execute("%%ollama llama3.2\nMixed.")
    assert run.status == "ok"
    text = "".join(tokens)
    assert run.stream_text == text
    final = final_output(run)
    assert final["data"]["text/markdown"] == text
    assert text.startswith(final["data"]["text/plain"].rsplit("\n", 1)[0])
    assert kernel.value("ollama_response == " + repr(text))
