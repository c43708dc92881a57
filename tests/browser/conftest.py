"""Fixtures for the real-browser tests: a fake Ollama, a Jupyter server, headless Chromium.

One Jupyter server per test module (it takes seconds to start), one Chromium for the whole run,
one browser profile per module. In JupyterLab one page serves the whole module: each test writes
its notebook, opens it from the file browser and closes it afterwards (its kernel is shut down).
The tests skip, with the reason and the install command, when Debian's Chromium or the Python
packages playwright/jupyterlab/notebook are not installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ollama_magic.testing import FakeOllama

from .jupyter_ui import ARTIFACTS, JupyterServer, NotebookPage, launch_chromium, missing

MODELS = ("llama3.2", "qwen3:8b")
THINKING = ("qwen3:8b",)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(models=MODELS, thinking_models=THINKING) as server:
        yield server


def _server(app: str, fake: FakeOllama, tmp_path_factory: pytest.TempPathFactory, name: str):
    root = tmp_path_factory.mktemp(f"{app}-root")
    server = JupyterServer(
        app,
        root,
        env={"OLLAMA_HOST": fake.host},
        log=ARTIFACTS / f"{name}-server.log",
    )
    return server.start()


@pytest.fixture(scope="module")
def lab(fake, tmp_path_factory, request) -> Iterator[JupyterServer]:
    """JupyterLab for this module, its kernels pointed at the fake Ollama."""
    reason = missing("playwright", "jupyterlab")
    if reason:
        pytest.skip(reason)
    server = _server("lab", fake, tmp_path_factory, request.module.__name__)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def notebook7(fake, tmp_path_factory, request) -> Iterator[JupyterServer]:
    """Notebook 7 (``jupyter notebook``) for this module."""
    reason = missing("playwright", "notebook")
    if reason:
        pytest.skip(reason)
    server = _server("notebook", fake, tmp_path_factory, request.module.__name__)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    reason = missing("playwright")
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Remember whether the test body failed, for the page fixtures' failure screenshots."""
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


def _context(browser) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1100, "height": 820})
    context.set_default_timeout(30_000)
    yield context
    context.close()


@pytest.fixture(scope="module")
def lab_context(browser, lab) -> Iterator[object]:
    """One browser profile per module, as a person keeps theirs: later pages load from cache."""
    yield from _context(browser)


@pytest.fixture(scope="module")
def notebook7_context(browser, notebook7) -> Iterator[object]:
    yield from _context(browser)


@pytest.fixture(scope="module")
def lab_tab(lab_context) -> Iterator[object]:
    """The module's one JupyterLab page: loaded once, then notebooks open from its file
    browser, as a person works."""
    page = lab_context.new_page()
    yield page
    page.close()


@pytest.fixture
def lab_page(lab_tab, lab, fake, request) -> Iterator[NotebookPage]:
    """JupyterLab, with no notebook open; the test writes and opens its own."""
    fake.reset()
    nb = NotebookPage(lab_tab, lab)
    try:
        yield nb
        _report_failure(nb, request)
    finally:
        try:
            nb.close_notebooks()
        finally:
            lab.shutdown_kernels()


@pytest.fixture
def notebook7_page(notebook7_context, notebook7, fake, request) -> Iterator[NotebookPage]:
    """A new Notebook 7 page (one document per page)."""
    fake.reset()
    page = notebook7_context.new_page()
    nb = NotebookPage(page, notebook7)
    try:
        yield nb
        _report_failure(nb, request)
    finally:
        page.close()
        notebook7.shutdown_kernels()


def _report_failure(nb: NotebookPage, request) -> None:
    """On failure: a screenshot of the page, and the text of any dialog on it."""
    if request.node.stash.get(FAILED, False):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        nb.page.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"))
        for text in nb.dialogs():
            print("dialog on screen:", text)


@pytest.fixture
def root(request) -> Path:
    """The folder the module's Jupyter server serves (where tests write notebooks)."""
    for name in ("lab", "notebook7"):
        if name in request.fixturenames:
            return request.getfixturevalue(name).root
    raise LookupError("use the lab or notebook7 fixture")
