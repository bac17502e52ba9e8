"""Real services on loopback for tests and benchmarks: ``redis-server`` and ``chroma run``.

Each is a context manager that starts the real binary on a free port (no persistence for Redis, a
temp directory for Chroma), waits until it answers, and kills it on exit::

    with RedisServer() as redis_server, ChromaServer() as chroma:
        gateway_config = {"redis": redis_server.url, "solutions": chroma.url}
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["ChromaServer", "RedisServer", "free_port"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Service:
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: the server vanishes without closing anything properly."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class RedisServer(_Service):
    """``redis-server`` on ``127.0.0.1:<free port>``, no persistence."""

    def __init__(self, binary: str | None = None) -> None:
        found = binary or shutil.which("redis-server")
        if found is None:
            raise FileNotFoundError("redis-server is not installed (apt-get install redis-server)")
        self.binary = found
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis(port=self.port, socket_timeout=0.2) as client:
                    if client.ping():
                        return
            except redis.exceptions.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)

    def pause(self) -> None:
        """SIGSTOP: connections stay open but nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Resume a paused server first (a stopped process ignores SIGTERM), then stop it."""
        if self.process is not None:
            self.resume()
        super().stop()


class ChromaServer(_Service):
    """``chroma run`` (from this interpreter's environment) with its data in ``path`` or a temp
    directory removed on stop."""

    def __init__(self, path: str | Path | None = None, *, timeout_s: float = 60) -> None:
        self._tmp = None if path is not None else tempfile.TemporaryDirectory(prefix="chroma-")
        self.path = Path(path if path is not None else self._tmp.name)  # type: ignore[union-attr]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.timeout_s = timeout_s

    def start(self) -> None:
        binary = Path(sys.executable).parent / "chroma"
        log_path = self.path / "server.log"
        self.path.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                [
                    str(binary),
                    "run",
                    "--path",
                    str(self.path / "db"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + self.timeout_s
        while True:
            if self.process.poll() is not None:
                log = log_path.read_text(errors="replace")[-2000:]
                self.process = None
                raise RuntimeError(f"chroma run exited:\n{log}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=1) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"chroma run did not answer at {self.url}")
            time.sleep(0.1)

    def stop(self) -> None:
        super().stop()
        if self._tmp is not None:
            self._tmp.cleanup()
