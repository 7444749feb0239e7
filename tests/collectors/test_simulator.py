"""The simulator is the ground truth for benchmarks and end-to-end tests, so its output
must look like Weibo's native objects and agree with what it claims in ``truth``."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
import yaml

from matrixwatch.collectors.simulator import (
    TZ,
    JsonlEncoder,
    Matrix,
    Simulator,
    build_matrix,
    weibo_time,
    write_jsonl,
    write_registry,
)

WEIBO_FMT = "%a %b %d %H:%M:%S %z %Y"
START = datetime(2026, 11, 21, 0, 0, tzinfo=TZ)
N = 30_000


def parse(s: str) -> datetime:
    return datetime.strptime(s, WEIBO_FMT)


def dumps(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return build_matrix()


@pytest.fixture(scope="module")
def run(matrix: Matrix) -> tuple[Simulator, list[dict]]:
    sim = Simulator(matrix, seed=11, start=START)
    return sim, list(sim.events(N))


# --- registry ------------------------------------------------------------------------


def test_registry_is_valid(matrix: Matrix) -> None:
    accs = matrix.accounts
    ids = [a["id"] for a in accs]
    assert len(ids) == len(set(ids))
    assert len({a["name"] for a in accs}) == len(accs)
    assert 150 <= len(accs) <= 600
    by_id = {a["id"]: a for a in accs}
    allowed_parent = {
        "province": {None},
        "city": {"province"},
        "county": {"city"},
        "department": {"province", "city", "county"},
    }
    for a in accs:
        assert set(a) == {"id", "platform", "name", "unit", "level", "parent", "active",
                          "synthetic"}
        assert a["platform"] == "weibo" and a["synthetic"] is True
        assert isinstance(a["id"], str) and len(a["id"]) == 10 and a["id"].startswith("9")
        parent = a["parent"]
        assert parent is None or parent in by_id
        plevel = by_id[parent]["level"] if parent else None
        assert plevel in allowed_parent[a["level"]], (a, plevel)
        seen = {a["id"]}  # no cycles
        while parent is not None:
            assert parent not in seen
            seen.add(parent)
            parent = by_id[parent]["parent"]
    levels = Counter(a["level"] for a in accs)
    assert levels["province"] == 1 and levels["city"] == 11 and levels["county"] == 88
    assert any(not a["active"] for a in accs)
    assert by_id[ids[0]]["name"] == "浙江发布"
    names = {a["name"] for a in accs}
    assert {"杭州发布", "西湖发布", "杭州交警"} <= names
    assert "平安杭州" in names or "杭州公安" in names


def test_units_cover_accounts_and_some_have_none(matrix: Matrix) -> None:
    unit_names = [u["name"] for u in matrix.units]
    assert len(unit_names) == len(set(unit_names))
    account_units = {a["unit"] for a in matrix.accounts}
    assert account_units <= set(unit_names)
    without = [u for u in matrix.units if u["name"] not in account_units]
    assert len(without) >= 3  # so 覆盖度 < 1
    for u in matrix.units:
        assert u["parent_unit"] is None or u["parent_unit"] in set(unit_names)


def test_yaml_round_trip_and_helpers(matrix: Matrix, tmp_path: Path) -> None:
    path = tmp_path / "matrix.yaml"
    write_registry(path, matrix)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert set(doc) == {"accounts", "units"}
    assert all(isinstance(a["id"], str) for a in doc["accounts"])
    assert doc["accounts"] == matrix.accounts
    again = Matrix.from_yaml(path.read_text(encoding="utf-8"))
    assert again.accounts == matrix.accounts
    quoted = Matrix.from_yaml("accounts:\n  - {id: '1', active: 'false', synthetic: 'yes'}\n")
    assert quoted.accounts[0]["active"] is False  # bool("false") was True
    assert quoted.accounts[0]["synthetic"] is True

    prov = matrix.accounts[0]
    assert matrix.superior_of(prov["id"]) is None
    subs = matrix.subordinates(prov["id"])
    assert {s["level"] for s in subs} == {"city", "department"}
    city = next(s for s in subs if s["level"] == "city")
    assert matrix.superior_of(city["id"]) == prov
    closed = next(a for a in matrix.accounts if not a["active"])
    siblings_all = matrix.subordinates(closed["parent"], active_only=False)
    assert closed in siblings_all
    assert closed not in matrix.subordinates(closed["parent"])


def test_build_matrix_is_deterministic_and_scales() -> None:
    assert build_matrix(seed=3).to_yaml() == build_matrix(seed=3).to_yaml()
    assert build_matrix(seed=3).to_yaml() != build_matrix(seed=4).to_yaml()
    big = build_matrix(cities=14, counties_per_city=12, departments_per_city=6)
    assert Counter(a["level"] for a in big.accounts)["county"] == 14 * 12
    assert len({a["name"] for a in big.accounts}) == len(big.accounts)


def test_a_10k_account_matrix_outgrows_two_character_place_names() -> None:
    """5,500 invented counties exceed the ~900 two-character names (this used to hang)."""
    huge = build_matrix(cities=110, counties_per_city=50, departments_per_city=5)
    assert len(huge.accounts) > 10_000
    assert Counter(a["level"] for a in huge.accounts)["county"] == 110 * 50
    assert len({a["name"] for a in huge.accounts}) == len(huge.accounts)


# --- the feed --------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes(matrix: Matrix) -> None:
    a = [dumps(o) for o in Simulator(matrix, seed=5, start=START).events(3000)]
    b = [dumps(o) for o in Simulator(matrix, seed=5, start=START).events(3000)]
    c = [dumps(o) for o in Simulator(matrix, seed=6, start=START).events(3000)]
    assert a == b
    assert a != c


def test_write_jsonl_is_byte_identical(matrix: Matrix, tmp_path: Path) -> None:
    p1, p2 = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert write_jsonl(p1, matrix, 2000, seed=9, start=START) == 2000
    write_jsonl(p2, matrix, 2000, seed=9, start=START)
    assert p1.read_bytes() == p2.read_bytes()
    lines = p1.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2000
    assert [json.loads(x) for x in lines[:50]] == list(
        Simulator(matrix, seed=9, start=START).events(50))


def test_fast_encoder_matches_json_dumps(run: tuple[Simulator, list[dict]]) -> None:
    enc = JsonlEncoder(max_cache=100)
    for obj in run[1][:5000]:
        assert enc.encode(obj) == dumps(obj)


def test_native_shapes(run: tuple[Simulator, list[dict]], matrix: Matrix) -> None:
    sim, events = run
    kinds = Counter()
    for o in events:
        assert isinstance(o["id"], int) and o["idstr"] == str(o["id"])
        created = parse(o["created_at"])
        assert created.utcoffset() == timedelta(hours=8)
        assert "id" in o["user"] and "screen_name" in o["user"]
        if "status" in o:
            kinds["comment"] += 1
            assert "id" in o["status"] and "user" in o["status"]
            assert parse(o["status"]["created_at"]) <= created
        elif "retweeted_status" in o:
            kinds["repost"] += 1
        else:
            kinds["post"] += 1
            assert o["user"]["idstr"] in matrix.by_id
            assert o["user"]["verified"] is True and o["user"]["verified_type"] == 1
    assert kinds["post"] > 500 and kinds["repost"] > 500 and kinds["comment"] > 5000
    assert kinds == sim.truth.counts
    texts = " ".join(o["text"] for o in events if "status" not in o)
    assert "<a href='/n/" in texts and 'class="surl-text">#' in texts
    assert '<span class="url-icon"><img alt=[' in texts


def test_event_time_order_is_approximate(run: tuple[Simulator, list[dict]]) -> None:
    times = [parse(o["created_at"]) for o in run[1]]
    late = sum(1 for a, b in pairwise(times) if b < a)
    assert late < 0.02 * len(times)
    worst = max((a - b).total_seconds() for a, b in pairwise(times))
    assert worst <= 600


def test_reposts_point_at_the_superior_chain(run: tuple[Simulator, list[dict]],
                                             matrix: Matrix) -> None:
    _, events = run
    by_id = {o["idstr"]: o for o in events}
    reposts = [o for o in events if "retweeted_status" in o]
    with_pid = 0
    per_account_root: Counter[tuple[str, str]] = Counter()
    latencies = []
    for r in reposts:
        root = r["retweeted_status"]
        author = r["user"]["idstr"]
        assert "retweeted_status" not in root  # always the root original
        assert root["user"]["idstr"] in matrix.ancestors(author)
        if matrix.by_id[author]["parent"] == root["user"]["idstr"]:
            latencies.append((parse(r["created_at"]) - parse(root["created_at"])).total_seconds())
        per_account_root[(author, root["idstr"])] += 1
        if "pid" in r:
            with_pid += 1
            parent = by_id.get(str(r["pid"]))
            if parent is not None:
                assert parent["retweeted_status"]["idstr"] == root["idstr"]
                assert parse(parent["created_at"]) <= parse(r["created_at"])
                name = parent["user"]["screen_name"]
                assert f"//<a href='/n/{name}'>@{name}</a>:" in r["text"]
    assert with_pid > 20
    assert any(v > 1 for v in per_account_root.values())  # duplicate reposts happen
    latencies.sort()
    median_h = latencies[len(latencies) // 2] / 3600
    assert 0.8 < median_h < 4.0
    assert any(x > 86400 for x in latencies)  # some arrive after the deadline


def test_inactive_accounts_never_post(run: tuple[Simulator, list[dict]],
                                      matrix: Matrix) -> None:
    closed = {a["id"] for a in matrix.accounts if not a["active"]}
    dormant = {k for k, v in run[0].truth.roles.items() if v == "dormant"}
    authors = {o["user"]["idstr"] for o in run[1]}
    assert closed and not closed & authors
    assert not dormant & authors


def test_truth_matches_the_stream(run: tuple[Simulator, list[dict]], matrix: Matrix) -> None:
    sim, events = run
    seen: dict[str, dict[str, list[float]]] = {}
    for o in events:
        if "retweeted_status" in o:
            root = o["retweeted_status"]
            t = parse(o["created_at"]).timestamp() - parse(root["created_at"]).timestamp()
            seen.setdefault(root["idstr"], {}).setdefault(o["user"]["idstr"], []).append(t)
    posts = sim.truth.posts
    assert len(posts) > 100
    rates = []
    for pid, pt in posts.items():
        expected = {a["id"] for a in matrix.subordinates(pt.account_id)}
        assert set(pt.expected) == expected
        linked = pt.linked()
        want = {acc: min(ts) for acc, ts in seen.get(pid, {}).items()
                if acc in expected and min(ts) <= 86400}
        assert linked == pytest.approx(want)
        rates.append(pt.rate())
    mean = sum(rates) / len(rates)
    assert 0.3 < mean < 0.95
    roles = Counter(sim.truth.roles.values())
    assert roles["laggard"] and roles["never"] and roles["dormant"]


def test_questions_some_answered(run: tuple[Simulator, list[dict]]) -> None:
    sim, events = run
    qs = sim.truth.questions
    assert qs
    answered = [q for q in qs.values() if q.answered_ts is not None]
    assert 0 < len(answered) < len(qs)
    replies = [o for o in events if "reply_comment" in o]
    assert replies
    for r in replies[:50]:
        assert r["reply_comment"]["idstr"] in qs
        assert r["user"]["idstr"] == qs[r["reply_comment"]["idstr"]].account_id
        assert r["text"].startswith("回复<a href='/n/")
    assert all("请问" in o["text"] for o in events
               if "status" in o and o["idstr"] in qs)


def test_forced_surge_produces_a_negative_burst(matrix: Matrix) -> None:
    county = next(a for a in matrix.accounts if a["level"] == "county" and a["active"])
    when = START + timedelta(hours=10)
    sim = Simulator(matrix, seed=2, start=START, surges=[(county["id"], when)],
                    surges_per_day=0.0, late_share=0.0)
    events = list(sim.events(until=START + timedelta(hours=14)))
    assert len(sim.truth.surges) == 1
    surge = sim.truth.surges[0]
    assert surge.account_id == county["id"] and surge.end - surge.start <= timedelta(minutes=31)
    post = next(o for o in events if o["idstr"] == surge.post_id)
    assert post["user"]["idstr"] == county["id"] and parse(post["created_at"]) == when
    burst = [o for o in events if "status" in o and o["status"]["idstr"] == surge.post_id
             and surge.start <= parse(o["created_at"]) <= surge.end]
    assert len(burst) >= surge.comments >= 40
    # Baseline: comments on any other single post in a 30-minute window are far fewer.
    others = Counter(o["status"]["idstr"] for o in events
                     if "status" in o and o["status"]["idstr"] != surge.post_id)
    assert max(others.values(), default=0) < len(burst) / 2
    negative_words = ("怒", "泪", "不", "没", "？", "！", "太", "谁")
    share = sum(any(w in o["text"] for w in negative_words) for o in burst) / len(burst)
    assert share > 0.7


def test_random_surges_happen(run: tuple[Simulator, list[dict]], matrix: Matrix) -> None:
    sim = run[0]
    assert sim.truth.surges
    for s in sim.truth.surges:
        assert matrix.by_id[s.account_id]["level"] == "county"
        assert 7 <= s.start.hour < 22  # random surges are moved out of the night


def test_until_and_resume(matrix: Matrix) -> None:
    sim = Simulator(matrix, seed=4, start=START, late_share=0.0)
    cut = START + timedelta(hours=12)
    first = list(sim.events(until=cut))
    assert first and all(parse(o["created_at"]) <= cut for o in first)
    rest = list(sim.events(200))
    assert len(rest) == 200 and all(parse(o["created_at"]) >= cut for o in rest)
    whole = list(Simulator(matrix, seed=4, start=START, late_share=0.0).events(len(first) + 200))
    assert [dumps(o) for o in first + rest] == [dumps(o) for o in whole]


def test_scaled_activity_posts_several_a_second_at_a_proportional_rate(
        matrix: Matrix) -> None:
    """Load tests scale activity until posts come faster than one a second; the posting
    clock must then keep its fraction, not collapse every post into one second."""
    window = timedelta(minutes=2)

    def posts(activity: float) -> list[datetime]:
        sim = Simulator(matrix, seed=5, start=START + timedelta(hours=10), activity=activity)
        return [parse(o["created_at"]) for o in sim.events(until=START + timedelta(hours=10)
                                                            + window)
                if "status" not in o and "retweeted_status" not in o]

    low, high = posts(2_000), posts(8_000)
    per_second = Counter(high)
    assert max(per_second.values()) >= 3  # several posts share a second
    assert len(per_second) >= 100  # and they spread over the window, not one instant
    assert 3.0 < len(high) / len(low) < 5.0  # 4x the activity, about 4x the posts


def test_weibo_time_round_trips() -> None:
    for ts in (0, 1_795_226_400, 1_700_000_000, 1_800_000_123):
        assert parse(weibo_time(ts)).timestamp() == ts
    assert weibo_time(1_795_226_400) == "Sat Nov 21 10:00:00 +0800 2026"


def test_rejects_naive_start_and_closed_surge(matrix: Matrix) -> None:
    with pytest.raises(ValueError):
        Simulator(matrix, start=datetime(2026, 1, 1))
    closed = next(a for a in matrix.accounts if not a["active"])
    with pytest.raises(ValueError):
        Simulator(matrix, surges=[(closed["id"], START)])
