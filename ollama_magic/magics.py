"""The ``%%ollama`` magic: read the line, build one request, hand it to a mode. Nothing more.

The work happens below: :mod:`.request` reads the arguments once, :mod:`.jobs` composes the
modes from the one streaming loop in :mod:`.stream`, :mod:`.backends` talks to servers and the
views render. This class holds the configuration (``%config OllamaMagics.*``) and the wiring.
"""

from __future__ import annotations

import difflib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from IPython.core.error import StdinNotImplementedError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import Bool, Dict, Enum, Float, List, Unicode

from .backends import DEFAULT_TIMEOUT, make_backend
from .cmdline import split_arguments, split_line_prompt
from .coding import offer_code
from .commands import CommandContext, Subcommand
from .context import context_line
from .conversation import Conversation, Conversations
from .errors import (
    ModelNotFoundError,
    OllamaConnectionError,
    OllamaMagicError,
    OllamaUsageError,
    ToolLoopError,
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
from .request import (
    DEFAULT_CHAT,
    DEFAULT_OUT,
    ChatRequest,
    Defaults,
    build_request,
    check_out_name,
    resolve_base_url,
)
from .result import OllamaResponse
from .show_prompt import show_prompts
from .stream import CancelToken, Journal
from .tools import ToolCallRecord
from .view import choose_compare_view, choose_map_view, choose_view

#: The settings ``%ollama config`` reports, in this order.
SETTINGS = ("model", "host", "hosts", "api", "out", "timeout", "options", "chat", "log", "cache")


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
        self._backends: dict[tuple[str, str, str, float], Any] = {}
        self.conversations = Conversations()
        self._answer_log: AnswerLog | None = None

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

    def _backend(self, model: str, base_url: str, api: str, timeout: float) -> Any:
        """One backend per kind and server, so keep-alive connections are reused."""
        from .backends import backend_kind

        key = (backend_kind(model, base_url, api), base_url, api, timeout)
        backend = self._backends.get(key)
        if backend is None:
            backend = self._backends[key] = make_backend(model, base_url, api, timeout)
        return backend

    def _fallback_model(self, base_url: str, api: str) -> str:
        """No model named anywhere: the embedded model when no Ollama answers (with a note)."""
        local = default_local_model()
        backend = self._backend("", base_url, api, self.timeout)
        if local is not None and backend.kind == "ollama":
            try:
                backend.client.request_json("GET", "/api/version", timeout=2)
            except OllamaConnectionError:
                print(
                    f"Ollama is not reachable at {base_url}; answering with the embedded {local}.",
                    file=sys.stderr,
                )
                return local
        raise OllamaUsageError(
            "No model given. Name one on the magic line (`%%ollama llama3.2`) or set a "
            "default once with `%config OllamaMagics.model = 'llama3.2'`."
        )

    @no_var_expand
    @magic_arguments(name="%ollama")  # the usage line then reads %%ollama
    @argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help="Model to ask, e.g. llama3.2; name several to compare their answers side by side.",
    )
    @argument("-o", "--out", metavar="NAME", help=f"Variable for the answer ({DEFAULT_OUT}).")
    @argument(
        "--host",
        action="append",
        metavar="URL",
        help="Ollama URL or host[:port] (default: OLLAMA_HOST or local); several, comma-separated "
        "or repeated, make a pool that --map spreads items over.",
    )
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
    @argument(
        "--format",
        metavar="json|SCHEMA|VAR",
        help="Ask for JSON: `json`, an inline JSON schema, or a variable (schema dict or "
        "pydantic model).",
    )
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
    @argument(
        "-c",
        "--chat",
        nargs="?",
        const=DEFAULT_CHAT,
        default=None,
        metavar="NAME",
        help=f"Continue a conversation across cells (default name {DEFAULT_CHAT!r}).",
    )
    @argument("--no-chat", action="store_true", help="Ignore the configured conversation.")
    @argument(
        "-i",
        "--image",
        action="append",
        default=[],
        metavar="PATH|VAR",
        help="Image for a vision model (repeatable): a file, bytes, PIL image or figure.",
    )
    @argument("--pull", action="store_true", help="Download the model first if it is missing.")
    @argument(
        "--bg",
        action="store_true",
        help="Answer in the background: the cell returns at once; NAME_job has .wait()/.cancel().",
    )
    @argument(
        "--map",
        metavar="VAR",
        help="Run the prompt once per item of a list variable ({item} in the prompt).",
    )
    @argument(
        "--concurrency",
        type=int,
        default=1,
        metavar="N",
        help="With --map: requests at once (default 1; Ollama answers one at a time per model).",
    )
    @argument(
        "--tools",
        metavar="NAME[,NAME…]",
        help="Notebook functions the model may call (or a variable holding a list of them).",
    )
    @argument(
        "--max-tool-rounds",
        type=int,
        metavar="N",
        help="With --tools: end a model that keeps calling after N rounds (default 8).",
    )
    @argument("--confirm", action="store_true", help="With --tools: ask before each call.")
    @argument(
        "--cache",
        action="store_true",
        help="Replay an identical earlier complete answer from the answer log, if there is one.",
    )
    @argument("--no-interpolate", action="store_true", help="Send the prompt exactly as typed.")
    @argument("--dry-run", action="store_true", help="Show the request (and curl); send nothing.")
    @argument("--trace", action="store_true", help="Also show the raw stream lines as they come.")
    @argument(
        "--api",
        choices=("auto", "ollama", "openai"),
        help="Server API (default auto: OpenAI-compatible when the URL ends in /v1).",
    )
    @argument(
        "--code",
        action="store_true",
        help="Offer the answer's Python code as a new cell below (also in NAME.code).",
    )
    @argument(
        "--logprobs",
        nargs="?",
        type=int,
        const=5,
        default=None,
        metavar="N",
        help="Show how sure the model was of each token, with N alternatives (0-20, default 5).",
    )
    @argument(
        "--show-prompt",
        action="store_true",
        help="Show the exact prompt the model receives (its chat template applied); generate "
        "nothing.",
    )
    @argument("-q", "--quiet", action="store_true", help="Show nothing; only set the variable.")
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
        ``%ollama config``, and the model commands (``%ollama list``, ...).

        The server is ``--host``, else the ``OLLAMA_HOST`` environment variable (parsed as
        Ollama does), else http://127.0.0.1:11434.
        """
        if cell is None:
            return self._line_magic(line)
        self._ask(self._parse_args(split_arguments(line)), cell)
        return None

    # -- the line magic: subcommands and the one-line form ---------------------------------

    def _parse_args(self, argv: list[str]) -> Any:
        return self.ollama.parser.parse_args(argv)

    def _context(self, host: str | None = None) -> CommandContext:
        base_url = resolve_base_url(host or self.host)
        live = getattr(self.shell, "kernel", None) is not None
        backend = self._backend("", base_url, self.api, self.timeout)
        return CommandContext(self.shell, backend.client, live)

    def _subcommands(self) -> dict[str, Subcommand]:
        return {
            **SUBCOMMANDS,
            "history": self._history,
            "reset": self._reset,
            "config": self._show_config,
            "log": lambda ctx, argv: log_command(self._log())(ctx, argv),
            "fix": self._fix,
            "explain": self._explain,
        }

    def _line_magic(self, line: str) -> Any:
        """``%ollama SUBCOMMAND ...`` or the one-liner ``%ollama MODEL prompt...``."""
        words = line.split(None, 1)
        subcommands = self._subcommands()
        if not words:
            raise OllamaUsageError(
                "Say what to do: `%ollama MODEL your question` (for a longer prompt use the "
                "cell magic `%%ollama MODEL`), or a subcommand: "
                + describe_subcommands()
                + "; history [NAME]: show a conversation; reset [NAME]: forget it; "
                "config: show the settings."
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
            raise OllamaUsageError(
                f"`%ollama {name}` is not a subcommand. Valid ones: {describe_subcommands()}; "
                "history, reset, config. To ask a model, put the question after its name: "
                f"`%ollama {name} Why is the sky blue?`."
            )
        self._ask(self._parse_args(argv), prompt)
        return None

    def _history(self, ctx: CommandContext, argv: list[str]) -> Conversation:
        """``%ollama history [NAME]``: the conversation so far (also returned as data)."""
        name = self._conversation_name(argv, "history")
        conversation = self.conversations.get(name)
        if conversation is None:
            known = ", ".join(sorted(self.conversations)) or "none yet"
            raise OllamaUsageError(
                f"There is no conversation {name!r} (conversations: {known}). Start one with "
                f"`%%ollama MODEL --chat {name}`."
            )
        return conversation

    def _reset(self, ctx: CommandContext, argv: list[str]) -> None:
        """``%ollama reset [NAME]``: forget a conversation (``--all``: every conversation)."""
        if argv == ["--all"]:
            self.conversations.clear()
            print("Forgot all conversations.")
            return
        name = self._conversation_name(argv, "reset")
        dropped = self.conversations.pop(name, None)
        count = len(dropped.exchanges) if dropped else 0
        print(f"Conversation {name!r} reset ({count} exchange(s) forgotten).")

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

    def _conversation_name(self, argv: list[str], command: str) -> str:
        if len(argv) > 1:
            raise OllamaUsageError(f"%ollama {command} takes at most one conversation name.")
        return argv[0] if argv else (self.chat or DEFAULT_CHAT)

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

    def _cell_key(self) -> str:
        """Which cell is running: the front end's cell id when it sends one, else In[n]."""
        parent = getattr(self.shell, "parent_header", None)
        kernel = getattr(self.shell, "kernel", None)
        if not parent and kernel is not None:
            parent = kernel.get_parent("shell")
        metadata = (parent or {}).get("metadata") or {}
        cell_id = metadata.get("cellId") or metadata.get("cell_id")
        if cell_id:
            return f"cell:{cell_id}"
        return f"In[{self._ip.execution_count}]"

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
                cell_key=self._cell_key(),
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
        work(None)

    def _backend_for(self, request: ChatRequest, model: str) -> Any:
        return self._backend(model, request.base_url, request.api, request.timeout)

    def _check_servers(self, request: ChatRequest) -> ChatRequest:
        """Keep the servers that can answer; refuse unknown model names before anything is sent.

        With ``--pull`` a missing model is downloaded first. With several hosts, one prompt goes
        to the first server that has the model; ``--map`` keeps every server that has it and
        says in one line which ones it leaves out.
        """
        if request.compare or len(request.base_urls) == 1:
            for model in request.models:
                self._check_model(request, request.base_url, model)
            return request
        usable, missing = [], None
        for url in request.base_urls:
            try:
                self._check_model(request, url, request.model)
            except ModelNotFoundError as exc:
                missing = missing or exc
                print(f"{url} does not have {request.model}; it is left out.", file=sys.stderr)
                continue
            if request.map_name is None and self._answers(request, url):
                return replace(request, base_url=url, base_urls=(url,))
            usable.append(url)
        if not usable:
            assert missing is not None
            raise missing
        return replace(request, base_url=usable[0], base_urls=tuple(usable))

    def _answers(self, request: ChatRequest, url: str) -> bool:
        backend = self._backend(request.model, url, request.api, request.timeout)
        return bool(backend.model_names(timeout=2.0))

    def _check_model(self, request: ChatRequest, url: str, model: str) -> None:
        backend = self._backend(model, url, request.api, request.timeout)
        if backend.kind != "ollama":
            return
        if request.pull:
            ensure_model(self._context(url), model)
            return
        installed = backend.model_names(timeout=2.0)
        if not installed or model in installed:
            return  # an empty list means the server could not say: let it answer
        close = difflib.get_close_matches(model, sorted(installed), n=1, cutoff=0.5)
        guess = f" Did you mean {close[0]}?" if close else ""
        raise ModelNotFoundError(
            f"The model {model!r} is not installed on {url}.{guess} Download it with "
            f"%ollama pull {model} (or add --pull to the magic line); %ollama list shows the "
            "installed models.",
            404,
            "model not found",
            model,
        )

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
                choose_compare_view(shell, models, request.quiet),
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
                choose_map_view(shell, total, request.quiet),
                namespace,
                cancel,
                journal,
            )
        backend = self._backend_for(request, request.model)

        def single(cancel: CancelToken | None) -> OllamaResponse:
            result = run_single(
                backend,
                request,
                choose_view(shell, request.model, request.quiet, trace=request.trace)
                if request.logprobs is None
                else choose_lens_view(shell, request.model, request.quiet),
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
        if getattr(self.shell, "kernel", None) is not None:
            from IPython.display import display

            display({"text/markdown": markdown, "text/plain": markdown}, raw=True)
        else:
            print(markdown)


def confirm_call(record: ToolCallRecord) -> bool:
    """``--confirm``: ask in the front end's input box before a tool runs."""
    arguments = json.dumps(record.arguments, ensure_ascii=False, default=repr)[:300]
    try:
        reply = input(f"Run {record.name}({arguments})? [y/N] ")
    except (StdinNotImplementedError, EOFError):
        raise ToolLoopError(
            "--confirm needs a front end that can ask (JupyterLab, Notebook, VS Code or terminal "
            "IPython); this one cannot, so no tool ran. Drop --confirm to let the calls run."
        ) from None
    return reply.strip().lower() in ("y", "yes")


class ConfigReport(list[tuple[str, Any, str]]):
    """Rows of (setting, value, source) that render as a table."""

    def _repr_markdown_(self) -> str:
        lines = ["| setting | value | from |", "|---|---|---|"]
        for name, value, source in self:
            text = str(value) if value not in ("", None, {}) else ""
            shown = text.replace("`", "'").replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{name}` | {f'`{shown}`' if shown else '*(not set)*'} | {source} |")
        return "\n".join(lines)

    def __repr__(self) -> str:
        width = max(len(name) for name, _, _ in self)
        return "\n".join(f"{name:<{width}}  {value!r}  ({source})" for name, value, source in self)
