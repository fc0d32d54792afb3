"""What the benchmarks share: CPU time and children read from /proc, percentiles, and which code was
measured. Light on purpose (the standard library only): bench/lifecycle.py's load generator imports
its module in a process of its own."""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK  # utime + stime


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def source_state() -> dict:
    """Which code was measured: HEAD and the uncommitted changes to the service's code."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    changed = git("status", "--porcelain", "--", "scn_workflow", "migrations", "web.py", "worker.py").splitlines()
    return {"head": git("rev-parse", "--short", "HEAD"), "uncommitted_changes_in_scn_workflow": len(changed),
            "changed": changed}
