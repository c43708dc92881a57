"""The ``%%ollama`` command line: every option, its help, and the parser IPython builds.

Kept apart from the magic class so that the class holds only wiring; the order here is the
order of ``%%ollama?``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from IPython.core.magic_arguments import argument, magic_arguments

from .backends import DEFAULT_TIMEOUT
from .request import DEFAULT_CHAT, DEFAULT_OUT

_F = TypeVar("_F", bound=Callable[..., Any])

#: The decorators IPython reads the parser from, top to bottom as ``%%ollama?`` lists them.
ARGUMENTS = [
    argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help="Model to ask, e.g. llama3.2; name several to compare their answers side by side.",
    ),
    argument("-o", "--out", metavar="NAME", help=f"Variable for the answer ({DEFAULT_OUT})."),
    argument(
        "--host",
        action="append",
        metavar="URL",
        help="Ollama URL or host[:port] (default: OLLAMA_HOST or local); several, comma-separated "
        "or repeated, make a pool that --map spreads items over.",
    ),
    argument("-s", "--system", help="System prompt, e.g. --system 'You are terse.'"),
    argument("-t", "--temperature", type=float, help="Sampling temperature, e.g. 0.2."),
    argument("--seed", type=int, help="Random seed, for repeatable answers."),
    argument(
        "-O",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Any Ollama option (repeatable); VALUE is parsed as JSON when it can be.",
    ),
    argument(
        "--format",
        metavar="json|SCHEMA|VAR",
        help="Ask for JSON: `json`, an inline JSON schema, or a variable (schema dict or "
        "pydantic model).",
    ),
    argument(
        "--think",
        nargs="?",
        const=True,
        default=None,
        metavar="LEVEL",
        help="Ask a reasoning model to think (optionally low, medium or high).",
    ),
    argument("--no-think", action="store_true", help="Ask a reasoning model not to think."),
    argument("--keep-alive", metavar="DURATION", help="How long Ollama keeps the model loaded."),
    argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help=f"Longest wait for the next chunk (default {DEFAULT_TIMEOUT:g}; 0 = forever).",
    ),
    argument(
        "-c",
        "--chat",
        nargs="?",
        const=DEFAULT_CHAT,
        default=None,
        metavar="NAME",
        help=f"Continue a conversation across cells (default name {DEFAULT_CHAT!r}).",
    ),
    argument("--no-chat", action="store_true", help="Ignore the configured conversation."),
    argument(
        "-i",
        "--image",
        action="append",
        default=[],
        metavar="PATH|VAR",
        help="Image for a vision model (repeatable): a file, bytes, PIL image or figure.",
    ),
    argument("--pull", action="store_true", help="Download the model first if it is missing."),
    argument(
        "--bg",
        action="store_true",
        help="Answer in the background: the cell returns at once; NAME_job has .wait()/.cancel().",
    ),
    argument(
        "--map",
        metavar="VAR",
        help="Run the prompt once per item of a list variable ({item} in the prompt).",
    ),
    argument(
        "--concurrency",
        type=int,
        default=1,
        metavar="N",
        help="With --map: requests at once (default 1; Ollama answers one at a time per model).",
    ),
    argument(
        "--tools",
        metavar="NAME[,NAME…]",
        help="Notebook functions the model may call (or a variable holding a list of them).",
    ),
    argument(
        "--max-tool-rounds",
        type=int,
        metavar="N",
        help="With --tools: end a model that keeps calling after N rounds (default 8).",
    ),
    argument("--confirm", action="store_true", help="With --tools: ask before each call."),
    argument(
        "--cache",
        action="store_true",
        help="Replay an identical earlier complete answer from the answer log, if there is one.",
    ),
    argument("--no-interpolate", action="store_true", help="Send the prompt exactly as typed."),
    argument("--dry-run", action="store_true", help="Show the request (and curl); send nothing."),
    argument("--trace", action="store_true", help="Also show the raw stream lines as they come."),
    argument(
        "--api",
        choices=("auto", "ollama", "openai"),
        help="Server API (default auto: OpenAI-compatible when the URL ends in /v1).",
    ),
    argument(
        "--code",
        action="store_true",
        help="Offer the answer's Python code as a new cell below (also in NAME.code).",
    ),
    argument(
        "--logprobs",
        nargs="?",
        type=int,
        const=5,
        default=None,
        metavar="N",
        help="Show how sure the model was of each token, with N alternatives (0-20, default 5).",
    ),
    argument(
        "--show-prompt",
        action="store_true",
        help="Show the exact prompt the model receives (its chat template applied); generate "
        "nothing.",
    ),
    argument("-q", "--quiet", action="store_true", help="Show nothing; only set the variable."),
]


def ollama_arguments(function: _F) -> _F:
    """Give the magic function its parser (``function.parser``) and the options' help."""
    for decorate in reversed(ARGUMENTS):
        function = decorate(function)
    # The usage line then reads %%ollama.
    decorated: _F = magic_arguments(name="%ollama")(function)
    return decorated
