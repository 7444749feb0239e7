"""The console as a subprocess beside the worker, for ``matrixwatch run``.

A process of its own (not a thread in the runner) so its reads never compete with the
runner's live view and feeder for the GIL, and a crash in one does not stop the other.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from matrixwatch.dashboards.console.auth import ensure_dev_users
from matrixwatch.settings import Settings


@dataclass
class ConsoleProcess:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    login_url: str | None = None  # with a fresh token in the fragment, first run only

    @classmethod
    def start(cls, settings: Settings, *, host: str = "127.0.0.1", port: int = 8080,
              log_path: Path | None = None, users_file: Path | None = None
              ) -> ConsoleProcess:
        """Start ``python -m matrixwatch.dashboards.console serve`` on the run's store and registry.

        Without MW_CONSOLE_USERS_FILE a users file ``data_dir/console-users.yaml`` is made
        on first run with one matrix-manager token, returned in ``login_url`` (shown once
        on the operator's terminal; only its hash is stored).
        """
        log_path = log_path or settings.data_dir / "console.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        token = None
        users = users_file or (Path(env["MW_CONSOLE_USERS_FILE"])
                               if env.get("MW_CONSOLE_USERS_FILE") else None)
        if users is None:
            users = settings.data_dir / "console-users.yaml"
            token = ensure_dev_users(users)
        env.update(MW_CONSOLE_USERS_FILE=str(users), MW_DATA_DIR=str(settings.data_dir),
                   MW_SQLITE_PATH=str(settings.store_path))
        if settings.registry:
            env["MW_REGISTRY"] = str(settings.registry)
        if settings.es_url:
            env["MW_ES_URL"] = settings.es_url
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "matrixwatch.dashboards.console", "serve", "--host", host,
                 "--port", str(port)],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        url = f"http://{host}:{port}"
        return cls(proc, url, log_path, f"{url}/login#token={token}" if token else None)

    def wait_ready(self, timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return True
            except OSError:
                time.sleep(0.2)
        return False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def running_console(settings: Settings, port: int, host: str = "127.0.0.1"
                    ) -> Iterator[ConsoleProcess | None]:
    """The console for the duration of a ``with`` block; ``port=0`` runs none."""
    if not port:
        yield None
        return
    proc = ConsoleProcess.start(settings, host=host, port=port)
    try:
        yield proc
    finally:
        proc.stop()
