"""Drive a real Jupyter front end (JupyterLab or Notebook 7) in headless Chromium.

:class:`JupyterServer` runs ``jupyter lab`` or ``jupyter notebook`` as a subprocess on 127.0.0.1
with a token, a free port, its own settings and workspace folders (so nothing of the user's
leaks in, and no news toast covers the page), and the kernel environment the tests choose
(``OLLAMA_HOST`` pointing at a :class:`~ollama_magic.testing.FakeOllama` in the test process).
:class:`NotebookPage` wraps a Playwright page showing one notebook: run a cell the way a person
does (select it, Ctrl+Enter), read its output area, interrupt, save.

Every wait is for a condition: a Playwright wait on the page, an expected response (a save),
or a poll of the server's REST API (is the kernel connected?). Nothing sleeps a fixed time to
let the front end catch up. Playwright is imported lazily, so this module imports (and its
doctest runs) on machines without it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from ollama_magic.testing import Gate, Reply

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"
#: Headless Chromium as root, with no network beyond loopback (see the machine notes): no
#: sandbox (root), and none of the background connections that a closed network refuses.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
)
#: The front-end settings every test server starts with (user-settings folder layout).
SETTINGS = {
    # No "Would you like to get notified about official Jupyter news?" toast, no fetch.
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
#: The cells of the notebook on screen (JupyterLab hides the panels of background tabs).
CELLS = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def missing(*modules: str) -> str:
    """Why the browser tests cannot run here ('' when they can), with the install command.

    >>> missing("no_such_module").endswith(("'.[browser]')", "install -y chromium)"))
    True
    """
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is not installed (apt-get install -y chromium)"
    for module in modules:
        if importlib.util.find_spec(module) is None:
            return f"the Python package {module!r} is missing (pip install -e '.[browser]')"
    return ""


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_notebook(path: Path, *sources: str) -> Path:
    """A notebook whose first cell loads the extension, followed by ``sources``."""
    cells = [new_code_cell("%load_ext ollama_magic"), *(new_code_cell(s) for s in sources)]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.write(nb, path)
    return path


class JupyterServer:
    """``jupyter lab`` (app="lab") or ``jupyter notebook`` (app="notebook") on loopback."""

    def __init__(
        self,
        app: str,
        root: Path,
        env: dict[str, str],
        log: Path,
        disabled_extensions: tuple[str, ...] = (),
    ) -> None:
        """``disabled_extensions``: front-end extensions this server's pages run without, as
        ``jupyter labextension disable`` would (only for this server: its own config folder)."""
        if app not in ("lab", "notebook"):
            raise ValueError(f"app must be 'lab' or 'notebook', not {app!r}")
        self.app = app
        self.root = root
        self.port = free_port()
        self.token = os.urandom(12).hex()
        self.log_path = log
        self._env = env
        self._disabled = disabled_extensions
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> JupyterServer:
        home = self.root.parent / f".{self.app}-home"
        settings = home / "settings"
        for name, values in SETTINGS.items():
            target = settings / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(values))
        (home / "workspaces").mkdir(parents=True, exist_ok=True)
        (home / "ipython").mkdir(parents=True, exist_ok=True)
        (home / "runtime").mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
            ),
            "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "IPYTHONDIR": str(home / "ipython"),
            **self._env,
        }
        if self._disabled:
            config = home / "config"
            (config / "labconfig").mkdir(parents=True, exist_ok=True)
            page_config = {"disabledExtensions": {name: True for name in self._disabled}}
            (config / "labconfig" / "page_config.json").write_text(json.dumps(page_config))
            env["JUPYTER_CONFIG_DIR"] = str(config)
        module = "jupyterlab" if self.app == "lab" else "notebook"
        command = [
            sys.executable,
            "-m",
            module,
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--ServerApp.allow_root=True",
        ]
        if self.app == "lab":
            command += [
                "--LabApp.news_url=None",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                "--LabApp.extension_manager=readonly",
            ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self._proc = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"jupyter {self.app} exited; see {self.log_path}")
            try:
                self.api("GET", "/api/status", timeout=2)
                return self
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(
                        f"jupyter {self.app} did not start; see {self.log_path}"
                    ) from None
                time.sleep(0.2)  # server start-up only; tests synchronise on the page

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def api(self, method: str, path: str, *, timeout: float = 10) -> Any:
        """One call to the server's REST API, authenticated with the token."""
        request = urllib.request.Request(
            self.base + path,
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read()
        return json.loads(data) if data else None

    def shutdown_kernels(self) -> None:
        """Stop every kernel (between tests: each notebook starts its own)."""
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")

    def document_url(self, name: str) -> str:
        """Where the front end opens ``name`` (relative to the root folder)."""
        if self.app == "lab":
            # ?reset: start from the default layout, not the tabs an earlier test left open.
            return f"{self.base}/lab/tree/{name}?reset&token={self.token}"
        return f"{self.base}/notebooks/{name}?token={self.token}"


class NotebookPage:
    """One notebook open in JupyterLab or Notebook 7; cells are addressed by index."""

    def __init__(self, page: Any, server: JupyterServer) -> None:
        self.page = page
        self.server = server
        self.name = ""

    # -- locators ------------------------------------------------------------------------------

    def cell(self, index: int) -> Any:
        return self.page.locator(CELLS).nth(index)

    def output(self, index: int) -> Any:
        """The cell's output area: the live outputs while streaming, the final ones after."""
        return self.cell(index).locator(".jp-Cell-outputArea")

    def live(self, index: int) -> Any:
        """Everything the answer shows (thinking, answer pieces, status line)."""
        return self.output(index)

    def live_answer(self, index: int) -> Any:
        """The first output of the answer text (all of it while it fits one piece)."""
        return self.markdown(index)

    def status(self, index: int) -> Any:
        """The status line (the footer once the answer has ended): always the last output."""
        return self.output(index).locator(".jp-RenderedMarkdown small").last

    def thinking(self, index: int) -> Any:
        return self.output(index).locator(".jp-RenderedMarkdown details").first

    def markdown(self, index: int) -> Any:
        """The first Markdown output of the answer (not the thinking, trace or status line)."""
        rendered = self.output(index).locator(".jp-RenderedMarkdown")
        return rendered.filter(has_not=self.page.locator("small, details")).first

    def errors(self, index: int) -> Any:
        return self.output(index).locator('[data-mime-type="application/vnd.jupyter.stderr"]')

    def prompt(self, index: int) -> str:
        return self.cell(index).locator(".jp-InputPrompt").inner_text().strip()

    # -- actions -------------------------------------------------------------------------------

    def open(self, name: str, timeout: float = 60_000) -> NotebookPage:
        """Show notebook ``name``: in a JupyterLab that is already running, from its file
        browser (a double click, no page load); otherwise by loading its URL."""
        if self.server.app == "lab" and self.page.locator(".jp-FileBrowser").count():
            self.page.locator('.jp-FileBrowser [data-command="filebrowser:refresh"]').click()
            listing = self.page.locator(".jp-DirListing-content")
            listing.get_by_text(name, exact=True).dblclick()
        else:
            self.page.goto(self.server.document_url(name))
        self.name = name
        self.cell(0).wait_for(timeout=timeout)
        return self

    def reload(self, name: str, timeout: float = 60_000) -> NotebookPage:
        """Load the page afresh, showing ``name``: what a browser reload shows."""
        self.page.goto(self.server.document_url(name))
        self.name = name
        self.cell(0).wait_for(timeout=timeout)
        return self

    def close_notebooks(self) -> None:
        """Close every notebook tab, discarding unsaved changes (JupyterLab)."""
        tabs = self.page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=".ipynb")
        while (count := tabs.count()) > 0:
            tabs.first.locator(".lm-TabBar-tabCloseIcon").click()
            self.page.wait_for_function(
                """([selector, count]) => document.querySelector('.jp-Dialog')
                    || Array.from(document.querySelectorAll(selector))
                            .filter(tab => tab.textContent.includes('.ipynb')).length < count""",
                arg=[".lm-DockPanel-tabBar .lm-TabBar-tab", count],
            )
            dialog = self.page.locator(".jp-Dialog")
            if dialog.count():
                dialog.get_by_role("button", name="Discard").click()
                dialog.wait_for(state="detached")

    def dialogs(self) -> list[str]:
        """The text of every modal dialog on screen."""
        return [dialog.inner_text() for dialog in self.page.locator(".jp-Dialog").all()]

    def select(self, index: int) -> None:
        """Select a cell in command mode, as a click on its prompt does."""
        try:
            self.cell(index).locator(".jp-InputPrompt").click()
        except Exception as exc:
            raise AssertionError(
                f"could not select cell {index}; dialogs: {self.dialogs()}"
            ) from exc

    def run(self, index: int) -> None:
        """Run one cell (Ctrl+Enter: run and stay), without waiting for it to finish."""
        self.select(index)
        self.page.keyboard.press("Control+Enter")

    def wait_executed(self, index: int, timeout: float = 30_000) -> None:
        """Until the cell's prompt shows an execution count (``[3]:``), i.e. it has finished."""
        self.page.wait_for_function(
            """([selector, index]) => {
                const cell = document.querySelectorAll(selector)[index];
                const prompt = cell && cell.querySelector('.jp-InputPrompt');
                return !!prompt && /\\[\\d+\\]/.test(prompt.textContent);
            }""",
            arg=[CELLS, index],
            timeout=timeout,
        )

    def wait_kernel_ready(self, timeout: float = 60.0) -> None:
        """Until the front end is connected to an idle kernel.

        A cell run before that is not executed: JupyterLab opens its "Select Kernel" dialog
        instead. The execution indicator says "idle" even before a kernel exists, so it only
        counts once the server reports a websocket connection to this notebook's kernel.
        (``wait_for_function`` does not await promises, hence the loop around ``evaluate``.)
        """
        deadline = time.monotonic() + timeout
        while not self.page.evaluate(
            """async (name) => {
                const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
                if (!indicator || indicator.getAttribute('data-status') !== 'idle') return false;
                const response = await fetch('/api/sessions', {cache: 'no-store'});
                if (!response.ok) return false;
                const sessions = await response.json();
                return sessions.some(s => s.path === name && s.kernel
                                          && s.kernel.connections > 0
                                          && s.kernel.execution_state === 'idle');
            }""",
            self.name,
        ):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no kernel connected; dialogs: {self.dialogs()}")
            self.page.wait_for_timeout(100)

    def start_kernel(self, timeout: float = 60.0) -> None:
        """Wait for the kernel, then run cell 0 (``%load_ext ollama_magic``) to completion."""
        self.wait_kernel_ready(timeout)
        self.run(0)
        try:
            self.wait_executed(0, timeout=timeout * 1000)
        except Exception as exc:
            raise AssertionError(f"cell 0 did not run; dialogs: {self.dialogs()}") from exc
        assert not self.errors(0).count(), self.output(0).inner_text()

    def run_and_wait(self, index: int, timeout: float = 30_000) -> None:
        self.run(index)
        self.wait_executed(index, timeout)

    def interrupt(self) -> None:
        """The toolbar's stop button ("Interrupt the kernel")."""
        self.page.locator('[data-command="notebook:interrupt-kernel"]').first.click()

    def restart(self) -> None:
        """The toolbar's restart button, then "Restart" in the dialog that asks to confirm."""
        self.page.locator('[data-command="notebook:restart-kernel"]').first.click()
        dialog = self.page.locator(".jp-Dialog")
        dialog.locator("button.jp-mod-accept").click()
        dialog.wait_for(state="detached")

    def save(self, name: str, timeout: float = 20_000) -> None:
        """Ctrl+S, as a person saves; returns once the server has written ``name``."""
        self.page.keyboard.press("Escape")

        def is_save(response: Any) -> bool:
            path = response.url.split("?")[0]
            return response.request.method == "PUT" and path.endswith(f"/api/contents/{name}")

        with self.page.expect_response(is_save, timeout=timeout) as saved:
            self.page.keyboard.press("Control+S")
        assert saved.value.ok, saved.value.status

    def wait_for_stage(
        self, index: int, parts: list[list[str]], number: int, gate: Gate
    ) -> tuple[int, str]:
        """Once the server holds at ``gate``: ``parts[0..number]`` shown live, rendered as
        Markdown, and counted. Returns the shown text's length and the status line then."""
        assert gate.wait_reached(timeout=30)
        sent = "".join(token for part in parts[: number + 1] for token in part)
        self.page.wait_for_function(
            "([node, words]) => node.textContent.replace(/\\s+/g, ' ').includes(words)",
            arg=[self.output(index).element_handle(), rendered_words(sent)[-40:]],
        )
        self.page.wait_for_function(
            "([node, n]) => node.textContent.includes(n + ' tokens')",
            arg=[self.output(index).element_handle(), tokens_in(parts, number)],
        )
        answer = (
            self.output(index)
            .locator(".jp-RenderedMarkdown")
            .filter(has_not=self.page.locator("small, details"))
        )
        shown = sum(len(text) for text in answer.all_text_contents())
        return shown, self.status(index).inner_text()

    def wait_text(self, locator: Any, expected: str, timeout: float = 15_000) -> str:
        """Until the element's text is ``expected`` (outer white space aside); returns it."""
        self.page.wait_for_function(
            "([node, expected]) => node.isConnected && node.textContent.trim() === expected.trim()",
            arg=[locator.element_handle(timeout=timeout), expected],
            timeout=timeout,
        )
        return expected

    def screenshot(self, index: int, name: str) -> Path:
        """A screenshot of cell ``index`` (input and output) into test-artifacts/browser/."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / name
        self.cell(index).screenshot(path=str(path))
        return path


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium, headless; never a browser downloaded by Playwright."""
    if shutil.which(CHROMIUM) is None:
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install -y chromium")
    return playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS)
    )


