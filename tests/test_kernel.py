"""%%ollama in a real kernel, checking what a front end receives over ZMQ."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from display_replay import shown_text
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
    """The update that holds the final answer: the output a saved notebook keeps."""
    updates = [m for m in run.of_type("update_display_data") if m.content["metadata"]]
    assert updates, [m.msg_type for m in run.messages]
    return updates[-1].content


def test_first_token_is_shown_while_the_model_is_still_working(kernel, fake):
    gate = Gate()
    fake.enqueue(Reply.answer(["Hello", " world"], gate=gate, gate_after=1))
    seen: list[str] = []

    def on_message(msg: Received, run: Execution) -> None:
        text = shown_text(run)
        if "Hello" in text and not seen:
            seen.append(text)
            gate.open()  # the server only continues once the first token was displayed

    run = kernel.execute("%%ollama llama3.2\nHi", on_message=on_message, timeout=30)
    gate.open()
    assert run.status == "ok"
    assert "Hello" in seen[0] and "world" not in seen[0]
    assert "Hello world" in shown_text(run)


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
        if "answer" in shown_text(run) and not interrupted:
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
    final = final_output(run)
    assert final["data"]["text/markdown"] == text
    assert text.startswith(final["data"]["text/plain"].rsplit("\n", 1)[0])
    assert kernel.value("ollama_response == " + repr(text))
