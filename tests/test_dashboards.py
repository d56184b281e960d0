"""Dashboards as code: the committed JSON is what the generator writes, and it is well formed."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "dashboards"))
generate = pytest.importorskip("generate")  # needs grafana-foundation-sdk (the test extra)
from grafana_foundation_sdk.models.dashboard import Dashboard  # noqa: E402

BOARDS = sorted((ROOT / "dashboards" / "grafana" / "dashboards").glob("*.json"))
BUILTIN_VARIABLES = {"__range", "__rate_interval", "__interval", "__all"}


def test_committed_files_are_generated() -> None:
    for path, text in generate.render_all().items():
        assert path.read_text() == text, f"{path} is stale: run .venv/bin/python dashboards/generate.py"


def expressions(board: dict[str, Any]) -> list[str]:
    return [t.get("expr") or t.get("query") or "" for p in board["panels"] for t in p.get("targets", [])]


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.name)
def test_dashboard_is_well_formed(path: Path) -> None:
    board = json.loads(path.read_text())
    Dashboard.from_json(board)  # the foundation SDK's loader accepts it
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) and all(ids)
    defined = {v["name"] for v in board["templating"]["list"]}
    for expr in expressions(board):
        used = set(re.findall(r"\$\{?(\w+)", expr)) - BUILTIN_VARIABLES
        assert used <= defined, (expr, used - defined)
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] in ("${datasource}", "${tempo}")
        for expr in (t.get("expr", "") for t in panel.get("targets", [])):
            # counters only through increase(...[$__range]) or rate(...[$__rate_interval])
            for window in re.findall(r"(?:increase|rate)\([^\[]*\[([^\]]+)\]", expr):
                assert window in ("$__range", "$__rate_interval"), expr
            assert "otel_scope_name" not in expr  # no filter on one SDK: other tools' gen_ai_* metrics count


def test_uids_unique() -> None:
    uids = [json.loads(p.read_text())["uid"] for p in BOARDS]
    assert sorted(uids) == ["aimon-budgets", "aimon-overview"]
