"""Collector settings: endpoints, secrets, politeness and scheduling knobs.

They extend the project's :class:`~matrixwatch.settings.Settings` (same ``MW_`` prefix,
same ``.env``), so a collector process and the worker agree on the broker and topics.
Every base URL is a setting because production runs behind proxies and mirrors, and
tests point them at a local server. Secrets (cookie, tokens) come from the environment
or from a ``*_FILE`` path and are ``SecretStr`` so they never print.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from matrixwatch.settings import Settings


def _read_secret(value: SecretStr | None, path: Path | None) -> str | None:
    if value is not None and value.get_secret_value():
        return value.get_secret_value()
    if path is not None:
        text = Path(path).read_text(encoding="utf-8").strip()
        return text or None
    return None


class CollectorSettings(Settings):
    # --- endpoints ------------------------------------------------------------------
    weibo_mobile_url: str = Field(
        "https://m.weibo.cn", description="m.weibo.cn base URL (proxy, mirror or test server)."
    )
    weibo_api_url: str = Field(
        "https://api.weibo.com", description="Weibo open API v2 base URL (…/2/statuses/…)."
    )

    # --- secrets ----------------------------------------------------------------------
    weibo_cookie: SecretStr | None = Field(None, description="m.weibo.cn Cookie header value.")
    weibo_cookie_file: Path | None = Field(None, description="File holding the cookie.")
    weibo_token: SecretStr | None = Field(None, description="Open API v2 access_token.")
    weibo_token_file: Path | None = Field(None, description="File holding the access token.")
    push_token: SecretStr | None = Field(None, description="Bearer token of the push endpoint.")
    push_token_file: Path | None = Field(None, description="File holding the push token.")

    # --- push endpoint ------------------------------------------------------------------
    push_host: str = Field("127.0.0.1", description="Bind address of the push endpoint.")
    push_port: int = Field(8088, description="Port of the push endpoint.")
    push_max_bytes: int = Field(8 * 1024 * 1024, description="Largest accepted request body.")
    push_max_items: int = Field(5000, description="Largest accepted batch (objects).")

    # --- politeness -------------------------------------------------------------------
    http_timeout: float = Field(15.0, description="Seconds per HTTP request.")
    host_rate: float = Field(1.0, gt=0, description="Requests per second per host.")
    host_burst: int = Field(3, ge=1, description="Requests allowed back to back per host.")
    retry_attempts: int = Field(5, ge=1, description="Tries per request (418/429/5xx/timeout).")
    backoff_initial: float = Field(2.0, description="First backoff, seconds (then x2, jitter).")
    backoff_max: float = Field(
        120.0, description="Longest backoff, also caps Retry-After (which pauses every "
        "request to that host, not only the one that got it).",
    )
    circuit_threshold: int = Field(
        5, ge=0, description="Consecutive failed requests to one host (connection errors, "
        "timeouts, 5xx; not 418/429 throttling) that open its circuit: requests to it then "
        "fail at once, without retries or rate-limit slots, so an outage reaches "
        "collector_health in seconds instead of after every poll's retries. 0: never open.",
    )
    circuit_cooldown: float = Field(
        30.0, gt=0, description="Seconds an opened circuit fails requests fast before one "
        "trial request tests the host; doubled after each failed trial.",
    )
    circuit_cooldown_max: float = Field(
        300.0, gt=0, description="Longest cooldown of a circuit whose trials keep failing: "
        "at most this late is a recovered host used again.",
    )
    user_agent: str = Field(
        "Mozilla/5.0 (Linux; Android 13) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0 Mobile Safari/537.36 matrixwatch",
        description="User-Agent of collector requests.",
    )

    # --- collection depth ---------------------------------------------------------------
    max_pages: int = Field(20, ge=1, description="Timeline pages per account per run.")
    backfill_pages: int = Field(3, ge=1, description="Pages read on an account's first run.")
    refresh_pages: int = Field(
        2, ge=0, description="Timeline pages read past the watermark to refresh the counts "
        "of recent posts (comments and reposts are followed for posts seen there).",
    )
    comment_pages: int = Field(10, ge=0, description="Comment pages per post per run.")
    repost_pages: int = Field(10, ge=0, description="Repost-list pages per post per run.")
    track_window: float = Field(
        3 * 86400.0, description="Seconds after a post during which comments/reposts are polled."
    )
    seen_retention: float = Field(
        30 * 86400.0, description="Seconds a collected id is remembered (duplicate guard)."
    )

    # --- scheduling -------------------------------------------------------------------
    collector_db: Path | None = Field(
        None, description="SQLite file for cursors, seen ids, hot marks and APScheduler jobs; "
        "default data_dir/collectors.sqlite.",
    )
    poll_interval: float = Field(600.0, description="Seconds between polls of an account.")
    hot_interval: float = Field(60.0, description="Seconds between polls of a hot account.")
    hot_ttl: float = Field(3600.0, description="Seconds an account stays hot once marked.")
    poll_jitter: float = Field(0.1, description="Random share of the interval added to polls.")
    failure_threshold: int = Field(
        3, ge=1, description="Consecutive failures before a collector_health event."
    )

    @property
    def state_path(self) -> Path:
        return self.collector_db or self.data_dir / "collectors.sqlite"

    def cookie(self) -> str | None:
        return _read_secret(self.weibo_cookie, self.weibo_cookie_file)

    def token(self) -> str | None:
        return _read_secret(self.weibo_token, self.weibo_token_file)

    def push_secret(self) -> str | None:
        return _read_secret(self.push_token, self.push_token_file)
