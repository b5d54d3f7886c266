"""How a result shows in a notebook: one output, the picture stored once, crisp, described, readable, scrolling."""
import base64
import io
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
import torch
from IPython.utils.capture import capture_output
from PIL import Image

import gradmagic
from gradmagic.view import export, report
from gradmagic.result import SCROLL_ABOVE_PX, WARNING_STYLE
from programs import MODULE_STEP, SEED_1, SEED_3

PNG_BASE64_SIGNATURE = base64.b64encode(b"\x89PNG\r\n\x1a\n")[:10].decode()  # "iVBORw0KGg"


class _Elements(HTMLParser):
    """Every start tag of an HTML text as (tag, {attribute: value}), in order."""

    def __init__(self, text: str):
        super().__init__()
        self.found = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def elements(text: str, tag: str) -> list:
    return [attrs for name, attrs in _Elements(text).found if name == tag]


def png_of(img: dict) -> Image.Image:
    head, data = img["src"].split(",", 1)
    assert head == "data:image/png;base64"
    return Image.open(io.BytesIO(base64.b64decode(data)))


def run_cell(shell, cell):
    """(ExecutionResult, the output bundles the cell published, captured stdout, captured stderr)."""
    with capture_output() as captured:
        result = shell.run_cell(cell)
    return result, [o.data for o in captured.outputs], captured.stdout, captured.stderr


def test_the_png_is_stored_once_in_everything_the_cell_displays(shell):
    result, outputs, _, _ = run_cell(shell, "%%autograd\n" + SEED_3)
    assert result.success and len(outputs) == 1
    png = base64.b64encode(shell.user_ns["_autograd"].image("png")).decode()
    everything = "".join(value for bundle in outputs for value in bundle.values())
    assert everything.count(png) == 1
    assert everything.count(PNG_BASE64_SIGNATURE) == 1  # no other copy, at any size
    assert set(outputs[0]) == {"text/plain", "text/html"}


def test_alt_text_is_the_summarys_first_lines():
    result = gradmagic.run(SEED_3)
    img, = elements(result._repr_mimebundle_()["text/html"], "img")
    lines = report.summary_lines(result.graph)
    assert img["alt"] == "autograd graph: " + "; ".join(lines[:2])
    assert img["alt"] == "autograd graph: backward() on z; dz/da = 1290, dz/dx = 17200"


def test_alt_text_is_escaped():
    result = gradmagic.run(SEED_3)
    result.alt_text = lambda: 'a "quoted" <b>&'
    page = result._repr_mimebundle_()["text/html"]
    assert 'alt="a &quot;quoted&quot; &lt;b&gt;&amp;"' in page
    assert elements(page, "img")[0]["alt"] == 'a "quoted" <b>&'


def test_png_has_twice_the_pixels_of_its_display_size():
    result = gradmagic.run(SEED_3)
    img, = elements(result._repr_mimebundle_()["text/html"], "img")
    width, height = int(img["width"]), int(img["height"])
    inches = result.figure.get_size_inches()
    assert (width, height) == (round(inches[0] * 100), round(inches[1] * 100))
    pixels = png_of(img).size
    assert abs(pixels[0] - 2 * width) <= 1 and abs(pixels[1] - 2 * height) <= 1
    assert "max-width:100%" in img["style"] and "height:auto" in img["style"]


def test_saved_png_is_at_200_dpi(tmp_path):
    result = gradmagic.run(SEED_1)
    image = Image.open(result.save(tmp_path / "seed.png"))
    assert export.PNG_DPI == 200
    assert image.size[0] == round(result.figure.get_figwidth() * 200)
    assert round(image.info["dpi"][0]) == 200


def test_img_carries_the_smallest_text_size_in_points():
    result = gradmagic.run(SEED_3)
    img, = elements(result._repr_mimebundle_()["text/html"], "img")
    # what was really drawn: the SVG writes each text with its size in points (its user unit is the point)
    svg = result.image("svg").decode()
    drawn = [float(size) for size in re.findall(r"<text[^>]*font-size: ([0-9.]+)px", svg)]
    assert len(drawn) > 10 and float(img["data-min-text-pt"]) == pytest.approx(min(drawn))
    legend_sizes = [t.get_fontsize() for legend in result.figure.legends for t in legend.get_texts()]
    assert float(img["data-min-text-pt"]) <= min(legend_sizes)


