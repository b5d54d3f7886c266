"""WCAG 2 contrast of text against the backgrounds behind it, from computed CSS colours."""
from __future__ import annotations

import re

Colour = tuple[float, float, float, float]  # r, g, b in 0..255, alpha in 0..1

_CSS_COLOUR = re.compile(r"rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)(?:\s*[,/]\s*([\d.]+%?))?\s*\)")


def parse_css_colour(text: str) -> Colour:
    """`rgb(1, 2, 3)` or `rgba(1, 2, 3, 0.5)` (what getComputedStyle returns) as a tuple."""
    match = _CSS_COLOUR.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a computed CSS colour: {text!r} (expected rgb(...) or rgba(...))")
    r, g, b, alpha = match.groups()
    if alpha is None:
        alpha_value = 1.0
    else:
        alpha_value = float(alpha[:-1]) / 100 if alpha.endswith("%") else float(alpha)
    return float(r), float(g), float(b), alpha_value


def over(top: Colour, bottom: Colour) -> Colour:
    """`top` painted over an opaque `bottom`."""
    a = top[3]
    return tuple(a * t + (1 - a) * b for t, b in zip(top[:3], bottom[:3])) + (1.0,)


def composite(layers: list[str], *, canvas: str = "rgb(255, 255, 255)") -> Colour:
    """The opaque colour seen through background `layers` (innermost first) over `canvas`."""
    seen = parse_css_colour(canvas)
    for layer in reversed(layers):
        seen = over(parse_css_colour(layer), seen)
    return seen


def relative_luminance(colour: Colour) -> float:
    """WCAG 2 relative luminance of an opaque colour."""
    def linear(channel: float) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in colour[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(text: str, backgrounds: list[str]) -> float:
    """Contrast (1..21) of CSS colour `text` against its background layers, innermost first."""
    background = composite(backgrounds)
    foreground = over(parse_css_colour(text), background)
    lighter, darker = sorted((relative_luminance(foreground), relative_luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)
