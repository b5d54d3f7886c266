"""Without a browser or its Python drivers the browser test skips, naming what is missing."""
import shutil

import lab_page


def test_names_every_missing_program_and_package(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "chromedriver" else f"/usr/bin/{name}")
    real_find_spec = lab_page.importlib.util.find_spec
    monkeypatch.setattr(lab_page.importlib.util, "find_spec",
                        lambda name: None if name == "selenium" else real_find_spec(name))
    assert lab_page.missing_browser_tools() == ["Python package 'selenium'", "program 'chromedriver'"]


def test_names_nothing_when_all_is_there(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(lab_page.importlib.util, "find_spec", lambda name: object())
    assert lab_page.missing_browser_tools() == []
