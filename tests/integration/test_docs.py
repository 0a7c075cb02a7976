"""Every example of docs/integration.md runs as the script it is."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

PAGE = Path(__file__).parents[2] / "docs" / "integration.md"
EXAMPLES = re.findall(r"^## (.+?)\n.*?```python\n(.*?)```", PAGE.read_text(), flags=re.DOTALL | re.MULTILINE)


def test_the_page_has_an_example_for_each_point():
    assert len(EXAMPLES) == 7


@pytest.mark.slow
@pytest.mark.parametrize(("title", "code"), EXAMPLES, ids=[t.split(".")[0] for t, _ in EXAMPLES])
def test_example_runs(title, code, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, f"{title}:\n{done.stderr[-3000:]}"
    assert done.stdout.strip(), "the example prints what it shows"
