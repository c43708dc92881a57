"""The ``%%ollama`` cell magic: parse arguments, pick a view, run the client, store the result."""

from __future__ import annotations

import io
import json
import keyword
import shlex
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import Dict, Float, Unicode

from .client import DEFAULT_TIMEOUT, OllamaClient, build_chat_body
from .commands import CommandContext
from .errors import Interrupted, OllamaMagicError, OllamaUsageError
from .events import AnswerDelta, Done, ThinkingDelta
from .host import resolve_host
from .manage import SUBCOMMANDS
from .result import OllamaResponse
from .view import View, choose_view

DEFAULT_OUT = "ollama_response"


def parse_option(item: str) -> tuple[str, Any]:
    """``KEY=VALUE`` → (key, value); the value is JSON when it parses, else a string.

    >>> parse_option("num_ctx=8192"), parse_option('stop=["\\\\n"]'), parse_option("x=abc")
    (('num_ctx', 8192), ('stop', ['\\n']), ('x', 'abc'))
    """
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise OllamaUsageError(
            f"--option expects KEY=VALUE (for example -O num_ctx=8192), got {item!r}."
        )
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def parse_keep_alive(value: str) -> str | int | float:
    """Ollama takes a number of seconds or a duration string like ``"10m"``.

    >>> parse_keep_alive("300"), parse_keep_alive("-1"), parse_keep_alive("10m")
    (300, -1, '10m')
    """
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() else number


def parse_format(value: str) -> str | dict[str, Any]:
    """``json`` or a JSON-schema object written inline."""
    if value == "json":
        return value
    try:
        schema = json.loads(value)
    except ValueError:
        schema = None
    if not isinstance(schema, dict):
        raise OllamaUsageError(
            f"--format takes `json` or a JSON schema object such as "
            f'\'{{"type": "object"}}\', got {value!r}.'
        )
    return schema


def split_arguments(line: str) -> list[str]:
    """Split a magic line like a shell would (IPython's own parser keeps the quotes)."""
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise OllamaUsageError(
            f"Could not split the magic line ({exc}); check the quotes."
        ) from None


