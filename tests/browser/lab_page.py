"""Driving JupyterLab in headless Chromium: open a notebook, Run All, switch theme, measure, take screenshots."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import time
from pathlib import Path

from wcag_contrast import composite, relative_luminance

WINDOW = (1400, 1000)
_PROBE = (Path(__file__).parent / "probe.js").read_text()


def missing_browser_tools() -> list[str]:
    """What this machine lacks to run the browser test, in words; empty when it has everything."""
    missing = [f"Python package {name!r}" for name in ("selenium", "jupyterlab")
               if importlib.util.find_spec(name) is None]
    missing += [f"program {name!r}" for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    return missing


def start_chromium(profile: Path):
    """Headless Chromium under Debian's chromedriver, 1400×1000, its profile and caches under `profile`.

    Selenium Manager is never asked (both paths are given), so nothing is downloaded.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--hide-scrollbars", "--force-device-scale-factor=1", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                 f"--user-data-dir={profile / 'user-data'}", "--disable-breakpad"):
        options.add_argument(flag)
    # Chromium keeps crash reports and dconf state under $HOME's XDG folders unless told otherwise
    env = dict(os.environ, XDG_CONFIG_HOME=str(profile / "config"), XDG_CACHE_HOME=str(profile / "cache"))
    service = Service(executable_path=shutil.which("chromedriver"), env=env)
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_window_size(*WINDOW)
    return driver


def wait_for(condition, timeout: float, what: str, *, every: float = 0.5):
    """Poll `condition()` until it returns something true; TimeoutError naming `what` and the last value."""
    deadline, value = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"waited {timeout:.0f} s for {what}; last seen: {value!r}")


def _app_call(driver, script: str, *args):
    """Run `script` (an async body with `app` bound to JupyterLab's application) and return its result."""
    wrapper = ("const done = arguments[arguments.length - 1]; const app = window.jupyterapp;"
               f"(async () => {{ {script} }})().then(r => done({{ok: r === undefined ? null : r}}),"
               " e => done({error: String(e)}));")
    answer = driver.execute_async_script(wrapper, *args)
    if "error" in answer:
        raise RuntimeError(f"JupyterLab command failed: {answer['error']}")
    return answer["ok"]


def open_notebook(driver, server, name: str, *, timeout: float = 90) -> None:
    """Load JupyterLab on `name` and wait until its kernel is connected and idle."""
    driver.set_script_timeout(60)
    driver.get(server.url(f"lab/tree/{name}"))
    wait_for(lambda: driver.execute_script("return !!(window.jupyterapp && window.jupyterapp.started)"
                                           " && document.querySelectorAll('.jp-Notebook .jp-Cell').length > 0"),
             timeout, "JupyterLab to show the notebook")
    wait_for(lambda: kernel_state(driver) == "idle connected", timeout, "the kernel to be connected and idle")


def kernel_state(driver) -> str | None:
    """The current notebook's kernel status and connection ('idle connected', 'busy connected', …), None before."""
    return driver.execute_script(
        "const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " const kernel = widget && widget.sessionContext && widget.sessionContext.session"
        "   && widget.sessionContext.session.kernel;"
        " return kernel ? kernel.status + ' ' + kernel.connectionStatus : null;")


def run_all_cells(driver) -> None:
    """Run → Run All Cells, through the menu bar as a person would."""
    _menu_bar_item(driver, "Run").click()
    wait_for(lambda: _menu_entry(driver, "Run All Cells"), 10, "the menu entry 'Run All Cells'").click()
    wait_for(lambda: any(not prompt.endswith("[ ]:") for prompt in _prompts(driver)), 20,
             "Run All to start a cell")


def _prompts(driver) -> list[str]:
    """Every code cell's input prompt: '[ ]:' before it runs, '[*]:' while queued or running, '[7]:' after."""
    return driver.execute_script(
        "return [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]"
        ".map(p => p.textContent.trim());")


def _menu_bar_item(driver, label: str):
    from selenium.webdriver.common.by import By

    items = [item for item in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item") if item.text.strip() == label]
    if not items:
        raise LookupError(f"no menu {label!r} in JupyterLab's menu bar")
    return items[0]


def _menu_entry(driver, label: str):
    """The visible entry labelled `label` in an open menu, or None."""
    from selenium.webdriver.common.by import By

    xpath = (f"//li[contains(@class, 'lm-Menu-item')]"
             f"[.//div[contains(@class, 'lm-Menu-itemLabel') and normalize-space() = '{label}']]")
    return next((entry for entry in driver.find_elements(By.XPATH, xpath) if entry.is_displayed()), None)


def wait_until_executed(driver, timeout: float) -> None:
    """Until Run All is over: no cell queued or running and the kernel idle, twice a second apart.

    Run All marks every cell '[*]' at once and clears the queue at the first error, so this also ends then;
    the tests report the error and the cells left without a count.
    """
    def finished():
        return "[*]:" not in _prompts(driver) and kernel_state(driver) == "idle connected"

    def settled():
        return finished() and (time.sleep(1) or finished())

    try:
        wait_for(settled, timeout, "Run All to finish and the kernel to be idle", every=1)
    except TimeoutError as error:
        raise TimeoutError(f"{error}; prompts: {_prompts(driver)}") from None


def use_theme(driver, theme: str, *, timeout: float = 30) -> None:
    """Switch JupyterLab's theme (the command behind Settings → Theme) and wait until its colours are on the page."""
    if not _theme_applied(driver, theme):
        _app_call(driver, "await app.commands.execute('apputils:change-theme', {theme: arguments[0]});", theme)
        wait_for(lambda: _theme_applied(driver, theme), timeout, f"theme {theme!r} to be applied")


def _theme_applied(driver, theme: str) -> bool:
    """The theme is named on <body> and the notebook's background is as light or dark as the theme says."""
    name, light, background = driver.execute_script(
        "let n = document.querySelector('.jp-Notebook'), c = 'rgb(255, 255, 255)';"
        " for (; n; n = n.parentElement) { const bg = getComputedStyle(n).backgroundColor;"
        "   if (!bg.startsWith('rgba') || parseFloat(bg.split(',')[3]) > 0) { c = bg; break; } }"
        " return [document.body.dataset.jpThemeName, document.body.dataset.jpThemeLight, c];")
    return name == theme and (light == "true") == (relative_luminance(composite([background])) > 0.5)


def measure(driver, *, timeout: float = 20) -> dict:
    """What probe.js reads from the page: the theme and one dict per notebook cell (markdown cells included)."""
    wait_for(lambda: driver.execute_script(
        "return [...document.querySelectorAll('.jp-OutputArea-output img')].every(i => i.complete && i.naturalWidth > 0);"),
        timeout, "every picture in the outputs to be decoded")
    return json.loads(driver.execute_script(_PROBE))


def screenshot_output(driver, cell_index: int, path: Path) -> tuple[int, int]:
    """Save the output area of cell `cell_index` as a PNG; its size in CSS px."""
    from selenium.webdriver.common.by import By

    cell = driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell")[cell_index]
    output = cell.find_element(By.CSS_SELECTOR, ".jp-Cell-outputArea")
    height = output.size["height"]
    grow = height + 200 > WINDOW[1]
    if grow:  # the notebook panel scrolls inside the page: make the window tall enough to show it all
        driver.set_window_size(WINDOW[0], int(height) + 400)
    try:
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", output)
        time.sleep(0.3)
        path.parent.mkdir(parents=True, exist_ok=True)
        output.screenshot(str(path))
        return int(output.size["width"]), int(output.size["height"])
    finally:
        if grow:
            driver.set_window_size(*WINDOW)
