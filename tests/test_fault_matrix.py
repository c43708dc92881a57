"""Fault matrix: every way an answer can fail, against a scripted server, in both front ends.

Each failure runs twice: in terminal IPython (the shell prints the error) and in a real kernel
(the notebook's error output). Either way it must end the cell in error with one short
paragraph (no traceback), keep the text that arrived in the variable (never a previous answer)
and in the output, and leave the shell ready: the next ``%%ollama`` cell succeeds. Each case
that must *not* fail (a huge line, a slow model load with the default timeout, a dead proxy in
the environment, every ``OLLAMA_HOST`` spelling, Unicode of every kind) is checked the same way
from the other side. Synchronisation is by gates and by
the messages the kernel publishes, never by sleeping.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from kernel_driver import Execution, KernelDriver, Received, start_magic_kernel

from ollama_magic.client import OllamaClient
from ollama_magic.errors import OllamaResponseError
from ollama_magic.events import AnswerDelta, Done
from ollama_magic.testing import FakeOllama, Gate, Reply

MODELS = ("llama3.2", "qwen3:8b")
THINKING = ("qwen3:8b",)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(models=MODELS, thinking_models=THINKING) as server:
        yield server


@pytest.fixture(scope="module")
def kernel(fake: FakeOllama) -> Iterator[KernelDriver]:
    driver = start_magic_kernel({"OLLAMA_HOST": fake.host})
    yield driver
    driver.close()


@pytest.fixture(autouse=True)
def fresh(fake: FakeOllama) -> Iterator[None]:
    fake.reset()
    yield
    fake.reset()


# --------------------------------------------------------------------------------------------
# What every case checks


def error_text(run: Execution) -> str:
    errors = run.of_type("error")
    assert len(errors) == 1, [m.msg_type for m in run.messages]
    return ANSI.sub("", "\n".join(errors[0].content["traceback"]))


def final_output(run: Execution) -> dict[str, Any] | None:
    """The output that holds the final answer, with its provenance (None when none came)."""
    updates = [m for m in run.of_type("update_display_data") if m.content["metadata"]]
    return updates[-1].content if updates else None


def assert_clear_failure(
    kernel: KernelDriver,
    run: Execution,
    ename: str,
    says: tuple[str, ...],
    partial: str,
    out: str = "ollama_response",
) -> str:
    """Error state, the right error, a short message, and the partial text kept."""
    assert run.status == "error", run.reply["content"]
    assert run.reply["content"]["ename"] == ename, run.reply["content"]
    text = error_text(run)
    assert "Traceback" not in text and len(text.splitlines()) <= 3, text
    for needle in says:
        assert needle in text, (needle, text)
    assert kernel.value(f"str({out})") == partial
    assert kernel.value(f"{out}.error is not None and not {out}.complete")
    final = final_output(run)
    if partial:
        assert final is not None and final["data"]["text/plain"] == partial
    elif final is not None:  # the saved notebook says what happened, not an empty output
        assert "before the answer began" in final["data"]["text/markdown"], final
    if final is not None:
        assert "application/vnd.jupyter.widget-view+json" not in final["data"]
    return text


def chats(fake: FakeOllama) -> list:
    """The /api/chat requests the fake received (the magic also asks /api/tags)."""
    return [r for r in fake.requests if r.path == "/api/chat"]


def assert_next_cell_works(kernel: KernelDriver, fake: FakeOllama) -> None:
    fake.enqueue(Reply.answer(["next", " one"]))
    run = kernel.execute("%%ollama llama3.2\nAnd now?")
    assert run.status == "ok", run.reply["content"]
    assert run.stream_text == "next one"
    assert kernel.value("(str(ollama_response), ollama_response.complete)") == ("next one", True)


# --------------------------------------------------------------------------------------------
# The matrix of failures scripted on the server


@dataclass(frozen=True)
class Case:
    """One failure: the replies (given a gate the test opens at the end), the magic line
    (``{closed}`` is a port where nothing listens), and what the user must be told."""

    replies: Callable[[Gate], list[Reply]]
    ename: str
    says: tuple[str, ...]
    partial: str = ""
    line: str = "llama3.2"
    cell: str = "Hi"
    sends_request: bool = True
    #: Why this case fails today (a bug in ollama_magic): the test is a strict xfail.
    xfail: str | None = None


def none(gate: Gate) -> list[Reply]:
    return []


MATRIX = {
    "server-not-running": Case(
        none,
        "OllamaConnectionError",
        ("Could not connect to Ollama at http://127.0.0.1:", "ollama serve"),
        line="llama3.2 --host 127.0.0.1:{closed}",
        sends_request=False,
    ),
    "hangup-before-headers": Case(
        lambda gate: [Reply.hangup_before_headers()],
        "TruncatedStreamError",
        ("closed the connection", "ollama serve"),
    ),
    "hangup-mid-stream": Case(
        lambda gate: [Reply.answer(["One", " two", " three"], hangup_after=2)],
        "TruncatedStreamError",
        ("cut off", "re-run the cell", "kept in ollama_response"),
        partial="One two",
    ),
    "hangup-before-final-chunk": Case(
        lambda gate: [Reply.answer(["All", " of", " it"], hangup_after=3)],
        "TruncatedStreamError",
        ("broke before the answer was complete", "kept in ollama_response"),
        partial="All of it",
    ),
    "reset-mid-stream": Case(
        lambda gate: [Reply.stream(Reply.token("Re"), Reply.token("set"), Reply.RESET)],
        "TruncatedStreamError",
        ("broke before the answer was complete",),
        partial="Reset",
    ),
    "error-line-mid-stream": Case(
        lambda gate: [
            Reply.stream(
                Reply.token("Yes"),
                Reply.token(", I"),
                Reply.error_line("model runner has unexpectedly stopped"),
                Reply.token(" never"),
                Reply.done(),
            )
        ],
        "StreamErrorLine",
        ("model runner has unexpectedly stopped", "kept in ollama_response"),
        partial="Yes, I",
    ),
    "http-400-json": Case(
        lambda gate: [Reply.error(400, "invalid options: num_ctx must be a number")],
        "OllamaResponseError",
        ("HTTP 400", "invalid options: num_ctx must be a number"),
    ),
    "http-400-text": Case(
        lambda gate: [Reply.error(400, "bad request from proxy", json=False)],
        "OllamaResponseError",
        ("HTTP 400", "bad request from proxy"),
    ),
    "stream-ends-without-done": Case(
        lambda gate: [Reply.stream(Reply.token("partial"))],
        "TruncatedStreamError",
        ("no final `done` chunk", "kept in ollama_response"),
        partial="partial",
    ),
    "http-400-no-thinking": Case(
        lambda gate: [Reply.error(400, '"llama3.2" does not support thinking')],
        "OllamaResponseError",
        ("HTTP 400", "--no-think"),
    ),
    "http-500-bad-option-type": Case(
        lambda gate: [Reply.error(500, 'option "stop" must be of type array')],
        "OllamaResponseError",
        ("HTTP 500", "--option"),
    ),
    "http-503-busy": Case(
        lambda gate: [Reply.error(503, "server busy")],
        "OllamaResponseError",
        ("HTTP 503", "try again"),
    ),
    "http-404-json": Case(
        lambda gate: [Reply.error(404, "model 'llama3.2' not found")],
        "ModelNotFoundError",
        ("%ollama pull llama3.2",),
    ),
    "http-404-text": Case(
        lambda gate: [Reply.error(404, "404 page not found", json=False)],
        "OllamaResponseError",
        ("HTTP 404", "Is this an Ollama server?"),
    ),
    "http-500-json": Case(
        lambda gate: [Reply.error(500, "llama runner process has terminated: signal: killed")],
        "OllamaResponseError",
        ("HTTP 500", "llama runner process has terminated"),
    ),
    "http-500-text": Case(
        lambda gate: [Reply.error(500, "Internal Server Error", json=False)],
        "OllamaResponseError",
        ("HTTP 500", "Internal Server Error"),
    ),
    "non-json-line": Case(
        lambda gate: [
            Reply.stream(Reply.token("Half"), b"<html>502 Bad Gateway</html>\n", Reply.done())
        ],
        "UnexpectedDataError",
        ("not JSON", "502 Bad Gateway"),
        partial="Half",
    ),
    "stall-before-first-byte": Case(
        lambda gate: [Reply.answer(["late"], before=gate)],
        "StreamTimeoutError",
        ("sent nothing for 0.3 s", "--timeout"),
        line="llama3.2 --timeout 0.3",
    ),
    "stall-between-tokens": Case(
        lambda gate: [Reply.answer(["early", " late"], gate=gate, gate_after=1)],
        "StreamTimeoutError",
        ("sent nothing for 0.3 s", "kept in ollama_response"),
        partial="early",
        line="llama3.2 --timeout 0.3",
    ),
    # Checked against the server's list of models: refused before any chat request.
    "unknown-model": Case(
        none,
        "ModelNotFoundError",
        ("'nosuchmodel' is not installed", "%ollama pull nosuchmodel", "--pull"),
        line="nosuchmodel",
        sends_request=False,
    ),
    "model-named-without-its-tag": Case(
        none,
        "ModelNotFoundError",
        ("'qwen3' is not installed", "Did you mean qwen3:8b?", "%ollama pull qwen3"),
        line="qwen3",
        sends_request=False,
    ),
    "empty-cell": Case(
        none,
        "OllamaUsageError",
        ("no prompt",),
        cell="   \n\t\n",
        sends_request=False,
    ),
}


@pytest.fixture
def terminal(fake: FakeOllama, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    """Terminal IPython's shell (no widgets), pointed at the matrix's server."""
    monkeypatch.setenv("OLLAMA_HOST", fake.host)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "ollama_magic")
    yield shell


def assert_clear_failure_in_shell(
    shell: InteractiveShell, result: Any, printed: str, case: Case
) -> None:
    """The shell's side of :func:`assert_clear_failure`: what it printed, and the variable."""
    error = result.error_in_exec
    assert type(error).__name__ == case.ename, error
    shown = ANSI.sub("", "\n".join(error._render_traceback_()))
    printed = ANSI.sub("", printed)
    assert shown in printed and "Traceback" not in printed, printed
    assert len(shown.splitlines()) <= 3, shown
    for needle in case.says:
        assert needle in shown, (needle, shown)
    answer = shell.user_ns["ollama_response"]
    assert str(answer) == case.partial and answer.error is error and not answer.complete
    assert case.partial in printed  # what arrived was shown as it came


