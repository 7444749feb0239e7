import asyncio

import pytest
import uvloop

from matrixwatch import eventloop


def _new_loop_type() -> type:
    loop = asyncio.new_event_loop()
    try:
        return type(loop)
    finally:
        loop.close()


def test_uvloop_makes_every_later_loop_a_uvloop() -> None:
    try:
        eventloop.install("uvloop")
        assert issubclass(_new_loop_type(), uvloop.Loop)
    finally:
        eventloop.install("asyncio")
    assert not issubclass(_new_loop_type(), uvloop.Loop)


def test_an_unknown_loop_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown event loop 'tokio'"):
        eventloop.install("tokio")  # type: ignore[arg-type]


def test_the_setting_defaults_to_uvloop_and_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from matrixwatch.settings import Settings

    assert Settings().event_loop == "uvloop"
    monkeypatch.setenv("MW_EVENT_LOOP", "tokio")
    with pytest.raises(ValidationError, match="event_loop"):
        Settings()
