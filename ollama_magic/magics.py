"""The ``%%ollama`` cell magic: parse arguments, pick a view, run the client, store the result."""

from __future__ import annotations

import contextvars
import keyword
import os
import sys
import threading
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import Dict, Enum, Float, Unicode

from .client import DEFAULT_TIMEOUT, OllamaClient, build_chat_body
from .cmdline import split_arguments, split_line_prompt
from .commands import CommandContext, Subcommand
from .conversation import Conversation, Conversations, Exchange
from .errors import (
    CompareError,
    Interrupted,
    OllamaConnectionError,
    OllamaMagicError,
    OllamaUsageError,
)
from .events import AnswerDelta, Done, ThinkingDelta
from .host import resolve_host
from .local import LocalClient, default_local_model, is_local_model
from .manage import SUBCOMMANDS, describe_subcommands, ensure_model
from .openai_compat import OpenAIClient, is_openai_url, openai_chat_body
from .options import parse_keep_alive, parse_option
from .prompt import dry_run_markdown, encode_image, interpolate, resolve_format
from .result import OllamaResponse, decode_draining
from .view import (
    View,
    choose_compare_view,
    choose_map_view,
    choose_view,
    compare_markdown,
    map_summary,
    provenance,
)

DEFAULT_OUT = "ollama_response"
DEFAULT_CHAT = "default"


