"""One ``%%ollama`` cell as a typed request, built once from the magic's arguments.

Every mode (a single answer, a comparison, ``--bg``, ``--map``) starts from the same
:class:`ChatRequest`, so an option is read in one place and a combination of options that cannot
work is refused here, up front, with one line that says what to do. Nothing is silently ignored.
"""

from __future__ import annotations

import keyword
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .backends import build_chat_body
from .conversation import DEFAULT_CHAT as DEFAULT_CHAT
from .conversation import Conversations
from .errors import ModelNotFoundError, OllamaUsageError
from .host import resolve_host
from .logprobs import check_top_logprobs
from .options import check_option_names, parse_keep_alive, parse_option
from .prompt import encode_image, interpolate, interpolate_with_names, resolve_format
from .tools import Tool, resolve_tools

DEFAULT_OUT = "ollama_response"
THINK_LEVELS = ("low", "medium", "high")


@dataclass(frozen=True)
class Defaults:
    """The magic's configured values (``%config OllamaMagics.*``), under the cell's own options."""

    model: str = ""
    host: str = ""
    out: str = DEFAULT_OUT
    timeout: float = 600.0
    options: Mapping[str, Any] = field(default_factory=dict)
    chat: str = ""
    api: str = "auto"
    #: A pool of servers (``%config OllamaMagics.hosts``): ``--map`` spreads items over them.
    hosts: Sequence[str] = ()
    cache: bool = False


@dataclass(frozen=True)
class ChatRequest:
    """Everything one cell asks for; :meth:`body` is the Ollama ``/api/chat`` JSON body."""

    models: tuple[str, ...]
    messages: tuple[dict[str, Any], ...]
    base_url: str
    api: str
    timeout: float
    out: str
    prompt: str
    cell_key: str
    options: Mapping[str, Any] | None = None
    format: str | dict[str, Any] | None = None
    think: bool | str | None = None
    keep_alive: str | int | float | None = None
    images: tuple[str, ...] = ()
    chat: str | None = None
    quiet: bool = False
    trace: bool = False
    background: bool = False
    pull: bool = False
    dry_run: bool = False
    #: ``--map``: the variable's name and one prompt per item (already interpolated).
    map_name: str | None = None
    map_prompts: tuple[str, ...] = ()
    concurrency: int = 1
    #: Every server of the pool, ``base_url`` first (one unless several hosts were given).
    base_urls: tuple[str, ...] = ()
    #: Notebook names that ``{name}`` filled into the prompt, in the order first seen.
    filled_in: tuple[str, ...] = ()
    #: ``--tools``: the notebook functions the model may call, and the limits of the loop.
    #: ``--cache``: an identical earlier complete answer is replayed from the log.
    cache: bool = False
    tools: tuple[Tool, ...] = ()
    max_tool_rounds: int = 8
    confirm: bool = False
    #: One-line warnings for the user (option names the server does not read, ...).
    notes: tuple[str, ...] = ()
    #: ``--code``: offer the answer's Python code as the next cell.
    code: bool = False
    #: ``--logprobs N``: ask for each token's log-probability and N alternatives (0..20).
    logprobs: int | None = None
    #: ``--show-prompt``: show the prompt as the model's template renders it; generate nothing.
    show_prompt: bool = False

    @property
    def model(self) -> str:
        return self.models[0]

    @property
    def compare(self) -> bool:
        return len(self.models) > 1

    def body(
        self,
        model: str | None = None,
        prompt: str | None = None,
        extra: Sequence[dict[str, Any]] = (),
    ) -> dict[str, Any]:
        """The JSON body for one model, optionally with another text for the last user turn
        and ``extra`` messages after it (the tool calls and results of earlier rounds)."""
        messages = list(self.messages)
        if prompt is not None:
            messages[-1] = {**messages[-1], "content": prompt}
        body = build_chat_body(
            model or self.model,
            [*messages, *extra],
            options=dict(self.options) if self.options else None,
            format=self.format,
            think=self.think,
            keep_alive=self.keep_alive,
        )
        if self.tools:
            body["tools"] = [tool.schema for tool in self.tools]
        if self.logprobs is not None:
            body["logprobs"] = True
            body["top_logprobs"] = self.logprobs
        return body

    def for_model(self, model: str) -> ChatRequest:
        return replace(self, models=(model,))


def check_out_name(name: str) -> str:
    """``--out`` must be a variable name the notebook can use."""
    if not name.isidentifier() or keyword.iskeyword(name):
        raise OllamaUsageError(f"--out needs a Python variable name, got {name!r}.")
    return name


def resolve_base_url(host: str | None) -> str:
    try:
        return resolve_host(host or None)
    except ValueError as exc:
        raise OllamaUsageError(f"{exc} Use a URL like http://127.0.0.1:11434.") from None


