"""The one settings object. Every knob is documented here, and each can be set by
environment variable ``MW_<NAME>`` (for example ``MW_KAFKA_URL``) or in a ``.env`` file.

Secrets (tokens, passwords, webhook secrets) are read from the environment or from
``*_FILE`` paths only, and are typed ``SecretStr`` so they never print.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from matrixwatch.eventloop import EventLoop

Interval = Annotated[float, Field(gt=0, allow_inf_nan=False)]
"""Seconds that must be positive and finite: timers, timeouts, waits (nan or inf would
stall or spin them)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MW_", env_file=".env", extra="ignore")

    # --- broker -------------------------------------------------------------------
    kafka_url: str | None = Field(
        None,
        description="Kafka bootstrap URL (kafka://host:9092). Unset: start the embedded "
        "Tansu broker on a free loopback port and stop it on exit.",
    )
    embedded_broker_max_mb: float | None = Field(
        None, ge=0,
        description="`matrixwatch run` pauses its simulated feed once the embedded broker's "
        "resident memory reaches this many MB. Tansu keeps every record in memory and "
        "cannot trim them (README): measured 0.18 MB/s at run's default 50 events/s with "
        "zstd (0.36 uncompressed), ~15 GB a day, so an unattended run would exhaust the "
        "machine. Unset: a quarter of "
        "physical memory; 0: no limit.",
    )
    app_id: str = Field("matrixwatch", description="Faust app id; prefixes group and topics.")
    topic_prefix: str = Field("mw", description="Prefix of the project's topics.")
    partitions: int = Field(
        4, ge=1, le=1024, description="Partitions of every topic (parallelism). Every "
        "worker handles each partition of every topic: at 100,000 a replay had not started "
        "after a minute.")
    broker_rebalance_timeout: Interval = Field(
        3.0, description="Seconds; short so a worker on Tansu is ready in ~5 s, not 30 s. "
        "Kafka evicts a member that has not rejoined a rebalance by then, such as one "
        "whose batch waits out a store outage; it then neither flushes its changelogs "
        "nor commits until it rejoins (writebehind.fenced). docker-compose sets 60.",
    )
    broker_session_timeout: Interval = Field(6.0, description="Consumer session timeout, seconds.")
    broker_heartbeat_interval: Interval = Field(1.0, description="Heartbeat interval, seconds.")
    broker_commit_interval: Interval = Field(
        5.0,
        description="Offset commit interval, seconds. Each commit also writes one changelog "
        "record per state key changed since the last (writebehind.py), so a longer interval "
        "writes fewer: on the 1M-event, 10k-account load run 5 s instead of 1 s cut owner "
        "state records from 0.61 to 0.42-0.44 per event and broker CPU from 80 to 67-82 "
        "s; throughput was 3,198 (1 s) vs 3,377 and 3,136 (5 s) events/s in three runs, "
        "within run-to-run spread. After a crash up to this much input is processed again "
        "(idempotently). "
        "Faust's default is 2.8, Kafka Streams' 30.",
    )
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "zstd",
        description="Compression of every record batch matrixwatch produces (workers, feeder, "
        "collectors). Kafka and Tansu keep batches as sent, so it shrinks the broker's "
        "memory and work as well as the wire: 100k simulated Weibo lines (214 MB) took "
        "226 MB of Tansu's memory and 1.3 s of its CPU uncompressed, 42 MB and 0.2 s with "
        "zstd, and the clients' CPU fell too (1.93 to 1.55 s, fewer bytes through the "
        "socket). lz4 kept 56 MB and doubled the producing client's CPU.",
    )
    producer_linger: float = Field(
        0.01, ge=0, le=10,
        description="Seconds the producer waits to batch messages into one request."
    )
    fetch_max_wait: float = Field(
        0.05, gt=0, le=1.5,
        description="Longest a consumer fetch waits for data, seconds (Faust hard-codes "
        "1.5). Tansu holds a fetch to its max wait even when records are there: each hop "
        "cost 0.38 s median with 1.5 and 0.02 s with 0.1. Kafka answers at once either "
        "way; a short wait only means more empty fetches on an idle topic.",
    )

    # --- worker ---------------------------------------------------------------------
    event_loop: EventLoop = Field(
        "uvloop", description="The workers' asyncio loop: uvloop (less CPU per message: "
        "+8 % events/s on 300k events of the load feed, eventloop.py) or asyncio (the "
        "standard library's)."
    )
    web_port: int = Field(
        6066, ge=0, le=65535, description="Faust web port: /metrics and the console.")
    web_enabled: bool = Field(True, description="Serve the web port (metrics).")
    web_bind: str = Field(
        "127.0.0.1", description="Address the web port binds (0.0.0.0 in containers)."
    )
    lag_interval: Interval = Field(10.0, description="Seconds between consumer-lag updates.")
    data_dir: Path = Field(Path("var"), description="Where the SQLite store and logs live.")
    batch_size: int = Field(
        1024, ge=1,
        description="Max events per agent batch (scored, written, one state write per key). "
        "1024 drained a 40k backlog 1.5x faster than 256 (bench/pipeline_bench.py); a "
        "batch closes after batch_within anyway, so it adds no latency at low rates.",
    )
    batch_within: Interval = Field(0.2, description="Max seconds to wait to fill a batch.")
    notify_concurrency: int = Field(
        8, ge=1, description="Alert deliveries in flight per channel (HTTP round trips "
        "overlap; a channel in retry backoff holds up only its own alerts).")
    notify_budget_workers: int = Field(
        1, ge=1, description="Worker processes that notify through the same channels. "
        "Each worker keeps its own send budget per channel (max_per_minute in "
        "channels.yaml: DingTalk and WeCom robots take 20 messages a minute, Feishu 100), "
        "and every worker notifies for its partitions, so each uses the budget divided by "
        "this (rounded down). Set it to the number of workers (docker-compose: "
        "MW_WORKERS); left at 1 with W workers, a burst may reach W times a robot's "
        "limit and get it throttled (alerts/throttle.py).")
    max_text_bytes: int = Field(
        64 * 1024, ge=1, description="Larger inputs go to the dead-letter topic (input cap)."
    )
    max_line_bytes: int = Field(
        2 * 1024 * 1024, ge=1, description="Raw input lines above this are dead-lettered unparsed."
    )

    # --- event time -----------------------------------------------------------------
    allowed_lateness: float = Field(
        3600.0, ge=0, description="Seconds ('inf': tasks close at the end of input only). "
        "Watermark = max event time seen - allowed lateness."
    )

    max_future_skew: float = Field(
        86400.0, ge=0, description="Seconds. Input dated more than this after the wall clock "
        "(or before 2000-01-01) is dead-lettered ('bad time: created_at: ...'): one "
        "far-future date would move the watermark and close every open task. Measured "
        "from the wall clock, not collected_at, so replays of old data are never refused; "
        "'inf' turns it off (the `run` demo, whose simulated clock runs ahead)."
    )
    idle_partition_after: float = Field(
        60.0, gt=0, description="Wall seconds after which a partition with no new events stops "
        "holding the watermark back (its clock is the slowest partition's otherwise)."
    )
    task_retention: float = Field(
        7 * 86400.0, ge=0,
        description="Seconds a closed linkage task is kept to ignore late reposts."
    )
    sink_retry_max_wait: Interval = Field(30.0, description="Max backoff between store retries.")

    # --- analysis -------------------------------------------------------------------
    sentiment_model: str = Field("default", description="Sentiment model name (see `score`).")
    linkage_deadline: Interval = Field(86400.0, description="Linkage deadline, seconds after post.")
    linkage_depth: int = Field(1, ge=1, description="Subordinate levels expected to repost.")
    linkage_level_deadlines: dict[str, float] = Field(
        default_factory=dict,
        description='Deadline per superior level, seconds (JSON: {"province": 172800}).',
    )
    linkage_account_deadlines: dict[str, float] = Field(
        default_factory=dict, description="Deadline per superior account id, seconds (JSON)."
    )

    # --- alerts -------------------------------------------------------------------
    rules_dir: Path | None = Field(
        None, description="Directory of alert rule YAML files; default: the packaged rules "
        "(matrixwatch/alerts/rules). Channels: MW_ALERT_CHANNELS (see alerts/channels.py).",
    )
    alert_key_retention: float = Field(
        7 * 86400.0, gt=0,
        description="Seconds of event time an alert key's dispatch state (ids seen, "
        "realert and escalation marks) is kept after its last alert, beyond its rule's "
        "realert/escalation windows; then it is deleted. Keys are per post for most rules, "
        "so without it the table grew with every post that ever alerted. A duplicate of "
        "an alert older than this (a collector re-fetching week-old posts) is notified "
        "again. Only live: a finite replay (infinite lateness) keeps every key.",
    )
    alert_key_expiry_interval: Interval = Field(
        300.0,
        description="Wall-clock seconds between scans for expired alert keys. A scan "
        "visits every key of the worker under the dispatch lock, and retention is days.",
    )
    sweep_interval: Interval = Field(
        10.0, description="Wall-clock seconds between checks of time-driven rules "
        "(stale accounts, unanswered questions)."
    )

    linkage_daily_cron: str = Field(
        "0 8 * * *", description="Daily linkage report (Asia/Shanghai cron); empty disables."
    )
    linkage_weekly_cron: str = Field(
        "0 8 * * 1", description="Weekly linkage report (Asia/Shanghai cron); empty disables."
    )

    # --- stores ---------------------------------------------------------------------
    es_url: str | None = Field(None, description="Elasticsearch URL. Unset: SQLite store.")
    es_username: str | None = Field(None, description="Elasticsearch user.")
    es_password: SecretStr | None = Field(None, description="Elasticsearch password.")
    es_verify_certs: bool = Field(True, description="TLS verification (keep on).")
    es_index_prefix: str = Field("matrixwatch", description="Prefix of indices / templates.")
    sqlite_path: Path | None = Field(None, description="SQLite file; default data_dir/store.sqlite")

    # --- registry -------------------------------------------------------------------
    registry: Path | None = Field(None, description="matrix.yaml; `run` simulates one if unset.")

    @model_validator(mode="after")
    def _retention_covers_lateness(self) -> Settings:
        """An alert key forgotten sooner than the allowed lateness could be decided
        differently for an alert still on time (see Dispatcher.expired)."""
        if self.alert_key_retention < self.allowed_lateness < float("inf"):
            raise ValueError(
                f"alert_key_retention ({self.alert_key_retention:g} s) must be at least "
                f"allowed_lateness ({self.allowed_lateness:g} s)")
        return self

    @property
    def compression_type(self) -> str | None:
        """``compression`` as Kafka clients take it (None: uncompressed)."""
        return None if self.compression == "none" else self.compression

    @property
    def store_path(self) -> Path:
        return self.sqlite_path or self.data_dir / "store.sqlite"

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}-{name}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
