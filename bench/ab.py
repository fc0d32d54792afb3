"""Before and after side by side: two copies of the tree, each with its own services, loaded at once.

    git worktree add /tmp/before <ref>
    .venv/bin/python bench/ab.py --a /tmp/before [--b .] [--seconds 20] [--clients 48] [...]

Each copy (`--a`, `--b`: project trees with web.py, worker.py and scn_workflow/; --b defaults to
this one) gets its own temporary database, redis-server, SMTP sink, gunicorn and Celery worker
(bench/lifecycle.py's Service), and bench/lifecycle.py's phases run on both at the same time,
phase by phase. Whatever else the machine does then hits both alike, which figures taken minutes
apart on a shared machine do not. Each side has about half of the machine, so the figures are
lower than a run of lifecycle.py alone: read the ratio b/a. This one process drives both sides,
so its CPU ("bench") is counted in full against each side. The other options are lifecycle.py's.
Figures go to bench/results/ab.json.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

from bench.lifecycle import ROOT, Service, figures, options, report, run_phases, write  # noqa: E402


def side_by_side(a: dict, b: dict) -> str:
    lines = [f"{'figure':44s} {'a':>10s} {'b':>10s}       {'b/a':>6s}"]
    for (label, va, unit, _, target), (_, vb, _, _, _) in zip(figures(a), figures(b)):
        ratio = f"{vb / va:6.3f}" if va and vb is not None else ""
        lines.append(f"{label:44s} {va if va is not None else '-':>10} {vb if vb is not None else '-':>10} "
                     f"{unit:5s} {ratio:>6s}  {target if target != 'baseline' else ''}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = options(clients=48)
    parser.add_argument("--a", type=Path, required=True, help="the project tree before")
    parser.add_argument("--b", type=Path, default=ROOT, help="the project tree after (default: this one)")
    args = parser.parse_args(argv)
    roots = {"a": args.a.resolve(), "b": args.b.resolve()}
    for root in roots.values():
        if not (root / "web.py").exists() or not (root / "scn_workflow").is_dir():
            parser.error(f"{root} is not a project tree (web.py, scn_workflow/)")
    began, results, failures = time.time(), {}, []
    in_step = threading.Barrier(2, timeout=1800)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scn-bench-ab-")))
        sides = {name: Service(root, workdir / name, stack, args.nominations) for name, root in roots.items()}
        print(f"a = {roots['a']}\nb = {roots['b']}\nset up in {time.time() - began:.0f} s; load average "
              f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; both sides run at once")

        def run(name: str) -> None:
            try:
                results[name] = run_phases(sides[name], args, between=in_step.wait)
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after the other side stops
                failures.append(exc)
                in_step.abort()
        threads = [threading.Thread(target=run, args=(name,)) for name in sides]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if failures:
        raise failures[0]
    for name in ("a", "b"):
        print(f"side {name}:")
        report(results[name])
    print(side_by_side(results["a"], results["b"]))
    write("ab", {"a": str(roots["a"]), "b": str(roots["b"]), "options": {k: str(v) for k, v in vars(args).items()},
                 "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "wall_s": round(time.time() - began),
                 "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
