"""Fonts for any script: matplotlib's font fallback over the fonts installed, and a readable form for the rest.

A picture's text is drawn with the default font first, then each installed font of _FALLBACKS in turn, glyph by
glyph (matplotlib >= 3.6). A character none of them has (a CJK name on a machine without a CJK font) is drawn as
its Python escape (`张` as `\\u5f20`), measured as such, and named in a note under the picture.
"""
from __future__ import annotations

from functools import lru_cache

from matplotlib import font_manager
from matplotlib.axis import Axis
from matplotlib.font_manager import FontProperties, findfont, get_font
from matplotlib.text import Text

try:  # matplotlib >= 3.10 keeps FreeType load flags in an enum; older versions as module constants
    from matplotlib.ft2font import LoadFlags
    _NO_HINTING = LoadFlags.NO_HINTING
except ImportError:  # pragma: no cover - matplotlib < 3.10
    from matplotlib.ft2font import LOAD_NO_HINTING as _NO_HINTING

__all__ = ["families", "drawable", "readable", "advance", "missing_note", "use_fallback", "figure_texts"]

#: Families that draw what the default font (DejaVu Sans: Latin, Greek, Cyrillic, most math) lacks; the installed
#: ones follow it. CJK first (Linux, macOS, Windows names), then broad Unicode and math fonts.
_FALLBACKS = (
    "Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK KR", "Noto Sans CJK TC", "Source Han Sans SC",
    "Source Han Sans", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback", "AR PL UMing CN",
    "IPAexGothic", "IPAGothic", "TakaoPGothic", "Noto Sans SC", "Noto Sans JP", "PingFang SC", "Hiragino Sans",
    "Apple SD Gothic Neo", "Microsoft YaHei", "SimHei", "Yu Gothic", "Malgun Gothic", "Arial Unicode MS",
    "Noto Sans", "Noto Sans Math", "Segoe UI", "Segoe UI Symbol", "DejaVu Sans", "STIXGeneral", "FreeSans",
)
_CHARS = 4096  # characters whose glyph facts stay cached: more than pictures use, far fewer than Unicode has


@lru_cache(maxsize=1)  # no arguments: one entry (as for _paths and _charmaps)
def families() -> tuple:
    """The default font's family, then every installed family of _FALLBACKS, in the order matplotlib tries them."""
    default = get_font(findfont(FontProperties())).family_name
    installed = {entry.name for entry in font_manager.fontManager.ttflist}
    return tuple(dict.fromkeys([default, *(name for name in _FALLBACKS if name in installed)]))


@lru_cache(maxsize=1)
def _paths() -> tuple:
    """The font file of each family, in fallback order."""
    return tuple(dict.fromkeys(findfont(FontProperties(family=name), fallback_to_default=False)
                               for name in families()))


@lru_cache(maxsize=1)
def _charmaps() -> tuple:
    return tuple(frozenset(get_font(path).get_charmap()) for path in _paths())


@lru_cache(maxsize=_CHARS)
def drawable(char: str) -> bool:
    """Whether some installed font of the fallback list has a glyph for `char`."""
    return any(ord(char) in charmap for charmap in _charmaps())


def readable(text: str) -> str:
    """`text` with every character no font has written as its Python escape (`\\u5f20`)."""
    return "".join(char if char == "\n" or drawable(char) else _escape(char) for char in text)


def _escape(char: str) -> str:
    return char.encode("unicode_escape").decode("ascii")


@lru_cache(maxsize=_CHARS)
def advance(char: str) -> float:
    """Unhinted advance width of one character as drawn (its escape when no font has it), in points per point."""
    if not drawable(char):
        return sum(advance(part) for part in _escape(char))
    path = next(path for path, charmap in zip(_paths(), _charmaps()) if ord(char) in charmap)  # as matplotlib draws
    font = get_font(path)
    font.set_size(100, 72)
    return font.load_char(ord(char), flags=_NO_HINTING).linearHoriAdvance / 65536 / 100


def missing_note(lines: dict) -> str | None:
    """A note naming the characters of node `lines` ({node: [(text, key)]}) that no installed font draws."""
    missing = sorted({char for texts in lines.values() for text, _ in texts for char in text
                      if char != "\n" and not drawable(char)})
    if not missing:
        return None
    shown = " ".join(_escape(char) for char in missing[:8]) + (" …" if len(missing) > 8 else "")
    return (f"Names drawn as Python escapes ({shown}): no installed font has these characters (a font such as "
            "Noto Sans CJK has); the table shows them as written.")


def use_fallback(figure) -> None:
    """Give each text of the figure the default font lacks glyphs for the fallback families, and write what no
    font has as escapes; texts the default font draws alone are left exactly as they were."""
    default = _charmaps()[0]
    for text in figure_texts(figure):
        written = text.get_text()
        if all(ord(char) in default for char in written if char != "\n"):
            continue
        text.set_fontfamily(list(families()))
        text.set_text(readable(written))


def figure_texts(artist):
    """The Text artists under `artist` that can be drawn: none under a hidden artist or the axis of an axes drawn
    without axes (whose tick labels `findobj` would make, ~2 ms a tick, only to leave them undrawn)."""
    if not artist.get_visible() or (isinstance(artist, Axis) and not artist.axes.axison):
        return
    if isinstance(artist, Text):
        yield artist
    for child in artist.get_children():
        yield from figure_texts(child)
