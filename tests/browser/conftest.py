"""Fixtures of the browser test: one JupyterLab server and one headless Chromium per module, always stopped."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

import lab_page
import lab_server
from lab_page import missing_browser_tools

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = Path(os.environ.get("GRADMAGIC_BROWSER_NOTEBOOK", ROOT / "demo.ipynb"))  # another notebook to try
SCREENSHOTS = ROOT / "docs" / "screenshots"
THEMES = ("JupyterLab Light", "JupyterLab Dark")
RUN_ALL_TIMEOUT = 240


@pytest.fixture(scope="session")
def browser_tools():
    """Skip every browser test, with one reason, where the browser or its Python drivers are missing."""
    missing = missing_browser_tools()
    if missing:
        pytest.skip("browser test needs " + ", ".join(missing) + " (apt-get install chromium chromium-driver;"
                    " pip install -e '.[test]')")


@dataclass
class Timings:
    """Seconds each stage took, printed at the end of the run."""

    seconds: dict = field(default_factory=dict)

    def since(self, stage: str, start: float) -> None:
        self.seconds[stage] = round(time.monotonic() - start, 1)


_RECORDED: list[Timings] = []


@pytest.fixture(scope="module")
def timings():
    record = Timings()
    _RECORDED.append(record)
    return record


def pytest_terminal_summary(terminalreporter):
    """The browser test's stage timings at the end of the run, where CI's log shows them."""
    for record in _RECORDED:
        terminalreporter.write_line(f"browser test timings (s): {record.seconds}")


@pytest.fixture(scope="module")
def notebook_copy(tmp_path_factory) -> tuple[Path, nbformat.NotebookNode]:
    """demo.ipynb without its committed outputs, in a fresh root folder: only this run's outputs are on the page."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    root = tmp_path_factory.mktemp("lab-root")
    nbformat.write(notebook, root / NOTEBOOK.name)
    return root, notebook


@pytest.fixture(scope="module")
def lab(browser_tools, notebook_copy, tmp_path_factory, timings):
    start = time.monotonic()
    server = lab_server.start_lab(notebook_copy[0], tmp_path_factory.mktemp("lab-home"))
    timings.since("server start", start)
    yield server
    start = time.monotonic()
    lab_server.stop_lab(server)
    timings.since("server stop", start)


@pytest.fixture(scope="module")
def chromium(browser_tools, timings, tmp_path_factory):
    start = time.monotonic()
    driver = lab_page.start_chromium(tmp_path_factory.mktemp("chromium"))
    timings.since("chromium start", start)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def executed(lab, chromium, notebook_copy, timings):
    """The notebook opened in JupyterLab after Run All: every code cell has run and the kernel is idle."""
    start = time.monotonic()
    lab_page.open_notebook(chromium, lab, NOTEBOOK.name)
    timings.since("open notebook", start)
    start = time.monotonic()
    lab_page.run_all_cells(chromium)
    lab_page.wait_until_executed(chromium, RUN_ALL_TIMEOUT)
    timings.since("run all", start)
    return notebook_copy[1]


@dataclass
class Page:
    """The executed notebook as shown in one theme: what probe.js measured, beside each cell's source."""

    theme: str
    cells: list
    sources: list
    driver: object

    def outputs(self):
        """(cell index, first source line, output record) for every output on the page."""
        for cell in self.cells:
            for output in cell["outputs"]:
                yield cell["index"], self.sources[cell["index"]].split("\n", 1)[0], output


@pytest.fixture(scope="module", params=THEMES, ids=["light", "dark"])
def page(request, executed, chromium, timings) -> Page:
    start = time.monotonic()
    lab_page.use_theme(chromium, request.param)
    measured = lab_page.measure(chromium)
    timings.since(f"measure {request.param}", start)
    assert measured["theme"] == request.param
    assert len(measured["cells"]) == len(executed.cells), "the page shows a different number of cells than the file"
    return Page(request.param, measured["cells"], [cell.source for cell in executed.cells], chromium)


@pytest.fixture(scope="module")
def screenshot_dir(tmp_path_factory) -> Path:
    """docs/screenshots when GRADMAGIC_SCREENSHOTS=1 (to commit them), else a temp folder."""
    if os.environ.get("GRADMAGIC_SCREENSHOTS") == "1":
        return SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")
