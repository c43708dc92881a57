"""--logprobs end to end over real HTTP: the request, the tokens on the result, the lens HTML."""

from __future__ import annotations

import html
import importlib.util
import math
import re

import pytest

from ollama_magic.errors import OllamaMagicError, OllamaUsageError
from ollama_magic.lens import BANDS, band, compare_lens_html, lens_bundle, lens_html
from ollama_magic.local import KNOWN_MODELS
from ollama_magic.logprobs import Logprobs
from ollama_magic.testing import FAKE_PROBABILITIES, FakeOllama, Reply, Token, split_tokens
from ollama_magic.testing_openai import FakeOpenAI

HAVE_LOCAL = importlib.util.find_spec("llama_cpp") is not None and KNOWN_MODELS["smollm2"].installed
HOSTILE = '<img src=x onerror="alert(1)">'


def chats(server) -> list[dict]:
    return [r.json() for r in server.requests if r.path == "/api/chat"]


def run(shell, line: str, cell: str = "hello there friend"):
    return shell.run_cell(f"%%ollama {line}\n{cell}")


def test_request_carries_logprobs_and_the_number_of_alternatives(shell, server):
    assert run(shell, "llama3.2 --logprobs 3").success
    assert chats(server)[-1]["logprobs"] is True and chats(server)[-1]["top_logprobs"] == 3
    assert run(shell, "llama3.2 --logprobs").success
    assert chats(server)[-1]["top_logprobs"] == 5
    assert run(shell, "llama3.2 --logprobs 0").success
    assert chats(server)[-1]["top_logprobs"] == 0
    assert run(shell, "llama3.2").success
    assert "logprobs" not in chats(server)[-1] and "top_logprobs" not in chats(server)[-1]


@pytest.mark.parametrize("value", ["21", "-1"])
def test_out_of_range_alternatives_are_refused_before_sending(shell, server, capsys, value):
    sent = len(chats(server))
    result = run(shell, f"llama3.2 --logprobs={value}")
    assert isinstance(result.error_in_exec, OllamaUsageError)
    assert "0 to 20" in result.error_in_exec.message
    assert len(chats(server)) == sent


def test_tokens_probabilities_and_alternatives_land_on_the_result(shell, server, capsys):
    assert run(shell, "llama3.2 --logprobs 3 -o r").success
    r = shell.user_ns["r"]
    tokens = split_tokens("You said: hello there friend")
    assert [e.token for e in r.logprobs] == tokens
    assert "".join(e.token for e in r.logprobs) == r.text
    expected = [math.log(FAKE_PROBABILITIES[i % 5]) for i in range(len(tokens))]
    assert [e.logprob for e in r.logprobs] == expected
    assert r.logprobs[1].bytes == b" said:"
    # The alternatives: the token itself, then alt1 and alt2, most likely first.
    first = r.logprobs[0].top
    rest = 1 - 0.9
    assert first == (
        (tokens[0], math.log(0.9)),
        ("alt1", math.log(rest / 2)),
        ("alt2", math.log(rest / 4)),
    )
    assert r.perplexity == pytest.approx(math.exp(-sum(expected) / len(expected)), rel=1e-12)
    # The terminal shows the answer, then one summary line.
    out = capsys.readouterr().out
    assert "You said: hello there friend" in out
    assert f"perplexity {r.perplexity:.3f}" in out and "least confident" in out


def test_a_character_split_across_tokens_joins_back_to_the_text(shell, server):
    euro = "€".encode()
    server.enqueue(
        Reply.stream(
            {
                "model": "llama3.2",
                "message": {"role": "assistant", "content": ""},
                "done": False,
                "logprobs": [{"token": "\ufffd", "logprob": -0.5, "bytes": list(euro[:2])}],
            },
            {
                "model": "llama3.2",
                "message": {"role": "assistant", "content": "€ ok"},
                "done": False,
                "logprobs": [
                    {"token": "\ufffd", "logprob": -0.25, "bytes": list(euro[2:])},
                    {"token": " ok", "logprob": -0.125},
                ],
            },
            Reply.done(),
        )
    )
    assert run(shell, "llama3.2 --logprobs -o r").success
    r = shell.user_ns["r"]
    assert r == "€ ok"
    assert [e.token for e in r.logprobs] == ["", "€", " ok"]
    assert [e.bytes for e in r.logprobs] == [euro[:2], euro[2:], b" ok"]
    assert "".join(e.token for e in r.logprobs) == r.text


