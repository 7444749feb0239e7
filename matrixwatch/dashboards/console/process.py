"""The console as a subprocess beside the worker, for ``matrixwatch run``.

A process of its own (not a thread in the runner) so its reads never compete with the
runner's live view and feeder for the GIL, and a crash in one does not stop the other.

``run`` binds the console's port itself and hands the listening socket to the process.
A /healthz answer cannot tell one console from another: with the port already held (by
any program, or by another ``console serve``), the old link led to whatever listened
there while ``run``'s own console died with "address already in use". A socket that only
``run``'s console holds makes the link provably its own, and a port in use is known (and
said) at once, before a users file or a token is made.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from matrixwatch.dashboards.console.auth import ensure_dev_users
from matrixwatch.settings import Settings

READY_TIMEOUT = 30.0  # seconds; it is up in 1-2 s, more only on a saturated machine
ISSUE_HINT = "matrixwatch console token --name NAME --role duty-officer"
# The readiness probe goes straight to the console: an http_proxy in the environment
# must not answer for it (or fail it) on the operator's behalf.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ConsoleUnavailable(RuntimeError):
    """Why there is no console: one line for the operator's terminal, never a token."""


class PortUnavailable(ConsoleUnavailable):
    """The port itself (in use, not allowed): another port may do."""


def configured_users_file() -> Path | None:
    """``MW_CONSOLE_USERS_FILE`` (environment or .env), if set."""
    from matrixwatch.dashboards.console.service import ConsoleSettings

    return ConsoleSettings().users_file


