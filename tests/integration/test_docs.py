"""Every example of docs/integration.md runs as the script it is and prints what the page shows.

These examples start processes of their own (DDP, ZeRO) or compile, so they run
as scripts here; the other pages' examples are doctests that Sybil runs (the
repository's conftest.py).
"""

from __future__ import annotations

import doctest
import re
import subprocess
import sys
from pathlib import Path

import pytest

PAGE = Path(__file__).parents[2] / "docs" / "integration.md"
EXAMPLES = re.findall(
    r"^## (.+?)\n.*?```python\n(.*?)```\n\nIt prints:\n\n```text\n(.*?)```",
    PAGE.read_text(),
    flags=re.DOTALL | re.MULTILINE,
)


def test_the_page_has_an_example_with_its_output_for_each_point():
    assert len(EXAMPLES) == 8
    assert PAGE.read_text().count("```python") == len(EXAMPLES), "every example shows what it prints"


@pytest.mark.slow
@pytest.mark.parametrize(("title", "code", "shown"), EXAMPLES, ids=[t.split(".")[0] for t, _, _ in EXAMPLES])
def test_example_prints_what_the_page_shows(title, code, shown, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, f"{title}:\n{done.stderr[-3000:]}"
    # The page's "..." stands for any text, as in a doctest.
    assert doctest.OutputChecker().check_output(shown, done.stdout, doctest.ELLIPSIS), (
        f"{title}: the page shows\n{shown}but the script printed\n{done.stdout}"
    )
