"""Packs on the internal hops: same partitions as per-event messages, order kept."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from kafka.partitioner import murmur2 as kafka_python_murmur2

from matrixwatch.streams import packs
from matrixwatch.streams.packs import Packer, partition_of
from matrixwatch.streams.records import Event
from tests.alerts.helpers import ev

T0 = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize("key", ["weibo:2418724427", "weibo:5012345678901234",
                                 "content:wechat:gh_1a2b", "微信:北京发布", "pack:0"])
@pytest.mark.parametrize("partitions", [1, 4, 7, 28])
def test_partition_of_matches_the_producers_partitioners(key: str, partitions: int) -> None:
    """Faust's producer (aiokafka) and the feeder (kafka-python) place a JSON key there."""
    all_partitions = list(range(partitions))
    raw = orjson.dumps(key)
    assert partition_of(key, partitions) == DefaultPartitioner()(
        raw, all_partitions, all_partitions)
    # kafka-python's DefaultPartitioner.partition, minus its cluster metadata
    assert partition_of(key, partitions) == (
        kafka_python_murmur2(raw) & 0x7FFFFFFF) % partitions


def test_a_pack_round_trips_its_events_in_order() -> None:
    events = [ev(i, T0, kind="repost", text=f"第{i}条 //@某人: 转发", root="9")
              for i in range(5)]
    events[1].chain = ["a", "b"]
    events[2].sentiment = 0.25
    decoded = packs.decode(packs.encode(events))
    assert decoded == events
    assert [e.id for e in decoded] == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize("raw", [b"{}", b"not json", b'[{"platform": "weibo"}]',
                                 b'[{"bogus": 1}]', b"[1]"])
def test_decode_refuses_what_is_not_a_pack(raw: bytes) -> None:
    with pytest.raises((ValueError, TypeError)):
        packs.decode(raw)


def test_packer_groups_by_destination_partition_and_empties() -> None:
    packer = Packer(4)
    keys = [f"weibo:{i}" for i in range(40)]
    for i, key in enumerate(keys):
        packer.add(key, ev(i, T0))
    assert len(packer) == 40
    got = dict(packer.packs())
    assert len(packer) == 0 and list(packer.packs()) == []
    for p, value in got.items():
        ids = [e.id for e in packs.decode(value)]
        want = [str(i) for i, key in enumerate(keys) if partition_of(key, 4) == p]
        assert ids == want  # every event where its key hashes, in the order added
    assert sum(len(packs.decode(v)) for v in got.values()) == 40


def test_an_event_routed_under_two_keys_travels_once_per_partition_it_needs() -> None:
    packer = Packer(4)
    e = ev(1, T0)
    a, b = "weibo:1", next(f"weibo:{i}" for i in range(2, 99)
                          if partition_of(f"weibo:{i}", 4) != partition_of("weibo:1", 4))
    packer.add(a, e)
    packer.add(b, e)
    assert sorted(p for p, _ in packer.packs()) == sorted(
        [partition_of(a, 4), partition_of(b, 4)])
    assert isinstance(e, Event)
