"""Reading the magic line: shell-like splitting, the one-line form's prompt, and ``?`` endings."""

from __future__ import annotations

import argparse
import difflib
import io
import re
import shlex
from collections.abc import Callable
from typing import Any

from .errors import OllamaUsageError

# Options whose value is optional take the next word only when it is one of these; any other
# word is left for the model or the prompt. (``--chat NAME`` on the one-liner: see below.)
_OPTIONAL_VALUES = {"think": frozenset({"low", "medium", "high"})}


class _Words:
    """Shell words read one at a time, with the unread rest of the line always at hand."""

    def __init__(self, line: str) -> None:
        self.line = line
        self._stream = io.StringIO(line)
        self._lexer = shlex.shlex(self._stream, posix=True)
        self._lexer.whitespace_split = True
        self._lexer.commenters = ""

    def rest(self) -> str:
        """The unread text, as typed (quotes and all), without leading whitespace."""
        return self.line[self._stream.tell() :].lstrip()

    def next(self) -> str | None:
        try:
            return self._lexer.get_token()
        except ValueError as exc:
            raise OllamaUsageError(
                f"Could not split the magic line ({exc}); check the quotes."
            ) from None


def split_arguments(line: str) -> list[str]:
    """Split a magic line like a shell would (IPython's own parser keeps the quotes).

    As in Python and the shell, an unquoted ``#`` that starts a word begins a comment that
    runs to the end of the line: ``%%ollama mistral  # quick question``. A ``#`` inside a word
    (``http://h/#x``), in quotes or escaped (``\\#``) is text.

    >>> split_arguments("mistral --system 'Be brief.'  # terse answers")
    ['mistral', '--system', 'Be brief.']
    """
    words = _Words(line)
    argv: list[str] = []
    while words.rest() and not words.rest().startswith("#"):
        word = words.next()
        if word is None:
            break
        argv.append(word)
    return argv


def _find_option(word: str, parser: argparse.ArgumentParser) -> tuple[argparse.Action, bool] | None:
    """The option a word names, and whether the word already holds its value.

    Follows argparse: ``--opt=VALUE``, unambiguous ``--op`` prefixes, ``-tVALUE`` and
    clusters of short flags such as ``-qt 0.2``. None when argparse would not know it.
    """
    actions = parser._option_string_actions
    if word.startswith("--"):
        name, equals, _ = word.partition("=")
        action = actions.get(name)
        if action is None and parser.allow_abbrev:
            matches = {a for s, a in actions.items() if s.startswith("--") and s.startswith(name)}
            action = matches.pop() if len(matches) == 1 else None
        return None if action is None else (action, bool(equals))
    if word in actions:
        return actions[word], False
    if word[:2] in actions and word[2:3] == "=":
        return actions[word[:2]], True
    flag = None
    for position in range(1, len(word)):
        flag = actions.get("-" + word[position])
        if flag is None:
            return None
        if flag.nargs != 0:
            return flag, position + 1 < len(word)
    return None if flag is None else (flag, True)