def resolve_hosts(given: Sequence[str] | None, defaults: Defaults) -> tuple[str, ...]:
    """``--host a,b`` / repeated ``--host`` / ``%config hosts`` / ``host`` / OLLAMA_HOST.

    >>> resolve_hosts(["127.0.0.1:1,127.0.0.1:2", "127.0.0.1:2"], Defaults())
    ('http://127.0.0.1:1', 'http://127.0.0.1:2')
    """
    if given:
        words = [word for value in given for word in value.split(",")]
    elif defaults.hosts:
        words = list(defaults.hosts)
    else:
        words = [defaults.host]
    urls = [resolve_base_url(word.strip()) for word in words if word.strip() or len(words) == 1]
    return tuple(dict.fromkeys(urls))  # in order, each once


def check_modes(args: Any, models: Sequence[str], chat_name: str | None) -> None:
    """Refuse, in one line each, the combinations of options that cannot work together."""
    compare = len(models) > 1
    if len(set(models)) != len(models):
        raise OllamaUsageError(f"Each model can be compared once; got {' '.join(models)}.")
    if args.think is not None and args.no_think:
        raise OllamaUsageError("Use either --think or --no-think, not both.")
    if args.chat is not None and args.no_chat:
        raise OllamaUsageError("Use either --chat or --no-chat, not both.")
    if compare and chat_name is not None:
        raise OllamaUsageError(
            "Comparing models does not continue a conversation; add --no-chat, or ask one "
            "model at a time."
        )
    if args.map and chat_name is not None:
        raise OllamaUsageError(
            "--map asks every item on its own, outside any conversation; add --no-chat, or "
            "drop --map."
        )
    if args.map and compare:
        raise OllamaUsageError("--map runs one model; name one model, or drop --map.")
    if args.trace and (compare or args.map):
        raise OllamaUsageError(
            "--trace shows the raw stream of one answer; ask one model without --map to see it."
        )
    if args.trace and args.quiet:
        raise OllamaUsageError("--trace shows the raw stream and --quiet shows nothing: pick one.")
    if args.concurrency != 1 and not args.map:
        raise OllamaUsageError("--concurrency applies to --map only; add --map VAR or drop it.")
    if args.concurrency < 1:
        raise OllamaUsageError("--concurrency must be at least 1.")
    if args.tools and (compare or args.map):
        raise OllamaUsageError(
            "--tools runs one conversation of calls; ask one model without --map to use it."
        )
    if (args.confirm or args.max_tool_rounds is not None) and not args.tools:
        raise OllamaUsageError("--confirm and --max-tool-rounds apply to --tools only.")
    if args.confirm and args.bg:
        raise OllamaUsageError(
            "--confirm asks before each call, which a background answer cannot; drop one."
        )
    if args.max_tool_rounds is not None and args.max_tool_rounds < 1:
        raise OllamaUsageError("--max-tool-rounds must be at least 1.")
    if args.code and (compare or args.map or args.bg):
        extra = "comparing models" if compare else ("--map" if args.map else "--bg")
        raise OllamaUsageError(
            f"--code offers one answer's code as the next cell, which {extra} cannot do; "
            "ask one model in the foreground."
        )
    if args.dry_run and (args.bg or args.pull):
        extra = "--bg" if args.bg else "--pull"
        raise OllamaUsageError(f"--dry-run sends nothing, so {extra} has nothing to do; drop one.")
    logprobs = getattr(args, "logprobs", None) is not None
    if args.trace and logprobs:
        raise OllamaUsageError("--trace shows the raw stream and --logprobs the lens: pick one.")
    if getattr(args, "show_prompt", False):
        clash = [
            name
            for name, given in (
                ("--dry-run", args.dry_run),
                ("--bg", args.bg),
                ("--logprobs", logprobs),
            )
            if given
        ]
        if clash:
            raise OllamaUsageError(
                f"--show-prompt only renders the prompt, generating nothing, so {clash[0]} has "
                "nothing to do; drop one."
            )


def _think(args: Any) -> bool | str | None:
    if args.no_think:
        return False
    if args.think is None:
        return None
    if isinstance(args.think, str) and args.think not in THINK_LEVELS:
        raise OllamaUsageError(
            f"--think takes no value or one of low, medium, high; got {args.think!r}."
        )
    return args.think


def _map_items(name: str, namespace: Mapping[str, Any]) -> list[Any]:
    if name not in namespace:
        raise OllamaUsageError(f"--map {name}: there is no notebook variable of that name.")
    source = namespace[name]
    if isinstance(source, (str, bytes, dict)) or not hasattr(source, "__iter__"):
        raise OllamaUsageError(
            f"--map {name}: expected a list, tuple, pandas Series or other sequence of items, "
            f"got a {type(source).__name__}."
        )
    return list(source.tolist() if hasattr(source, "tolist") else source)


