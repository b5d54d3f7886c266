"""The text-size arithmetic of the browser test, on picture records like those probe.js returns."""
import pytest

from text_size import displayed_text_px, intrinsic_width_px, picture_problem


def _picture(**changes):
    record = {"tag": "img", "naturalWidth": 1800, "naturalHeight": 600, "widthAttribute": "900",
              "minTextPt": "7", "shownWidth": 900.0}
    return {**record, **changes}


def test_a_picture_at_1_to_1_shows_7pt_text_at_9_7px():
    assert displayed_text_px(_picture()) == pytest.approx(7 * 100 / 72)  # 9.72
    assert picture_problem(_picture()) is None


def test_a_picture_shrunk_to_half_its_width_attribute_halves_its_text():
    assert displayed_text_px(_picture(shownWidth=450.0)) == pytest.approx(4.86, abs=0.01)
    assert picture_problem(_picture(shownWidth=450.0)).startswith("smallest text 4.9 px < 9 px (7 pt, width=900;")


def test_svg_widths_in_points_are_figure_points():
    assert intrinsic_width_px("460.8pt") == pytest.approx(640.0)  # a 6.4-inch figure
    assert intrinsic_width_px("640px") == intrinsic_width_px("640") == 640.0
    assert intrinsic_width_px("100%") is None and intrinsic_width_px(None) is None


def test_without_the_display_helpers_attributes_the_problem_says_what_is_missing():
    problem = picture_problem(_picture(widthAttribute=None, minTextPt=None, naturalWidth=2934, shownWidth=948.0))
    assert problem.startswith("<img> lacks data-min-text-pt and a width attribute in px (the display helper")
    assert problem.endswith("2934×600 px image shown 948 px wide (×0.32 of its pixels)")
