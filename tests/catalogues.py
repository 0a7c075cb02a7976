"""The checks every pair of message catalogues (``i18n/en.json`` and ``i18n/zh.json``) must pass."""

from __future__ import annotations

import re

PLACEHOLDER = re.compile(r"\{\w+\}")
CHINESE = re.compile(r"[\u4e00-\u9fff]")


def check_pair(en: dict[str, str], zh: dict[str, str], *, no_chinese: set[str] = frozenset()) -> None:
    """No empty message; the same placeholders in both; Chinese in every Chinese message but ``no_chinese``.

    (Whether both have the same keys is each caller's test: a catalogue may hold keys of its own.)
    """
    for lang, catalogue in (("en", en), ("zh", zh)):
        assert all(isinstance(v, str) and v.strip() for v in catalogue.values()), lang
    for key in set(en) & set(zh):
        assert set(PLACEHOLDER.findall(en[key])) == set(PLACEHOLDER.findall(zh[key])), key
        if key not in no_chinese:
            assert CHINESE.search(zh[key]), f"{key}: {zh[key]!r} has no Chinese"
