"""Rule files: the packaged defaults, and errors that name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from matrixwatch.alerts.rules import (
    RuleError,
    find_rule,
    load_rule_file,
    load_rules,
    parse_duration,
)
from tests.alerts.helpers import rule


def test_packaged_rules() -> None:
    rules = {r.name: r for r in load_rules()}
    assert set(rules) == {"volume_spike", "post_spike", "negative_surge", "keyword_watchlist",
                          "stale_account", "unanswered", "linkage_lagging", "linkage_low",
                          "collector_health"}
    assert rules["volume_spike"].type == "spike" and rules["volume_spike"].severity is None
    assert rules["volume_spike"].params.detector.min_count == 10
    assert rules["post_spike"].params.per == "post"
    assert rules["post_spike"].params.detector.warmup == 3600
    assert rules["linkage_low"].type == "linkage_low"
    assert rules["linkage_low"].params.threshold == 0.6
    assert rules["linkage_lagging"].params.checkpoints == (0.25, 0.5)
    assert rules["linkage_lagging"].params.threshold == 0.5
    assert rules["stale_account"].params.after == 14 * 86400
    assert rules["unanswered"].params.after == 24 * 3600
    q = rules["volume_spike"].quiet_hours[0]
    assert (q.start, q.end, q.min_severity) == (23 * 60, 7 * 60, "orange")
    assert all(r.file.endswith(f"{r.name}.yaml") for r in rules.values())


def test_durations() -> None:
    assert parse_duration("90s") == 90
    assert parse_duration("1h30m") == 5400
    assert parse_duration("14d") == 14 * 86400
    assert parse_duration(300) == 300
    for bad in ("", "5x", "h", "-5m", True, None, "5m x"):
        assert parse_duration(bad) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("type: spkie\n", "t.yaml:1: type: expected one of spike"),
    ("type: spike\nseverity: purple\n", "t.yaml:2: severity: expected 蓝/黄/橙/红"),
    ("type: keyword\nseverity: auto\nparams: {lists: [{name: a, words: [b]}]}\n",
     "t.yaml:2: severity: auto is only for spike, negative_surge"),
    ("type: spike\nparams:\n  bucket: 5m\n  min_cout: 3\n",
     "t.yaml:4: params.min_cout: unknown key (did you mean 'min_count'?)"),
    ("type: spike\nfilter:\n  levels: [city, town]\n",
     "t.yaml:3: filter.levels[1]: 'town' is not one of national"),
    ("type: spike\nrealert: soon\n", "t.yaml:2: realert: expected a duration"),
    ("type: spike\nquiet_hours: {start: '25:00', end: '07:00'}\n",
     "t.yaml:2: quiet_hours.start: expected a time HH:MM"),
    ("type: spike\nquiet_hours: {start: '23:00'}\n", "t.yaml:2: quiet_hours: missing end"),
    ("type: negative_surge\nfilter:\n  sentiment: [negative]\n",
     "t.yaml:3: filter.sentiment: negative_surge counts every sentiment"),
    ("type: spike\ntype: keyword\n", "t.yaml:2: type: duplicate key"),
    ("type: spike\nparams: [1, 2\n", "t.yaml:3: (document): invalid YAML"),
    ("type: keyword\n", "t.yaml:1: params: keyword rules need params.lists"),
    ("type: keyword\nparams:\n  lists:\n    - {name: a, words: []}\n",
     "t.yaml:4: params.lists[0].words: must not be empty"),
    ("type: linkage_lagging\nparams: {checkpoints: [0.25, 1.0]}\n",
     "t.yaml:2: params.checkpoints[1]: a checkpoint must be before the deadline"),
    ("type: spike\nrouting:\n  - {levels: [county]}\n",
     "t.yaml:3: routing[0].channels: must not be empty"),
    ("type: spike\nthresholds: [1, 2]\n", "t.yaml:2: thresholds: unknown key"),
    ("type: spike\nparams: {thresholds: [5, 4, 20, 40]}\n",
     "t.yaml:2: params.thresholds: thresholds must increase"),
    ("- a\n- b\n", "t.yaml:1: (document): a rule file must hold one mapping"),
    ("type: stale_account\nparams: {days: 10, after: 5d}\n",
     "t.yaml:2: params.days: give either days or after"),
])
def test_errors_name_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(RuleError) as e:
        rule(text)
    assert str(e.value).startswith(expected), str(e.value)


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    f = tmp_path / "evil.yaml"
    f.write_text('type: !!python/object/apply:os.system ["echo pwned"]\n', encoding="utf-8")
    with pytest.raises(RuleError, match=r"evil.yaml:1: .*invalid YAML"):
        load_rule_file(f)


def test_unquoted_clock_times_and_chinese_severity() -> None:
    r = rule("type: keyword\nseverity: 橙色\nparams: {lists: [{name: a, words: [b], "
             "severity: 红}]}\nquiet_hours:\n  - {start: 23:00, end: 7:00, "
             "min_severity: 红, days: [fri, sat]}\n")
    q = r.quiet_hours[0]
    assert (q.start, q.end, q.min_severity, q.days) == (1380, 420, "red", (4, 5))
    assert r.severity == "orange" and r.params.lists[0].severity == "red"


def test_stale_days_and_unanswered_hours() -> None:
    assert rule("type: stale_account\nparams: {days: 10}\n").params.after == 864000
    assert rule("type: unanswered\nparams: {hours: 12}\n").params.after == 43200
    r = rule("type: unanswered\nparams: {after: 2h, markers: [咨询]}\n")
    assert r.params.markers == ("咨询",)


def test_directory_loading(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("type: spike\n", encoding="utf-8")
    (tmp_path / "b.yml").write_text("name: x\ntype: keyword\nparams: {lists: [{name: l, "
                                    "words: [w]}]}\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("ignored", encoding="utf-8")
    assert [r.name for r in load_rules(tmp_path)] == ["a", "x"]
    assert find_rule("x", tmp_path).type == "keyword"
    assert find_rule(str(tmp_path / "a.yaml")).name == "a"
    with pytest.raises(RuleError, match="did you mean 'a'"):
        find_rule("aa", tmp_path)
    (tmp_path / "c.yaml").write_text("name: x\ntype: spike\n", encoding="utf-8")
    with pytest.raises(RuleError, match=r"c.yaml:1: name: duplicate rule name 'x'"):
        load_rules(tmp_path)
    with pytest.raises(RuleError, match="not a directory"):
        load_rules(tmp_path / "missing")
