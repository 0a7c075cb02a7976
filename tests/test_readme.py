"""The README's Quick start is what CI runs; the pages hold what the README used to.

Every example in the README and on the documentation pages runs, with its output
checked, through Sybil (the repository's conftest.py); the site itself is built by
tests/test_docs_site.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"


def _generated():
    """The site's extension that renders the stored results (docs/_ext/generated.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("generated", DOCS / "_ext" / "generated.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_start_has_two_commands_and_ci_runs_the_test_one():
    block = re.search(r"## Quick start.*?```bash\n(.*?)```", README, flags=re.DOTALL).group(1)
    commands = [line for line in block.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2
    assert commands[1] in (ROOT / ".ci" / "run").read_text()
    # the getting-started page shows the same two commands
    assert block in (DOCS / "getting-started.md").read_text()


def test_the_readme_is_short_and_its_links_into_the_docs_exist():
    assert len(README.encode()) <= 8 * 1024
    links = re.findall(r"\]\((docs/[^)#]+)", README)
    assert links
    for link in links:
        assert (ROOT / link).is_file(), link


def test_the_speed_tables_are_the_stored_bench_results():
    # The README shows the reference runs (the CPU's and the GPU's); the benchmarks page renders
    # every stored result (tests/test_cli_bench.py). Each table the README shows is its file's summary.
    from descentlab.bench import summary

    shown = re.findall(r"<!-- bench summary: benchmarks/results/([^ ]+) -->", README)
    assert {"bench-cpu.json", "bench-cuda.json"} <= set(shown), shown
    for name in shown:
        table = summary(json.loads((ROOT / "benchmarks" / "results" / name).read_text()))
        block = f"<!-- bench summary: benchmarks/results/{name} -->\n{table}\n<!-- end bench summary -->"
        assert block in README, f"the README's table for {name} is not its summary; it should read:\n{block}"


def test_every_python_example_that_prints_shows_its_output():
    # Sybil checks the output of ">>>" examples only: an example that prints must be one.
    for page in [ROOT / "README.md", *DOCS.glob("*.md"), *DOCS.glob("zh/*.md")]:
        if page.name == "integration.md":  # scripts, checked by tests/integration/test_docs.py
            continue
        for block in re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.DOTALL):
            assert "print(" not in block or block.startswith(">>> "), (page.name, block[:80])


def test_the_findings_page_is_rendered_from_the_stored_findings_files():
    from descentlab.lab.findings import markdown

    page = (DOCS / "findings.md").read_text()
    generated = _generated()
    for name in ("default", "quick"):
        marker = f"<!-- generated: findings docs/findings/{name}.json -->"
        assert marker in page
        stored = json.loads((DOCS / "findings" / f"{name}.json").read_text())
        assert stored["suite"] == name and stored["machine"]["cores"]
        assert markdown(stored) in generated.expand(marker)


def test_the_lab_page_names_every_claim_and_sub_claim_of_the_registry():
    from descentlab.lab.claims import CLAIMS

    lab = (DOCS / "lab.md").read_text()
    for claim in CLAIMS.values():
        assert f"| {claim.id} " in lab, claim.id
        for sub in claim.subclaims:
            assert f"*{sub.id}*" in lab or len(claim.subclaims) == 1, (claim.id, sub.id)
