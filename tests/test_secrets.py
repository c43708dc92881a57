"""The API key never reaches the user: not in errors, not in the variable, not in the log.

A misconfigured proxy or server that answers ``200 text/html`` (or an error page) echoing the
request's headers puts ``Authorization: Bearer <key>`` in the body the client quotes. Each
path below is a real HTTP exchange with the fake server, through the magic in IPython.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from ollama_magic.errors import OllamaMagicError, scrub_text
from ollama_magic.testing import Reply
from ollama_magic.testing_openai import FakeOpenAI

KEY = "sk-live-4f9c2b7e81d04a6f9e3c5b2a7d1e8f60"
CHAT = "/v1/chat/completions"


@pytest.fixture
def openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeOpenAI(models=("llama3.2",), api_key=KEY) as fake:
        yield fake


def everything_shown(error: BaseException) -> str:
    """Every text of the error a user or a later cell can see."""
    assert isinstance(error, OllamaMagicError)
    parts = [str(error), repr(error), error.message, *error._render_traceback_()]
    parts.append(str(getattr(error, "error", "")))
    return "\n".join(parts)


def assert_no_key(text: str) -> None:
    assert KEY not in text
    assert KEY[3:15] not in text  # no recognisable piece of it either
    assert "Bearer sk" not in text


def test_the_key_is_really_sent_and_echoed(openai):
    """The fake echoes what it got: without scrubbing, the key would be in the body."""
    openai.enqueue_for(CHAT, Reply.echo_request())
    import requests

    body = requests.post(openai.url_v1 + "/chat/completions", headers={"Authorization": KEY}).text
    assert KEY in body


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(Reply.echo_request(200), id="200-html"),
        pytest.param(Reply.echo_request(500), id="500-html"),
        pytest.param(Reply.echo_request(401), id="401-html"),
        pytest.param(Reply.echo_request(404), id="404-html"),
        pytest.param(Reply.echo_request(200, "text/plain"), id="200-text"),
    ],
)
def test_an_echoed_key_is_not_in_the_chat_error(shell, openai, capsys, reply):
    openai.enqueue_for(CHAT, reply)
    result = shell.run_cell(f"%%ollama llama3.2 --host {openai.url_v1}\nHi")
    assert openai.requests[-1].header("Authorization") == f"Bearer {KEY}"
    error = result.error_in_exec
    shown = everything_shown(error)
    assert_no_key(shown)
    assert "***" in shown or "Authorization" not in shown  # the echo is shown, key hidden
    assert_no_key(repr(shell.user_ns["ollama_response"]))
    assert_no_key(repr(shell.user_ns["ollama_response"].error))
    out = capsys.readouterr()
    assert_no_key(out.out + out.err)


def test_an_echoed_key_is_not_in_the_model_list_error(shell, openai, capsys):
    openai.enqueue_for("/v1/models", Reply.echo_request(200))
    result = shell.run_cell(f"%ollama list --host {openai.url_v1}")
    if result.error_in_exec is None:  # the list command may not take --host: use the config
        shell.run_line_magic("config", f"OllamaMagics.host = {openai.url_v1!r}")
        try:
            openai.enqueue_for("/v1/models", Reply.echo_request(200))
            result = shell.run_cell("%ollama list")
        finally:
            shell.run_line_magic("config", "OllamaMagics.host = ''")
    assert_no_key(everything_shown(result.error_in_exec))
    out = capsys.readouterr()
    assert_no_key(out.out + out.err)


def test_an_echoed_key_is_not_in_the_trace(shell, openai):
    """A stream that quotes the header in an event: --trace shows the lines, never the key."""
    openai.enqueue_for(
        CHAT,
        Reply.raw(
            200,
            f'data: {{"error": {{"message": "bad header Authorization: Bearer {KEY}"}}}}\n\n',
            "text/event-stream",
        ),
    )
    result = shell.run_cell(f"%%ollama llama3.2 --trace --host {openai.url_v1}\nHi")
    assert_no_key(everything_shown(result.error_in_exec))
    answer = shell.user_ns["ollama_response"]
    assert_no_key("\n".join(str(line) for line in getattr(answer, "trace", []) or []))


def test_a_key_cut_short_by_a_snippet_is_still_hidden():
    assert_no_key(scrub_text(f"... x-api-key: {KEY[:20]}…", [KEY]))


def test_an_echoed_key_is_in_no_message_of_a_real_kernel(openai):
    """What the notebook receives: every IOPub message of the cell, and the saved value."""
    from kernel_driver import start_magic_kernel

    openai.enqueue_for(CHAT, Reply.echo_request(200))
    with start_magic_kernel({"OPENAI_API_KEY": KEY}) as kernel:
        run = kernel.execute(f"%%ollama llama3.2 --host {openai.url_v1}\nHi")
        assert run.status == "error"
        assert openai.requests[-1].header("Authorization") == f"Bearer {KEY}"
        for message in run.messages:
            assert_no_key(json.dumps(message.msg["content"]))
        assert_no_key(kernel.value("repr(ollama_response.error)"))
