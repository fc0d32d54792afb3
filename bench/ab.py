"""Before and after on the same machine at the same moment: two copies of the service, loaded together.

    .venv/bin/python bench/ab.py --a /path/to/copy-before [--b .] [--seconds 15] [--rounds 2]
                                 [--connections 16] [--nominations 128] [--worker-class sync|gthread]
                                 [--threads 4] [--concurrency 2] [--skip web latency delivered lifecycle]
                                 [--b-worker-class ...] [--b-threads N] [--b-concurrency N]

A copy of an older version of the tree: `git worktree add /tmp/before <commit>`, or
`git archive <commit> | tar -x -C /tmp/before`. The --b-* options change side b's setup only
(with --b equal to --a, that compares settings; but a side with more threads or processes also
takes more of the shared CPUs, so its rate is flattered: read the CPU per unit there).

On a machine shared with other work, the rates of bench/lifecycle.py measured a few minutes apart
differ by a third or more (what the other processes take changes from minute to minute), which hides
a 10% change. So here both copies run side by side, each with its own temporary PostgreSQL database,
redis-server, gunicorn (-w 2), Celery worker (-c 2), load generator and SMTP sink (bench/lifecycle.py's
parts), and every phase drives both at once with the same load: whatever else the machine does hits
both alike, and the figure to read is the ratio b / a. Each side gets about half of the machine, so
the absolute figures are lower than bench/lifecycle.py's.

Phases, each --rounds times, both sides at once:
  web        transitions over HTTP (submit, return_for_revision, ...) with no worker running, --connections
             connections per side; then the same over one connection per side (latency without queueing)
  delivered  the same with the workers running, each transition waiting for the mails of the one before
  lifecycle  create, submit, review, accept, handover, every mail
For each: rates, HTTP latency, and CPU milliseconds per unit of work by process group (read from /proc).
The copy given as --a (or --b) must be a whole project tree (web.py, worker.py, scn_workflow/); its
processes run with it as working directory and PYTHONPATH. Results go to bench/results/ab.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

from bench.lifecycle import (CpuMeter, Gunicorn, LoadGenProcess, build_world, children, cpu_per,  # noqa: E402
                             issue_tokens, make_pool, max_event_pk, purge_queues, transitions_figures,
                             verify_mails)
from bench.workers import postgres_backends  # noqa: E402
from tests.processes import stop_process_group  # noqa: E402

RESULTS = HERE / "results" / "ab.json"
QUEUES = "checks,notifications,handover,webhooks"


class Worker:
    """`celery -A worker worker -Q ... -c N` run from a project tree."""

    def __init__(self, env: dict, log_path: Path, root: Path, concurrency: int, name: str):
        self.env, self.log_path, self.root, self.concurrency, self.name = env, log_path, root, concurrency, name
        self.process = None

    def start(self) -> None:
        from tests.integration.conftest import BIN
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(BIN / "celery"), "-A", "worker", "worker", "-Q", QUEUES, "-c", str(self.concurrency),
                 "--loglevel", "INFO", "--without-mingle", "--without-gossip", "--hostname", f"{self.name}@%h"],
                cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while b"ready." not in self.log_path.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"worker {self.name} did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        stop_process_group(self.process)


class Side:
    """One whole copy of the service with its own database, broker, servers and load generator."""

    def __init__(self, name: str, root: Path, stack: ExitStack, workdir: Path, args):
        import sqlalchemy as sa

        from bench.workers import temporary_database
        from scn_workflow.config import Settings
        from scn_workflow.services import Services
        from tests.integration.conftest import RedisServer, worker_env
        self.name, self.root = name, root
        folder = workdir / name
        folder.mkdir()
        self.loadgen = LoadGenProcess()
        stack.callback(self.loadgen.stop)
        self.redis = RedisServer(folder)
        self.redis.start()
        stack.callback(self.redis.stop)
        self.db_url = stack.enter_context(temporary_database())
        database = sa.engine.make_url(self.db_url).database
        self.svc = Services(Settings(instance_path=str(folder / "bench"), database_url=self.db_url))
        stack.callback(self.svc.engine.dispose)
        self.world = build_world(self.svc)
        env = worker_env(self.db_url, self.redis.url, f"smtp://127.0.0.1:{self.loadgen.smtp_port}", folder / "instance")
        env["PYTHONPATH"] = str(root)
        worker_class, threads, concurrency = args.worker_class, args.threads, args.concurrency
        if name == "b":
            worker_class = args.b_worker_class or worker_class
            threads = args.b_threads or threads
            concurrency = args.b_concurrency or concurrency
        self.setup = f"gunicorn -w 2 --worker-class {worker_class}" + (
            f" --threads {threads}" if worker_class == "gthread" else "") + f"; celery -c {concurrency}"
        self.gunicorn = Gunicorn(env, folder / "gunicorn.log", 2, worker_class, threads, root=root)
        self.gunicorn.start()
        stack.callback(self.gunicorn.stop)
        self.loadgen.call("target", host="127.0.0.1", port=self.gunicorn.port)
        self.tokens = issue_tokens(f"http://127.0.0.1:{self.gunicorn.port}", [u for u, _, _ in self.world["users"]])
        self.pool_mail = make_pool(self.svc, self.world, self.tokens, args.nominations, "Mail")
        self.loadgen.call("pool", name="web", nominations=make_pool(self.svc, self.world, self.tokens,
                                                                     args.nominations, "Web"))
        self.loadgen.call("pool", name="mail", nominations=self.pool_mail)
        self.worker = Worker(env, folder / "celery.log", root, concurrency, f"{name}-celery")
        stack.callback(self.worker.stop)
        self.groups = {"gunicorn workers": self.gunicorn.worker_pids,
                       "gunicorn master": lambda: [self.gunicorn.process.pid],
                       "celery pool": lambda: children(self.worker.process.pid) if self.worker.process else [],
                       "celery main": lambda: [self.worker.process.pid] if self.worker.process else [],
                       "redis-server": lambda: [self.redis.process.pid],
                       "postgres backends": lambda: postgres_backends(database),
                       "load generator + SMTP sink": lambda: [self.loadgen.pid]}

    def measured(self, fn) -> dict:
        meter = CpuMeter(self.groups)
        meter.start()
        out = fn()
        out["cpu"] = meter.stop()
        return out


def both(sides: list[Side], fn) -> dict:
    """Run fn(side) for every side at the same time; {side name: result}."""
    out, errors = {}, []

    def run(side):
        try:
            out[side.name] = fn(side)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)
    threads = [threading.Thread(target=run, args=(side,)) for side in sides]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return out


def web_only(side: Side, seconds: float, connections: int) -> dict:
    out = side.measured(lambda: transitions_figures(side.loadgen.call(
        "transitions", pool="web", seconds=seconds, connections=connections, deliver=False), None))
    purge_queues(side.redis.url)
    out["cpu_ms_per_transition"] = cpu_per(out["cpu"], out["transitions"])
    out["rate"] = out["http_per_s"]
    return out


def delivered(side: Side, seconds: float, connections: int) -> dict:
    ids = [n["id"] for n in side.pool_mail]
    mark = max_event_pk(side.svc)

    def run():
        figures = side.loadgen.call("transitions", pool="mail", seconds=seconds, connections=connections,
                                    deliver=True)
        return transitions_figures(figures, verify_mails(side.svc, side.loadgen, ids, mark))
    out = side.measured(run)
    out["cpu_ms_per_transition"] = cpu_per(out["cpu"], out["transitions"])
    out["rate"] = out["delivered_per_s"]
    return out


def lifecycles(side: Side, seconds: float, connections: int) -> dict:
    mark = max_event_pk(side.svc)

    def run():
        figures = side.loadgen.call(
            "lifecycles", seconds=seconds, connections=connections,
            submitters={ms: side.tokens[f"sub-{ms.lower()}-1"] for ms in side.world["member_states"]},
            reviewers=[side.tokens["rev-a"], side.tokens["rev-b"]], prefix="Life")
        check = verify_mails(side.svc, side.loadgen, figures["nominations"], mark)
        span = max(1e-9, check["last_mail"] - figures["first_request"])
        return {"lifecycles": figures["lifecycles"], "rate": round(figures["lifecycles"] / span, 2),
                "missing": check["missing"], "duplicates": check["duplicates"],
                "http_latency": figures["http_latency"], "error_count": figures["error_count"]}
    out = side.measured(run)
    out["cpu_ms_per_lifecycle"] = cpu_per(out["cpu"], out["lifecycles"])
    return out


def geomean(values: list[float]) -> float:
    values = [v for v in values if v and v > 0]
    return math.exp(statistics.fmean(math.log(v) for v in values)) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", required=True, help="project tree of side a (before)")
    parser.add_argument("--b", default=str(ROOT), help="project tree of side b (after; default this one; "
                                                      "the same as --a to compare settings only)")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16, help="client connections per side")
    parser.add_argument("--nominations", type=int, default=128)
    parser.add_argument("--worker-class", choices=("sync", "gthread"), default="sync")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--b-worker-class", choices=("sync", "gthread"), help="side b only (default: as a)")
    parser.add_argument("--b-threads", type=int, help="side b only")
    parser.add_argument("--b-concurrency", type=int, help="side b only")
    parser.add_argument("--skip", nargs="*", default=[], choices=("web", "latency", "delivered", "lifecycle"))
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    roots = {"a": Path(args.a).resolve(), "b": Path(args.b).resolve()}
    for root in roots.values():
        if not (root / "web.py").exists() or not (root / "scn_workflow").is_dir():
            parser.error(f"{root} is not a project tree (web.py, scn_workflow/)")

    began = time.perf_counter()
    results: dict = {"benchmark": "ab", "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "a": str(roots["a"]), "b": str(roots["b"]), "cpus": os.cpu_count(),
                     "load_average_start": os.getloadavg(), "options": vars(args), "phases": {}}
    print(f"a = {roots['a']}\nb = {roots['b']}\nload average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; "
          f"both sides run at once")

    def record(phase: str, round_no: int, res: dict, unit: str, cpu_key: str | None) -> None:
        a, b = res["a"], res["b"]
        ratio = b["rate"] / a["rate"] if a["rate"] else float("nan")
        row = {"a": a, "b": b, "rate_ratio_b_over_a": round(ratio, 3)}
        results["phases"].setdefault(phase, []).append(row)
        line = (f"   {phase:10s} round {round_no}: a {a['rate']:8.2f} {unit}, b {b['rate']:8.2f} {unit}, "
                f"b/a {ratio:5.3f}")
        if cpu_key:
            ca, cb = a[cpu_key], b[cpu_key]
            line += "; CPU ms per unit a/b: " + ", ".join(
                f"{k} {ca.get(k)}/{cb.get(k)}" for k in ("web", "worker", "postgres", "server total") if ca.get(k))
        print(line)

    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scn-bench-ab-")))
        sides = [Side(name, roots[name], stack, workdir, args) for name in ("a", "b")]
        results["setup"] = {side.name: side.setup for side in sides}
        print(f"a: {sides[0].setup}\nb: {sides[1].setup}\nsetup done in {time.perf_counter() - began:.0f} s")
        for r in range(1, args.rounds + 1):
            if "web" not in args.skip:
                record("web", r, both(sides, lambda s: web_only(s, args.seconds, args.connections)),
                       "transitions/s", "cpu_ms_per_transition")
            if "latency" not in args.skip:
                res = both(sides, lambda s: web_only(s, args.seconds / 2, 1))
                for side in res.values():
                    side["rate"] = side["http_latency"]["median_ms"]
                record("latency", r, res, "ms median (1 connection, web only)", None)
        for side in sides:
            side.worker.start()
        both(sides, lambda s: s.loadgen.call("transitions", pool="mail", seconds=1.5, connections=4, deliver=True))
        for r in range(1, args.rounds + 1):
            if "delivered" not in args.skip:
                record("delivered", r, both(sides, lambda s: delivered(s, args.seconds, args.connections)),
                       "transitions/s", "cpu_ms_per_transition")
            if "lifecycle" not in args.skip:
                record("lifecycle", r,
                       both(sides, lambda s: lifecycles(s, args.seconds, max(1, args.connections // 2))),
                       "lifecycles/s", "cpu_ms_per_lifecycle")

    summary = {}
    for phase, rows in results["phases"].items():
        ratios = [row["rate_ratio_b_over_a"] for row in rows]
        summary[phase] = {"rate_ratio_b_over_a_geomean": round(geomean(ratios), 3)}
        key = "cpu_ms_per_transition" if phase in ("web", "delivered") else \
            "cpu_ms_per_lifecycle" if phase == "lifecycle" else None
        if key:
            for group in ("web", "worker", "postgres", "server total"):
                ratios = [row["b"][key].get(group, 0) / row["a"][key][group] for row in rows
                          if row["a"][key].get(group)]
                if ratios:
                    summary[phase][f"cpu_{group.replace(' ', '_')}_ratio_b_over_a"] = round(geomean(ratios), 3)
    results["summary"] = summary
    results["wall_s"] = round(time.perf_counter() - began, 1)
    print("summary (geometric means over rounds; latency: lower is better, the rest: higher is better, "
          "CPU: lower is better):")
    for phase, figures in summary.items():
        print(f"   {phase:10s} " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"written to {out} (whole run {results['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