# --------------------------------------------------------------------------------------------
# Scripted answers and common checks

PLAN = [
    ["Here", " is", " a", " plan", ":\n\n"],
    ["- *first*", " step\n", "- **second**", " step\n\n"],
    ["Then", " run", " this", ":\n\n"],
    ["```python\n", "print('done')\n", "```\n"],
]


def gated_answer(parts: list[list[str]], delay: float = 0.05) -> tuple[Reply, list[Gate]]:
    """A paced answer that stops at a gate after each part but the last."""
    gates = [Gate() for _ in parts[:-1]]
    steps: list = []
    for number, part in enumerate(parts):
        if number:
            steps.append(gates[number - 1])
        for token in part:
            steps += [Reply.pause(delay), Reply.token(token)]
    steps.append(Reply.done())
    return Reply.stream(*steps), gates


def run_to_the_plan_list(nb: NotebookPage, gates: list[Gate], index: int = 1) -> None:
    """Run the cell of a gated PLAN answer until its list shows, the answer held after it."""
    nb.run(index)
    assert gates[0].wait_reached(timeout=30)
    gates[0].open()
    assert gates[1].wait_reached(timeout=30)
    nb.output(index).locator("li").nth(1).wait_for()


def flush_tasks(page) -> None:
    """Let the page run every task already queued (a navigation a click started, say)."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")


def assert_no_widget_left(nb: NotebookPage, index: int) -> None:
    output = nb.output(index)
    assert output.locator(".jupyter-widgets").count() == 0, output.inner_html()
    assert "widget" not in output.inner_text().lower()  # no "Error displaying widget"


def rendered_words(markdown: str) -> str:
    """The words Markdown shows once rendered (syntax marks and fence lines gone), one space
    between them.

    >>> rendered_words("- *first* step\\n```python\\nx = 1\\n```\\n")
    'first step x = 1'
    """
    lines = [line for line in markdown.split("\n") if not line.startswith("```")]
    text = " ".join(line[2:] if line.startswith("- ") else line for line in lines)
    return " ".join(text.replace("*", "").replace("`", "").split())


def tokens_in(parts: list[list[str]], upto: int) -> int:
    """How many answer chunks ``parts[0..upto]`` hold."""
    return sum(len(part) for part in parts[: upto + 1])
