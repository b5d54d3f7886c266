"""How big a picture's smallest text is as the browser shows it, from the display helper's attributes."""
from __future__ import annotations

import re

MIN_TEXT_PX = 9  # the smallest text a person reads without zooming, in CSS px at the displayed size
PX_PER_PT = 100 / 72  # the display helper's convention: 1 figure inch = 100 CSS px


def intrinsic_width_px(width_attribute: str | None) -> float | None:
    """A picture's width attribute in CSS px at 1:1 (pt as figure points: 72 pt = 1 inch = 100 px); None if unknown."""
    match = re.fullmatch(r"\s*([\d.]+)\s*(px|pt)?\s*", width_attribute or "")
    if not match:
        return None
    number, unit = float(match.group(1)), match.group(2)
    return number * PX_PER_PT if unit == "pt" else number


def displayed_text_px(picture: dict) -> float:
    """The smallest text of a picture in CSS px as displayed: its size in points, times the display scale."""
    scale = picture["shownWidth"] / intrinsic_width_px(picture["widthAttribute"])
    return float(picture["minTextPt"]) * PX_PER_PT * scale


def picture_problem(picture: dict) -> str | None:
    """Why a picture (as probe.js describes it) is unreadable at its displayed size; None when it reads."""
    natural = f"{picture['naturalWidth']}×{picture['naturalHeight']} px image" if picture["tag"] == "img" else "<svg>"
    natural += f" shown {picture['shownWidth']:.0f} px wide"
    lacks = [what for what, value in (("data-min-text-pt", picture["minTextPt"]),
                                      ("a width attribute in px", intrinsic_width_px(picture["widthAttribute"])))
             if value is None]
    if lacks:
        shrink = f" (×{picture['shownWidth'] / picture['naturalWidth']:.2f} of its pixels)" if picture["naturalWidth"] else ""
        return (f"<{picture['tag']}> lacks {' and '.join(lacks)} (the display helper of issue 10 adds them;"
                f" until it lands the text size cannot be measured): {natural}{shrink}")
    px = displayed_text_px(picture)
    if px < MIN_TEXT_PX:
        return (f"smallest text {px:.1f} px < {MIN_TEXT_PX} px ({picture['minTextPt']} pt,"
                f" width={picture['widthAttribute']}; {natural})")
    return None
