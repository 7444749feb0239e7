"""The ceiling: a bare Faust consume→produce agent, same broker, same batching.

Run as `python bench/bare_faust.py worker` with BARE_KAFKA_URL and BARE_PARTITIONS set.
The pipeline's patch of Faust's delivery loop (matrixwatch.streams.fastpath) is applied
here too, so the ratio between the two does not profit from it; BARE_STOCK=1 runs stock
Faust instead.

The pipeline's other consumer settings can be given to the ceiling too, to check that it
is not held back by defaults the pipeline does not use: BARE_FETCH_WAIT (seconds, the
pipeline's fetch_max_wait patch), BARE_BATCH (take() size), BARE_MAX_FETCH (bytes per
partition fetch), BARE_COMMIT_INTERVAL. On 300k lines of the 10k-account feed the ceiling
was the same with them as without (7,118-7,169 vs 7,138 events/s), so the defaults stay.

It runs on the pipeline's event loop (BARE_LOOP, default uvloop as MW_EVENT_LOOP) and
compresses what it produces with the pipeline's codec (BARE_COMPRESSION, as
MW_COMPRESSION), so that neither is what the ratio measures either.
"""

from __future__ import annotations

import os

import faust

from matrixwatch import eventloop
from matrixwatch.settings import Settings
from matrixwatch.streams.fastpath import patch_faust_drain

eventloop.install(os.environ.get("BARE_LOOP", "uvloop"))  # type: ignore[arg-type]

if os.environ.get("BARE_STOCK") != "1":
    patch_faust_drain()
if os.environ.get("BARE_FETCH_WAIT"):
    from matrixwatch.broker import patch_faust_fetch_wait

    patch_faust_fetch_wait(float(os.environ["BARE_FETCH_WAIT"]))

app = faust.App(
    os.environ.get("BARE_APP_ID", "bare-bench"),
    broker=os.environ["BARE_KAFKA_URL"],
    store="memory://",
    topic_partitions=int(os.environ.get("BARE_PARTITIONS", "4")),
    broker_rebalance_timeout=3,
    broker_session_timeout=6,
    broker_heartbeat_interval=1,
    broker_commit_interval=float(os.environ.get("BARE_COMMIT_INTERVAL", "1")),
    consumer_max_fetch_size=int(os.environ.get("BARE_MAX_FETCH", str(1024 * 1024))),
    producer_linger=float(os.environ.get("BARE_LINGER", "0.01")),  # same as the pipeline
    producer_max_batch_size=256 * 1024,
    # The pipeline's codec (MW_COMPRESSION): compressed batches also cost the broker less.
    producer_compression_type=Settings(  # type: ignore[call-arg]
        _env_file=None, compression=os.environ.get("BARE_COMPRESSION", "none"),
    ).compression_type,
    consumer_auto_offset_reset="earliest",
    web_enabled=False,
    datadir=os.environ.get("BARE_DATADIR", "/tmp/bare-faust-data"),
)
src = app.topic("bare-src", key_type=bytes, value_type=bytes, key_serializer="raw",
                value_serializer="raw")
dst = app.topic("bare-dst", key_type=bytes, value_type=bytes, key_serializer="raw",
                value_serializer="raw")


@app.agent(src)
async def forward(stream: faust.StreamT[bytes]) -> None:
    async for items in stream.take(int(os.environ.get("BARE_BATCH", "256")), within=0.2):
        for value in items:
            await dst.send(value=value)


if __name__ == "__main__":
    app.main()
