"""Which asyncio event loop a worker runs on.

uvloop (libuv) runs the same asyncio code with less overhead per callback, socket write
and timer, and a worker spends much of its CPU in that machinery (Faust's per-message
tasks and futures, Kafka and HTTP sockets). On 300k events of the 10k-account feed,
2 workers, uvloop gave 4,266 events/s against 3,959 with asyncio's own loop, and 106 s
of worker CPU against 113.5 s. The bench's bare Faust ceiling runs on the same loop.
"""

from __future__ import annotations

import asyncio
from typing import Literal

EventLoop = Literal["uvloop", "asyncio"]


def install(name: EventLoop) -> None:
    """Make ``name`` the loop every later ``asyncio`` loop (Faust's, its consumer
    thread's) is created with. Call before the app is built."""
    if name == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    elif name == "asyncio":
        asyncio.set_event_loop_policy(None)
    else:
        raise ValueError(f"unknown event loop {name!r} (uvloop or asyncio)")
