"""Names in any script draw: with a real glyph from the fallback fonts, or as an escape with a note; never lost."""
import warnings

import pytest
import torch
from matplotlib.text import Text

import gradmagic
from gradmagic.view import fonts
from gradmagic.view.placement import text_width


def _texts(figure) -> list:
    return [t.get_text() for t in figure.findobj(Text) if t.get_text()]


def _drawn_without_warnings(result, tmp_path) -> bytes:
    """The PNG of the result's picture, drawn with every warning an error (no "missing glyph" one)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return result.save(tmp_path / "g.png").read_bytes()


def test_greek_cyrillic_and_math_names_draw_as_written(tmp_path):
    result = gradmagic.run("вес = torch.ones(2, requires_grad=True)\nθ = (вес * 2).sum()\nθ.backward()")
    assert _drawn_without_warnings(result, tmp_path).startswith(b"\x89PNG")
    texts = _texts(result.figure)
    assert any(t.startswith("вес = [1.0, 1.0]") for t in texts) and any(t.startswith("θ = 4.0") for t in texts)
    assert not any("\\u" in t or "escapes" in t for t in texts)
    theta = next(t for t in result.figure.findobj(Text) if t.get_text().startswith("θ ="))
    assert theta.get_fontfamily() == ["sans-serif"]  # what the default font draws alone is left as it was


@pytest.mark.skipif("STIXGeneral" not in fonts.families(), reason="matplotlib ships STIXGeneral; it is not found")
def test_a_glyph_the_default_font_lacks_comes_from_a_fallback_font(tmp_path):
    # ᶍ (U+1D8D) is a Python name NFKC keeps as is; DejaVu Sans has no glyph for it, STIXGeneral has
    result = gradmagic.run("ᶍ = torch.ones(2, requires_grad=True)\ny = (ᶍ * 3).sum()\ny.backward()")
    assert _drawn_without_warnings(result, tmp_path).startswith(b"\x89PNG")
    assert any(t.startswith("ᶍ = [1.0, 1.0]") for t in _texts(result.figure))
    node = next(t for t in result.figure.findobj(Text) if t.get_text().startswith("ᶍ ="))
    assert node.get_fontfamily()[:2] == ["DejaVu Sans", "STIXGeneral"]


def test_cjk_names_without_a_cjk_font_draw_as_escapes_with_a_note_and_the_table_keeps_them(tmp_path):
    if fonts.drawable("张"):
        pytest.skip("a CJK font is installed: 张 draws as written")
    result = gradmagic.run("张量 = torch.ones(2, requires_grad=True)\n结果 = (张量 * 2).sum()\n结果.backward()")
    assert _drawn_without_warnings(result, tmp_path).startswith(b"\x89PNG")
    texts = _texts(result.figure)
    assert any(t.startswith("\\u5f20\\u91cf = [1.0, 1.0]") for t in texts)
    assert any("Names drawn as Python escapes (\\u5f20 \\u679c \\u7ed3 \\u91cf)" in t.replace("\n", " ")
               for t in texts)
    assert not any(not fonts.drawable(char) for t in texts for char in t if char != "\n")
    table = result._repr_mimebundle_()["text/html"]
    assert "<td>张量</td>" in table and "<td>结果</td>" in table
    assert result.tensor("张量")["grad"] == [2.0, 2.0]


def test_an_escaped_character_is_measured_as_its_escape():
    if fonts.drawable("张"):
        pytest.skip("a CJK font is installed")
    assert fonts.readable("a张") == "a\\u5f20"
    assert text_width("张", 10) == pytest.approx(text_width("\\u5f20", 10))
    assert fonts.readable("𝟘") == "\\U0001d7d8" or fonts.drawable("𝟘")


def test_the_measuring_caches_are_bounded():
    caches = (fonts.drawable, fonts.advance, text_width)
    assert all(0 < cache.cache_info().maxsize <= 4096 for cache in caches)


def test_finding_a_pictures_texts_makes_no_tick_labels():
    """figure_texts skips the axis of an axes drawn without axes: findobj made ~20 ticks there (~30 ms a figure)."""
    result = gradmagic.run("x = torch.ones(2, requires_grad=True)\ny = (x * 3).sum()\ny.backward()", {"torch": torch})
    result._repr_mimebundle_()  # fallback fonts, smallest text, pixels forgotten: every walk over the texts
    axes = result.figure.axes[0]
    assert [len(vars(axis).get("majorTicks", [])) for axis in (axes.xaxis, axes.yaxis)] == [1, 1]
    texts = [t.get_text() for t in fonts.figure_texts(result.figure)]
    assert any(text.startswith("y = 6") for text in texts) and "∇ flow" in texts  # a node's line, the legend's
