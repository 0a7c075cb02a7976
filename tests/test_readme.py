"""The README's Python examples run, and its Quick start is what CI runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
EXAMPLES = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)


@pytest.mark.parametrize("code", EXAMPLES, ids=[f"example-{i}" for i in range(len(EXAMPLES))])
def test_readme_example_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples may write files
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})


def test_quick_start_has_two_commands_and_ci_runs_the_test_one():
    block = re.search(r"## Quick start.*?```bash\n(.*?)```", README, flags=re.DOTALL).group(1)
    commands = [line for line in block.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


def test_the_findings_shown_are_generated_from_a_stored_findings_file():
    from descentlab.lab.findings import markdown

    shown = re.search(r"<!-- findings:default -->\n(.*?)<!-- /findings -->", README, flags=re.DOTALL).group(1)
    stored = json.loads((ROOT / "docs" / "findings" / "default.json").read_text())
    assert shown == markdown(stored)
    assert stored["suite"] == "default" and stored["machine"]["cores"]


def test_the_readme_names_every_claim_and_sub_claim_of_the_registry():
    from descentlab.lab.claims import CLAIMS

    lab = README.split("## The lab: descentlab compare", 1)[1].split("\n## ", 1)[0]
    for claim in CLAIMS.values():
        assert f"| {claim.id} " in lab, claim.id
        for sub in claim.subclaims:
            assert f"*{sub.id}*" in lab or len(claim.subclaims) == 1, (claim.id, sub.id)
