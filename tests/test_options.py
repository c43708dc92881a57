"""Model options from the magic line: option names and ``--keep-alive`` durations."""

from __future__ import annotations

import pytest

from ollama_magic.errors import OllamaUsageError
from ollama_magic.options import check_option_names, parse_keep_alive, parse_option


def test_known_option_names_pass_quietly():
    names = ["num_ctx", "num_predict", "temperature", "stop", "top_k", "min_p", "use_mmap"]
    assert check_option_names(names) == []
    assert check_option_names({"num_ctx": 8192, "seed": 1}) == []


def test_a_misspelt_option_names_the_closest_known_one():
    assert check_option_names(["num_predcit"]) == [
        "unknown option num_predcit; did you mean num_predict?"
    ]
    (warning,) = check_option_names({"temprature": 0.2})
    assert "did you mean temperature?" in warning


def test_an_option_nothing_like_a_known_one_is_still_named():
    (warning,) = check_option_names(["banana"])
    assert warning.startswith("unknown option banana;") and "ignore" in warning


def test_options_only_older_servers_read_are_flagged_as_such():
    (warning,) = check_option_names(["mirostat"])
    assert "mirostat" in warning and "older" in warning


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("300", 300),
        ("0", 0),
        ("-1", -1),
        ("2.5", 2.5),
        ("10m", "10m"),
        ("1h30m", "1h30m"),
        ("500ms", "500ms"),
        ("-1m", "-1m"),
        ("1.5h", "1.5h"),
        (" 24h ", "24h"),
    ],
)
def test_keep_alive_accepts_seconds_and_go_durations(value, expected):
    assert parse_keep_alive(value) == expected


@pytest.mark.parametrize("value", ["banana", "10 m", "5M", "m", "1h30", "inf", "nan", "", "10d"])
def test_keep_alive_rejects_anything_else_with_examples(value):
    with pytest.raises(OllamaUsageError) as info:
        parse_keep_alive(value)
    message = str(info.value)
    assert "\n" not in message and "10m" in message and "-1" in message


def test_option_values_are_json_when_they_parse():
    assert parse_option("num_ctx=8192") == ("num_ctx", 8192)
    assert parse_option('stop=["a"]') == ("stop", ["a"])
    with pytest.raises(OllamaUsageError, match="KEY=VALUE"):
        parse_option("num_ctx")


def test_malformed_keep_alive_fails_before_anything_is_sent(shell, server):
    result = shell.run_cell("%%ollama llama3.2 --keep-alive banana\nHi")
    assert isinstance(result.error_in_exec, OllamaUsageError)
    assert "1h30m" in str(result.error_in_exec)
    assert not [r for r in server.requests if r.path == "/api/chat"]
