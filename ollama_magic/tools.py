"""Notebook functions as tools a model can call: a schema from each signature, checked calls.

Why by hand for types and with ``docstring_parser`` for docstrings: the JSON-schema subset a
chat model reads is small (strings, numbers, booleans, lists, enums, optional values), and
mapping it directly keeps every schema we send readable and exact; docstrings, on the other
hand, come in Google, NumPy and reST styles, which ``docstring_parser`` reads well.

Only the functions a cell names can run. Arguments are JSON values checked against the
signature before the call, never code. A call's result goes back to the model as text.
"""

from __future__ import annotations

import enum
import inspect
import json
import time
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import OllamaUsageError

#: Longest result text sent back to the model; longer results are cut with a note.
RESULT_LIMIT = 8000

_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def json_schema(annotation: Any) -> dict[str, Any]:
    """The JSON schema of a type hint (the subset models understand).

    >>> json_schema(int), json_schema(list[str])
    ({'type': 'integer'}, {'type': 'array', 'items': {'type': 'string'}})
    >>> json_schema(typing.Literal["C", "F"])
    {'type': 'string', 'enum': ['C', 'F']}
    >>> json_schema(typing.Optional[float])
    {'type': 'number'}
    """
    if annotation is inspect.Parameter.empty or annotation is Any:
        return {}
    if annotation in _SCALARS:
        return {"type": _SCALARS[annotation]}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        values = [member.value for member in annotation]
        return {**_type_of_values(values), "enum": values}
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return {**_type_of_values(list(args)), "enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        rest = [arg for arg in args if arg is not type(None)]
        if len(rest) == 1:
            return json_schema(rest[0])
        return {"anyOf": [json_schema(arg) for arg in rest]}
    if origin in (list, tuple, set, frozenset, Sequence) or annotation in (list, tuple):
        items = json_schema(args[0]) if args and args[0] is not Ellipsis else {}
        return {"type": "array", **({"items": items} if items else {})}
    if origin in (dict, Mapping) or annotation is dict:
        return {"type": "object"}
    return {}


def _type_of_values(values: list[Any]) -> dict[str, Any]:
    kinds = {_SCALARS.get(type(value)) for value in values}
    return {"type": kinds.pop()} if len(kinds) == 1 and None not in kinds else {}


@dataclass
class Tool:
    """A notebook function the model may call, with the schema sent to the server."""

    name: str
    function: Callable[..., Any]
    schema: dict[str, Any]
    signature: inspect.Signature
    hints: dict[str, Any]

    @classmethod
    def from_function(cls, function: Callable[..., Any], name: str | None = None) -> Tool:
        import docstring_parser

        name = name or getattr(function, "__name__", "") or "tool"
        signature = inspect.signature(function)
        try:
            hints = typing.get_type_hints(function)
        except Exception:  # unresolvable forward references: fall back to no hints
            hints = {}
        doc = docstring_parser.parse(inspect.getdoc(function) or "")
        described = {param.arg_name: param.description for param in doc.params}
        properties: dict[str, Any] = {}
        required = []
        for parameter in signature.parameters.values():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            schema = json_schema(hints.get(parameter.name, parameter.annotation))
            if described.get(parameter.name):
                schema["description"] = described[parameter.name]
            if parameter.default is parameter.empty:
                required.append(parameter.name)
            elif _jsonable(parameter.default):
                schema["default"] = parameter.default
            properties[parameter.name] = schema
        summary = " ".join(part for part in (doc.short_description, doc.long_description) if part)
        schema = {
            "type": "function",
            "function": {
                "name": name,
                "description": summary,
                "parameters": {"type": "object", "properties": properties, "required": required},
            },
        }
        return cls(name, function, schema, signature, hints)

    def check(self, arguments: Any) -> dict[str, Any]:
        """The arguments, checked against the signature; ``ValueError`` says what is wrong."""
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError:
                raise ValueError(f"arguments are not JSON: {arguments[:200]!r}") from None
        if not isinstance(arguments, dict):
            raise ValueError(f"arguments must be a JSON object, got {type(arguments).__name__}")
        try:
            bound = self.signature.bind(**arguments)
        except TypeError as exc:
            raise ValueError(str(exc)) from None
        for key, value in bound.arguments.items():
            expected = self.hints.get(key)
            if expected is not None and not _matches(value, expected):
                raise ValueError(f"{key}={value!r} is not a valid {_describe(expected)}")
        return dict(bound.arguments)


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _matches(value: Any, annotation: Any) -> bool:
    """Whether a JSON value fits a hint (ints count as floats; unknown hints accept anything)."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return True
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation in (str, bool):
        return isinstance(value, annotation)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return value in {member.value for member in annotation}
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return value in args
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args) or (value is None and type(None) in args)
    if annotation is type(None):
        return value is None
    if origin in (list, tuple, set, frozenset, Sequence) or annotation in (list, tuple):
        item = args[0] if args and args[0] is not Ellipsis else Any
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if origin in (dict, Mapping) or annotation is dict:
        return isinstance(value, dict)
    return True


def _describe(annotation: Any) -> str:
    schema = json_schema(annotation)
    if "enum" in schema:
        return "one of " + ", ".join(map(repr, schema["enum"]))
    return str(schema.get("type", getattr(annotation, "__name__", annotation)))


def resolve_tools(spec: str, namespace: Mapping[str, Any]) -> list[Tool]:
    """``--tools a,b`` (notebook callables) or ``--tools VAR`` (a list of them) → tools.

    A name that is not a callable is refused before anything is sent.
    """
    tools: list[Tool] = []
    for word in (part.strip() for part in spec.split(",")):
        if not word:
            continue
        if word not in namespace:
            raise OllamaUsageError(
                f"--tools {word}: there is no notebook function or list of functions by that "
                "name; define it in a cell first."
            )
        value = namespace[word]
        functions = value if isinstance(value, (list, tuple)) else [value]
        for function in functions:
            if not callable(function):
                raise OllamaUsageError(
                    f"--tools {word}: {type(function).__name__} is not callable; name functions."
                )
            name = word if function is value else getattr(function, "__name__", "")
            tools.append(Tool.from_function(function, name))
    names = [tool.name for tool in tools]
    if len(set(names)) != len(names):
        raise OllamaUsageError(f"--tools: each function can be named once, got {names}.")
    if not tools:
        raise OllamaUsageError("--tools needs at least one function name.")
    return tools


def serialise(value: Any, limit: int = RESULT_LIMIT) -> str:
    """A tool's return value as text for the model: str as is, JSON for data, else repr.

    >>> serialise({"t": 21}), serialise("sunny"), serialise("x" * 20, limit=8)
    ('{"t": 21}', 'sunny', 'xxxxxxxx… [12 more characters cut]')
    """
    if isinstance(value, str):
        text = value
    elif isinstance(value, (dict, list, tuple, int, float, bool)) or value is None:
        try:
            text = json.dumps(value, ensure_ascii=False, default=repr)
        except (TypeError, ValueError):
            text = repr(value)
    else:
        text = repr(value)
    if len(text) > limit:
        text = f"{text[:limit]}… [{len(text) - limit:,} more characters cut]"
    return text


@dataclass
class ToolCallRecord:
    """One call the model asked for: what ran, with which arguments, and what came back."""

    name: str
    arguments: Any
    result: str = ""
    error: str | None = None
    seconds: float = 0.0
    call_id: str | None = None
    ran: bool = field(default=False)

    def message(self) -> dict[str, Any]:
        """The ``tool`` message that carries the result back to the model."""
        message: dict[str, Any] = {
            "role": "tool",
            "content": self.result if self.error is None else self.error,
            "tool_name": self.name,
        }
        if self.call_id:
            message["tool_call_id"] = self.call_id
        return message


def run_call(
    tools: Mapping[str, Tool],
    name: str,
    arguments: Any,
    call_id: str | None = None,
    *,
    into: ToolCallRecord | None = None,
) -> ToolCallRecord:
    """Run one call if ``name`` is a tool the cell named; every failure becomes the result.

    ``into`` is filled in place (so a view already showing the call sees its result).
    ``KeyboardInterrupt`` is not caught: the stop button ends the loop during a call too.
    """
    record = into if into is not None else ToolCallRecord(name, arguments, call_id=call_id)
    tool = tools.get(name)
    if tool is None:
        known = ", ".join(sorted(tools)) or "none"
        record.error = f"Error: there is no tool named {name!r}. The tools are: {known}."
        return record
    try:
        checked = tool.check(arguments)
    except ValueError as exc:
        record.error = f"Error: invalid arguments for {name}: {exc}"
        return record
    record.arguments = checked
    started = time.perf_counter()
    record.ran = True
    try:
        value = tool.function(**checked)
    except Exception as exc:
        record.error = f"Error: {type(exc).__name__}: {exc}"
    else:
        record.result = serialise(value)
    finally:
        record.seconds = time.perf_counter() - started
    return record
