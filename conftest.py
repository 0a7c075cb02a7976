"""Every example on the documentation pages and in the README runs, and what it prints is checked.

Sybil reads the ```python blocks of ``README.md`` and ``docs/**/*.md``: a block of
``>>>`` examples is a doctest (its output compared, ``...`` matching anything), any
other block is run. Each page runs in a fresh temporary directory (examples write
files) with one torch thread, so the numbers shown do not depend on the machine's
load. ``docs/integration.md``'s scripts start processes of their own:
``tests/integration/test_docs.py`` runs them as scripts.
"""

from __future__ import annotations

import doctest
import os
import tempfile

import torch
from sybil import Sybil
from sybil.parsers.myst import PythonCodeBlockParser, SkipParser

# The site's configuration and build output are not tests.
collect_ignore = ["docs/conf.py"]
collect_ignore_glob = ["docs/_build/*", "docs/api/*"]


def _setup(namespace):
    namespace["_restore"] = (os.getcwd(), torch.get_num_threads())
    os.chdir(tempfile.mkdtemp(prefix="descentlab-docs-"))
    torch.set_num_threads(1)


def _teardown(namespace):
    cwd, threads = namespace["_restore"]
    os.chdir(cwd)
    torch.set_num_threads(threads)


pytest_collect_file = Sybil(
    parsers=[
        PythonCodeBlockParser(doctest_optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE),
        SkipParser(),
    ],
    patterns=["README.md", "docs/*.md", "docs/zh/*.md"],
    excludes=["docs/integration.md"],
    setup=_setup,
    teardown=_teardown,
).pytest()