def test_smallest_text_skips_hidden_and_empty_texts():
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 1))
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_axis_off()  # its tick labels are never drawn
    ax.text(0.5, 0.5, "shown", fontsize=11)
    ax.text(0.5, 0.2, "hidden", fontsize=3).set_visible(False)
    ax.text(0.5, 0.1, "  ", fontsize=2)
    figure.legend(handles=[ax.plot([0], [0], label="legend")[0]], fontsize=9)
    assert export.smallest_text_pt(figure) == 9
    assert export.smallest_text_pt(Figure()) is None


def test_a_wide_picture_scrolls_at_full_size_and_a_narrow_one_does_not():
    wide = gradmagic.run(MODULE_STEP)
    wide.show_all = True
    page = wide._repr_mimebundle_()["text/html"]
    img, = elements(page, "img")
    assert int(img["width"]) > SCROLL_ABOVE_PX == 900
    frame, = [d for d in elements(page, "div") if d.get("class") == "gradmagic-scroll"]
    assert frame["style"].endswith("max-height:70vh;overflow:auto")
    assert "max-width:none" in img["style"] and "100%" not in img["style"]
    assert page.index("gradmagic-scroll") < page.index("<img")
    narrow = gradmagic.run(SEED_3)._repr_mimebundle_()["text/html"]
    assert "gradmagic-scroll" not in narrow and int(elements(narrow, "img")[0]["width"]) <= 900