def split_line_prompt(line: str, parser: Any) -> tuple[list[str], str]:
    """Split ``[options] MODEL prompt text`` into argv and the raw prompt.

    The prompt is taken verbatim (apostrophes and all): only the options and the model
    before it are read as shell words.

    >>> from IPython.core.magic_arguments import MagicArgumentParser
    >>> p = MagicArgumentParser()
    >>> _ = p.add_argument("-t", type=float); _ = p.add_argument("-q", action="store_true")
    >>> split_line_prompt("-t 0.2 -q llama3.2 What's up, doc?", p)
    (['-t', '0.2', '-q', 'llama3.2'], "What's up, doc?")
    """
    stream = io.StringIO(line)
    lexer = shlex.shlex(stream, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    actions = parser._option_string_actions
    argv: list[str] = []
    try:
        while True:
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


@magics_class
class OllamaMagics(Magics):
    """Chat with local Ollama models from notebook cells. Configure with ``%config``."""

    model = Unicode("", help="Model used when the magic line names none, e.g. 'llama3.2'.").tag(
        config=True
    )
    host = Unicode(
        "", help="Ollama URL; empty means the OLLAMA_HOST variable, else 127.0.0.1:11434."
    ).tag(config=True)
    out = Unicode(DEFAULT_OUT, help="Variable that receives each answer.").tag(config=True)
    timeout = Float(
        DEFAULT_TIMEOUT, help="Longest wait in seconds for the next chunk (0 = forever)."
    ).tag(config=True)
    options = Dict(
        help="Ollama options sent with every request, under per-cell ones (e.g. num_ctx)."
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell, **kwargs)
        self._clients: dict[tuple[str, float], OllamaClient] = {}

    def _client(self, base_url: str, timeout: float) -> OllamaClient:
        """One client per server, so that keep-alive connections are reused between cells."""
        key = (base_url, timeout)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = OllamaClient(base_url, timeout=timeout)
        return client

    @no_var_expand
    @magic_arguments()
    @argument("model_name", nargs="?", metavar="MODEL", help="Model to ask, e.g. llama3.2.")
    @argument("-o", "--out", metavar="NAME", help=f"Variable for the answer ({DEFAULT_OUT}).")
    @argument("--host", help="Ollama URL or host[:port] (default: OLLAMA_HOST or local).")
    @argument("-s", "--system", help="System prompt, e.g. --system 'You are terse.'")
    @argument("-t", "--temperature", type=float, help="Sampling temperature, e.g. 0.2.")
    @argument("--seed", type=int, help="Random seed, for repeatable answers.")
    @argument(
        "-O",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Any Ollama option (repeatable); VALUE is parsed as JSON when it can be.",
    )
    @argument("--format", metavar="json|SCHEMA", help="Ask for JSON output (or a JSON schema).")
    @argument(
        "--think",
        nargs="?",
        const=True,
        default=None,
        metavar="LEVEL",
        help="Ask a reasoning model to think (optionally low, medium or high).",
    )
    @argument("--no-think", action="store_true", help="Ask a reasoning model not to think.")
    @argument("--keep-alive", metavar="DURATION", help="How long Ollama keeps the model loaded.")
    @argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help=f"Longest wait for the next chunk (default {DEFAULT_TIMEOUT:g}; 0 = forever).",
    )
    @argument("-q", "--quiet", action="store_true", help="Show nothing; only set the variable.")
    @line_cell_magic
    def ollama(self, line: str, cell: str | None = None) -> Any:
        """Send the cell to a local Ollama model and stream the answer into the output.

        The cell body is the prompt. Tokens appear as the model produces them, with a status
        line (model, time, tokens, speed); when the answer is complete it is shown as Markdown
        and stored in a variable (``ollama_response`` unless ``--out`` says otherwise). That
        variable is a ``str`` with extra attributes: ``.model``, ``.thinking``,
        ``.done_reason``, ``.stats``, ``.interrupted`` and ``.error``. The stop button ends the
        answer early and keeps what arrived. Quote arguments as in a shell.

        Examples
        --------
        ::

            %%ollama llama3.2
            Why is the sky blue?

            %%ollama mistral --system 'You are terse.' -t 0.2 --out haiku
            Write a haiku about notebooks.

            %%ollama qwen3:8b --no-think -O num_ctx=8192 -O 'stop=["\\n\\n"]'
            Summarise the text above in one line.

            %config OllamaMagics.model = "llama3.2"    # then the model can be left out

        The server is ``--host``, else the ``OLLAMA_HOST`` environment variable (parsed as
        Ollama does), else http://127.0.0.1:11434.
        """
        if cell is None:
            return self._line_magic(line)
        self._ask(self._parse_args(split_arguments(line)), cell)
        return None

    def _parse_args(self, argv: list[str]) -> Any:
        return self.ollama.parser.parse_args(argv)

    def _context(self, host: str | None = None) -> CommandContext:
        try:
            base_url = resolve_host(host or self.host or None)
        except ValueError as exc:
            raise OllamaUsageError(f"{exc} Use a URL like http://127.0.0.1:11434.") from None
        live = getattr(self.shell, "kernel", None) is not None
        return CommandContext(self.shell, self._client(base_url, self.timeout), live)

    def _line_magic(self, line: str) -> Any:
        """``%ollama SUBCOMMAND ...`` or the one-liner ``%ollama MODEL prompt...``."""
        words = line.split(None, 1)
        if not words:
            raise OllamaUsageError(
                "Say what to do: `%ollama MODEL your question`, or one of the subcommands: "
                + ", ".join(sorted(SUBCOMMANDS))
                + ". For a longer prompt use the cell magic `%%ollama MODEL`."
            )
        name = words[0]
        if name in SUBCOMMANDS:
            rest = words[1] if len(words) > 1 else ""
            return SUBCOMMANDS[name](self._context(), split_arguments(rest))
        argv, prompt = split_line_prompt(line, self.ollama.parser)
        self._ask(self._parse_args(argv), prompt)
        return None

    def _ask(self, args: Any, cell: str) -> None:
        """Build the request from parsed arguments and the prompt, then stream the answer."""
        out_name = args.out or self.out
        if not out_name.isidentifier() or keyword.iskeyword(out_name):
            raise OllamaUsageError(f"--out needs a Python variable name, got {out_name!r}.")
        try:
            request = self._build_request(args, cell)
        except OllamaMagicError as exc:
            self.shell.user_ns[out_name] = OllamaResponse(error=exc)
            raise
        self._run(request, out_name, quiet=args.quiet)

    def _build_request(self, args: Any, cell: str) -> dict[str, Any]:
        model = (args.model_name or self.model).strip()
        if not model:
            raise OllamaUsageError(
                "No model given. Name one on the magic line (`%%ollama llama3.2`) or set a "
                "default once with `%config OllamaMagics.model = 'llama3.2'`."
            )
        prompt = cell.rstrip("\n")
        if not prompt.strip():
            raise OllamaUsageError(
                "The cell has no prompt. Write the question on the lines below `%%ollama`."
            )
        if args.think is not None and args.no_think:
            raise OllamaUsageError("Use either --think or --no-think, not both.")
        think: bool | str | None = None
        if args.no_think:
            think = False
        elif args.think is not None:
            think = args.think
            if isinstance(think, str) and think not in ("low", "medium", "high"):
                raise OllamaUsageError(
                    f"--think takes no value or one of low, medium, high; got {think!r}."
                )
        options: dict[str, Any] = dict(self.options)
        for item in args.option:
            key, value = parse_option(item)
            options[key] = value
        if args.temperature is not None:
            options["temperature"] = args.temperature
        if args.seed is not None:
            options["seed"] = args.seed
        timeout = self.timeout if args.timeout is None else args.timeout
        if timeout < 0:
            raise OllamaUsageError("--timeout must be a number of seconds ≥ 0 (0 = wait forever).")
        try:
            base_url = resolve_host(args.host or self.host or None)
        except ValueError as exc:
            raise OllamaUsageError(f"{exc} Use a URL like http://127.0.0.1:11434.") from None
        messages = []
        if args.system:
            messages.append({"role": "system", "content": args.system})
        messages.append({"role": "user", "content": prompt})
        return {
            "base_url": base_url,
            "timeout": timeout,
            "model": model,
            "messages": messages,
            "options": options or None,
            "format": parse_format(args.format) if args.format else None,
            "think": think,
            "keep_alive": parse_keep_alive(args.keep_alive) if args.keep_alive else None,
        }

    def _run(self, request: dict[str, Any], out_name: str, quiet: bool) -> None:
        base_url, timeout = request.pop("base_url"), request.pop("timeout")
        model = request["model"]
        client = self._client(base_url, timeout)
        view: View = choose_view(self.shell, model, quiet)
        answer: list[str] = []
        thinking: list[str] = []
        done: Done | None = None
        error: OllamaMagicError | None = None
        interrupted = False
        body = None
        try:
            view.start()
            body = build_chat_body(**request)
            stream = client.stream("/api/chat", body)
            with stream:
                for event in stream:
                    kind = type(event)
                    if kind is AnswerDelta:
                        answer.append(event.text)
                        view.answer(event.text)
                    elif kind is ThinkingDelta:
                        thinking.append(event.text)
                        view.thinking(event.text)
                    else:
                        done = event
        except KeyboardInterrupt:
            interrupted = True
        except OllamaMagicError as exc:
            error = exc
        finally:
            text = "".join(answer)
            if interrupted:
                error = Interrupted(
                    f"Stopped after {len(text)} characters of the answer. The partial answer is "
                    f"in `{out_name}` (`{out_name}.interrupted` is True)."
                )
            elif error is not None and (text or thinking):
                error.message += (
                    f" The {len(text)} characters received before that are kept in `{out_name}`."
                )
                error.args = (error.message,)
            result = OllamaResponse(
                text,
                model=(done.model if done and done.model else model),
                thinking="".join(thinking),
                done_reason=done.done_reason if done and error is None else None,
                stats=done.stats if done else None,
                interrupted=interrupted,
                error=error,
                request=body,
            )
            self.shell.user_ns[out_name] = result
            view.finish(result, out_name)
        if error is not None:
            raise error
