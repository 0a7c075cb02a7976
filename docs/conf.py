"""Sphinx configuration for descentlab's documentation site.

Build it with ``python -m sphinx -W -b html docs docs/_build/html`` (the ``docs``
extra installs what it needs); ``tests/test_docs_site.py`` does, with warnings as
errors. Nothing is fetched at build or view time: MathJax is served from the
site's own ``_static`` (sphinx-mathjax-offline ships it).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import descentlab

DOCS = Path(__file__).parent
sys.path.insert(0, str(DOCS / "_ext"))

project = "descentlab"
author = "the descentlab authors"
copyright = "2026, " + author  # noqa: A001 - Sphinx's name for it
release = version = descentlab.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax's files, copied into _static: no CDN
    "myst_parser",
    "generated",  # docs/_ext/generated.py: pages rendered from the stored JSON results
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "findings/*.json"]
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

autosummary_generate = True
# The API pages autosummary writes into docs/api/ (ignored by git) are made again at
# every build: a stub left from a module that no longer exists would fail the -W build.
shutil.rmtree(Path(__file__).parent / "api", ignore_errors=True)
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "furo"
html_title = f"descentlab {release}"
html_static_path: list[str] = []

# A package re-exports what its public submodules define (``descentlab.lab.Store`` is
# ``descentlab.lab.store.Store``). Each object is documented once, on the page of the
# module that defines it; a package's page documents only what its private modules
# define (``descentlab.optim.Optimizer`` lives in ``descentlab.optim._base``).
_documenting: dict[str, str] = {}


def _note_module(app, what, name, obj, options, lines):
    if what == "module":
        _documenting["module"] = name


def _skip_reexport(app, what, name, obj, skip, options):
    package = _documenting.get("module", "")
    defined = getattr(obj, "__module__", None) or ""
    inside = defined[len(package) + 1 :].split(".")
    if what == "module" and defined.startswith(package + ".") and not any(p.startswith("_") for p in inside):
        return True
    return None


def setup(app):
    app.connect("autodoc-process-docstring", _note_module)
    app.connect("autodoc-skip-member", _skip_reexport)