def next_cell_works_in_shell(shell: InteractiveShell, fake: FakeOllama) -> None:
    fake.enqueue(Reply.answer(["next", " one"]))
    result = shell.run_cell("%%ollama llama3.2\nAnd now?")
    assert result.success, result.error_in_exec
    answer = shell.user_ns["ollama_response"]
    assert (str(answer), answer.complete) == ("next one", True)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            name,
            marks=[pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else [],
        )
        for name, case in MATRIX.items()
    ],
)
@pytest.mark.parametrize("where", ["shell", "kernel"])
def test_failure_is_clear_and_the_next_cell_works(request, fake, closed_port, name, where):
    case = MATRIX[name]
    code = f"%%ollama {case.line.format(closed=closed_port)}\n{case.cell}"
    gate = Gate()
    if where == "kernel":
        kernel = request.getfixturevalue("kernel")
        assert kernel.execute("ollama_response = 'an old answer'").status == "ok"
        fake.enqueue(*case.replies(gate))
        try:
            run = kernel.execute(code)
        finally:
            gate.open()
        assert_clear_failure(kernel, run, case.ename, case.says, case.partial)
    else:
        shell = request.getfixturevalue("terminal")
        capsys = request.getfixturevalue("capsys")
        shell.user_ns["ollama_response"] = "an old answer"
        fake.enqueue(*case.replies(gate))
        capsys.readouterr()
        try:
            result = shell.run_cell(code)
        finally:
            gate.open()
        assert_clear_failure_in_shell(shell, result, capsys.readouterr().out, case)
    assert len(chats(fake)) == (1 if case.sends_request else 0)
    assert fake.pending == 0
    if where == "kernel":
        assert_next_cell_works(kernel, fake)
    else:
        next_cell_works_in_shell(shell, fake)


