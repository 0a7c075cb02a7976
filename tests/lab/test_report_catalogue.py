"""The report's message catalogue: every text the report can show exists in English and in Chinese."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from catalogues import check_pair
from descentlab.i18n import Catalogue
from descentlab.lab.claims import CLAIMS
from descentlab.lab.findings import markdown
from descentlab.lab.mistakes import MISTAKES
from descentlab.lab.suite import SUITES, VARIANTS, get_suite

FOLDER = Path(__file__).parents[2] / "src" / "descentlab" / "lab" / "i18n"
EN, ZH = (json.loads((FOLDER / f"{lang}.json").read_text()) for lang in ("en", "zh"))
ENGLISH = Catalogue("descentlab.lab", "en")


def test_both_languages_have_the_same_keys_and_chinese_has_each_claim_s_text():
    # Only "how each claim is measured" is Chinese-only: its English is the claim module's docstring.
    texts = {f"claim_text.{claim}" for claim in CLAIMS}
    assert set(ZH) - set(EN) == texts, set(ZH) ^ set(EN)
    assert set(EN) <= set(ZH)


def test_placeholders_agree_and_chinese_is_chinese():
    check_pair(
        EN,
        ZH,
        no_chinese={
            "list.separator", "depends.separator", "depends.changed", "case.number",
            "machine.python", "machine.torch",
        },
    )  # fmt: skip


def registry_texts() -> list[str]:
    """The English texts the claims, suites, variations and mistaken rules write into findings."""
    texts = []
    for claim in CLAIMS.values():
        texts += [claim.title, claim.statement, claim.source, *claim.not_varied.values()]
        for sub in claim.subclaims:
            texts += [sub.statement, sub.measure, sub.effect, sub.control]
    texts += list(VARIANTS.values()) + [get_suite(name).summary for name in SUITES]
    texts += [m.summary for m in MISTAKES.values()] + [m.mechanism for m in MISTAKES.values()]
    return texts


@pytest.mark.parametrize("text", registry_texts())
def test_every_text_the_registries_write_is_an_english_message(text):
    # A claim whose statement changed without its catalogue entry fails here.
    assert ENGLISH.find(text) is not None, text


def test_a_text_made_from_a_message_is_translated_with_its_values():
    zh = Catalogue("descentlab.lab", "zh")
    assert zh.translate("left the region, momentum") == "离开区域，momentum"
    assert zh.translate("0 (never: full 100%, mini 20%)") == "0（从未达到：全批量 100%，小批量 20%）"
    # a value that is itself a message is translated too
    assert zh.translate("the same stream with learning rate 0 (nothing learnt)") == ZH["C2.learns.control"]
    assert zh.translate("not a message") == "not a message"
    assert ENGLISH.translate("none left") == "none left"


def _texts(findings: dict) -> set[str]:
    """Every text a findings file holds that the report shows (not the papers cited: they keep their titles)."""
    texts = {c[k] for c in findings["calibration"] for k in ("title", "criterion", "detail")}
    texts |= {r[k] for r in findings["formula"] for k in ("summary", "mechanism")}
    for claim in findings["claims"]:
        for sub in claim["subclaims"]:
            texts |= set(sub["not_varied"].values())
            for case in sub["cases"]:
                texts |= {case["label"], case["note"]}
                texts |= {k for k in case["numbers"]} | {
                    v for v in case["numbers"].values() if isinstance(v, str)
                }
    return texts - {""}


def test_every_text_of_the_default_suite_s_findings_reads_in_chinese():
    # The tiny suite's page is checked end to end; the default suite has cases the tiny one lacks.
    findings = json.loads((Path(__file__).parents[2] / "docs" / "findings" / "default.json").read_text())
    zh = Catalogue("descentlab.lab", "zh")
    kept = " ".join(ZH.values())  # the notation the Chinese messages keep (lr x lambda)
    for text in _texts(findings):
        for run in re.findall(r"[A-Za-z][A-Za-z'-]*(?:[ ,]+[A-Za-z][A-Za-z'-]*){2,}", zh.translate(text)):
            assert run in kept, (text, run)


def test_the_markdown_of_a_findings_file_reads_in_both_languages():
    findings = json.loads((Path(__file__).parents[2] / "docs" / "findings" / "default.json").read_text())
    chinese = markdown(findings, "zh")
    assert "| 说法 | 子说法 | 结论 |" in chinese and "校准：" in chinese
    assert not re.search(r"\b(supported|contradicted|inconclusive|depends|yes|no)\b", chinese)
    assert markdown(findings).startswith("Suite `default`, started ")


def test_the_markdown_counts_each_sub_claim_s_cases_and_says_what_was_not_re_judged():
    findings = json.loads((Path(__file__).parents[2] / "docs" / "findings" / "default.json").read_text())
    rows = {
        line.split(" | ")[1]: line.split(" | ") for line in markdown(findings).splitlines() if "| C" in line
    }
    assert "pooled effect [95% CI]" in markdown(findings)
    for claim in findings["claims"]:
        for sub in claim["subclaims"]:
            verdicts = [c["verdict"] for c in sub["cases"]]
            agrees = sum(c["control"]["agrees"] for c in sub["cases"])
            cases = f"{verdicts.count('supported')} / {verdicts.count('contradicted')} / {agrees} of {len(verdicts)}"
            assert rows[sub["id"]][3] == cases, (sub["id"], rows[sub["id"]])
            if not sub["variants"]:
                assert rows[sub["id"]][-1].startswith("not re-judged"), rows[sub["id"]]


def test_report_markdown_prints_a_findings_file_s_tables_and_refuses_what_is_not_one(tmp_path, capsys):
    from descentlab.cli import main

    stored = Path(__file__).parents[2] / "docs" / "findings" / "default.json"
    data = json.loads(stored.read_text())
    for lang in ("en", "zh"):
        assert main(["report", "--markdown", str(stored), "--lang", lang]) == 0
        assert capsys.readouterr().out == markdown(data, lang)
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "other.json").write_text('{"a": 1}')
    (tmp_path / "cut.json").write_text(json.dumps({**data, "claims": [{"id": "C1"}]}))
    for args, message in (
        (
            ["--markdown", str(tmp_path / "none.json")],
            f"--markdown: cannot read {str(tmp_path / 'none.json')!r}",
        ),
        (["--markdown", str(tmp_path / "bad.json")], "is not JSON"),
        (
            ["--markdown", str(tmp_path / "other.json")],
            "is not a findings.json (written by descentlab compare)",
        ),
        (["--markdown", str(tmp_path / "cut.json")], "is not a findings.json: it lacks"),
        (["--markdown", str(stored), "--lang", "fr"], "fr"),
        ([str(tmp_path), "--markdown", str(stored)], "give DIR or --markdown FILE, not both"),
        ([], "give DIR (a descentlab compare output directory), or --markdown FILE"),
    ):
        assert main(["report", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
