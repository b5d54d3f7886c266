"""scripts/mutation/ still points at code that exists: each hand-written mutant's text occurs once, each module
given to mutmut is one file of the package, and the tests named exist."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "mutation" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name, file, old, new, tests", _script("hand_mutants").MUTANTS,
                         ids=lambda v: v if isinstance(v, str) else "")
def test_each_mutant_text_occurs_once_and_its_tests_exist(name, file, old, new, tests):
    assert (ROOT / file).read_text().count(old) == 1, f"{name}: {file} no longer holds {old!r} once"
    assert old != new and (ROOT / tests[0]).exists()


@pytest.mark.parametrize("module, tests", _script("run_mutmut").MODULES.items())
def test_each_mutmut_module_is_one_file_with_existing_tests(module, tests):
    assert len(list(ROOT.glob(f"gradmagic/**/{module}.py"))) == 1, module
    assert all((ROOT / t).exists() for t in tests), tests
