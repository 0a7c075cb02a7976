"""Every message the page or the server can show exists in English and in Chinese, with the same placeholders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from catalogues import check_pair
from descentlab.lab.mistakes import MISTAKES
from descentlab.playground.paths import REGIMES
from descentlab.problems import SURFACES

PLAYGROUND = Path(__file__).parents[2] / "src" / "descentlab" / "playground"
STATIC = PLAYGROUND / "static"
LANGUAGES = ("en", "zh")
CATALOGUES = {lang: json.loads((STATIC / "i18n" / f"{lang}.json").read_text()) for lang in LANGUAGES}


def used_keys() -> set[str]:
    """The keys the page's HTML and script and the server's errors name, and those built from the registries."""
    html = (STATIC / "index.html").read_text()
    script = (STATIC / "app.js").read_text()
    python = "\n".join(p.read_text() for p in PLAYGROUND.glob("*.py"))
    keys = set(re.findall(r'data-i18n(?:-aria)?="([^"]+)"', html))
    keys |= set(re.findall(r'\bt_?\("([^"]+)"', script))
    for expression in re.findall(r"dataset\.i18n = ([^;]+);", script):
        keys |= set(re.findall(r'"([^"]+)"', expression))  # also both sides of a ternary
    keys |= set(re.findall(r'"(error\.[a-z_]+)"', python))
    keys |= {f"mistake.{name}" for name in MISTAKES}
    keys |= {f"surface.{name}" for name in SURFACES} | {"surface.custom"}
    keys |= {"noise.gaussian", "noise.outliers"} | {f"regime.{r}" for r in REGIMES}
    return keys


def test_the_scan_finds_the_keys_it_should():
    # A scan that found nothing would let every check below pass.
    keys = used_keys()
    assert {
        "title",
        "play",
        "pause",
        "error.formula_function",
        "error.optimizer_value",
        "mistake.adam-no-eps",
    } <= keys


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_used_message_exists(lang):
    missing = sorted(used_keys() - set(CATALOGUES[lang]))
    assert not missing, f"missing in {lang}.json: {missing}"


def test_both_languages_have_the_same_keys_and_no_empty_message():
    assert set(CATALOGUES["en"]) == set(CATALOGUES["zh"]), set(CATALOGUES["en"]) ^ set(CATALOGUES["zh"])


def test_placeholders_agree_and_chinese_is_chinese():
    # "f(x, y) =" is the same in both languages
    check_pair(CATALOGUES["en"], CATALOGUES["zh"], no_chinese={"formula"})
