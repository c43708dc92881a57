"""OLLAMA_HOST / --host parsing: one table of accepted values, the errors, and precedence."""

from __future__ import annotations

import doctest

import pytest

from ollama_magic import host
from ollama_magic.host import DEFAULT_HOST, parse_host, resolve_host


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "http://127.0.0.1:11434"),
        ("   ", "http://127.0.0.1:11434"),
        ("1.2.3.4", "http://1.2.3.4:11434"),
        ("1.2.3.4:1234", "http://1.2.3.4:1234"),
        ("example.com", "http://example.com:11434"),
        ("example.com:56789", "http://example.com:56789"),
        # An explicit scheme brings its own default port, as in ollama-python and Go.
        ("http://1.2.3.4", "http://1.2.3.4:80"),
        ("https://1.2.3.4", "https://1.2.3.4:443"),
        ("https://1.2.3.4:1234", "https://1.2.3.4:1234"),
        ("HTTP://Example.com", "http://example.com:80"),
        # IPv6 with or without brackets.
        ("[::1]", "http://[::1]:11434"),
        ("::1", "http://[::1]:11434"),
        ("[::1]:8080", "http://[::1]:8080"),
        ("http://[fe80::1]:80", "http://[fe80::1]:80"),
        # Addresses a server binds to but a client cannot connect to become loopback.
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("0.0.0.0:11434", "http://127.0.0.1:11434"),
        ("https://0.0.0.0:8443", "https://127.0.0.1:8443"),
        ("::", "http://[::1]:11434"),
        ("[::]", "http://[::1]:11434"),
        ("[::]:11434", "http://[::1]:11434"),
        (":1234", "http://127.0.0.1:1234"),
        # Quotes and whitespace around the value are ignored, as by the Go server.
        ("  '127.0.0.1:5000'  ", "http://127.0.0.1:5000"),
        ('"localhost"', "http://localhost:11434"),
        (' " 1.2.3.4 " ', "http://1.2.3.4:11434"),
        # A path is a reverse-proxy prefix, kept without its trailing slash.
        ("https://example.com/ollama/", "https://example.com:443/ollama"),
        ("http://example.com:8080/api-prefix", "http://example.com:8080/api-prefix"),
        ("example.com:56789/path/", "http://example.com:56789/path"),
        ("example.com/", "http://example.com:11434"),
    ],
)
def test_parse_host(value: str, expected: str) -> None:
    assert parse_host(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("x:99999", "invalid port '99999'"),
        ("1.2.3.4:65536", "invalid port '65536'"),
        ("example.com:abc", "invalid port 'abc'"),
        ("example.com:-1", "invalid port '-1'"),
        ("http://example.com:80x/", "invalid port '80x'"),
        ("[::1]:port", "invalid port 'port'"),
        ("ftp://example.com", "unsupported scheme 'ftp'"),
        ("[::1", "malformed IPv6"),
        ("1:2:3", "malformed IPv6"),
        ("[::1]x", "unexpected text"),
        ("user:secret@example.com", "not a valid server address"),
        ("example.com:11434?x=1", "not a valid server address"),
        ("exa mple.com", "not a valid server address"),
    ],
)
def test_parse_host_rejects(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        parse_host(value)
    assert repr(value) in str(raised.value)  # the message names the offending value


def test_port_bounds_are_inclusive() -> None:
    assert parse_host("h:0") == "http://h:0"
    assert parse_host("h:65535") == "http://h:65535"


def test_explicit_value_wins_over_environment() -> None:
    env = {"OLLAMA_HOST": "10.0.0.1:1111"}
    assert resolve_host("example.com:2222", env=env) == "http://example.com:2222"


def test_environment_used_without_value() -> None:
    env = {"OLLAMA_HOST": "https://example.com/ollama/"}
    assert resolve_host(None, env=env) == "https://example.com:443/ollama"


def test_default_without_value_or_environment() -> None:
    assert resolve_host(None, env={}) == DEFAULT_HOST
    assert resolve_host(env={"OTHER": "x"}) == DEFAULT_HOST


def test_blank_value_or_environment_counts_as_unset() -> None:
    env = {"OLLAMA_HOST": "10.0.0.1"}
    assert resolve_host("", env=env) == "http://10.0.0.1:11434"
    assert resolve_host(" '' ", env=env) == "http://10.0.0.1:11434"
    assert resolve_host(None, env={"OLLAMA_HOST": "  "}) == DEFAULT_HOST


def test_environment_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "192.168.1.5:9999")
    assert resolve_host() == "http://192.168.1.5:9999"
    monkeypatch.delenv("OLLAMA_HOST")
    assert resolve_host() == DEFAULT_HOST


def test_errors_name_their_source() -> None:
    with pytest.raises(ValueError, match=r"^OLLAMA_HOST 'x:99999' has an invalid port"):
        resolve_host(env={"OLLAMA_HOST": "x:99999"})
    with pytest.raises(ValueError, match=r"^host 'x:99999' has an invalid port"):
        resolve_host("x:99999", env={})


def test_docstring_examples() -> None:
    results = doctest.testmod(host)
    assert results.attempted > 0
    assert results.failed == 0
