"""Local stand-ins for the platforms: an HTTP server and an SMTP server on 127.0.0.1.

The HTTP server records every request (path, query, headers, raw body) and answers with a
per-test handler, so each notifier test can check the real payload and recompute the
signature exactly as the platform documents it. No network beyond loopback.

The notifiers' shared HTTP clients are closed after every test, in the test's loop.
"""

from __future__ import annotations

import base64
import json
import socketserver
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from matrixwatch.streams.records import Alert

CST = timezone(timedelta(hours=8))


@pytest.fixture(autouse=True)
async def _close_shared_clients() -> AsyncIterator[None]:
    from matrixwatch.alerts.notifiers.base import close_shared_clients

    yield
    await close_shared_clients()


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    raw_query: str = ""  # as sent, before any decoding
    client_port: int = 0  # the client's end of the connection: same port, same connection

    def json(self) -> Any:
        return json.loads(self.body)


# (status, body) or (status, body, extra headers). The body is bytes, a JSON-able value,
# or an iterable of byte chunks, streamed without a length until the client hangs up.
Handler = Callable[[Request], tuple[Any, ...]]


@dataclass
class HTTPStub:
    url: str
    requests: list[Request] = field(default_factory=list)
    handler: Handler = lambda r: (200, {"errcode": 0, "errmsg": "ok"})


@pytest.fixture
def http_stub() -> Iterator[HTTPStub]:
    stub = HTTPStub(url="")

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the platforms do

        def do_POST(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            parts = urlsplit(self.path)
            req = Request(self.command, parts.path, parse_qs(parts.query),
                          {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(n),
                          parts.query, self.client_address[1])
            stub.requests.append(req)
            status, body, *extra = stub.handler(req)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for k, v in (extra[0] if extra else {}).items():
                self.send_header(k, v)
            if not isinstance(body, bytes) and isinstance(body, Iterable) \
                    and not isinstance(body, dict | list | str):
                self.stream(body)
                return
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_header("Content-Length", str(len(data)))
            try:
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client gave up (a timeout test)
                self.close_connection = True

        do_GET = do_POST  # a followed redirect would show up as a GET

        def stream(self, chunks: Iterable[bytes]) -> None:
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for chunk in chunks:
                    self.wfile.write(chunk)
                    self.wfile.flush()
            except OSError:  # the client hung up: what a capped reader does
                pass
            self.close_connection = True

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    yield stub
    server.shutdown()
    server.server_close()


# --- SMTP -------------------------------------------------------------------------------
@dataclass
class SMTPStub:
    port: int
    user: str = "alerts"
    password: str = "s3cret-pw"
    messages: list[dict[str, Any]] = field(default_factory=list)
    fail_mail: list[str] = field(default_factory=list)  # replies to MAIL FROM, consumed in order
    auths: list[str] = field(default_factory=list)


@pytest.fixture
def smtp_stub() -> Iterator[SMTPStub]:
    """A tiny SMTP server: EHLO, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""
    stub = SMTPStub(port=0)

    class H(socketserver.StreamRequestHandler):
        def reply(self, line: str) -> None:
            self.wfile.write(line.encode() + b"\r\n")

        def handle(self) -> None:
            self.reply("220 fake ESMTP")
            mail: dict[str, Any] = {}
            while True:
                raw = self.rfile.readline()
                if not raw:
                    return
                line = raw.decode().rstrip("\r\n")
                cmd = line.split(" ", 1)[0].upper()
                if cmd in ("EHLO", "HELO"):
                    self.wfile.write(b"250-fake\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n")
                elif cmd == "AUTH":
                    _, _, b64 = line.split(" ", 2)
                    _, user, pw = base64.b64decode(b64).decode().split("\0")
                    stub.auths.append(user)
                    ok = (user, pw) == (stub.user, stub.password)
                    self.reply("235 ok" if ok else "535 bad credentials")
                elif cmd == "MAIL":
                    if stub.fail_mail:
                        self.reply(stub.fail_mail.pop(0))
                        continue
                    mail = {"from": line[10:].strip("<> "), "to": []}
                    self.reply("250 ok")
                elif cmd == "RCPT":
                    mail["to"].append(line[8:].strip("<> "))
                    self.reply("250 ok")
                elif cmd == "DATA":
                    self.reply("354 go ahead")
                    data = b""
                    while True:
                        chunk = self.rfile.readline()
                        if chunk in (b".\r\n", b".\n", b""):
                            break
                        data += chunk[1:] if chunk.startswith(b"..") else chunk
                    mail["data"] = data
                    stub.messages.append(mail)
                    self.reply("250 queued")
                elif cmd in ("RSET", "NOOP"):
                    self.reply("250 ok")
                elif cmd == "QUIT":
                    self.reply("221 bye")
                    return
                else:
                    self.reply("502 not implemented")

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", 0), H)
    stub.port = server.server_address[1]
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    yield stub
    server.shutdown()
    server.server_close()


def sample_alert(**kw: Any) -> Alert:
    base: dict[str, Any] = dict(
        id="a1b2c3d4e5f6a7b8c9d0e1f2", rule="volume_spike", type="spike", severity="orange",
        timestamp="2026-11-02T06:03:00+00:00",  # 14:03 in Beijing
        account_id="9100000112", post_id=None, platform="weibo",
        title="甲市西区发布 声量突增",
        message="甲市西区发布（甲市西区人民政府，区县级）：2026-11-02 14:00 起 5 分钟内 11 条，"
                "基线 0.05，统计量 20.1（-log10 p）",
        values={"value": 11.0, "baseline": 0.05, "score": 20.1278,
                "bucket_start": 1793599200.0, "bucket_seconds": 300.0},
        samples=["停水三天了没人管，太气人了 https://weibo.com/9100000112/Pq1", "好的"],
        account_name="甲市西区发布", unit="甲市西区人民政府", level="county",
    )
    base.update(kw)
    return Alert(**base)


NOW = datetime(2026, 11, 2, 14, 3, 30, tzinfo=CST).timestamp()