def test_a_server_without_logprobs_gets_one_clear_line(shell, monkeypatch, capsys):
    with FakeOllama(logprobs=False) as old:
        monkeypatch.setenv("OLLAMA_HOST", old.host)
        assert run(shell, "llama3.2 --logprobs -o r").success
        assert chats(old)[-1]["logprobs"] is True
    r = shell.user_ns["r"]
    assert r == "You said: hello there friend"
    assert r.logprobs is None and r.perplexity is None
    lines = [line for line in capsys.readouterr().out.splitlines() if "log-probabilities" in line]
    assert len(lines) == 1 and "0.12.11" in lines[0]
    with pytest.raises(OllamaMagicError, match="--logprobs"):
        r.logprobs_frame()
    assert "text/html" not in lens_bundle(r, "r")


@pytest.mark.skipif(importlib.util.find_spec("pandas") is not None, reason="pandas installed")
def test_frame_without_pandas_says_what_to_install(shell, server):
    assert run(shell, "llama3.2 --logprobs -o r").success
    with pytest.raises(OllamaUsageError, match="pip install pandas"):
        shell.user_ns["r"].logprobs_frame()


@pytest.mark.skipif(importlib.util.find_spec("pandas") is None, reason="pandas not installed")
def test_frame_has_one_row_per_token(shell, server):
    assert run(shell, "llama3.2 --logprobs 2 -o r").success
    r = shell.user_ns["r"]
    frame = r.logprobs_frame()
    assert list(frame["token"]) == [e.token for e in r.logprobs]
    assert list(frame["logprob"]) == [e.logprob for e in r.logprobs]


def test_hostile_tokens_and_alternatives_are_text_in_the_lens(shell, server):
    server.enqueue(
        Reply.stream(
            Token("<b>bold", -2.5, ((HOSTILE, -0.1), ("<b>bold", -2.5))),
            Token(' & "q"', 0.0, ((' & "q"', 0.0),)),
            Reply.done(),
        )
    )
    assert run(shell, "llama3.2 --logprobs 2 -o r").success
    r = shell.user_ns["r"]
    assert r.logprobs[0].top[0] == (HOSTILE, -0.1)
    page = lens_bundle(r, "r")["text/html"]
    assert "<img" not in page and "<b>" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    # Only the lens's own tags remain: span and div, with style and title attributes.
    assert set(re.findall(r"<(\w+)", page)) == {"div", "span"}
    assert set(re.findall(r"\s(\w+)=\"", page)) <= {"style", "title", "class"}
    # Every token is a span whose tooltip names its probability and its alternatives.
    titles = [html.unescape(t) for t in re.findall(r'title="([^"]*)"', page)]
    assert titles[0].startswith("“<b>bold” 8.2%") and f"1. “{HOSTILE}” 90.5%" in titles[0]


def test_bands_tint_and_underline_each_range():
    assert [band(p) for p in (1.0, 0.9, 0.89, 0.6, 0.3, 0.1, 0.05)] == [0, 0, 1, 1, 2, 3, 4]
    underlines = [style.split("border-bottom:")[1] for _, _, style in BANDS[1:]]
    assert len({u.split()[1] for u in underlines}) == len(underlines)  # a different line each
    store = Logprobs()
    store.append("sure", 0.0)
    store.append(" maybe", math.log(0.5))
    page = lens_html(store)
    sure, maybe = re.findall(r"<span[^>]*title=[^>]*>[^<]*</span>", page)
    assert "background" not in sure and BANDS[2][2] in maybe
    assert "How sure the model was" in page  # the legend
    assert "perplexity 1.414" in page  # exp(-(0 + ln 0.5) / 2) = sqrt(2)


def test_summary_numbers():
    store = Logprobs()
    store.append("a", math.log(0.5), top=[("a", math.log(0.5)), ("b", math.log(0.5))])
    store.append("c", math.log(0.25), top=[("c", math.log(0.25))])
    assert store.entropy(0) == pytest.approx(1.0)  # two equal alternatives: one bit
    assert store.entropy(1) is None
    assert store.mean_entropy == pytest.approx(1.0)
    assert store.least_confident(1) == [1]
    assert store.perplexity == pytest.approx(math.sqrt(8))


