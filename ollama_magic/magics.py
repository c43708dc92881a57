"""The ``%%ollama`` magic: read the line, build one request, hand it to a mode. Nothing more.

The work happens below: :mod:`.request` reads the arguments once, :mod:`.jobs` composes the
modes from the one streaming loop in :mod:`.stream`, :mod:`.backends` talks to servers and the
views render. This class holds the configuration (``%config OllamaMagics.*``) and the wiring.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from traitlets import Bool, Dict, Enum, Float, List, Unicode

from .arguments import ollama_arguments
from .backends import DEFAULT_TIMEOUT, Backend, backend_kind, make_backend
from .cmdline import argument_error, split_arguments, split_line_prompt
from .coding import offer_code
from .commands import CommandContext, Subcommand
from .context import context_line
from .conversation import Conversations, reset_conversation, show_history
from .errors import (
    OllamaConnectionError,
    OllamaMagicError,
    OllamaUsageError,
)
from .fix import (
    DEFAULT_EXPLAIN_PROMPT,
    DEFAULT_FIX_PROMPT,
    explain_prompt,
    fix_prompt,
    require_last_error,
)
from .jobs import BackgroundJob, run_compare, run_map, run_single
from .lens_view import choose_lens_view, with_compare_lens
from .local import default_local_model
from .log import AnswerLog, log_command
from .manage import SUBCOMMANDS, describe_subcommands, ensure_model
from .prompt import dry_run_markdown
from .render import ConfigReport
from .request import (
    DEFAULT_OUT,
    ChatRequest,
    Defaults,
    build_request,
    check_out_name,
    choose_servers,
    resolve_base_url,
)
from .result import OllamaResponse
from .shell import cell_key, confirm_call, raw_inputs, show_markdown
from .show_prompt import show_prompts
from .stream import CancelToken, Journal, answering
from .tool_view import traced_view
from .view import choose_compare_view, choose_map_view, choose_view
from .view.echo import with_compare_echo, with_echo, with_map_echo

#: The settings ``%ollama config`` reports, in this order.
SETTINGS = (
    *("model", "host", "hosts", "api", "out", "timeout", "options", "chat", "log", "cache"),
    "live",
)


def _all_subcommands() -> str:
    """Every ``%ollama`` subcommand in one line, for ``%ollama help`` and usage errors."""
    return (
        f"{describe_subcommands()}; history [NAME]: show a conversation; reset [NAME]: "
        "forget a conversation; config: show the settings; log [TEXT]: search the answer log; "
        "fix [MODEL]: a corrected cell for the last error; explain [MODEL]: the last error in "
        "plain words; help: this list"
    )


def _help_text() -> str:
    """``%ollama help``: how to ask, and every subcommand on a line of its own."""
    return (
        "**`%%ollama MODEL`** asks with the cell as the prompt, **`%ollama MODEL question`** "
        "in one line; `%%ollama?` lists every option, with examples.\n\n"
        + "\n".join(
            f"- `%ollama {part.replace(': ', '`: ', 1)}" for part in _all_subcommands().split("; ")
        )
    )


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
    hosts = List(
        Unicode(),
        help="A pool of servers: --map spreads its items over all of them; one prompt goes to "
        "the first that answers. Empty means `host`.",
    ).tag(config=True)
    chat = Unicode(
        "", help="Conversation every cell joins unless it says --chat NAME or --no-chat."
    ).tag(config=True)
    log = Bool(
        True,
        help="Write every answer to the answer log while it streams (%ollama log searches it); "
        "False, or OLLAMA_MAGIC_LOG=off, turns it off.",
    ).tag(config=True)
    cache = Bool(
        False,
        help="Replay an identical earlier complete answer from the log instead of asking again.",
    ).tag(config=True)
    api = Enum(
        ("auto", "ollama", "openai"),
        default_value="auto",
        help="Server API: 'ollama', 'openai' (/v1/chat/completions) or 'auto' (OpenAI when the "
        "URL ends in /v1). Models named local:NAME always run inside the kernel.",
    ).tag(config=True)
    live = Enum(
        ("lean", "smooth"),
        default_value="lean",
        help="How the live view spends bytes: 'lean' keeps them within about three times the "
        "answer, so a long paragraph updates less often; 'smooth' re-sends the text being "
        "written at every update (about 22 a second), several times the answer's size.",
    ).tag(config=True)
    fix_prompt = Unicode(
        DEFAULT_FIX_PROMPT,
        help="Request of %ollama fix; {cell}, {traceback}, {error}, {error_type}, {message} and "
        "{where} are filled in.",
    ).tag(config=True)
    explain_prompt = Unicode(
        DEFAULT_EXPLAIN_PROMPT, help="Request of %ollama explain (the same fields as fix_prompt)."
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell, **kwargs)
        self._backends: dict[tuple[str, str, str, float], Backend] = {}
        self.conversations = Conversations()
        self._answer_log: AnswerLog | None = None
        self._answer_log_enabled: bool | None = None

    def _log(self) -> AnswerLog:
        """The answer log, opened lazily; ``%config OllamaMagics.log = False`` wins over the
        environment, and a change of the setting takes effect at the next cell."""
        enabled = None if self.log else False
        if self._answer_log is None or self._answer_log_enabled != enabled:
            self._answer_log = AnswerLog(enabled=enabled)
            self._answer_log_enabled = enabled
        return self._answer_log

    def _journal(self, request: ChatRequest) -> Journal:
        kernel = getattr(self._ip, "kernel", None)
        session = getattr(getattr(kernel, "session", None), "session", "")
        return Journal(
            log=self._log(),
            replay=request.cache,
            kernel=f"{session or 'ipython'} pid {os.getpid()}",
            cell=request.cell_key,
        )

    @property
    def _ip(self) -> Any:
        """The shell this magic runs in (always set once the extension is loaded)."""
        assert self.shell is not None
        return self.shell

    def _backend(self, model: str, base_url: str, api: str, timeout: float) -> Backend:
        """One backend per kind and server, so keep-alive connections are reused."""
        key = (backend_kind(model, base_url, api), base_url, api, timeout)
        backend = self._backends.get(key)
        if backend is None:
            backend = self._backends[key] = make_backend(model, base_url, api, timeout)
        return backend

    def _fallback_model(self, base_url: str, api: str) -> str:
        """No model named anywhere: the embedded model when no server answers (with a note)."""
        local = default_local_model()
        if local is not None:
            backend = self._backend("", base_url, api, self.timeout)
            try:
                backend.version(timeout=2)
            except OllamaConnectionError:
                # A notice, not an error (the answer follows): stdout, not the red stderr box.
                print(
                    f"{backend.label[:1].upper()}{backend.label[1:]} is not reachable at "
                    f"{base_url}; answering with the embedded {local}.",
                    flush=True,
                )
                return local
        raise OllamaUsageError(
            "No model given. Name one on the magic line (%%ollama llama3.2) or set a "
            "default once with %config OllamaMagics.model = 'llama3.2'."
        )

    @no_var_expand
    @ollama_arguments
    @line_cell_magic
    def ollama(self, line: str, cell: str | None = None) -> Any:
        """Send the cell to a local Ollama model and stream the answer into the output.

        The cell body is the prompt. Tokens appear as the model produces them, with a status
        line (model, time, tokens, speed); when the answer is complete it is shown as Markdown
        and stored in a variable (``ollama_response`` unless ``--out`` says otherwise). That
        variable is a ``str`` with extra attributes: ``.model``, ``.thinking``,
        ``.done_reason``, ``.stats``, ``.interrupted``, ``.error`` and ``.json()``. The stop
        button ends the answer early and keeps what arrived. Quote arguments as in a shell.

        ``{name}`` in the prompt is replaced by the notebook variable ``name`` (and ``{In[3]}``,
        ``{Out[3]}`` by earlier cells); every other brace is left alone. ``--chat`` keeps a
        conversation across cells; running a cell again replaces its earlier turn.

        Examples
        --------
        ::

            %%ollama llama3.2
            Why is the sky blue?

            %%ollama mistral --system 'You are terse.' -t 0.2 --out haiku
            Write a haiku about notebooks.

            %%ollama llama3.2 --chat
            Summarise this table: {df}

            %%ollama qwen3:8b --no-think -O num_ctx=8192 -O 'stop=["\\n\\n"]'
            Explain {In[3]} in one line.

            %ollama llama3.2 What's the capital of France?     # one-liner

            %config OllamaMagics.model = "llama3.2"    # then the model can be left out

        Subcommands of the line magic: ``%ollama history [NAME]``, ``%ollama reset [NAME]``,
        ``%ollama config``, the model commands (``%ollama list``, ...); ``%ollama help`` lists
        them all.

        The server is ``--host``, else the ``OLLAMA_HOST`` environment variable (parsed as
        Ollama does), else http://127.0.0.1:11434.
        """
        if cell is None:
            return self._line_magic(line)
        self._ask(self._parse_args(split_arguments(line)), cell)
        return None

    # -- the line magic: subcommands and the one-line form ---------------------------------

    def _parse_args(self, argv: list[str]) -> Any:
        parser = self.ollama.parser
        try:
            return parser.parse_args(argv)
        except UsageError as exc:  # argparse's own words, then what to do
            raise argument_error(str(exc), parser) from None

    def _context(self, host: str | None = None) -> CommandContext:
        base_url = resolve_base_url(host or self.host)
        live = self._live()
        return CommandContext(self.shell, self._backend("", base_url, self.api, self.timeout), live)

    def _live(self) -> bool:
        """Inside a Jupyter kernel (widgets can be shown), not terminal IPython."""
        return getattr(self.shell, "kernel", None) is not None

    def _subcommands(self) -> dict[str, Subcommand]:
        return {
            **SUBCOMMANDS,
            "history": lambda ctx, argv: show_history(self.conversations, argv, self.chat),
            "reset": lambda ctx, argv: reset_conversation(self.conversations, argv, self.chat),
            "config": self._show_config,
            "log": lambda ctx, argv: log_command(self._log())(ctx, argv),
            "fix": self._fix,
            "explain": self._explain,
            "help": lambda ctx, argv: show_markdown(self._ip, _help_text()),
        }

    def _line_magic(self, line: str) -> Any:
        """``%ollama SUBCOMMAND ...`` or the one-liner ``%ollama MODEL prompt...``."""
        words = line.split(None, 1)
        subcommands = self._subcommands()
        if not words:
            raise OllamaUsageError(
                "Say what to do: `%ollama MODEL your question` (for a longer prompt use the "
                f"cell magic `%%ollama MODEL`), or a subcommand: {_all_subcommands()}."
            )
        name = words[0]
        if name in subcommands:
            rest = words[1] if len(words) > 1 else ""
            return subcommands[name](self._context(), split_arguments(rest))
        parser = self.ollama.parser
        installed: frozenset[str] | None = None

        def is_model(word: str) -> bool:
            """With a default model, the first plain word is a model only if it is installed."""
            nonlocal installed
            if installed is None:
                backend = self._backend("", resolve_base_url(self.host), self.api, 2.0)
                installed = backend.model_names()
            return word in installed

        argv, prompt = split_line_prompt(line, parser, with_model=is_model if self.model else True)
        if not prompt.strip() and len(words) == 1 and not name.startswith("-"):
            if is_model(name):
                raise OllamaUsageError(
                    f"`%ollama {name}` needs a question after the model's name: "
                    f"`%ollama {name} Why is the sky blue?`, or the cell magic `%%ollama {name}` "
                    "with the prompt in the cell below it."
                )
            raise OllamaUsageError(
                f"`%ollama {name}` is not a subcommand. Valid ones: {_all_subcommands()}. "
                "To ask a model, put the question after its name: "
                f"`%ollama {name} Why is the sky blue?`."
            )
        self._ask(self._parse_args(argv), prompt)
        return None

    def _fix(self, ctx: CommandContext, argv: list[str]) -> None:
        """``%ollama fix [MODEL] [options]``: a corrected last failing cell, as a new cell."""
        report = require_last_error(self._ip, "fix")
        self._ask_about_error(argv, fix_prompt(report, self.fix_prompt), code=True)

    def _explain(self, ctx: CommandContext, argv: list[str]) -> None:
        """``%ollama explain [MODEL] [options]``: the last error, in plain words."""
        report = require_last_error(self._ip, "explain")
        self._ask_about_error(argv, explain_prompt(report, self.explain_prompt), code=False)

    def _ask_about_error(self, argv: list[str], prompt: str, code: bool) -> None:
        args = self._parse_args(argv)
        args.no_interpolate = True  # the cell and traceback are sent as they are
        args.code = args.code or code
        if args.chat is None:
            args.no_chat = True
        self._ask(args, prompt)

    def _show_config(self, ctx: CommandContext, argv: list[str]) -> ConfigReport:
        """``%ollama config``: the effective settings and where each comes from."""
        if argv:
            raise OllamaUsageError("%ollama config takes no arguments; set values with %config.")
        configured = self.config.get("OllamaMagics", {})
        rows = []
        for name in SETTINGS:
            value = getattr(self, name)
            source = "%config / ipython_config.py" if name in configured else "default"
            if name == "host" and not value:
                env = os.environ.get("OLLAMA_HOST")
                value = resolve_base_url(None)
                source = "OLLAMA_HOST environment variable" if env else "default"
            rows.append((name, value, source))
        return ConfigReport(rows)

    # -- asking --------------------------------------------------------------------------------

    def _defaults(self) -> Defaults:
        return Defaults(
            model=self.model,
            host=self.host,
            out=self.out,
            timeout=self.timeout,
            options=dict(self.options),
            chat=self.chat,
            api=self.api,
            cache=self.cache,
            hosts=tuple(self.hosts),
        )

    def _ask(self, args: Any, cell: str) -> None:
        """Build the request once, check it, then run its mode (in the background with --bg)."""
        namespace = self._ip.user_ns
        out = check_out_name(args.out or self.out)
        try:
            request = build_request(
                args,
                cell,
                defaults=self._defaults(),
                namespace=namespace,
                conversations=self.conversations,
                cell_key=cell_key(self._ip),
                raw_inputs=raw_inputs(self._ip),
                fallback_model=self._fallback_model,
            )
            if request.dry_run:
                self._show_dry_run(request)
                return
            if request.show_prompt:
                self._show_rendered_prompt(request)
                return
            request = self._check_servers(request)
        except OllamaMagicError as exc:
            namespace[out] = OllamaResponse(error=exc)  # never leave a previous answer there
            raise
        if not request.quiet:
            for note in request.notes:
                print(note, file=sys.stderr)
            if request.filled_in:
                print(f"Filled in from the notebook: {', '.join(request.filled_in)}")
        work = self._mode(request)
        if request.background:
            job = BackgroundJob(request.out, namespace)
            namespace[f"{request.out}_job"] = job
            job.start(work)
            return
        with answering() as token:  # a kernel shutdown stops it through this token
            work(token)

    def _backend_for(self, request: ChatRequest, model: str) -> Backend:
        return self._backend(model, request.base_url, request.api, request.timeout)

    def _check_servers(self, request: ChatRequest) -> ChatRequest:
        """Unknown model names are refused (or pulled, with --pull) before anything is sent."""

        def check(url: str, model: str) -> None:
            backend = self._backend(model, url, request.api, request.timeout)
            if request.pull:
                ensure_model(CommandContext(self.shell, backend, self._live()), model)
            else:
                backend.check_model(model)

        def answers(url: str) -> bool:
            backend = self._backend(request.model, url, request.api, request.timeout)
            return bool(backend.model_names(timeout=2.0))

        return choose_servers(request, check, answers)

    def _mode(self, request: ChatRequest) -> Callable[[CancelToken | None], Any]:
        """The work for the request's mode, as one call that a worker thread can run."""
        shell, namespace = self._ip, self._ip.user_ns
        journal = self._journal(request)
        if request.compare:
            backends = [self._backend_for(request, model) for model in request.models]
            models = list(request.models)
            compare = lambda cancel: run_compare(  # noqa: E731
                backends,
                request,
                with_compare_echo(
                    choose_compare_view(shell, models, request.quiet), shell, request.quiet
                ),
                namespace,
                cancel,
                journal,
            )
            if request.logprobs is not None and not request.quiet:
                return with_compare_lens(shell, compare, namespace, request.out)
            return compare
        if request.map_name is not None:
            total = len(request.map_prompts)
            pool = [
                self._backend(request.model, url, request.api, request.timeout)
                for url in request.base_urls
            ]
            return lambda cancel: run_map(
                pool,
                request,
                with_map_echo(
                    choose_map_view(shell, total, request.quiet),
                    shell,
                    total,
                    request.quiet,
                    request.background,
                ),
                namespace,
                cancel,
                journal,
            )
        backend = self._backend_for(request, request.model)

        smooth = self.live == "smooth"

        def single(cancel: CancelToken | None) -> OllamaResponse:
            if request.logprobs is None:
                view = choose_view(
                    shell, request.model, request.quiet, trace=request.trace, smooth=smooth
                )
            else:
                view = choose_lens_view(shell, request.model, request.quiet)
            view = with_echo(view, shell, request.quiet, request.background)
            if request.tools:
                view = traced_view(view, shell, request.out, request.quiet)
            result = run_single(
                backend,
                request,
                view,
                namespace,
                self.conversations,
                cancel,
                journal,
                ask=confirm_call if request.confirm else None,
            )
            if context_line(result) and not request.quiet and request.logprobs is None:
                print(context_line(result), file=sys.stderr)
            if request.code:
                offer = offer_code(shell, result, request.out)
                result.code = offer.code
                print(offer.note, file=sys.stdout if offer.inserted else sys.stderr)
            return result

        return single

    def _show_rendered_prompt(self, request: ChatRequest) -> None:
        """--show-prompt: each model's rendered prompt (the first item's, with --map)."""
        backends = {model: self._backend_for(request, model) for model in request.models}
        markdown = show_prompts(backends, {model: request.body(model) for model in request.models})
        if getattr(self.shell, "kernel", None) is not None:
            from IPython.display import display

            display({"text/markdown": markdown, "text/plain": markdown}, raw=True)
        else:
            print(markdown)

    def _show_dry_run(self, request: ChatRequest) -> None:
        """The exact request(s) the cell would send, for each model (the first item of --map)."""
        parts = []
        for model in request.models:
            url, body = self._backend_for(request, model).describe_request(request.body(model))
            parts.append(dry_run_markdown(url, body))
        markdown = "\n\n".join(parts)
        if request.map_name is not None:
            markdown += f"\n\n*(the first of {len(request.map_prompts)} requests of --map)*"
        show_markdown(self._ip, markdown)