# --------------------------------------------------------------------------------------------
# What must not fail


def status_labels(run: Execution) -> list[str]:
    """Every status line the live view showed (a small display output), in order."""
    labels = []
    for message in run.of_type("display_data", "update_display_data"):
        value = message.content.get("data", {}).get("text/markdown", "")
        if value.startswith("<small>") and " · " in value:
            labels.append(value.removeprefix("<small>").removesuffix("</small>"))
    return labels


def elapsed_of(label: str) -> float:
    match = re.search(r" · (\d+\.\d) s", label)
    return float(match.group(1)) if match else 0.0


@pytest.mark.parametrize("where", ["before-first-byte", "between-tokens"])
def test_slow_model_does_not_time_out_with_the_default_timeout(kernel, fake, where):
    """The gate opens only once the status line has shown over a second of waiting: longer
    than the 0.3 s that makes the same stall fail above."""
    gate = Gate()
    if where == "before-first-byte":
        fake.enqueue(Reply.answer(["loaded", " at last"], before=gate))
    else:
        fake.enqueue(Reply.answer(["loaded", " at last"], gate=gate, gate_after=1))
    phase = "waiting for the server" if where == "before-first-byte" else "answering"
    seen: list[float] = []

    def on_message(msg: Received, run: Execution) -> None:
        labels = [label for label in status_labels(run) if phase in label]
        if labels:
            seen.append(elapsed_of(labels[-1]))
            if seen[-1] - seen[0] >= 1.0:
                gate.open()

    try:
        run = kernel.execute("%%ollama llama3.2\nHi", on_message=on_message, timeout=30)
    finally:
        gate.open()
    assert run.status == "ok", run.reply["content"]
    assert seen and seen[-1] - seen[0] >= 1.0, seen
    assert kernel.value("str(ollama_response)") == "loaded at last"


