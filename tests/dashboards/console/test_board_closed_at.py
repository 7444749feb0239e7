"""The console's matrix views decide 'active' as the registry does: a closed_at before the
console's reference time wins over ``active: true`` (the row was never switched off)."""

from __future__ import annotations

from datetime import timedelta

import yaml

from matrixwatch.dashboards.console import board
from matrixwatch.dashboards.console.service import Console
from matrixwatch.registry import Registry
from tests.factories import REGISTRY_YAML, T0

PROV, C, A2 = "9100000001", "9100000013", "9100000112"
CLOSED = (T0 + timedelta(hours=1)).isoformat()  # before the event clock's T0+5h


def closed_yaml(*ids: str) -> str:
    """The test matrix with ``ids`` left at active: true but closed at T0+1h."""
    data = yaml.safe_load(REGISTRY_YAML)
    for row in data["accounts"]:
        if row["id"] in ids:
            assert row["active"] is True
            row["closed_at"] = CLOSED
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def closed_reg(*ids: str) -> Registry:
    return Registry.from_text(closed_yaml(*ids))


def test_stale_accounts_skip_an_account_closed_before_ref() -> None:
    ref = (T0 + timedelta(hours=5)).timestamp()
    plain = {d["id"] for d in board.stale_accounts(Registry.from_text(REGISTRY_YAML), {}, ref)}
    assert A2 in plain and C in plain
    stale = {d["id"] for d in board.stale_accounts(closed_reg(A2), {}, ref)}
    assert stale == plain - {A2}
    # Before its closed_at it was still due to post.
    early = (T0 + timedelta(minutes=30)).timestamp()
    assert A2 in {d["id"] for d in board.stale_accounts(closed_reg(A2), {}, early)}


def test_subordinate_rates_leave_out_a_subordinate_closed_before_ref() -> None:
    ref = (T0 + timedelta(hours=5)).timestamp()
    rows = board.subordinate_rates(closed_reg(C), "weibo", PROV, [], [], at=ref)
    assert [r["id"] for r in rows] == ["9100000011", "9100000012"]
    early = (T0 + timedelta(minutes=30)).timestamp()
    rows = board.subordinate_rates(closed_reg(C), "weibo", PROV, [], [], at=early)
    assert [r["id"] for r in rows] == ["9100000011", "9100000012", C]
    # Without a closed_at nothing changes: 丁 (active: false) stays out either way.
    plain = board.subordinate_rates(Registry.from_text(REGISTRY_YAML), "weibo", PROV, [], [],
                                    at=ref)
    assert [r["id"] for r in plain] == ["9100000011", "9100000012", C]


def test_console_views_use_the_event_clock(console: Console) -> None:
    console.registry = closed_reg(C)
    ref = console.ref_time()  # the latest event, about T0+5h: after C's closed_at
    assert console.cs.clock == "event"
    assert (T0 + timedelta(hours=1)).timestamp() < ref < (T0 + timedelta(hours=6)).timestamp()
    active = {a["id"]: a["active"] for a in console.meta()["accounts"]}
    assert active[C] is False and active["9100000012"] is True
    assert active["9100000014"] is False  # active: false, no closed_at: as before
    rows = console.linkage_rates(superior=PROV, platform="weibo", days=7)["rows"]
    assert C not in {r["id"] for r in rows}
    assert C not in {d["id"] for d in console.board()["stale"]}


def test_validate_registry_counts_active_at_its_time() -> None:
    text = closed_yaml(C)
    _, plain = Console.validate_registry(REGISTRY_YAML)
    assert plain["active"] == 6
    _, now = Console.validate_registry(text)  # default: now, long after T0+1h
    assert now["ok"] and now["active"] == 5
    _, before = Console.validate_registry(text, at=T0.timestamp())
    assert before["active"] == 6
