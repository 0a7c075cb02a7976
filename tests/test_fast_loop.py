"""The fast loop, ``pytest -m "not slow"``, reaches every test module: each keeps a test not marked slow."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent

# Modules whose every test needs something that takes long to start, so the fast loop skips them whole.
ALL_SLOW = {
    "integration/test_distributed.py": "every test reads two process groups spawned once (about a minute)",
    "integration/test_distributed_lean_state.py": "every test reads one two-process spawn (45 s; more on a cold compile cache)",
    "test_docs_site.py": "every test reads the Sphinx site built once with -W (about 20 s)",
    "lab/test_ray.py": "every test needs a local Ray instance, which takes seconds to start",
    "lab/test_kill_resume.py": "its one test kills and resumes a sweep of real runs many times",
}


def _slow(mark: ast.expr) -> bool:
    """Whether a decorator or a ``pytestmark`` value is (or lists) ``pytest.mark.slow``."""
    if isinstance(mark, ast.List | ast.Tuple):
        return any(_slow(m) for m in mark.elts)
    return ast.unparse(mark) == "pytest.mark.slow"


def fast_tests(path: Path) -> list[str]:
    """The test functions of a module that the fast loop runs (all of a parametrized one's cases counted in)."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        marks = isinstance(node, ast.Assign) and any(ast.unparse(t) == "pytestmark" for t in node.targets)
        if marks and _slow(node.value):
            return []
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and node.name.startswith("test")
        and not any(_slow(d) for d in node.decorator_list)
    ]


def test_every_test_module_keeps_a_fast_test():
    modules = sorted(TESTS.rglob("test_*.py"))
    assert len(modules) > 30
    without = {p.relative_to(TESTS).as_posix() for p in modules if not fast_tests(p)}
    assert without <= set(ALL_SLOW), f"every test is marked slow in {sorted(without - set(ALL_SLOW))}"
    assert set(ALL_SLOW) <= without, f"these have fast tests now: {sorted(set(ALL_SLOW) - without)}"


def test_a_module_marked_slow_as_a_whole_has_no_fast_test(tmp_path):
    module = tmp_path / "test_x.py"
    module.write_text("import pytest\npytestmark = [pytest.mark.slow]\ndef test_a(): pass\n")
    assert fast_tests(module) == []
    module.write_text(
        "import pytest\n@pytest.mark.slow\ndef test_a(): pass\n@pytest.mark.parametrize('x', [1])\ndef test_b(x): pass\n"
    )
    assert fast_tests(module) == ["test_b"]