def test_huge_final_line_is_read(kernel, fake):
    context = list(range(170_000))
    assert len(json.dumps(context)) > 1_048_576  # the final line is over 1 MB
    fake.enqueue(Reply.answer(["small", " answer"], stats={"context": context}))
    run = kernel.execute("%%ollama llama3.2\nHi")
    assert run.status == "ok", run.reply["content"]
    assert kernel.value("(str(ollama_response), ollama_response.done_reason)") == (
        "small answer",
        "stop",
    )


def test_huge_prompt_is_sent_intact(kernel, fake):
    line = "The quick brown fox jumps over the lazy dog. 0123456789 éß漢字🙂\n"
    prompt = line * (1_048_576 // len(line.encode()) + 1)
    assert len(prompt.encode()) > 1_048_576
    fake.enqueue(Reply.answer(["read", " it"]))
    run = kernel.execute(f"%%ollama llama3.2\n{prompt}")
    assert run.status == "ok", run.reply["content"]
    sent = chats(fake)[-1].json()["messages"][-1]["content"]
    assert sent == prompt.rstrip("\n")
    assert kernel.value("str(ollama_response)") == "read it"


UNICODE = {
    "combining": "e\u0301 a\u0308\u0323 Z\u0351\u0352\u0353 ﷽",
    "emoji": "👩‍👩‍👧‍👦 🏳️‍🌈 👍🏽 🇫🇷 ❤️",
    "rtl": "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \u202eevil\u202c \u200f!",
    "nel-ls-ps": "line\u0085next\u2028sep\u2029para",
    "nul-and-controls": "a\x00b\x01c\x1b[31mred\x7f\ufeffbom",
    "astral-and-noncharacters": "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \U0001f600 \ufffe \U0010fffd",
}


@pytest.mark.parametrize("name", list(UNICODE))
def test_unicode_round_trips(kernel, fake, name):
    text = UNICODE[name]
    # The first chunk is one JSON line cut in two raw pieces (inside a character, or an
    # escape); the second is the same text as the fake renders it.
    line = json.dumps(
        {"model": "llama3.2", "message": {"role": "assistant", "content": text}, "done": False}
    ).encode()
    mid = len(line) // 2
    fake.enqueue(Reply.stream(line[:mid], line[mid:] + b"\n", Reply.token(text), Reply.done()))
    prompt = f"Repeat: {text}"
    run = kernel.execute(f"%%ollama llama3.2\n{prompt}")
    assert run.status == "ok", run.reply["content"]
    assert run.stream_text == text + text
    assert final_output(run)["data"]["text/plain"] == text + text
    assert kernel.value("str(ollama_response)") == text + text
    assert chats(fake)[-1].json()["messages"][-1]["content"] == prompt


# --------------------------------------------------------------------------------------------
# Proxies and OLLAMA_HOST

DEAD_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")


@pytest.fixture(scope="module")
def proxied_kernel(fake: FakeOllama) -> Iterator[KernelDriver]:
    """A kernel whose environment sends every proxied request to a port where nothing
    listens, and exempts nothing (NO_PROXY empty)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = {name: dead for name in DEAD_PROXY_VARS}
    env.update(OLLAMA_HOST=fake.host, NO_PROXY="", no_proxy="", all_proxy=dead)
    driver = start_magic_kernel(env)
    yield driver
    driver.close()


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


class Relay:
    """Forwards TCP connections from ``[::1]:port`` to ``127.0.0.1:target`` (an IPv6 face for
    the IPv4-only fake)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.socket(socket.AF_INET6)
        self.listener.bind(("::1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


HOST_FORMS = {
    "host:port": "127.0.0.1:{port}",
    "http-url": "http://127.0.0.1:{port}",
    "http-url-slash": "http://127.0.0.1:{port}/",
    "localhost": "localhost:{port}",
    "double-quotes": '"127.0.0.1:{port}"',
    "single-quotes-url": "'http://127.0.0.1:{port}'",
    "whitespace": "  \t127.0.0.1:{port} \n",
    "unspecified-ipv4": "0.0.0.0:{port}",
    "ipv6-loopback": "[::1]:{port}",
}


@pytest.mark.parametrize("through_dead_proxy", [False, True], ids=["no-proxy", "dead-proxy"])
@pytest.mark.parametrize("form", list(HOST_FORMS))
def test_ollama_host_forms_reach_the_local_server(
    kernel, proxied_kernel, fake, form, through_dead_proxy
):
    driver = proxied_kernel if through_dead_proxy else kernel
    port = fake.port
    relay = None
    if form == "ipv6-loopback":
        if not ipv6_loopback():
            pytest.skip("no IPv6 loopback ([::1]) on this machine")
        relay = Relay(fake.port)
        port = relay.port
    value = HOST_FORMS[form].format(port=port)
    try:
        run = driver.execute(f"import os; os.environ['OLLAMA_HOST'] = {value!r}")
        assert run.status == "ok"
        fake.enqueue(Reply.answer(["found", " you"]))
        run = driver.execute("%%ollama llama3.2\nWhere are you?")
    finally:
        driver.execute(f"import os; os.environ['OLLAMA_HOST'] = {fake.host!r}")
        if relay is not None:
            relay.close()
    assert run.status == "ok", run.reply["content"]
    assert driver.value("str(ollama_response)") == "found you"
    host = chats(fake)[-1].header("Host")
    expected = {"localhost": f"localhost:{port}", "ipv6-loopback": f"[::1]:{port}"}
    assert host == expected.get(form, f"127.0.0.1:{port}")  # 0.0.0.0 was mapped to loopback


def test_second_loopback_address_bypasses_a_dead_proxy(proxied_kernel):
    with FakeOllama(models=MODELS, host="127.0.0.2") as other:
        other.enqueue(Reply.answer(["from", " 127.0.0.2"]))
        run = proxied_kernel.execute(f"%%ollama llama3.2 --host {other.url}\nHi")
        assert run.status == "ok", run.reply["content"]
        assert len(chats(other)) == 1
    assert proxied_kernel.value("str(ollama_response)") == "from 127.0.0.2"


class RecordingProxy:
    """An HTTP proxy on loopback that records each request line and answers 502."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                proxy.lines.append(self.requestline)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = b'{"error":"proxy: upstream unreachable"}'
                self.send_response(502)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_remote_hosts_follow_the_proxy_unless_no_proxy_names_them(fake, monkeypatch):
    """Client level, in this process: a remote name is resolved to the fake by a patched
    connect (nothing leaves loopback); the proxy records what was routed through it."""
    import urllib3.util.connection as connection

    real = connection.create_connection

    def loopback_only(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        host = address[0]
        if host == "ollama.invalid":
            return real(("127.0.0.1", fake.port), *args, **kwargs)
        if host not in ("127.0.0.1", "localhost"):
            raise OSError(f"test refused a connection to {host}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(connection, "create_connection", loopback_only)
    proxy = RecordingProxy()
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("http_proxy", proxy.url)
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "Hi"}]}
    try:
        remote = OllamaClient("http://ollama.invalid:11434", timeout=10)
        with pytest.raises(OllamaResponseError, match="502"):
            remote.stream("/api/chat", dict(body, stream=True))
        assert proxy.lines == ["POST http://ollama.invalid:11434/api/chat HTTP/1.1"]
        remote.close()

        monkeypatch.setenv("NO_PROXY", "ollama.invalid")
        monkeypatch.setenv("no_proxy", "ollama.invalid")
        fake.enqueue(Reply.answer(["direct"]))
        direct = OllamaClient("http://ollama.invalid:11434", timeout=10)
        events = list(direct.stream("/api/chat", dict(body, stream=True)))
        direct.close()
        assert [e.text for e in events if isinstance(e, AnswerDelta)] == ["direct"]
        assert isinstance(events[-1], Done)
        assert len(proxy.lines) == 1  # nothing more went through the proxy

        monkeypatch.delenv("NO_PROXY")
        monkeypatch.delenv("no_proxy")
        fake.enqueue(Reply.answer(["local"]))
        local = OllamaClient(fake.url, timeout=10)
        events = list(local.stream("/api/chat", dict(body, stream=True)))
        local.close()
        assert [e.text for e in events if isinstance(e, AnswerDelta)] == ["local"]
        assert len(proxy.lines) == 1  # loopback never goes to the proxy
    finally:
        proxy.close()


# --------------------------------------------------------------------------------------------
# Interrupts, back-to-back cells, restarts


@dataclass
class InterruptCase:
    reply: Callable[[Gate], Reply]
    #: Interrupt once this holds for the messages so far.
    when: Callable[[Execution], bool]
    partial: str
    thinking: str = ""
    model: str = "llama3.2"
    says: tuple[str, ...] = field(default=("Stopped after",))


def widget_shown(run: Execution) -> bool:
    return bool(run.of_type("display_data"))


INTERRUPTS = {
    "during-load": InterruptCase(
        lambda gate: Reply.answer(["never"], before=gate),
        widget_shown,
        partial="",
        says=("Stopped before the answer began",),
    ),
    # The thinking that arrived is kept, and the message says where.
    "during-thinking": InterruptCase(
        lambda gate: Reply.answer(
            ["never"], thinking=["Hmm", ", let me see"], gate=gate, gate_after=2
        ),
        lambda run: "let me see" in run.stream_text,
        partial="",
        thinking="Hmm, let me see",
        model="qwen3:8b",
        says=("Stopped before the answer began", "thinking so far is in ollama_response.thinking"),
    ),
    "during-answer": InterruptCase(
        lambda gate: Reply.answer(["Part", "ial", " never"], gate=gate, gate_after=2),
        lambda run: run.stream_text == "Partial",
        partial="Partial",
    ),
}


@pytest.mark.parametrize("name", list(INTERRUPTS))
def test_interrupt_keeps_what_arrived_and_hangs_up(kernel, fake, name):
    case = INTERRUPTS[name]
    gate = Gate()
    fake.enqueue(case.reply(gate))
    sent: list[bool] = []

    def on_message(msg: Received, run: Execution) -> None:
        if not sent and case.when(run):
            assert gate.wait_reached(timeout=10)  # the server holds: the client is waiting
            sent.append(True)
            kernel.km.interrupt_kernel()

    try:
        run = kernel.execute(f"%%ollama {case.model}\nHi", on_message=on_message, timeout=30)
        assert fake.wait_for_hangup(timeout=10)
    finally:
        gate.open()
    assert sent
    assert_clear_failure(kernel, run, "Interrupted", case.says, case.partial)
    assert kernel.value("(ollama_response.interrupted, ollama_response.thinking)") == (
        True,
        case.thinking,
    )
    assert_next_cell_works(kernel, fake)


def test_two_cells_back_to_back_keep_their_own_output(kernel, fake):
    first, second = Gate(), Gate()
    fake.enqueue(
        Reply.answer(["first", " answer"], gate=first, gate_after=1, delay=0.01),
        Reply.answer(["second", " answer"], gate=second, gate_after=1, delay=0.01),
    )
    ids = [
        kernel.kc.execute("%%ollama llama3.2 -o one\nFirst"),
        kernel.kc.execute("%%ollama llama3.2 -o two\nSecond"),
    ]
    runs = {msg_id: Execution(msg_id, time.perf_counter()) for msg_id in ids}
    idle: set[str] = set()
    deadline = time.monotonic() + 30
    while len(idle) < 2:
        assert time.monotonic() < deadline, "the two cells did not finish"
        got = kernel._recv(1.0)
        if got is None:
            continue
        parent = got.msg.get("parent_header", {}).get("msg_id")
        if parent not in runs:
            continue
        if got.msg_type == "status":
            if got.content["execution_state"] == "idle":
                idle.add(parent)
            continue
        runs[parent].messages.append(got)
        data = got.content.get("data", {}) if got.msg_type == "update_display_data" else {}
        shown = data.get("text/markdown", "")
        if got.msg_type == "stream" or (shown and not shown.startswith("<small>")):
            (first if parent == ids[0] else second).open()
    for msg_id in ids:
        while runs[msg_id].reply is None:
            reply = kernel.kc.get_shell_msg(timeout=10)
            if reply["parent_header"].get("msg_id") in runs:
                runs[reply["parent_header"]["msg_id"]].reply = reply
    one, two = runs[ids[0]], runs[ids[1]]
    assert one.status == "ok" and two.status == "ok"
    assert one.stream_text == "first answer" and two.stream_text == "second answer"
    assert final_output(one)["data"]["text/plain"] == "first answer"
    assert final_output(two)["data"]["text/plain"] == "second answer"
    display_one = one.of_type("display_data")[0].content["transient"]["display_id"]
    display_two = two.of_type("display_data")[0].content["transient"]["display_id"]
    assert display_one != display_two
    assert final_output(one)["transient"]["display_id"] == display_one
    assert kernel.value("(str(one), str(two))") == ("first answer", "second answer")
    assert not leftover_threads(kernel)


def leftover_threads(driver: KernelDriver) -> list[str]:
    """Threads of ollama_magic still alive in the kernel (the batcher's helper, ...)."""
    return driver.value(
        "[t.name for t in __import__('threading').enumerate() if t.name.startswith('ollama')]"
    )


def connections_to(pid: int, port: int) -> int:
    """Established TCP connections of process ``pid`` to 127.0.0.1:``port`` (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state, inode = fields[2], fields[3], fields[9]
        if inode in inodes and state == "01" and int(remote.split(":")[1], 16) == port:
            count += 1
    return count


@pytest.mark.skipif(not Path("/proc/self/net/tcp").exists(), reason="needs Linux /proc")
def test_no_thread_or_connection_left_after_a_failed_or_stopped_answer(kernel, fake):
    """Only a pooled keep-alive connection (from an earlier request) may stay open."""
    pid = kernel.value("__import__('os').getpid()")
    before = connections_to(pid, fake.port)
    gate = Gate()
    fake.enqueue(Reply.answer(["Part", "ial", " never"], gate=gate, gate_after=2))

    interrupted = False

    def on_message(msg: Received, run: Execution) -> None:
        nonlocal interrupted
        if run.stream_text == "Partial" and not interrupted:
            assert gate.wait_reached(timeout=10)
            interrupted = True
            kernel.km.interrupt_kernel()

    # The gate stays shut until the cell has ended: the server, waiting there, sees the client
    # hang up. (Opened at once, it could write the rest of the answer before the hang-up.)
    try:
        run = kernel.execute("%%ollama llama3.2\nHi", on_message=on_message, timeout=30)
    finally:
        gate.open()
    assert run.reply["content"]["ename"] == "Interrupted"
    assert fake.wait_for_hangup(timeout=10)
    assert not leftover_threads(kernel)
    assert connections_to(pid, fake.port) <= before
    fake.enqueue(Reply.answer(["One"], hangup_after=1))
    assert kernel.execute("%%ollama llama3.2\nHi").status == "error"
    assert not leftover_threads(kernel)
    assert connections_to(pid, fake.port) <= before
    assert_next_cell_works(kernel, fake)
    assert not leftover_threads(kernel)
    # At most one more: this client's pooled keep-alive connection (other clients, one per
    # --host/--timeout used earlier in the module, may hold theirs).
    assert connections_to(pid, fake.port) <= before + 1


def test_kernel_restart_mid_stream(fake):
    driver = start_magic_kernel({"OLLAMA_HOST": fake.host})
    try:
        old_pid = driver.value("__import__('os').getpid()")
        gate = Gate()
        fake.enqueue(Reply.answer(["Before", " restart", " never"], gate=gate, gate_after=2))
        driver.kc.execute("%%ollama llama3.2\nHi")
        assert gate.wait_reached(timeout=30)
        driver.km.restart_kernel(now=True)
        try:
            assert fake.wait_for_hangup(timeout=15)  # the server saw the client go away
        finally:
            gate.open()
        assert not Path(f"/proc/{old_pid}").exists() or _is_zombie(old_pid)
        driver.kc.wait_for_ready(timeout=60)
        driver.drain()
        new_pid = driver.value("__import__('os').getpid()")
        assert new_pid != old_pid
        assert driver.execute("%load_ext ollama_magic").status == "ok"
        fake.enqueue(Reply.answer(["fresh"]))
        run = driver.execute("%%ollama llama3.2\nAgain")
        assert run.status == "ok", run.reply["content"]
        assert driver.value("str(ollama_response)") == "fresh"
        assert not leftover_threads(driver)
    finally:
        driver.close()


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True
