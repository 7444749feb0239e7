"""Shared helpers for collector tests: settings pointed at a local fake server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from matrixwatch.collectors.config import CollectorSettings


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "soak: long scheduled-polling run with injected faults (MW_SOAK_SECONDS)")


def make_settings(tmp_path: Path, base: str = "http://127.0.0.1:9", **kw: Any) -> CollectorSettings:
    """Fast, local, deterministic settings: no .env, tiny backoffs, no rate limit."""
    values: dict[str, Any] = dict(
        data_dir=tmp_path, weibo_mobile_url=base, weibo_api_url=base, http_timeout=0.5,
        host_rate=1000.0, host_burst=100, retry_attempts=4, backoff_initial=0.01,
        backoff_max=0.05, failure_threshold=2, max_pages=20, backfill_pages=100,
        refresh_pages=0, comment_pages=10, repost_pages=10, weibo_token="test-token",
        kafka_url=None,
    )
    values.update(kw)
    return CollectorSettings(_env_file=None, **values)  # type: ignore[call-arg]
