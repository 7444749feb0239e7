"""The settings object: cross-field checks and derived values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from matrixwatch.settings import Settings


def make(**kw: object) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[arg-type]


def test_alert_key_retention_must_cover_the_allowed_lateness() -> None:
    with pytest.raises(ValidationError, match=r"alert_key_retention \(600 s\) must be at "
                                              r"least allowed_lateness \(3600 s\)"):
        make(alert_key_retention=600, allowed_lateness=3600)
    assert make(alert_key_retention=3600, allowed_lateness=3600).alert_key_retention == 3600
    # A finite replay (infinite lateness) forgets no key, whatever the retention.
    assert make(alert_key_retention=600, allowed_lateness=float("inf")).alert_key_retention == 600


def test_the_same_check_applies_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MW_ALERT_KEY_RETENTION", "60")
    with pytest.raises(ValidationError, match="must be at least allowed_lateness"):
        make()


def test_compression_none_means_no_codec() -> None:
    assert make().compression_type == "zstd"
    assert make(compression="none").compression_type is None
    with pytest.raises(ValidationError):
        make(compression="brotli")
