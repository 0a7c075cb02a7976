"""Every example on the documentation pages and in the README runs, and what it prints is checked.

Sybil reads the ```python blocks of ``README.md`` and ``docs/**/*.md``: a block of
``>>>`` examples is a doctest (its output compared, ``...`` matching anything), any
other block is run. A ```console block is a terminal session: each ``$ `` line is
run by the shell (with this environment's ``descentlab`` first on the PATH) and what
it prints, stdout and stderr together, is compared with the lines under it, as a
doctest's output is. (```bash blocks are listings of commands, not run here: the
Quick start's test command is CI's own, and tests/test_cli*.py run the commands.)
Each page runs in a fresh temporary directory (examples write
files) with one torch thread, so the numbers shown do not depend on the machine's
load. ``docs/integration.md``'s scripts start processes of their own:
``tests/integration/test_docs.py`` runs them as scripts.
"""

from __future__ import annotations

import doctest
import os
import shutil
import subprocess
import sys
import tempfile

import pytest
import torch
from sybil import Sybil
from sybil.parsers.myst import CodeBlockParser, PythonCodeBlockParser, SkipParser

# The site's configuration and build output are not tests.
collect_ignore = ["docs/conf.py"]
collect_ignore_glob = ["docs/_build/*", "docs/api/*"]


def _setup(namespace):
    here = tempfile.mkdtemp(prefix="descentlab-docs-")
    namespace["_restore"] = (os.getcwd(), torch.get_num_threads(), here)
    os.chdir(here)
    torch.set_num_threads(1)


def _teardown(namespace):
    cwd, threads, here = namespace["_restore"]
    os.chdir(cwd)
    torch.set_num_threads(threads)
    shutil.rmtree(here, ignore_errors=True)


_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _session(text: str) -> list[tuple[str, str]]:
    """A console block as (command, what it shows) pairs."""
    steps: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
        elif line.strip():
            raise ValueError(f"a console block starts with a '$ ' command; found {line!r}")
    return [(command, "\n".join(shown).strip() + "\n") for command, shown in steps]


def _run_console(example) -> str | None:
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    checker = doctest.OutputChecker()
    for command, shown in _session(example.parsed):
        done = subprocess.run(
            command,
            shell=True,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=300,
        )
        if not checker.check_output(shown, done.stdout, _FLAGS):
            return f"$ {command}\nshows:\n{shown}printed (exit {done.returncode}):\n{done.stdout}"
    return None


pytest_collect_file = Sybil(
    parsers=[
        PythonCodeBlockParser(doctest_optionflags=_FLAGS),
        CodeBlockParser(language="console", evaluator=_run_console),
        SkipParser(),
    ],
    patterns=["README.md", "docs/*.md", "docs/zh/*.md"],
    excludes=["docs/integration.md"],
    setup=_setup,
    teardown=_teardown,
).pytest()


def pytest_collection_modifyitems(items):
    # A console session runs the installed command in a subprocess (seconds each, a
    # comparison among them): CI runs them; the fast loop (-m "not slow") leaves them out.
    for item in items:
        region = getattr(getattr(item, "example", None), "region", None)
        if region is not None and region.evaluator is _run_console:
            item.add_marker(pytest.mark.slow)
