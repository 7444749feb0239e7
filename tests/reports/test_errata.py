"""错敏字 dictionary and matcher: positions, suggestions, context rules, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from matrixwatch.reports.errata import DEFAULT_DICT, ErrataChecker, ErrataError


@pytest.fixture(scope="module")
def chk() -> ErrataChecker:
    return ErrataChecker.load()


def test_shipped_dictionary_finds_each_category(chk: ErrataChecker) -> None:
    text = "会议要求再接再励，推进一带一路战略，原国家卫计委和安监局，关爱残废人。"
    hits = chk.scan(text)
    assert [(h.position, h.found, h.suggest, h.category) for h in hits] == [
        (4, "再接再励", "再接再厉", "wrong_char"),
        (11, "一带一路战略", "一带一路倡议", "formulation"),
        (19, "国家卫计委", "国家卫生健康委员会", "outdated"),  # longest match wins
        (25, "安监局", "应急管理局", "outdated"),
        (31, "残废人", "残疾人", "sensitive"),
    ]
    for h in hits:
        assert text[h.position:h.position + len(h.found)] == h.found
    assert hits[0].context == "会议要求再接再励，推进一带一路战略，"


def test_context_exclusions_avoid_false_hits(chk: ErrataChecker) -> None:
    assert chk.scan("应付市长途客运费用，文化部门，农业部门") == ()
    assert [h.found for h in chk.scan("付市长出席会议，原文化部发文")] == ["付市长", "文化部"]
    assert chk.scan("学习党的十八届三中全会精神") == ()


def test_latin_is_case_insensitive() -> None:
    chk = ErrataChecker.from_dict({"entries": [{"wrong": "WeiBo", "suggest": "微博"}]})
    assert [(h.position, h.found) for h in chk.scan("在weibo上")] == [(1, "weibo")]


def test_leaders_shorthand_and_local_overrides(tmp_path: Path) -> None:
    local = tmp_path / "local.yaml"
    local.write_text(
        "entries:\n  - {wrong: 帐号, suggest: 帐号（本地允许）, category: wrong_char}\n"
        "leaders:\n  - {name: 张三, title: 市长, wrong: [张叁市长, 张三副市长]}\n",
        encoding="utf-8")
    chk = ErrataChecker.load([local])
    hits = chk.scan("张三副市长调研，张叁市长讲话，注册帐号")
    assert [(h.found, h.suggest, h.category) for h in hits] == [
        ("张三副市长", "张三市长", "leader"), ("张叁市长", "张三市长", "leader"),
        ("帐号", "帐号（本地允许）", "wrong_char")]


def test_bad_entries_name_the_file_and_row(tmp_path: Path) -> None:
    with pytest.raises(ErrataError, match=r"entries\[0\]: category 'typo'"):
        ErrataChecker.from_dict({"entries": [{"wrong": "x", "category": "typo"}]})
    with pytest.raises(ErrataError, match=r"entries\[1\]: missing 'wrong'"):
        ErrataChecker.from_dict({"entries": [{"wrong": "x"}, {"suggest": "y"}]})
    assert DEFAULT_DICT.is_file()
    assert ErrataChecker.from_dict({}).scan("任何文本") == ()
