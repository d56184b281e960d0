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


def test_no_import_cycles() -> None:
    """No module of ours imports (at load or inside a function) one that imports it back: the layout's
    layers hold. Imports under ``TYPE_CHECKING`` are left out (they never run); the package's ``__init__``
    (the public API, importing from everywhere) is not a layer. grimp builds the graph from the source."""
    import grimp

    graph = grimp.build_graph("aimon_otel", exclude_type_checking_imports=True, cache_dir=None)
    for imported in graph.find_modules_directly_imported_by("aimon_otel"):  # the public API is not a layer
        graph.remove_import(importer="aimon_otel", imported=imported)
    for importer in graph.find_modules_that_directly_import("aimon_otel"):
        graph.remove_import(importer=importer, imported="aimon_otel")
    cycles = set()
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back is not None:
                cycles.add(" -> ".join((module, *back)))
    assert not cycles, "import cycles:\n" + "\n".join(sorted(cycles))


def test_the_package_is_grouped_by_the_flow() -> None:
    """The top of the package holds the public API and what every part shares; the rest lives in its part."""
    root = Path(__file__).resolve().parents[1] / "src" / "aimon_otel"
    top = sorted(path.name for path in root.glob("*.py"))
    shared = ["config.py", "errors.py", "faults.py", "semconv.py", "version.py"]
    assert top == sorted(["__init__.py", "cli.py", "middleware.py", *shared])
    parts = sorted(path.name for path in root.iterdir() if path.is_dir() and path.name != "__pycache__")
    assert parts == ["attribution", "backend", "billing", "budgets", "instrumentation", "pricing", "testing"]
