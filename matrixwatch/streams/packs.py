"""Packs: the events of one batch bound for one partition, in one Kafka message.

The internal hops (mw-linkage, mw-activity) carry events between the worker's own
agents. One message per event cost Faust's full per-message overhead twice, to send and
to receive (about 0.45 message pairs per input event on the 10k-account load run), for
events that are produced and consumed in batches anyway. A pack keeps what matters of
per-event messages: each event goes to the partition its key hashes to (so tables keyed
the same way stay co-partitioned) and events keep their order within a partition.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import lru_cache

import orjson
from aiokafka.partitioner import murmur2

from matrixwatch.streams.records import Event


@lru_cache(maxsize=1 << 16)
def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` as Faust serializes
    table and topic keys (JSON): murmur2 of the key bytes, as the Java client does.
    Cached: aiokafka's murmur2 is pure Python (about 8 µs a key), and the same owner and
    task keys recur in every batch and every write-behind flush."""
    return (murmur2(orjson.dumps(key)) & 0x7FFFFFFF) % partitions


def encode(events: Iterable[Event]) -> bytes:
    """Events → one message value; fields left at None are not written."""
    return orjson.dumps([{k: v for k, v in e.asdict().items() if v is not None}
                         for e in events])


def decode(raw: bytes) -> list[Event]:
    """A message value → its events. Raises ValueError (or TypeError) if it is not a pack."""
    items = orjson.loads(raw)
    if not isinstance(items, list):
        raise ValueError(f"not a pack: {type(items).__name__}")
    return [Event.trusted(**item) for item in items]


class Packer:
    """Collects (key, event) pairs of a batch into one pack per destination partition."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._by_partition: dict[int, list[Event]] = {}

    def add(self, key: str, event: Event) -> None:
        self._by_partition.setdefault(partition_of(key, self.partitions), []).append(event)

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_partition.values())

    def packs(self) -> Iterator[tuple[int, bytes]]:
        """(partition, value) per partition with events, and empty the packer."""
        by_partition, self._by_partition = self._by_partition, {}
        for partition in sorted(by_partition):
            yield partition, encode(by_partition[partition])