def backend_for(model: str, base_url: str, api: str) -> str:
    """Which client answers: ``local`` (``local:NAME`` models, in the kernel), ``openai``
    (``--api openai``, or ``auto`` with a URL ending in ``/v1``) or ``ollama``.

    >>> backend_for("local:smollm2", "http://h:11434", "auto")
    'local'
    >>> backend_for("m", "http://h:8000/v1", "auto"), backend_for("m", "http://h:8000", "openai")
    ('openai', 'openai')
    """
    if is_local_model(model):
        return "local"
    if api == "openai" or (api == "auto" and is_openai_url(base_url)):
        return "openai"
    return "ollama"


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
    chat = Unicode(
        "", help="Conversation every cell joins unless it says --chat NAME or --no-chat."
    ).tag(config=True)
    api = Enum(
        ("auto", "ollama", "openai"),
        default_value="auto",
        help="Server API: 'ollama', 'openai' (/v1/chat/completions) or 'auto' (OpenAI when the "
        "URL ends in /v1). Models named local:NAME always run inside the kernel.",
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell, **kwargs)
        self._clients: dict[tuple[str, str, float], Any] = {}
        self.conversations = Conversations()

    def _client(self, base_url: str, timeout: float, model: str = "", api: str = "") -> Any:
        """One client per backend and server, so keep-alive connections are reused."""
        kind = backend_for(model, base_url, api or self.api)
        key = (kind, base_url, timeout)
        client = self._clients.get(key)
        if client is None:
            if kind == "local":
                client = LocalClient(timeout=timeout)
            elif kind == "openai":
                client = OpenAIClient(base_url, timeout=timeout)
            else:
                client = OllamaClient(base_url, timeout=timeout)
            self._clients[key] = client
        return client

    def _fallback_model(self, base_url: str, api: str) -> str:
        """No model named anywhere: the embedded model when no Ollama answers (with a note)."""
        local = default_local_model()
        if local is not None and backend_for("", base_url, api) == "ollama":
            try:
                self._client(base_url, self.timeout).request_json("GET", "/api/version", timeout=2)
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
    @magic_arguments()
    @argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help="Model to ask, e.g. llama3.2; name several to compare their answers side by side.",
    )
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
    @argument("--no-interpolate", action="store_true", help="Send the prompt exactly as typed.")
    @argument("--dry-run", action="store_true", help="Show the request (and curl); send nothing.")
    @argument("--trace", action="store_true", help="Also show the raw stream lines as they come.")
    @argument(
        "--api",
        choices=("auto", "ollama", "openai"),
        help="Server API (default auto: OpenAI-compatible when the URL ends in /v1).",
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

    # -- line magic --------------------------------------------------------------------------

    def _parse_args(self, argv: list[str]) -> Any:
        return self.ollama.parser.parse_args(argv)

    def _context(self, host: str | None = None) -> CommandContext:
        base_url = self._base_url(host)
        live = getattr(self.shell, "kernel", None) is not None
        return CommandContext(self.shell, self._client(base_url, self.timeout), live)

    def _base_url(self, host: str | None) -> str:
        try:
            return resolve_host(host or self.host or None)
        except ValueError as exc:
            raise OllamaUsageError(f"{exc} Use a URL like http://127.0.0.1:11434.") from None

    def _subcommands(self) -> dict[str, Subcommand]:
        return {
            **SUBCOMMANDS,
            "history": self._history,
            "reset": self._reset,
            "config": self._show_config,
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
        argv, prompt = split_line_prompt(line, parser)
        if not prompt.strip() and len(words) == 1 and not name.startswith("-"):
            raise OllamaUsageError(
                f"`%ollama {name}` is not a subcommand. Valid ones: {describe_subcommands()}; "
                "history, reset, config. To ask a model, put the question after its name: "
                f"`%ollama {name} Why is the sky blue?`."
            )
        if self.model and argv and not argv[-1].startswith("-"):
            # With a default model, `%ollama Why is ...` is all prompt unless the first word
            # names an installed model.
            installed = self._context().client.model_names()
            if argv[-1] not in installed:
                argv, prompt = split_line_prompt(line, parser, with_model=False)
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
        for name in ("model", "host", "out", "timeout", "options", "chat"):
            value = getattr(self, name)
            source = "%config / ipython_config.py" if name in configured else "default"
            if name == "host" and not value:
                env = os.environ.get("OLLAMA_HOST")
                value = self._base_url(None)
                source = "OLLAMA_HOST environment variable" if env else "default"
            rows.append((name, value, source))
        return ConfigReport(rows)

    # -- asking ------------------------------------------------------------------------------

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
        return f"In[{self.shell.execution_count}]"

    def _ask(self, args: Any, cell: str) -> None:
        """Build the request from parsed arguments and the prompt, then stream the answer."""
        out_name = args.out or self.out
        if not out_name.isidentifier() or keyword.iskeyword(out_name):
            raise OllamaUsageError(f"--out needs a Python variable name, got {out_name!r}.")
        if args.dry_run:
            request = self._build_request(args, cell)
            body = build_chat_body(**request["body"])
            kind = backend_for(body["model"], request["base_url"], request["api"])
            if kind == "openai":
                client = self._client(request["base_url"], request["timeout"], "", "openai")
                url, body = client.base_url + "/chat/completions", openai_chat_body(body)
            elif kind == "local":
                url = "(in this kernel, no HTTP request)"
            else:
                url = request["base_url"] + "/api/chat"
            self._show_dry_run(url, body)
            return
        try:
            request = self._build_request(args, cell)
            if args.pull:
                for model in request["models"]:
                    if backend_for(model, request["base_url"], request["api"]) == "ollama":
                        ensure_model(self._context(args.host), model)
        except OllamaMagicError as exc:
            self.shell.user_ns[out_name] = OllamaResponse(error=exc)
            raise
        if len(request["models"]) > 1:
            self._compare(request, out_name, quiet=args.quiet)
            return
        if args.map:
            self._map(request, cell, args, out_name)
            return
        if args.bg:
            self._background(request, out_name, quiet=args.quiet, trace=args.trace)
            return
        self._run(request, out_name, quiet=args.quiet, trace=args.trace)

    def _show_dry_run(self, url: str, body: dict[str, Any]) -> None:
        markdown = dry_run_markdown(url, body)
        if getattr(self.shell, "kernel", None) is not None:
            from IPython.display import display

            display({"text/markdown": markdown, "text/plain": markdown}, raw=True)
        else:
            print(markdown)

    def _build_request(self, args: Any, cell: str) -> dict[str, Any]:
        models = [m.strip() for m in args.models if m.strip()] or [self.model.strip()]
        model = models[0]
        if len(set(models)) != len(models):
            raise OllamaUsageError(f"Each model can be compared once; got {' '.join(models)}.")
        if len(models) > 1 and (args.chat is not None or self.chat) and not args.no_chat:
            raise OllamaUsageError(
                "Comparing models does not continue a conversation; add --no-chat, or ask one "
                "model at a time."
            )
        if args.map and (len(models) > 1 or args.bg):
            raise OllamaUsageError(
                "--map runs one model in the foreground; drop --bg / extra models."
            )
        if not model:
            model = self._fallback_model(self._base_url(args.host), args.api or self.api)
            models = [model]
        namespace = self.shell.user_ns
        prompt = cell.rstrip("\n")
        if not prompt.strip():
            raise OllamaUsageError(
                "The cell has no prompt. Write the question on the lines below `%%ollama`."
            )
        if not args.no_interpolate and not args.map:
            prompt = interpolate(prompt, namespace)
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
        if args.chat is not None and args.no_chat:
            raise OllamaUsageError("Use either --chat or --no-chat, not both.")
        chat_name = None if args.no_chat else (args.chat or self.chat or None)
        images = [encode_image(source, namespace) for source in args.image]
        if chat_name is not None:
            conversation = self.conversations.get_or_create(chat_name)
            if args.system is not None:
                conversation.system = args.system or None
            messages = conversation.messages_for(self._cell_key(), prompt, images)
        else:
            messages = []
            if args.system:
                messages.append({"role": "system", "content": args.system})
            user: dict[str, Any] = {"role": "user", "content": prompt}
            if images:
                user["images"] = images
            messages.append(user)
        return {
            "base_url": self._base_url(args.host),
            "api": args.api or self.api,
            "timeout": timeout,
            "models": models,
            "chat": chat_name if len(models) == 1 else None,
            "prompt": prompt,
            "images": images,
            "body": {
                "model": model,
                "messages": messages,
                "options": options or None,
                "format": resolve_format(args.format, namespace) if args.format else None,
                "think": think,
                "keep_alive": parse_keep_alive(args.keep_alive) if args.keep_alive else None,
            },
        }

    def _run(
        self,
        request: dict[str, Any],
        out_name: str,
        quiet: bool,
        trace: bool,
        job: BackgroundJob | None = None,
    ) -> OllamaResponse:
        model = request["body"]["model"]
        client = self._client(request["base_url"], request["timeout"], model, request["api"])
        view: View = choose_view(self.shell, model, quiet, trace=trace)
        # UTF-8 bytes, not a list of str: one small object per token would cost ~55 bytes each.
        answer = bytearray()
        thinking = bytearray()
        done: Done | None = None
        error: OllamaMagicError | None = None
        interrupted = False
        body = build_chat_body(**request["body"])
        try:
            view.start()
            stream = client.stream("/api/chat", body, trace=view.trace if trace else None)
            if job is not None:
                job.stream = stream
                if job.cancelled:
                    raise KeyboardInterrupt
            with stream:
                for event in stream:
                    kind = type(event)
                    if kind is AnswerDelta:
                        answer += event.text.encode("utf-8", "surrogatepass")
                        view.answer(event.text)
                    elif kind is ThinkingDelta:
                        thinking += event.text.encode("utf-8", "surrogatepass")
                        view.thinking(event.text)
                    else:
                        done = event
        except KeyboardInterrupt:
            interrupted = True
        except OllamaMagicError as exc:
            error = exc
            if job is not None and job.cancelled:
                interrupted, error = True, None  # .cancel() hung up on purpose
        finally:
            # The buffer goes as soon as it is decoded, and the decoded copy once the result
            # holds it: a long answer is held at most twice at a time, once after this.
            text = decode_draining(answer)
            del answer
            result = OllamaResponse(
                text,
                model=(done.model if done and done.model else model),
                thinking=thinking.decode("utf-8", "surrogatepass"),
                done_reason=done.done_reason if done and error is None else None,
                stats=done.stats if done else None,
                interrupted=interrupted,
                error=error,
                request=body,
                host=client.base_url,
            )
            del text, thinking
            chars = len(result)
            if interrupted:
                error = result.error = Interrupted(
                    f"Stopped after {chars} characters of the answer. The partial answer is "
                    f"in `{out_name}` (`{out_name}.interrupted` is True)."
                )
            elif error is not None and (chars or result.thinking):
                error.message += (
                    f" The {chars} characters received before that are kept in `{out_name}`."
                )
                error.args = (error.message,)
            if done is not None:
                # The digest identifies the exact weights; it costs one cached /api/tags call.
                entry = client.installed_models(timeout=1.0).get(result.model) or {}
                result.provenance = provenance(result, entry.get("digest"))
            else:
                result.provenance = provenance(result)
            self.shell.user_ns[out_name] = result
            if request["chat"] is not None and result.complete:
                self.conversations.get_or_create(request["chat"]).record(
                    Exchange(
                        key=self._cell_key(),
                        prompt=request["prompt"],
                        answer=result.text,
                        model=result.model,
                        images=request["images"],
                        thinking=result.thinking,
                    )
                )
            view.finish(result, out_name)
        if error is not None:
            raise error
        return result

    def _background(self, request: dict[str, Any], out_name: str, quiet: bool, trace: bool) -> None:
        """Stream in a helper thread; the answer lands in ``out_name`` when it is complete.

        The thread runs in a copy of this cell's context, so its output (the live widget, the
        final Markdown) goes to this cell even while other cells run.
        """
        job = BackgroundJob(out_name)
        self.shell.user_ns[f"{out_name}_job"] = job
        context = contextvars.copy_context()

        def work() -> None:
            try:
                job.result = self._run(request, out_name, quiet, trace, job=job)
            except OllamaMagicError as exc:
                job.result = self.shell.user_ns.get(out_name)
                job.error = exc
                print(f"{exc.title}: {exc.message}", file=sys.stderr, flush=True)
            finally:
                job._finished.set()

        job.thread = threading.Thread(target=context.run, args=(work,), daemon=True)
        job.thread.start()

    def _map(self, request: dict[str, Any], template: str, args: Any, out_name: str) -> None:
        """Run the prompt once per item; ``out_name`` gets a list aligned with the items."""
        namespace = self.shell.user_ns
        if args.map not in namespace:
            raise OllamaUsageError(f"--map {args.map}: there is no notebook variable of that name.")
        source = namespace[args.map]
        if isinstance(source, (str, bytes, dict)) or not hasattr(source, "__iter__"):
            raise OllamaUsageError(
                f"--map {args.map}: expected a list, tuple, pandas Series or other sequence of "
                f"items, got a {type(source).__name__}."
            )
        items = list(source.tolist() if hasattr(source, "tolist") else source)
        if args.concurrency < 1:
            raise OllamaUsageError("--concurrency must be at least 1.")
        model = request["body"]["model"]
        client = self._client(request["base_url"], request["timeout"], model, request["api"])
        prompts = []
        for item in items:
            text = template.rstrip("\n")
            if not args.no_interpolate:
                text = interpolate(text, {**namespace, "item": item})
            prompts.append(text)
        bodies = []
        for prompt in prompts:
            body = dict(request["body"])
            body["messages"] = [*body["messages"][:-1], {**body["messages"][-1], "content": prompt}]
            bodies.append(build_chat_body(**body))
        view = choose_map_view(self.shell, len(items), args.quiet)
        runs = [_ModelRun(client, body) for body in bodies]
        results: list[OllamaResponse | None] = [None] * len(items)
        interrupted = False
        pending = list(enumerate(runs))
        active: list[tuple[int, _ModelRun]] = []
        view.start()
        try:
            while pending or active:
                while pending and len(active) < args.concurrency:
                    index, run = pending.pop(0)
                    run.start(_NoColumns(), index)
                    active.append((index, run))
                index, run = active[0]
                run.thread.join(0.1)  # a timed join lets the stop button through
                for index, run in [entry for entry in active if not entry[1].thread.is_alive()]:
                    active.remove((index, run))
                    results[index] = run.result(request["body"]["model"], False, out_name)
                    view.progress(index, results[index])
        except KeyboardInterrupt:
            interrupted = True
            for _, run in active:
                run.cancel()
            for index, run in active:
                run.thread.join(5.0)
                results[index] = run.result(request["body"]["model"], True, out_name)
        finally:
            model = request["body"]["model"]
            mapped = MappedAnswers(
                result if result is not None else OllamaResponse(model=model, interrupted=True)
                for result in results
            )
            namespace[out_name] = mapped
            view.finish(mapped, out_name)
        if interrupted:
            raise Interrupted(
                f"Stopped after {mapped.answered} of {len(items)} items; `{out_name}` holds the "
                "answers so far (items not reached are empty and marked .interrupted)."
            )

    def _compare(self, request: dict[str, Any], out_name: str, quiet: bool) -> None:
        """Ask several models the same prompt at once; ``out_name`` maps model → answer."""
        models: list[str] = request["models"]
        view = choose_compare_view(self.shell, models, quiet)
        runs = [
            _ModelRun(
                self._client(request["base_url"], request["timeout"], m, request["api"]),
                build_chat_body(**{**request["body"], "model": m}),
            )
            for m in models
        ]
        answers = Answers()
        interrupted = False
        try:
            view.start()
            for index, run in enumerate(runs):
                run.start(view, index)
            for run in runs:
                while run.thread.is_alive():
                    run.thread.join(0.1)  # a timed join lets the stop button through
        except KeyboardInterrupt:
            interrupted = True
            for run in runs:
                run.cancel()
            for run in runs:
                run.thread.join(5.0)
        finally:
            for model, run in zip(models, runs, strict=True):
                result = run.result(model, interrupted, out_name)
                result.provenance = provenance(result)
                answers[model] = result
            self.shell.user_ns[out_name] = answers
            view.finish(answers, out_name)
        if interrupted:
            raise Interrupted(
                f"Stopped all {len(models)} answers; the partial answers are in `{out_name}` "
                f"(a dict: `{out_name}['{models[0]}']`)."
            )
        failed = {m: r.error for m, r in answers.items() if r.error is not None}
        if failed:
            details = " ".join(f"{m}: {e.message}" for m, e in failed.items())
            raise CompareError(
                f"{len(failed)} of {len(models)} models failed; the other answers are in "
                f"`{out_name}`. {details}"
            )


class BackgroundJob:
    """Handle of a ``--bg`` answer: ``.done``, ``.wait(timeout)``, ``.cancel()``, ``.result``."""

    def __init__(self, out_name: str) -> None:
        self.out_name = out_name
        self.result: OllamaResponse | None = None
        self.error: OllamaMagicError | None = None
        self.cancelled = False
        self.stream: Any = None
        self.thread: threading.Thread | None = None
        self._finished = threading.Event()

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    def wait(self, timeout: float | None = None) -> OllamaResponse | None:
        """Block until the answer is complete (or ``timeout`` seconds); return it."""
        self._finished.wait(timeout)
        return self.result

    def cancel(self) -> None:
        """Stop the answer and hang up; the partial text is kept in the variable."""
        self.cancelled = True
        if self.stream is not None:
            self.stream.abort()

    def __repr__(self) -> str:
        state = "done" if self.done else ("cancelling" if self.cancelled else "running")
        return f"<ollama background answer → {self.out_name}: {state}>"


class MappedAnswers(list):
    """Answers of ``--map``, aligned with the input items; failures are kept per item."""

    @property
    def answered(self) -> int:
        return sum(1 for r in self if r.complete)

    @property
    def failed(self) -> list[int]:
        """Indexes of the items whose answer failed or was interrupted."""
        return [i for i, r in enumerate(self) if not r.complete]

    def _repr_markdown_(self) -> str:
        return map_summary(self)


class _NoColumns:
    """--map shows progress only, so the per-token calls of a run go nowhere."""

    def answer(self, index: int, text: str) -> None:
        pass

    def thinking(self, index: int, text: str) -> None:
        pass

    def ended(self, index: int) -> None:
        pass


class Answers(dict):
    """Model name → :class:`OllamaResponse`, for ``%%ollama m1 m2`` comparisons."""

    def _repr_markdown_(self) -> str:
        return compare_markdown(self)


class _ModelRun:
    """One model's answer streamed on its own thread, for comparisons."""

    def __init__(self, client: OllamaClient, body: dict[str, Any]) -> None:
        self.client = client
        self.body = body
        self.answer: list[str] = []
        self.thinking: list[str] = []
        self.done: Done | None = None
        self.error: OllamaMagicError | None = None
        self.stream: Any = None
        self.cancelled = False
        self.thread = threading.Thread(target=self._read, daemon=True)

    def start(self, view: Any, index: int) -> None:
        self.view, self.index = view, index
        self.thread.start()

    def cancel(self) -> None:
        """Hang up from the main thread; a read blocked in the helper thread returns."""
        self.cancelled = True
        if self.stream is not None:
            self.stream.abort()

    def _read(self) -> None:
        try:
            stream = self.client.stream("/api/chat", self.body)
            self.stream = stream
            with stream:
                if self.cancelled:
                    return
                for event in stream:
                    kind = type(event)
                    if kind is AnswerDelta:
                        self.answer.append(event.text)
                        self.view.answer(self.index, event.text)
                    elif kind is ThinkingDelta:
                        self.thinking.append(event.text)
                        self.view.thinking(self.index, event.text)
                    else:
                        self.done = event
        except OllamaMagicError as exc:
            self.error = exc
        finally:
            self.view.ended(self.index)

    def result(self, model: str, interrupted: bool, out_name: str) -> OllamaResponse:
        done = self.done
        error = self.error
        if interrupted and done is None:
            error = None
        return OllamaResponse(
            "".join(self.answer),
            model=model,
            thinking="".join(self.thinking),
            done_reason=done.done_reason if done and error is None else None,
            stats=done.stats if done else None,
            interrupted=interrupted and done is None,
            error=error,
            request=self.body,
            host=self.client.base_url,
        )


class ConfigReport(list):
    """Rows of (setting, value, source) that render as a table."""

    def _repr_markdown_(self) -> str:
        lines = ["| setting | value | from |", "|---|---|---|"]
        for name, value, source in self:
            shown = str(value).replace("|", "\\|").replace("<", "&lt;")
            lines.append(f"| `{name}` | `{shown}` | {source} |")
        return "\n".join(lines)

    def __repr__(self) -> str:
        width = max(len(name) for name, _, _ in self)
        return "\n".join(f"{name:<{width}}  {value!r}  ({source})" for name, value, source in self)
