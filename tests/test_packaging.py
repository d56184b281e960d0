"""The README's install path: a wheel built from a checkout carries the package, its entry points and floors."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_from_a_checkout(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("aimon_otel-*-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(archive.read(n).decode() for n in names if n.endswith("entry_points.txt"))
        metadata = next(archive.read(n).decode() for n in names if n.endswith("METADATA"))
    assert "aimon_otel/py.typed" in names and "aimon_otel/pricing/engine.py" in names
    assert "[opentelemetry_instrumentor]\naimon = aimon_otel:AimonInstrumentor" in entry_points
    assert "aimon-otel = aimon_otel.cli:main" in entry_points
    assert "Requires-Dist: opentelemetry-sdk>=1.34" in metadata
    assert "Provides-Extra: otlp" in metadata
    readme = (ROOT / "README.md").read_text()
    assert "pip wheel ./aimon-otel -w dist" in readme and wheel.name in readme
