"""The feeder: a record the broker never acknowledged must not vanish silently."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from matrixwatch.pipeline import Feeder, SendFailed
from matrixwatch.settings import Settings


class _Future:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error

    def add_callback(self, fn: Callable[[Any], None]) -> _Future:
        if self.error is None:
            fn(object())
        return self

    def add_errback(self, fn: Callable[[BaseException], None]) -> _Future:
        if self.error is not None:
            fn(self.error)
        return self


class _Producer:
    """Fails every ``fail_every``-th send, as a broker timing out a batch would."""

    def __init__(self, fail_every: int = 0) -> None:
        self.fail_every = fail_every
        self.sends = 0
        self.flushed = 0

    def send(self, topic: str, **_: Any) -> _Future:
        self.sends += 1
        if self.fail_every and self.sends % self.fail_every == 0:
            return _Future(TimeoutError("Batch for raw-0 expired after 120000 ms"))
        return _Future(None)

    def flush(self) -> None:
        self.flushed += 1


def test_flush_raises_with_the_count_when_the_broker_lost_records() -> None:
    feeder = Feeder(Settings(partitions=2), "kafka://127.0.0.1:9", producer=_Producer(3))
    for i in range(10):
        feeder.send_raw(b'{"id": %d}' % i)
    with pytest.raises(SendFailed, match=r"3 of 10 records .*TimeoutError"):
        feeder.flush()
    assert (feeder.sent, feeder.acked, feeder.failed) == (10, 7, 3)


def test_flush_is_quiet_when_every_record_was_acknowledged() -> None:
    producer = _Producer()
    feeder = Feeder(Settings(partitions=2), "kafka://127.0.0.1:9", producer=producer)
    feeder.send_raw(b'{"id": 1}')
    feeder.punctuate("2026-11-22T10:00:00+08:00")  # 2 topics x 2 partitions, then flush
    feeder.flush()
    assert (feeder.sent, feeder.acked, feeder.failed) == (5, 5, 0)
    assert producer.flushed == 2


def test_a_slow_broker_is_waited_for_not_buffered_without_end() -> None:
    class Slow(_Producer):
        """Acknowledges only on flush, as a broker far behind the producer would."""

        def __init__(self) -> None:
            super().__init__()
            self.pending: list[Callable[[Any], None]] = []
            self.peak = 0

        def send(self, topic: str, **_: Any) -> Any:
            outer = self

            class Later:
                def add_callback(self, fn: Callable[[Any], None]) -> Later:
                    outer.pending.append(fn)
                    outer.peak = max(outer.peak, len(outer.pending))
                    return self

                def add_errback(self, fn: Callable[[BaseException], None]) -> Later:
                    return self

            return Later()

        def flush(self) -> None:
            super().flush()
            while self.pending:
                self.pending.pop()(object())

    producer = Slow()
    feeder = Feeder(Settings(), "kafka://127.0.0.1:9", producer=producer)
    feeder.max_in_flight = 100
    for i in range(1000):
        feeder.send_raw(b'{"id": %d}' % i)
    feeder.flush()
    assert producer.peak == 100 and feeder.acked == 1000
