"""The shared ledger on Redis Cluster and behind Sentinel, with the real redis-server in those modes.

Cluster: one node owning every slot is enough to prove the point that matters: Redis refuses a
script or MGET whose keys are in different slots (CROSSSLOT) even on one node, and every ledger
key carries the hash tag ``{budgets}``. Sentinel: one master watched by one sentinel; the ledger
finds the master through it.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import openai
import pytest
import redis

import aimon_otel
from aimon_otel import BudgetExceeded
from tests.conftest import MESSAGES, make_telemetry
from tests.tools import RedisServer, free_cluster_port, free_port, require

BUDGETS = (
    "budgets:\n"
    "  - {name: acme, match: {tenant_id: acme}, limit_usd: 0.0001, period: day, action: block}\n"
    "  - {name: per-user, for_each: user_id, limit_usd: 1, period: month}\n"
    "  - {name: everything, limit_usd: 1, period: {rolling: 24h}}\n"
)


def exercise(tmp_path: Path, ledger_url: str, client: openai.OpenAI) -> None:
    """Four calls reach acme's $0.0001 (the fourth crosses it), the fifth is refused; every budget exact."""
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(BUDGETS)
    telemetry = make_telemetry(budgets=str(budgets), budget_ledger=ledger_url)
    try:
        with aimon_otel.attributes(tenant_id="acme", user_id="u-1"):
            for _ in range(4):
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            with pytest.raises(BudgetExceeded):
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        spent = {s.budget: Decimal(str(s.spent)) for s in aimon_otel.budget_status(tenant_id="acme", user_id="u-1")}
    finally:
        telemetry.instrumentor.uninstrument()
    assert spent == {name: 4 * Decimal("0.000033") for name in ("acme", "per-user", "everything")}


def wait_until(check: object, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except (OSError, redis.RedisError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen in {seconds}s")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(
        tmp_path, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", port=free_cluster_port()
    ).start()
    try:
        node = redis.Redis(port=server.port)
        node.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        wait_until(lambda: node.cluster("info")["cluster_state"] == "ok", "the cluster's state ok")
        node.close()
        yield server
    finally:
        server.stop()


def test_the_ledger_on_redis_cluster(tmp_path: Path, cluster: RedisServer, client: openai.OpenAI) -> None:
    node = redis.Redis(port=cluster.port)
    with pytest.raises(redis.ResponseError, match="same slot"):  # CROSSSLOT: what the hash tag avoids
        node.mget(["aimon:a", "aimon:b"])
    node.close()
    exercise(tmp_path, f"redis+cluster://127.0.0.1:{cluster.port}", client)


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[int]:
    master = RedisServer(tmp_path).start()
    port = free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {tmp_path}\n"
        f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
        "sentinel down-after-milliseconds mymaster 5000\n"
    )
    process = subprocess.Popen(
        [require("redis-server"), str(config), "--sentinel"],
        stdout=(tmp_path / "sentinel.log").open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        watcher = redis.Redis(port=port)
        wait_until(lambda: watcher.sentinel_get_master_addr_by_name("mymaster"), "the sentinel's master")
        watcher.close()
        yield port
    finally:
        process.terminate()  # stopped by its PID
        process.wait(timeout=30)
        master.stop()


def test_the_ledger_behind_sentinel(tmp_path: Path, sentinel: int, client: openai.OpenAI) -> None:
    exercise(tmp_path, f"redis+sentinel://127.0.0.1:{sentinel}/mymaster/0", client)
