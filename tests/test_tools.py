"""Notebook functions as tools: the schema a model sees, and calls checked before they run."""

from __future__ import annotations

import enum
from typing import Literal, Optional

import pytest

from ollama_magic.errors import OllamaUsageError
from ollama_magic.tools import Tool, resolve_tools, run_call


class Unit(enum.Enum):
    C = "C"
    F = "F"


def get_weather(city: str, unit: Literal["C", "F"] = "C", days: Optional[int] = None) -> dict:  # noqa: UP045
    """Current weather for a city.

    Args:
        city: the city name, e.g. "Paris"
        unit: C or F
        days: how many days ahead
    """
    if city == "Atlantis":
        raise ValueError("no such city")
    return {"city": city, "unit": unit, "days": days, "temperature": 21}


def forecast(cities: list[str], unit: Unit, hourly: bool = False, scale: float = 1.0) -> str:
    """Forecast for several cities."""
    return f"{len(cities)} cities in {unit} (hourly={hourly}, scale={scale})"


def test_schema_from_signature_hints_and_docstring():
    schema = Tool.from_function(get_weather).schema
    assert schema == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": 'the city name, e.g. "Paris"'},
                    "unit": {
                        "type": "string",
                        "enum": ["C", "F"],
                        "description": "C or F",
                        "default": "C",
                    },
                    "days": {
                        "type": "integer",
                        "description": "how many days ahead",
                        "default": None,
                    },
                },
                "required": ["city"],
            },
        },
    }
    parameters = Tool.from_function(forecast).schema["function"]["parameters"]
    assert parameters["properties"]["cities"] == {"type": "array", "items": {"type": "string"}}
    assert parameters["properties"]["unit"] == {"type": "string", "enum": ["C", "F"]}
    assert parameters["properties"]["hourly"] == {"type": "boolean", "default": False}
    assert parameters["required"] == ["cities", "unit"]


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({}, "missing a required argument: 'city'"),
        ({"city": "Paris", "colour": "red"}, "unexpected keyword argument 'colour'"),
        ({"city": 42}, "city=42 is not a valid string"),
        ({"city": "Paris", "unit": "K"}, "unit='K' is not a valid one of 'C', 'F'"),
        ('{"city": ', "arguments are not JSON"),
        ("[1, 2]", "arguments must be a JSON object"),
    ],
)
def test_bad_arguments_are_sent_back_not_run(arguments, problem):
    tools = {"get_weather": Tool.from_function(get_weather)}
    record = run_call(tools, "get_weather", arguments)
    assert not record.ran
    assert record.error.startswith("Error: invalid arguments for get_weather:")
    assert problem in record.error


def test_a_call_runs_with_checked_json_arguments():
    tools = {"forecast": Tool.from_function(forecast)}
    record = run_call(tools, "forecast", '{"cities": ["Paris", "Oslo"], "unit": "F", "scale": 2}')
    assert record.ran and record.error is None
    assert record.result == "2 cities in F (hourly=False, scale=2)"
    assert record.message() == {"role": "tool", "content": record.result, "tool_name": "forecast"}


def test_unknown_names_never_run_and_exceptions_go_back_as_results():
    tools = {"get_weather": Tool.from_function(get_weather)}
    unknown = run_call(tools, "os_system", {"command": "rm -rf /"}, call_id="c1")
    assert not unknown.ran
    assert unknown.error == "Error: there is no tool named 'os_system'. The tools are: get_weather."
    assert unknown.message()["tool_call_id"] == "c1"
    failed = run_call(tools, "get_weather", {"city": "Atlantis"})
    assert failed.ran and failed.error == "Error: ValueError: no such city"
    data = run_call(tools, "get_weather", {"city": "Paris", "days": 2})
    assert data.result == '{"city": "Paris", "unit": "C", "days": 2, "temperature": 21}'


def test_tools_are_named_notebook_callables():
    namespace = {"get_weather": get_weather, "both": [get_weather, forecast], "x": 3}
    assert [t.name for t in resolve_tools("get_weather", namespace)] == ["get_weather"]
    assert [t.name for t in resolve_tools("both", namespace)] == ["get_weather", "forecast"]
    for spec in ("nope", "x", "get_weather,both"):
        with pytest.raises(OllamaUsageError):
            resolve_tools(spec, namespace)


# -- terminal IPython: the calls are printed as they happen, before the answer -----------------


def test_in_terminal_ipython_each_call_is_printed_then_the_answer(shell, server, capsys):
    from tool_replies import ollama_calls

    from ollama_magic.testing import Reply

    shell.user_ns["get_weather"] = get_weather
    server.enqueue(
        ollama_calls(
            ("get_weather", {"city": "Paris"}, "c1"),
            ("get_weather", {"city": "\x1b[31mAtlantis"}),
        )
    )
    server.enqueue(Reply.answer("Sunny in Paris."))
    result = shell.run_cell("%%ollama llama3.2 --tools get_weather -o out\nWeather?")
    assert result.error_in_exec is None
    printed = capsys.readouterr().out
    assert printed.splitlines() == [
        '▸ get_weather(city="Paris")',
        f"→ {shell.user_ns['out'].tool_calls[0].result}  "
        f"({shell.user_ns['out'].tool_calls[0].seconds:.2f} s)",
        '▸ get_weather(city="\\u001b[31mAtlantis")',
        "→ "
        + shell.user_ns["out"].tool_calls[1].result.replace("\x1b", "\\x1b")
        + f"  ({shell.user_ns['out'].tool_calls[1].seconds:.2f} s)",
        "Sunny in Paris.",
    ]
    assert "\x1b" not in printed  # a tool's text cannot drive the terminal


def test_quiet_shows_no_calls(shell, server, capsys):
    from tool_replies import ollama_calls

    from ollama_magic.testing import Reply

    shell.user_ns["get_weather"] = get_weather
    server.enqueue(ollama_calls(("get_weather", {"city": "Paris"})))
    server.enqueue(Reply.answer("Sunny."))
    shell.run_cell("%%ollama llama3.2 --tools get_weather --quiet -o out\nWeather?")
    assert capsys.readouterr().out == ""
    assert str(shell.user_ns["out"]) == "Sunny."
    assert len(shell.user_ns["out"].tool_calls) == 1


def test_the_embedded_model_refuses_tools_in_one_paragraph(shell, server):
    shell.user_ns["get_weather"] = get_weather
    result = shell.run_cell("%%ollama local:smollm2 --tools get_weather\nWeather?")
    assert isinstance(result.error_in_exec, OllamaUsageError)
    assert "the embedded local: model cannot" in result.error_in_exec.message
    assert not [r for r in server.requests if r.path == "/api/chat"]


def test_calls_of_a_whole_openai_completion_and_fragments_without_ids():
    from ollama_magic.events import ToolCall
    from ollama_magic.openai_compat import chat_events

    whole = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "x1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        },
                        {"type": "function", "function": {"name": "g", "arguments": '{"a": 1}'}},
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ]
    }
    calls = [e for e in chat_events([whole], 0.0) if isinstance(e, ToolCall)]
    assert [(c.name, c.arguments, c.call_id) for c in calls] == [
        ("f", "{}", "x1"),
        ("g", '{"a": 1}', "call_1"),
    ]
