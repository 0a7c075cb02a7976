"""Message catalogues: one JSON file per language, mapping a message's key to its text.

The project has one way to say things in English and in Chinese, the
playground's: a folder ``i18n/`` holding ``en.json`` and ``zh.json`` with
the same keys, each text with ``{name}`` placeholders. The playground's page
reads its catalogues (``playground/static/i18n/``) in the browser; the lab's
report, printed verdicts and Markdown read ``lab/i18n/`` through
:class:`Catalogue`. Tests check that both languages have every key and the
same placeholders.

Texts that a claim or a check writes into ``findings.json`` stay English
there (the record is the same whatever language it is read in); the English
catalogue holds each of them as a pattern (``left the region, {method}``),
and :meth:`Catalogue.translate` finds the pattern a text was made from and
writes the same key in the catalogue's language.

>>> zh = Catalogue("descentlab.lab", "zh")
>>> zh("verdict.supported")
'支持'
>>> zh.translate("none left")
'无一离开'
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import markupsafe

LANGUAGES = ("en", "zh")


def check_language(lang: object) -> str:
    """``lang`` if it is one of :data:`LANGUAGES`; ValueError naming the value otherwise."""
    if lang not in LANGUAGES:
        raise ValueError(f"--lang must be one of {', '.join(LANGUAGES)}; received --lang={lang!r}")
    return lang  # type: ignore[return-value]


@functools.cache
def messages(package: str, lang: str) -> dict[str, str]:
    """The catalogue ``i18n/{lang}.json`` of ``package`` (a dotted name)."""
    text = resources.files(package).joinpath("i18n", f"{check_language(lang)}.json").read_text("utf-8")
    return json.loads(text)


@functools.cache
def _patterns(package: str) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """Every English message as a regular expression whose groups are its placeholders, most literal first."""
    out = []
    for key, text in messages(package, "en").items():
        parts = re.split(r"\{(\w+)\}", text)
        regex, seen = "", set()
        for i, part in enumerate(parts):
            if i % 2 == 0:
                regex += re.escape(part)
            else:  # a placeholder; one that comes again must have the same value
                regex += f"(?P={part})" if part in seen else f"(?P<{part}>.+?)"
                seen.add(part)
        literal = sum(len(part) for part in parts[::2])
        if literal:  # a message of placeholders only would match any text (and recurse for ever)
            out.append((literal, key, re.compile(regex, re.S)))
    out.sort(key=lambda item: -item[0])
    return tuple((key, pattern) for _, key, pattern in out)


class Catalogue:
    """One language's messages of a package (``package/i18n/{lang}.json``)."""

    def __init__(self, package: str, lang: str = "en") -> None:
        self.package, self.lang = package, check_language(lang)
        self.messages = messages(package, self.lang)

    def __call__(self, key: str, **params: Any) -> str:
        """The message ``key`` with its placeholders filled in."""
        return self.messages[key].format(**params)

    def markup(self, key: str, **params: Any) -> markupsafe.Markup:
        """The message ``key`` as HTML: the catalogue's own markup kept, every parameter escaped."""
        import markupsafe  # with Jinja2, which renders the pages that need it

        return markupsafe.Markup(self.messages[key]).format(**params)

    def translate(self, text: str) -> str:
        """``text``, made from an English message, in this language; unchanged if no message made it.

        A placeholder's value is translated too when it is itself a message
        (a verdict inside a sentence).
        """
        if self.lang == "en" or not text:
            return text
        match = self.find(text)
        if match is None:
            return text
        key, params = match
        return self(key, **{name: self.translate(value) for name, value in params.items()})

    def find(self, text: str) -> tuple[str, dict[str, str]] | None:
        """The key of the English message ``text`` was made from, and its placeholders' values."""
        for key, pattern in _patterns(self.package):
            found = pattern.fullmatch(text)
            if found:
                return key, found.groupdict()
        return None