def _svg_texts(svg: str) -> list:
    return [t.text for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")]


def test_saved_svg_has_real_text_with_the_node_labels(tmp_path):
    from matplotlib.text import Text

    result = gradmagic.run(SEED_1)
    svg = result.save(tmp_path / "seed.svg").read_text()
    texts = _svg_texts(svg)
    assert any(t.startswith("x = 10.0") for t in texts)
    drawn = {line.strip() for t in result.figure.findobj(Text) if t.get_visible()
             for line in t.get_text().split("\n") if line.strip()}
    assert drawn <= {t.strip() for t in texts}
    assert not re.search(r'id="[^"]*DejaVu', svg)  # no glyph outlines: text is text


def test_saved_svg_is_reproducible_and_differs_between_pictures(tmp_path):
    one, two = gradmagic.run(SEED_1), gradmagic.run(SEED_3)
    first = one.save(tmp_path / "a.svg").read_bytes()
    assert one.save(tmp_path / "b.svg").read_bytes() == first
    assert gradmagic.run(SEED_1).save(tmp_path / "c.svg").read_bytes() == first
    ids = [set(re.findall(r'\bid="([^"]+)"', f.decode())) for f in (first, two.save(tmp_path / "d.svg").read_bytes())]
    assert ids[0] and not ids[0] & ids[1]


def test_two_svg_displays_share_no_id_even_of_the_same_graph(shell):
    _, outputs, _, _ = run_cell(shell, "%%autograd --format svg\n" + SEED_1)
    _, again, _, _ = run_cell(shell, "%%autograd --format svg\n" + SEED_1)
    pages = [outputs[0]["text/html"], again[0]["text/html"]]
    ids = [set(re.findall(r'\bid="([^"]+)"', page)) for page in pages]
    assert len(ids[0]) > 10 and not ids[0] & ids[1]
    for page, found in zip(pages, ids):
        references = set(re.findall(r'(?:href="#|url\(#)([^")]+)', page))
        assert references <= found  # every reference still points at an element of its own picture


def test_svg_display_is_sized_like_the_png_and_has_real_text():
    result = gradmagic.run(SEED_1)
    png_img, = elements(result._repr_mimebundle_()["text/html"], "img")
    result.image_format = "svg"
    page = result._repr_mimebundle_()["text/html"]
    assert "<img" not in page and "<?xml" not in page and "data:image/png" not in page
    svg = page[page.index("<svg"):page.index("</svg>") + len("</svg>")]
    root = ET.fromstring(svg)
    assert (root.get("width"), root.get("height")) == (png_img["width"], png_img["height"])
    assert root.get("aria-label") == png_img["alt"] and root.get("data-min-text-pt") == png_img["data-min-text-pt"]
    assert any(t.startswith("x = 10.0") for t in _svg_texts(svg))


def _luminance(hex_colour: str) -> float:
    """WCAG 2 relative luminance of #rrggbb."""
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_wcag_contrast_formula_matches_known_values():
    assert _contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert _contrast("#bb0000", "#111111") == pytest.approx(2.8, abs=0.05)  # the old warning in JupyterLab Dark


@pytest.mark.parametrize("page_background", ["#ffffff", "#111111"])
def test_warnings_have_their_own_colours_readable_on_light_and_dark_pages(page_background):
    cell = "w = torch.ones(2, requires_grad=True)\nu = torch.ones(2, requires_grad=True)\nloss = (w * 2).sum()\n" \
           "loss.backward()"
    result = gradmagic.run(cell)
    assert result.diagnostics
    page = result._repr_mimebundle_()["text/html"]
    warning, = [p for p in elements(page, "p") if "background" in p.get("style", "")]
    style = dict(part.split(":", 1) for part in warning["style"].split(";"))
    assert warning["style"] == WARNING_STYLE
    background = style["background"]  # opaque: the page behind it does not show through
    shown_on = background if re.fullmatch(r"#[0-9a-f]{6}", background) else page_background
    assert _contrast(style["color"], shown_on) >= 4.5
    assert _contrast(style["color"], background) >= 4.5


def test_a_failed_save_is_one_line_and_the_result_stays_displayed_and_bound(shell, tmp_path):
    good = tmp_path / "ok.json"
    result, outputs, _, err = run_cell(shell, f"%%autograd -s /proc/x.png -s {good}\n" + SEED_1)
    assert result.success and len(outputs) == 1 and "text/html" in outputs[0]
    assert err.splitlines() == [err.strip()] and err.startswith("gradmagic: could not save /proc/x.png: ")
    assert "Traceback" not in err and good.exists()
    assert shell.user_ns["_autograd"].tensor("x")["grad"] == pytest.approx(40.0)


def test_an_unwritable_folder_is_one_line_too(shell, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if (locked / "probe").exists() or _can_write(locked):
            pytest.skip("running as a user who can write anywhere (root)")
        result, outputs, _, err = run_cell(shell, f"%%autograd -s {locked / 'g.svg'}\n" + SEED_1)
    finally:
        locked.chmod(0o700)
    assert result.success and len(outputs) == 1
    assert err == f"gradmagic: could not save {locked / 'g.svg'}: Permission denied\n"
    assert "_autograd" in shell.user_ns


def _can_write(folder) -> bool:
    try:
        (folder / "probe").write_text("")
    except OSError:
        return False
    (folder / "probe").unlink()
    return True


def test_svg_style_sheet_applies_only_to_its_own_picture():
    result = gradmagic.run(SEED_1)
    result.image_format = "svg"
    page = result._repr_mimebundle_()["text/html"]
    root_id = re.search(r'<svg id="([^"]+)"', page).group(1)
    picture = page[page.index("<svg"):page.index("</svg>")]  # the table has a style sheet of its own
    rules = re.findall(r"<style[^>]*>(.*?)</style>", picture, re.S)
    selectors = re.findall(r"([^{}]+)\{", "".join(rules))
    assert selectors and all(s.strip().startswith(f"#{root_id} ") for s in selectors)


def test_a_huge_picture_gets_fewer_pixels_but_never_less_than_one_per_css_px():
    from matplotlib.figure import Figure

    assert export.png_dpi(Figure(figsize=(9, 6))) == 200
    assert export.png_dpi(Figure(figsize=(40, 40))) == 100
    big = Figure(figsize=(30, 20))
    dpi = export.png_dpi(big)
    assert 100 < dpi < 200 and 30 * 20 * dpi ** 2 == pytest.approx(export.PNG_MAX_PIXELS)
    pixels = Image.open(io.BytesIO(export.figure_bytes(big, ".png"))).size
    assert pixels[0] * pixels[1] <= export.PNG_MAX_PIXELS * 1.001


def test_a_folder_the_cell_removed_is_one_line_and_later_saves_still_run(shell, tmp_path):
    gone, kept = tmp_path / "gone", tmp_path / "g.dot"
    gone.mkdir()
    cell = f"%%autograd -s {gone / 'g.png'} -s {kept}\nimport shutil\nshutil.rmtree({str(gone)!r})\n" + SEED_1
    result, outputs, _, err = run_cell(shell, cell)
    assert result.success and len(outputs) == 1 and kept.read_text().startswith("digraph")
    assert err == f"gradmagic: could not save {gone / 'g.png'}: folder {str(gone)!r} does not exist\n"