def default_users_file(settings: Settings) -> Path:
    """The users file every console command shares: ``MW_CONSOLE_USERS_FILE``, else
    ``data_dir/console-users.yaml`` (the one ``run`` makes on its first start)."""
    return configured_users_file() or settings.data_dir / "console-users.yaml"


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (0: any free port), or ConsoleUnavailable."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port,
                                                          type=socket.SOCK_STREAM)[0]
    except socket.gaierror as e:
        raise ConsoleUnavailable(f"cannot resolve {host}: {e.strerror}") from e
    sock = socket.socket(family, kind, proto)
    try:
        if os.name == "posix":  # as aiohttp does: a restart need not wait out TIME_WAIT
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise PortUnavailable(
                f"port {port} on {host} is already in use (another program, or another "
                "console, listens there)") from e
        raise PortUnavailable(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    return sock


@dataclass
class ConsoleProcess:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    login_url: str | None = None  # with a fresh token in the fragment, first run only
    users_file: Path | None = None
    log_offset: int = 0  # where this start's lines begin in the (appended) log
    # The users file this start created, with its bytes: removed again if the console
    # does not come up, so the next run makes a token and shows it (not lost unseen).
    created_users: tuple[Path, bytes] | None = field(default=None, repr=False)

    @classmethod
    def start(cls, settings: Settings, *, host: str = "127.0.0.1", port: int = 8080,
              log_path: Path | None = None, users_file: Path | None = None
              ) -> ConsoleProcess:
        """Start ``python -m matrixwatch.dashboards.console serve`` on the run's store and
        registry, serving a socket bound here (port 0: a free one); ConsoleUnavailable if
        the port cannot be had.

        Unless a users file is configured (``users_file``, MW_CONSOLE_USERS_FILE),
        ``data_dir/console-users.yaml`` is used and, when missing, made with one
        matrix-manager token, returned in ``login_url`` (shown once on the operator's
        terminal; only its hash is stored). A configured file is never made here.
        """
        sock = bind_listener(host, port)  # first: a busy port must not use up the token
        try:
            log_path = log_path or settings.data_dir / "console.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            env = dict(os.environ)
            configured = users_file or configured_users_file()
            users = configured or default_users_file(settings)
            try:
                token = ensure_dev_users(users) if configured is None else None
                created = (users, users.read_bytes()) if token else None
            except OSError as e:
                raise ConsoleUnavailable(f"cannot make the users file {users}: "
                                         f"{e.strerror or e}") from e
            env.update(MW_CONSOLE_USERS_FILE=str(users), MW_DATA_DIR=str(settings.data_dir),
                       MW_SQLITE_PATH=str(settings.store_path))
            if settings.registry:
                env["MW_REGISTRY"] = str(settings.registry)
            if settings.es_url:
                env["MW_ES_URL"] = settings.es_url
            bound = int(sock.getsockname()[1])
            with open(log_path, "ab") as out:
                offset = out.tell()
                proc = subprocess.Popen(
                    [sys.executable, "-m", "matrixwatch.dashboards.console", "serve",
                     "--host", host, "--port", str(bound), "--fd", str(sock.fileno())],
                    stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                    pass_fds=(sock.fileno(),))
        finally:
            sock.close()  # the console holds it now; once it exits the port is free
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{bound}"
        return cls(proc, url, log_path, f"{url}/login#token={token}" if token else None,
                   users, offset, created)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> bool:
        """True once the console answers /healthz; False if it exits or times out. Only
        this process holds the socket, so the answer is its own."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            try:
                with _DIRECT.open(f"{self.url}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return True
            except OSError:
                time.sleep(0.2)
        return False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def last_line(self) -> str:
        """The last line this start wrote to the log (its error, if it failed)."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self.log_offset)
                text = fh.read()[-8192:].decode("utf-8", errors="replace")
        except OSError:
            return ""
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        return lines[-1][:200] if lines else ""

    def failure(self) -> str:
        """Why the console is not up (after ``wait_ready`` returned False)."""
        code = self.proc.poll()
        what = (f"it exited with code {code}" if code is not None
                else "it did not answer on /healthz in time")
        line = self.last_line()
        return (f"{what} (last log line: {line}; see {self.log_path})" if line
                else f"{what} (see {self.log_path})")

    def discard_new_users(self) -> None:
        """Remove the users file this start made, unless it changed since."""
        if self.created_users is None:
            return
        path, data = self.created_users
        with contextlib.suppress(OSError):
            if path.read_bytes() == data:
                path.unlink()
        self.created_users = None
        self.login_url = None

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class RunConsole:
    """The console of one ``run``: the process when it is up and answering, and what to
    tell the operator (the link and how to log in, or why there is no console)."""

    process: ConsoleProcess | None
    notice: str | None = None
    reported_exit: bool = False

    @property
    def ok(self) -> bool:
        return self.process is not None

    def check(self) -> str | None:
        """A warning, once, when the console that was up has exited: the link printed
        earlier no longer leads to it (and its port may be taken by something else)."""
        p = self.process
        if p is None or p.alive() or self.reported_exit:
            return None
        self.reported_exit = True
        return (f"值班台 console stopped: {p.failure()}. The pipeline runs on without it; "
                "restart `matrixwatch run` to get it back.")


def _login_notice(proc: ConsoleProcess, settings: Settings) -> str:
    """The link, and how to log in: the new token once, else how to get one."""
    issue = ISSUE_HINT
    if proc.users_file is not None and proc.users_file != default_users_file(settings):
        issue += f" --users-file {proc.users_file}"
    if proc.login_url:
        return (f"值班台 console: {proc.login_url}\n"
                f"  (a new matrix-manager login, 'admin', shown this once; {proc.users_file} "
                f"keeps only its hash. More users: {issue})")
    return f"值班台 console: {proc.url}  (log in with your token, or issue one: {issue})"


@contextlib.contextmanager
def running_console(settings: Settings, port: int, host: str = "127.0.0.1",
                    ready_timeout: float = READY_TIMEOUT) -> Iterator[RunConsole]:
    """The console for the duration of a ``with`` block; ``port=0`` runs none.

    A console that cannot start (port in use, exits at start, never answers) is a
    warning, not an error: on a night shift the pipeline matters more than the page.
    """
    if not port:
        yield RunConsole(None)
        return
    try:
        proc = ConsoleProcess.start(settings, host=host, port=port)
    except ConsoleUnavailable as e:
        hint = ("; choose another port with --console-port N, or --console-port 0 for none"
                if isinstance(e, PortUnavailable) else "")
        yield RunConsole(None, f"值班台 console not started: {e}{hint}. The pipeline runs "
                               "without it.")
        return
    try:
        if proc.wait_ready(ready_timeout):
            yield RunConsole(proc, _login_notice(proc, settings))
            return
        reason = proc.failure()
        proc.stop()
        proc.discard_new_users()
        yield RunConsole(None, f"值班台 console not started: {reason}. The pipeline runs "
                               "without it.")
    finally:
        proc.stop()
