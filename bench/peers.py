"""aimon-otel's per-call overhead beside the other Python GenAI instrumentations, one table.

Each peer gets its own virtualenv under ``bench/.venvs/`` with the SDKs pinned in
``constraints/newest.txt``; ``bench/overhead.py`` runs in each (bare and instrumented rounds
interleaved in one process) and the medians are printed side by side. A peer that cannot be
installed or imported beside today's SDKs is skipped with the reason.

    .venv/bin/python bench/peers.py [--calls 200] [--rounds 5] [--only openllmetry ...]
    .venv/bin/python bench/peers.py --instructions [--calls 20] [--only otel-openai-v2]   # callgrind, steadier

Needs network access to a package index the first time (pip), nothing after.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENVS = ROOT / "bench" / ".venvs"
WORKER = ROOT / "bench" / "overhead.py"
CONSTRAINTS = ROOT / "constraints" / "newest.txt"


@dataclass(frozen=True)
class Peer:
    variant: str
    label: str
    packages: tuple[str, ...]


PEERS = (
    Peer(
        "openllmetry",
        "OpenLLMetry 0.62.4",
        ("opentelemetry-instrumentation-openai==0.62.4", "opentelemetry-instrumentation-anthropic==0.62.4"),
    ),
    # 2.4b0 imports ``httpx`` (openai 3.x brings only httpx2) and a module that opentelemetry-util-genai
    # removed in 1.2b0; with both given it runs. It has no Anthropic instrumentation.
    Peer(
        "otel-openai-v2",
        "OTel official openai-v2 2.4b0",
        ("opentelemetry-instrumentation-openai-v2==2.4b0", "opentelemetry-util-genai==1.1b0", "httpx"),
    ),
    # openlit >= 1.27 requires anthropic < 1.0, so pip picks the newest release that installs beside 2.x.
    Peer("openlit", "OpenLIT", ("openlit",)),
)
BASE_PACKAGES = ("openai", "anthropic", "opentelemetry-sdk")


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


def peer_python(peer: Peer) -> tuple[Path | None, str]:
    """The peer's virtualenv python, built on first use; or None and why it could not be."""
    home = VENVS / peer.variant
    python = home / "bin" / "python"
    marker = home / ".installed"
    if marker.exists():
        return python, marker.read_text()
    venv.create(home, with_pip=True, clear=True)
    install = _run([str(python), "-m", "pip", "install", "-q", "-c", str(CONSTRAINTS), *BASE_PACKAGES, *peer.packages])
    if install.returncode != 0:
        return None, f"pip install failed: {_last_line(install.stderr)}"
    versions = _run([str(python), "-m", "pip", "freeze"]).stdout
    wanted = {p.split("==")[0] for p in peer.packages}
    installed = ", ".join(line for line in versions.splitlines() if line.split("==")[0] in wanted)
    marker.write_text(installed)
    return python, installed


def run_worker(python: Path, variant: str, calls: int, rounds: int) -> tuple[dict[str, object] | None, str]:
    done = _run(
        [str(python), str(WORKER), "--variant", variant, "--calls", str(calls), "--rounds", str(rounds), "--json"]
    )
    if done.returncode != 0:
        return None, f"failed to run: {_last_line(done.stderr)}"
    report: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    warnings = [line for line in done.stderr.splitlines() if "Error" in line]
    return report, (f"warned while running: {_last_line(warnings[-1])}" if warnings else "")


def instructions_main(calls: int, only: list[str] | None) -> None:
    """Instructions per call under callgrind (``bench/instructions.py``) for aimon-otel and each peer."""
    script = ROOT / "bench" / "instructions.py"
    runs: list[tuple[str, Path, str]] = [("aimon-otel", Path(sys.executable), "aimon")]
    for peer in PEERS:
        if only is None or peer.variant in only:
            python, installed = peer_python(peer)
            if python is None:
                print(f"- {peer.label}: skipped, {installed}")
                continue
            runs.append((f"{peer.label} ({installed})", python, peer.variant))
    print(f"callgrind instructions per call, slope of {calls} and {3 * calls} calls\n")
    print("| instrumentation | workload | bare | added |")
    print("|---|---|---|---|")
    for label, python, variant in runs:
        done = _run([str(python), str(script), "--variant", variant, "--calls", str(calls), "--json"])
        if done.returncode != 0:
            print(f"| {label} | failed: {_last_line(done.stderr)} | | |")
            continue
        for workload, row in json.loads(done.stdout.strip().splitlines()[-1]).items():
            print(f"| {label} | {workload} | {row['bare'] / 1e6:.2f} M | +{row['added'] / 1e6:.2f} M |")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=None, help="peers to run (default: all)")
    parser.add_argument("--instructions", action="store_true", help="count instructions under callgrind instead")
    args = parser.parse_args()
    if args.instructions:
        instructions_main(args.calls if args.calls != 200 else 20, args.only)
        return

    columns: list[tuple[str, dict[str, dict[str, float]]]] = []
    notes: list[str] = []
    ours, note = run_worker(Path(sys.executable), "aimon", args.calls, args.rounds)
    if ours is None:
        raise SystemExit(f"aimon-otel: {note}")
    columns.append(("aimon-otel", ours["results"]))  # type: ignore[arg-type]
    for peer in PEERS:
        if args.only is not None and peer.variant not in args.only:
            continue
        python, installed = peer_python(peer)
        if python is None:
            notes.append(f"{peer.label}: skipped, {installed}")
            continue
        report, note = run_worker(python, peer.variant, args.calls, args.rounds)
        if report is None:
            notes.append(f"{peer.label} ({installed}): skipped, {note}")
            continue
        columns.append((f"{peer.label}", report["results"]))  # type: ignore[arg-type]
        notes.append(f"{peer.label}: {installed}" + (f"; {note}" if note else ""))

    print(
        f"openai {ours['openai']}, anthropic {ours['anthropic']}, in-process transport; "
        f"{args.rounds} interleaved rounds of {args.calls} calls; median us/call; overhead vs bare in one process\n"
    )
    workloads = list(columns[0][1])
    print("| workload | " + " | ".join(name for name, _ in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for workload in workloads:
        cells = []
        for _, results in columns:
            r = results.get(workload)
            if r is None:
                cells.append("n/a")
                continue
            overhead = (r["instrumented_us"] / r["bare_us"] - 1) * 100
            cells.append(f"{r['instrumented_us']:.0f} vs {r['bare_us']:.0f} us bare: **+{overhead:.1f}%**")
        print(f"| {workload} | " + " | ".join(cells) + " |")
    print()
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
