"""The WCAG contrast maths the browser test relies on, checked against values computed by hand."""
import pytest

from wcag_contrast import composite, contrast_ratio, parse_css_colour


def test_black_on_white_is_21_to_1_and_a_colour_on_itself_1_to_1():
    assert contrast_ratio("rgb(0, 0, 0)", ["rgb(255, 255, 255)"]) == pytest.approx(21.0)
    assert contrast_ratio("rgb(187, 0, 0)", ["rgb(187, 0, 0)"]) == pytest.approx(1.0)


def test_dark_red_warning_on_jupyterlab_dark_is_2_8_to_1():
    """#b00 on JupyterLab Dark's #111 output background: the 2.8:1 issue 10 measured."""
    assert contrast_ratio("rgb(187, 0, 0)", ["rgb(17, 17, 17)"]) == pytest.approx(2.80, abs=0.01)
    assert contrast_ratio("rgb(187, 0, 0)", ["rgb(255, 255, 255)"]) == pytest.approx(6.75, abs=0.01)


def test_translucent_layers_are_painted_over_what_lies_behind():
    assert composite(["rgba(0, 0, 0, 0.5)", "rgb(255, 255, 255)"]) == (127.5, 127.5, 127.5, 1.0)
    assert composite([]) == (255.0, 255.0, 255.0, 1.0)  # nothing opaque: the white canvas
    # half-transparent black text on white reads as mid grey: 3.98:1, not 21:1
    assert contrast_ratio("rgba(0, 0, 0, 0.5)", ["rgb(255, 255, 255)"]) == pytest.approx(3.98, abs=0.01)


def test_css_colour_forms_from_getcomputedstyle():
    assert parse_css_colour("rgba(1, 2, 3, 0.25)") == (1.0, 2.0, 3.0, 0.25)
    assert parse_css_colour("rgb(1 2 3 / 50%)") == (1.0, 2.0, 3.0, 0.5)
    with pytest.raises(ValueError, match="not a computed CSS colour: 'red'"):
        parse_css_colour("red")
