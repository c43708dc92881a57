"""Reading the magic line: shell-like splitting, the one-line form's prompt, and ``?`` endings."""

from __future__ import annotations

import io
import re
import shlex
from typing import Any

from .errors import OllamaUsageError


def split_arguments(line: str) -> list[str]:
    """Split a magic line like a shell would (IPython's own parser keeps the quotes)."""
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise OllamaUsageError(
            f"Could not split the magic line ({exc}); check the quotes."
        ) from None


def split_line_prompt(line: str, parser: Any, with_model: bool = True) -> tuple[list[str], str]:
    """Split ``[options] MODEL prompt text`` into argv and the raw prompt.

    The prompt is taken verbatim (apostrophes and all): only the options and the model
    before it are read as shell words.

    >>> from IPython.core.magic_arguments import MagicArgumentParser
    >>> p = MagicArgumentParser()
    >>> _ = p.add_argument("-t", type=float); _ = p.add_argument("-q", action="store_true")
    >>> split_line_prompt("-t 0.2 -q llama3.2 What's up, doc?", p)
    (['-t', '0.2', '-q', 'llama3.2'], "What's up, doc?")
    >>> split_line_prompt("-q What's up?", p, with_model=False)
    (['-q'], "What's up?")
    """
    stream = io.StringIO(line)
    lexer = shlex.shlex(stream, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    actions = parser._option_string_actions
    argv: list[str] = []
    try:
        while True:
            rest = line[stream.tell() :].strip()
            if not rest:
                return argv, ""
            if not rest.startswith("-") and not with_model:
                return argv, rest  # the prompt starts here; never lex it (apostrophes)
            token = lexer.get_token()
            if token is None or token == lexer.eof:
                return argv, ""
            argv.append(token)
            if not token.startswith("-"):
                return argv, line[stream.tell() :].strip()
            action = actions.get(token.split("=", 1)[0])
            if action is None or action.nargs == 0 or "=" in token:
                continue  # a flag, an inline value, or an unknown option argparse will report
            if action.nargs == "?":
                position = stream.tell()
                peek = lexer.get_token()
                if peek in ("low", "medium", "high"):
                    argv.append(peek)
                else:
                    stream.seek(position)
                continue
            value = lexer.get_token()
            if value is not None:
                argv.append(value)
    except ValueError as exc:
        raise OllamaUsageError(
            f"Could not split the magic line ({exc}); check the quotes."
        ) from None


_ONE_LINER = re.compile(r"^(\s*)%ollama\s+(\S.*\?)\s*$")


def keep_question_marks(lines: list[str]) -> list[str]:
    r"""Input transformer: ``%ollama MODEL Why is the sky blue?`` is a question, not a help request.

    IPython reads a line ending in ``?`` as "show help for the last name", so a one-line
    prompt that ends with a question mark would never reach the magic. This turns such lines
    into an explicit magic call first (``%ollama?`` itself, with nothing after it, still shows
    the help).

    >>> keep_question_marks(["%ollama llama3.2 Why is it blue?\n", "x = 1\n"])
    ["get_ipython().run_line_magic('ollama', 'llama3.2 Why is it blue?')\n", 'x = 1\n']
    """
    result = []
    for line in lines:
        match = _ONE_LINER.match(line)
        if match:
            indent, rest = match.groups()
            ending = "\n" if line.endswith("\n") else ""
            line = f"{indent}get_ipython().run_line_magic('ollama', {rest!r}){ending}"
        result.append(line)
    return result