def split_line_prompt(
    line: str, parser: Any, with_model: bool | Callable[[str], bool] = True
) -> tuple[list[str], str]:
    """Split the one-line form ``%ollama [options] MODEL [options] prompt text``.

    Options may stand before or after the model; the first word that is neither an option,
    an option's value nor the model starts the prompt, which is taken verbatim to the end of
    the line (apostrophes, quotes and braces as typed). Options and the model are read as
    shell words. A prompt that itself begins with ``-`` goes after ``--``:
    ``%ollama mistral -- -5 is negative?``. A ``#`` word before the prompt starts a comment
    (``%ollama mistral --pull  # load it``: no prompt); inside the prompt ``#`` is text.

    Options with an optional value never swallow the model or the prompt: ``--think`` takes
    the next word only if it is ``low``, ``medium`` or ``high``, and ``--chat`` / ``-c`` take
    a conversation name only when it is attached (``--chat=math``), so that
    ``%ollama mistral --chat Why...`` asks "Why..." in the default conversation.

    ``with_model`` says whether the first plain word names the model: always (True), never
    (False: a default model answers and that word starts the prompt), or when a check such
    as "is it installed?" says so; the check is only called if such a word comes up.

    The returned argv is ready for ``parser.parse_args``; when a model was read it is the
    last item (after ``--`` when the option before it could have taken it for its value).

    >>> from IPython.core.magic_arguments import MagicArgumentParser
    >>> p = MagicArgumentParser()
    >>> _ = p.add_argument("-t", type=float); _ = p.add_argument("-q", action="store_true")
    >>> split_line_prompt("-t 0.2 llama3.2 -q What's up, doc?", p)
    (['-t', '0.2', '-q', 'llama3.2'], "What's up, doc?")
    >>> split_line_prompt("-q What's up?", p, with_model=False)
    (['-q'], "What's up?")
    >>> split_line_prompt("llama3.2 -- -5 is negative?", p)
    (['llama3.2'], '-5 is negative?')
    """
    words = _Words(line)
    options: list[str] = []
    model: str | None = None
    value_may_follow = False  # the last option could take the model as its value
    prompt = ""
    while True:
        rest = words.rest()
        if not rest or rest.startswith("#"):
            break  # a comment before the prompt: the line has no prompt
        first = rest.split(None, 1)[0]
        if first == "--":
            prompt = rest[2:].strip()
            break
        if not first.startswith("-"):
            if model is None and with_model:
                word = words.next() or ""
                if with_model is True or with_model(word):
                    model = word
                    continue
            prompt = rest.rstrip()
            break
        word = words.next() or ""
        found = _find_option(word, parser)
        if found is None:
            name = word.partition("=")[0]
            similar = sorted(o for o in parser._option_string_actions if o.startswith(name))
            if name.startswith("--") and len(similar) > 1:
                raise OllamaUsageError(
                    f"{name} could be any of {', '.join(similar)}; write the option in full."
                )
            shown = f"%ollama {model} -- {rest}" if model else f"%ollama MODEL -- {rest}"
            raise OllamaUsageError(
                f"{word!r} is not an option of %ollama (see `%ollama?`). If the prompt itself "
                f"starts with '-', put `--` before it: `{shown}`."
            )
        action, has_value = found
        options.append(word)
        value_may_follow = False
        if has_value or action.nargs == 0:
            continue
        if action.nargs == "?":
            allowed = _OPTIONAL_VALUES.get(action.dest, frozenset())
            following = words.rest().split(None, 1)
            if following and following[0] in allowed:
                options.append(words.next() or "")
            else:
                value_may_follow = True
            continue
        value = words.next()
        if value is not None:
            options.append(value)
    if model is None:
        return options, prompt
    return [*options, *(["--"] if value_may_follow else []), model], prompt


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


def argument_error(message: str, parser: argparse.ArgumentParser) -> OllamaUsageError:
    """argparse's complaint about the magic line, with the option probably meant.

    >>> parser = argparse.ArgumentParser()
    >>> _ = parser.add_argument("-t", "--temperature", type=float)
    >>> print(argument_error("unrecognized arguments: --temprature 0.1", parser))
    ... # doctest: +NORMALIZE_WHITESPACE
    Unrecognized arguments: --temprature 0.1. Did you mean --temperature?
    `%%ollama?` lists every option.
    """
    known = [option for action in parser._actions for option in action.option_strings]
    guesses = []
    for word in re.findall(r"(?<![\w-])(--?[\w-]+)", message):
        if word not in known:
            guesses += difflib.get_close_matches(word, known, n=1, cutoff=0.75)
    text = message[:1].upper() + message[1:].rstrip(".") + "."
    if guesses:
        text += f" Did you mean {' or '.join(dict.fromkeys(guesses))}?"
    return OllamaUsageError(f"{text} `%%ollama?` lists every option.")