def build_request(
    args: Any,
    cell: str,
    *,
    defaults: Defaults,
    namespace: Mapping[str, Any],
    conversations: Conversations,
    cell_key: str,
    fallback_model: Callable[[str, str], str],
    raw_inputs: Sequence[str] | None = None,
) -> ChatRequest:
    """Read the parsed arguments and the cell once; raise ``OllamaUsageError`` on bad input.

    ``fallback_model(base_url, api)`` picks a model when none is named anywhere;
    ``raw_inputs`` are the cells as typed, for ``{In[n]}``.
    """
    out = check_out_name(args.out or defaults.out)
    models = [m.strip() for m in args.models if m.strip()] or [defaults.model.strip()]
    chat_name = None if args.no_chat else (args.chat or defaults.chat or None)
    check_modes(args, models, chat_name)
    base_urls = resolve_hosts(args.host, defaults)
    base_url = base_urls[0]
    api = args.api or defaults.api
    if not models[0]:
        models = [fallback_model(base_url, api)]
    template = cell.rstrip("\n")
    if not template.strip():
        raise OllamaUsageError(
            "There is no prompt. Write the question after the model (%ollama MODEL question) "
            "or on the lines below %%ollama MODEL."
        )
    map_prompts: tuple[str, ...] = ()
    filled_in: list[str] = []
    if args.map:
        items = _map_items(args.map, namespace)
        map_prompts = tuple(
            template
            if args.no_interpolate
            else interpolate(template, {**namespace, "item": item}, raw_inputs)
            for item in items
        )
        prompt = map_prompts[0] if map_prompts else template
    elif args.no_interpolate:
        prompt = template
    else:
        prompt, filled_in = interpolate_with_names(template, namespace, raw_inputs)
    options: dict[str, Any] = dict(defaults.options)
    for item in args.option:
        key, value = parse_option(item)
        options[key] = value
    if args.temperature is not None:
        options["temperature"] = args.temperature
    if args.seed is not None:
        options["seed"] = args.seed
    timeout = defaults.timeout if args.timeout is None else args.timeout
    if timeout < 0:
        raise OllamaUsageError("--timeout must be a number of seconds ≥ 0 (0 = wait forever).")
    images = [encode_image(source, namespace) for source in args.image]
    if chat_name is not None:
        conversation = conversations.get_or_create(chat_name)
        if args.system is not None:
            conversation.system = args.system or None
        messages = conversation.messages_for(cell_key, prompt, images)
    else:
        messages = []
        if args.system:
            messages.append({"role": "system", "content": args.system})
        user: dict[str, Any] = {"role": "user", "content": prompt}
        if images:
            user["images"] = images
        messages.append(user)
    return ChatRequest(
        models=tuple(models),
        messages=tuple(messages),
        base_url=base_url,
        base_urls=base_urls,
        api=api,
        timeout=timeout,
        out=out,
        prompt=prompt,
        cell_key=cell_key,
        options=options or None,
        format=resolve_format(args.format, namespace) if args.format else None,
        think=_think(args),
        keep_alive=parse_keep_alive(args.keep_alive) if args.keep_alive else None,
        images=tuple(images),
        chat=chat_name,
        quiet=args.quiet,
        trace=args.trace,
        background=args.bg,
        pull=args.pull,
        dry_run=args.dry_run,
        map_name=args.map,
        map_prompts=map_prompts,
        concurrency=args.concurrency,
        filled_in=tuple(filled_in),
        tools=tuple(resolve_tools(args.tools, namespace)) if args.tools else (),
        max_tool_rounds=args.max_tool_rounds or 8,
        confirm=args.confirm,
        cache=args.cache or defaults.cache,
        notes=tuple(f"Warning: {note}" for note in check_option_names(options)),
        code=args.code,
        logprobs=check_top_logprobs(getattr(args, "logprobs", None)),
        show_prompt=bool(getattr(args, "show_prompt", False)),
    )


def choose_servers(
    request: ChatRequest,
    check: Callable[[str, str], None],
    answers: Callable[[str], bool],
) -> ChatRequest:
    """Keep the servers that can answer the request.

    ``check(url, model)`` raises ``ModelNotFoundError`` for a model a server lacks (or pulls
    it); ``answers(url)`` says whether a server is up. One server, or a comparison: every model
    is checked there. With several hosts, one prompt goes to the first server that has the
    model and answers; ``--map`` keeps every server that has it and says in one line which
    ones it leaves out.
    """
    if request.compare or len(request.base_urls) == 1:
        for model in request.models:
            check(request.base_url, model)
        return request
    usable: list[str] = []
    missing: ModelNotFoundError | None = None
    for url in request.base_urls:
        try:
            check(url, request.model)
        except ModelNotFoundError as exc:
            missing = missing or exc
            print(f"{url} does not have {request.model}; it is left out.", file=sys.stderr)
            continue
        if request.map_name is None and answers(url):
            return replace(request, base_url=url, base_urls=(url,))
        usable.append(url)
    if missing is not None and not usable:
        raise missing
    return replace(request, base_url=usable[0], base_urls=tuple(usable))