def test_memory_per_token_is_small():
    store = Logprobs()
    for i in range(10_000):
        store.append(f" w{i % 50}", -0.1, top=[(f" a{k}", -1.0 - k) for k in range(5)])
    assert len(store) == 10_000 and store[-1].top[4] == (" a4", -5.0)
    assert store.nbytes / len(store) < 120  # arrays, not an object per token


def test_openai_compatible_servers_give_the_same_lens(shell):
    with FakeOpenAI() as server:
        cell = f"%%ollama llama3.2 --host {server.url}/v1 --logprobs 2 -o r\nhello there"
        assert shell.run_cell(cell).success
        (body,) = [r.json() for r in server.requests if r.path == "/v1/chat/completions"]
    assert body["logprobs"] is True and body["top_logprobs"] == 2
    r = shell.user_ns["r"]
    assert [e.token for e in r.logprobs] == split_tokens("You said: hello there")
    expected = [math.log(FAKE_PROBABILITIES[i % 5]) for i in range(len(r.logprobs))]
    assert [e.logprob for e in r.logprobs] == expected
    assert [len(e.top) for e in r.logprobs] == [2] * len(r.logprobs)


@pytest.mark.skipif(not HAVE_LOCAL, reason="needs the local extra (llama-cpp-python, smollm2)")
def test_the_embedded_model_gives_real_token_logprobs(shell):
    cell = "%%ollama local:smollm2 --logprobs 3 -O num_predict=8 --seed 1 -t 0 -o r\nSay hi."
    assert shell.run_cell(cell).success
    r = shell.user_ns["r"]
    assert r.logprobs and "".join(e.token for e in r.logprobs) == r.text
    assert all(e.logprob <= 0 for e in r.logprobs)
    # Greedy decoding picks the most likely token: each token is its own first alternative.
    assert all(len(e.top) == 3 and e.top[0][0] == e.token for e in r.logprobs if e.token)
    assert r.perplexity >= 1.0


def test_compare_shows_each_models_confidence(shell, server, capsys):
    assert run(shell, "llama3.2 qwen3:8b --no-think --logprobs 2 -o both").success
    both = shell.user_ns["both"]
    assert all(len(r.logprobs) == 5 for r in both.values())
    lines = [line for line in capsys.readouterr().out.splitlines() if "perplexity" in line]
    assert [line.split(": ")[0] for line in lines] == ["[llama3.2", "[qwen3:8b"]
    page = compare_lens_html(dict(both))
    assert page.count("<td") == 2 and page.count(" title=") == 10


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("--logprobs --trace", "--trace"),
        ("--show-prompt --dry-run", "--dry-run"),
        ("--show-prompt --bg", "--bg"),
        ("--show-prompt --logprobs", "--logprobs"),
    ],
)
def test_options_that_cannot_go_together_are_refused(shell, server, line, named):
    result = run(shell, f"llama3.2 {line}")
    assert isinstance(result.error_in_exec, OllamaUsageError)
    assert named in result.error_in_exec.message
    assert not chats(server)


def test_quiet_and_background_answers_keep_their_tokens(shell, server):
    assert run(shell, "llama3.2 --logprobs 1 --quiet -o q").success
    assert len(shell.user_ns["q"].logprobs) == 5
    assert run(shell, "llama3.2 --logprobs 1 --bg -o b").success
    answer = shell.user_ns["b_job"].wait(10)
    assert answer.complete and [len(e.top) for e in answer.logprobs] == [1] * 5


def test_a_replayed_answer_says_why_it_has_no_lens(shell, server, capsys):
    cell = "unique prompt for the replay test"
    assert run(shell, "llama3.2 --logprobs --cache -o first", cell).success
    assert shell.user_ns["first"].logprobs
    sent = len(chats(server))
    assert run(shell, "llama3.2 --logprobs --cache -o again", cell).success
    assert len(chats(server)) == sent  # replayed from the log, not asked again
    assert shell.user_ns["again"].logprobs is None
    assert "without --cache to see the lens" in capsys.readouterr().out
