"""The real servers backend tests run (Debian's prometheus, prometheus-alertmanager and redis-server):
found, started on a free loopback port, stopped by their PID."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest


def require(binary: str) -> str:
    """The binary's path; a skip on a developer machine without it, a failure in CI (which installs it)."""
    found = shutil.which(binary)
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail(f"{binary} is not installed; .ci/run installs it from Debian")
    MISSING[binary] = MISSING.get(binary, 0) + 1
    pytest.skip(f"{binary} not installed (apt-get install {_PACKAGES.get(binary, binary)})")


MISSING: dict[str, int] = {}
"""Binaries tests wanted and did not find (outside CI), with how many tests skipped for each."""


def missing_summary() -> str | None:
    """One line naming what was not tested and the Debian packages that enable it; None if nothing."""
    if not MISSING:
        return None
    parts = [
        f"{count} test(s) need {binary} (apt-get install {_PACKAGES.get(binary, binary)})"
        for binary, count in sorted(MISSING.items())
    ]
    return "not tested here, servers missing: " + "; ".join(parts)


_PACKAGES = {
    "promtool": "prometheus",
    "amtool": "prometheus-alertmanager",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "redis-server": "redis-server",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_cluster_port() -> int:
    """A free port for a Redis Cluster node: at most 55535, with the cluster bus port (+10000) free too."""
    import random

    for _ in range(200):
        port = random.randint(20000, 55535)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


class RedisServer:
    """A real ``redis-server`` on a free loopback port; persistence off unless ``directory`` keeps its data."""

    def __init__(self, directory: Path, *extra: str, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [require("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--save", "", "--appendonly", "no", "--protected-mode", "no", *self.extra],
            stdout=(self.directory / f"redis-{self.port}.log").open("ab"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"redis-server did not start: {(self.directory / f'redis-{self.port}.log').read_text()[-2000:]}"
        )

    def stop(self, save: bool = False) -> None:
        """Stop by PID; with ``save``, write the data first so a restart on the same directory loads it."""
        if self.process is None:
            return
        if save:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as connection:
                connection.sendall(b"SAVE\r\n")
                connection.recv(64)
        self.process.terminate()
        self.process.wait(timeout=30)
        self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PostSink:
    """A loopback HTTP server keeping every POST body by path and answering 200: a webhook receiver,
    an OTLP/HTTP endpoint. Stop it with ``stop()``."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.posts: list[tuple[str, bytes]] = []
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                posts.append((self.path, self.rfile.read(int(self.headers.get("content-length", 0)))))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def received(self, path: str) -> list[bytes]:
        return [body for at, body in self.posts if at == path]

    def stop(self) -> None:
        self.server.shutdown()


def run_budget_workers(
    openai_base_url: str, ledger_url: str, budgets_file: str, processes: int, threads: int
) -> list[dict[str, Any]]:
    """``processes`` app processes of ``threads`` threads each (``tests/budget_worker.py``), calling until a
    budget refuses them; each one's JSON result (calls completed, threads refused, other errors)."""
    import json
    import os
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OTEL_SDK_DISABLED": "false"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.budget_worker", openai_base_url, ledger_url, budgets_file, str(threads)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=root,
        )
        for _ in range(processes)
    ]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results
