"""demo.ipynb in JupyterLab in headless Chromium, after Run All: what a person sees, in Light and Dark.

Skips (one reason) without chromium, chromedriver, selenium or jupyterlab. GRADMAGIC_SCREENSHOTS=1 writes the
screenshots of cells marked `# screenshot: NAME` to docs/screenshots/ (NAME.png in Light, NAME-dark.png in Dark);
GRADMAGIC_BROWSER_NOTEBOOK=PATH checks another notebook instead of demo.ipynb.
"""
from __future__ import annotations

import re
import time

from PIL import Image

import lab_page
from wcag_contrast import contrast_ratio
from text_size import picture_problem

MIN_CONTRAST = 4.5  # WCAG AA for normal text
SCREENSHOT_MARK = re.compile(r"^\s*#\s*screenshot:\s*(\w+)\s*$", re.MULTILINE)  # any line: %%autograd must come first
EXPECTED_SCREENSHOTS = {"mlp_step", "cnn", "transformer"}


def _gradmagic_outputs(page):
    return [(index, first, out) for index, first, out in page.outputs() if out["gradmagic"]]


def test_run_all_ran_every_code_cell(page):
    not_run = [f"cell {cell['index']} {cell['prompt']!r}: {page.sources[cell['index']][:60]!r}"
               for cell in page.cells if cell["code"] and not re.search(r"\d", cell["prompt"])]
    assert not not_run, "Run All left cells without an execution count:\n" + "\n".join(not_run)


def test_no_error_outputs(page):
    shown = [f"cell {index} ({first}): {out['text'][:300]}" for index, first, out in page.outputs()
             if out["isError"] or (out["mime"] == "application/vnd.jupyter.stderr" and "Traceback" in out["text"])]
    held = [f"cell {cell['index']}: {error}" for cell in page.cells for error in cell["errors"]]
    assert not shown and not held, "error outputs on the page:\n" + "\n".join(held + shown)


def test_pictures_show_their_smallest_text_at_least_9px(page):
    pictures = [(index, first, picture) for index, first, out in _gradmagic_outputs(page) for picture in out["pictures"]]
    assert pictures, "no gradmagic picture on the page"
    problems = [f"cell {index} ({first}): {problem}" for index, first, picture in pictures
                if (problem := picture_problem(picture))]
    assert not problems, f"{len(problems)} of {len(pictures)} pictures unreadable:\n" + "\n".join(problems)


def test_no_output_is_wider_than_the_notebook(page):
    wide = [f"cell {index} ({first}): scrollWidth {out['scrollWidth']} > clientWidth {out['clientWidth']};"
            f" widest: {out['culprit']}"
            for index, first, out in page.outputs() if out["scrollWidth"] > out["clientWidth"] + 1]
    assert not wide, "outputs overflow sideways (outside .gradmagic-scroll frames):\n" + "\n".join(wide)


def test_every_autograd_cell_shows_its_table_unless_told_not_to(page):
    problems = []
    for cell in page.cells:
        source = page.sources[cell["index"]]
        if not source.startswith("%%autograd"):
            continue
        outputs = [out for out in cell["outputs"] if out["gradmagic"]]
        rows = [n for out in outputs for n in out["tableRows"]]
        wanted = "--no-table" not in source.split("\n", 1)[0]
        if not outputs:
            problems.append(f"cell {cell['index']}: no .gradmagic output")
        elif wanted and not (rows and all(rows)):
            problems.append(f"cell {cell['index']}: table body rows {rows}, expected one table with rows")
        elif not wanted and rows:
            problems.append(f"cell {cell['index']}: --no-table but a table is shown")
    assert not problems, "\n".join(problems)


def _contrast_problem(text: dict) -> str | None:
    ratio = contrast_ratio(text["colour"], text["backgrounds"])
    if ratio >= MIN_CONTRAST:
        return None
    return f"{ratio:.1f}:1 {text['colour']} on {text['backgrounds'][:2]} <{text['tag']}> {text['text'][:50]!r}"


def test_warning_text_has_contrast_at_least_4_5(page):
    warnings = [(index, text) for index, _, out in page.outputs() for text in out["warnings"]]
    low = [f"cell {index}: {problem}" for index, text in warnings if (problem := _contrast_problem(text))]
    assert not low, f"{page.theme}: {len(low)} of {len(warnings)} warnings below {MIN_CONTRAST}:1:\n" + "\n".join(low)


def test_gradmagic_text_has_contrast_at_least_4_5(page):
    texts = [(index, text) for index, _, out in _gradmagic_outputs(page) for text in out["texts"]]
    low = [f"cell {index}: {problem}" for index, text in texts if (problem := _contrast_problem(text))]
    assert texts, "no text in gradmagic outputs"
    assert not low, f"{page.theme}: {len(low)} of {len(texts)} texts below {MIN_CONTRAST}:1:\n" + "\n".join(low[:20])


def test_marked_cells_are_screenshotted(page, screenshot_dir, timings):
    start = time.monotonic()
    marked = {match.group(1): index for index, source in enumerate(page.sources)
              if (match := SCREENSHOT_MARK.search(source))}
    suffix = "" if page.theme == "JupyterLab Light" else "-dark"
    for name, index in marked.items():
        path = screenshot_dir / f"{name}{suffix}.png"
        width, height = lab_page.screenshot_output(page.driver, index, path)
        with Image.open(path) as image:
            assert abs(image.size[0] - width) <= 2 and abs(image.size[1] - height) <= 2, \
                f"{path.name}: {image.size} px saved, the output is {width}×{height} px: cut off"
    timings.since(f"screenshots {page.theme}", start)
    missing = EXPECTED_SCREENSHOTS - set(marked)
    assert not missing, f"demo.ipynb has no cells marked '# screenshot: NAME' for {sorted(missing)}"
