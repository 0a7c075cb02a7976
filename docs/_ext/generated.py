"""Pages whose figures come from stored results, rendered when the site is built.

A page marks where a rendering goes with an HTML comment on a line of its own::

    <!-- generated: bench benchmarks/results/*.json -->
    <!-- generated: findings docs/findings/default.json -->
    <!-- generated: playground benchmarks/playground.json -->
    <!-- generated: forms benchmarks/fsdp-step.json -->

and the comment is replaced, as the page is read, by the Markdown that
:func:`descentlab.bench.markdown`, :func:`descentlab.lab.findings.markdown`,
:func:`descentlab.playground.bench.markdown` or
:func:`descentlab.bench.forms_markdown` (the ``--out`` files of the scripts in
benchmarks/) makes of each file (paths from
the repository root; a pattern takes every file it matches, in name order).
Each rendering names its machine and date, as the files record them, so no
figure on the site is typed by hand.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[2]
MARKER = re.compile(r"^<!-- generated: (\w+) (\S+) -->$", flags=re.MULTILINE)


def _renderers() -> dict[str, Any]:
    from descentlab import bench
    from descentlab.lab import findings
    from descentlab.playground import bench as playground_bench

    return {
        "bench": bench.markdown,
        "findings": findings.markdown,
        "playground": playground_bench.markdown,
        "forms": bench.forms_markdown,
    }


def render(kind: str, pattern: str) -> str:
    """The Markdown for one marker: each file matching ``pattern``, rendered by ``kind``'s function."""
    renderers = _renderers()
    if kind not in renderers:
        raise ValueError(f"generated: unknown kind {kind!r}; known: {', '.join(sorted(renderers))}")
    files = sorted(ROOT.glob(pattern))
    if not files:
        raise ValueError(f"generated: no file matches {pattern!r}")
    parts = []
    for file in files:
        text = renderers[kind](json.loads(file.read_text()))
        parts.append(f"From `{file.relative_to(ROOT)}`:\n\n{text}" if len(files) > 1 else text)
    return "\n".join(parts)


def expand(text: str) -> str:
    """``text`` with every marker replaced by its rendering."""
    return MARKER.sub(lambda m: render(m.group(1), m.group(2)), text)


def _source_read(app: Any, docname: str, source: list[str]) -> None:
    source[0] = expand(source[0])


def setup(app: Any) -> dict[str, Any]:
    app.connect("source-read", _source_read)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
