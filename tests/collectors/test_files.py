"""File replay: weibo-crawler CSV/JSON → native-like statuses; JSONL passthrough."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from matrixwatch.collectors.files import ReplayError, file_items, rfc_time
from matrixwatch.streams.normalize import InvalidInput, normalize_line
from matrixwatch.streams.weibo_time import CST

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "collectors"
AS_OF = datetime(2026, 11, 22, 12, 0, tzinfo=CST)
CSV = FIX / "crawler" / "某某市发布" / "9000000001.csv"


def test_rfc_time() -> None:
    assert rfc_time("2026-11-21 10:00:00") == "Sat Nov 21 10:00:00 +0800 2026"
    assert rfc_time("2026-11-21 10:05") == "Sat Nov 21 10:05:00 +0800 2026"
    assert rfc_time("2026-11-21") == "Sat Nov 21 00:00:00 +0800 2026"
    with pytest.raises(ReplayError):
        rfc_time("昨天 10:00")


def test_weibo_crawler_csv() -> None:
    items = list(file_items(CSV))
    evs = [normalize_line(i.line, collected_at=AS_OF) for i in items]
    post, repost, deleted_root = evs
    assert post.kind == "post" and post.account_id == "9000000001"
    assert post.account_name == "某某市发布"  # from the weibo/<screen_name>/ folder
    assert post.text == "某某市今冬明春供暖保障工作安排 <a>不是标签</a>"  # plain text verbatim
    assert post.created_at == "2026-11-21T10:00:00+08:00"
    assert (post.attitudes_count, post.comments_count, post.reposts_count) == (12, 3, 1)
    assert post.url == "https://weibo.com/9000000001/O0000001a"
    assert repost.kind == "repost" and repost.root_id == "5000000000000005"
    assert repost.owner_id == "9000000000" and repost.root_account_id == "9000000000"
    assert repost.chain == ["某某省发布"] and repost.attitudes_count == 1_000_000
    assert deleted_root.kind == "repost" and deleted_root.owner_id == "9000000001"
    assert deleted_root.root_account_id is None
    assert items[1].key == b'"weibo:9000000000"' and items[0].key == b'"weibo:9000000001"'
    assert all(i.replay for i in items)


def test_user_id_needed_when_not_in_the_file_name(tmp_path: Path) -> None:
    p = tmp_path / "export.csv"
    shutil.copy(CSV, p)
    with pytest.raises(ReplayError, match="no user id"):
        list(file_items(p))
    assert len(list(file_items(p, user_id="9000000001"))) == 3


def test_weibo_crawler_json() -> None:
    items = list(file_items(FIX / "crawler_9000000001.json"))
    evs = [normalize_line(i.line, collected_at=AS_OF) for i in items]
    assert [e.kind for e in evs] == ["post", "repost"]
    assert evs[1].root_id == "5000000000000005" and evs[1].owner_id == "9000000000"
    assert evs[0].created_at == "2026-11-21T00:00:00+08:00"


def test_jsonl_lines_pass_through_unparsed(tmp_path: Path) -> None:
    st = json.loads((FIX / "openapi_user_timeline.json").read_text())["statuses"][0]
    p = tmp_path / "in.jsonl"
    p.write_bytes(json.dumps(st, ensure_ascii=False).encode() + b"\n\n{broken\n")
    items = list(file_items(p, as_of="2026-11-22T12:00:00+08:00"))
    assert len(items) == 2 and items[0].key == b"\"weibo:9000000001\"" and items[1].key is None
    assert items[1].line == b"{broken"  # the worker dead-letters it with the reason
    with pytest.raises(InvalidInput):
        normalize_line(items[1].line, collected_at=AS_OF)
    assert ("mw-as-of", b"2026-11-22T12:00:00+08:00") in items[0].headers()


def test_bad_rows_name_the_row(tmp_path: Path) -> None:
    p = tmp_path / "9000000001.csv"
    p.write_text("id,正文,日期\n50001,好,2026-11-21\nabc,坏,2026-11-21\n", encoding="utf-8")
    with pytest.raises(ReplayError, match=r"9000000001.csv:3: id is not numeric"):
        list(file_items(p))
    with pytest.raises(ReplayError, match="unknown file type"):
        list(file_items(tmp_path / "x.txt"))
