"""The cost of one workflow transition, against a bare single-row UPDATE, on SQLite and PostgreSQL.

    .venv/bin/python bench/transitions.py [--n 100] [--rounds 10] [--only sqlite|postgres]

A transition is `scn_workflow.services.nominations.fire` end to end: a new unit of work,
loading the nomination, gathering the trigger's facts, the shared machine, the version-checked
UPDATE, the hash-chained event row, the outbox row and the commit. The baseline is
`UPDATE nominations SET version = version + 1 WHERE id = :id` committed on its own through the
same engine (so it pays the same BEGIN IMMEDIATE, pool checkout and commit). The two are
interleaved one for one, so drift (WAL checkpoints, autovacuum, a busy machine) hits both alike.
`Services` is built without the app, so no after-commit relay runs: only the transaction is
timed. Transitions per second is one thread's: the count over the time spent in transitions.

Each of the N nominations goes submit (as its submitter) then return_for_revision (as a
reviewer, with a comment), ROUNDS times: 2 * N * ROUNDS timed transitions per database. Only
one nomination is active at a time, so the per-state limit never refuses a submit.

PostgreSQL runs in a temporary database created through SCN_TEST_POSTGRES_URL (default
postgresql://postgres@127.0.0.1:5432/postgres) and dropped at the end; when the server is
unreachable it is skipped, unless CI=true, where that is an error. Figures are also written
to bench/results/transitions.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

# This file is named like the `transitions` library and Python puts its folder first on
# sys.path, so `from transitions import Machine` (in the domain) would import this script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import sqlalchemy as sa  # noqa: E402

from scn_workflow.config import Settings  # noqa: E402
from scn_workflow.db import migrate  # noqa: E402
from scn_workflow.db import tables as t  # noqa: E402
from scn_workflow.domain.model import Actor, Role  # noqa: E402
from scn_workflow.domain.reference import ascn  # noqa: E402
from scn_workflow.services import Services, audit, nominations  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "transitions.json"
PG_ADMIN_URL = os.environ.get("SCN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI") == "true"
CYCLE = "ASCN-2026"
SUBMITTER = Actor("sub-id", Role.SUBMITTER, "ID")
REVIEWER = Actor("rev-sg", Role.REVIEWER, "SG")
BARE_UPDATE = sa.text("UPDATE nominations SET version = version + 1 WHERE id = :id")
DRAFT = {
    "city_name": "Banyuwangi", "csco_name": "Bench Officer", "csco_email": "csco@bench.example",
    "vision": "A benchmark vision.", "focus_areas": ["civic_social", "quality_environment"],
    "projects": [{"title": "Village e-services", "focus_area": "civic_social"},
                 {"title": "Clean rivers", "focus_area": "quality_environment"}],
}


class Clock:
    """A fixed moment inside the open cycle, one microsecond later at each call."""

    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=1)
        return self.now


def build_world(svc: Services) -> None:
    """Member states from the reference, one open cycle, a submitter and a reviewer (as tests/conftest.py)."""
    with svc.engine.begin() as connection:
        connection.execute(sa.insert(t.member_states), [
            {"code": m["code"], "name": m["name"], "lead_agency_name": m.get("lead_agency")}
            for m in ascn()["member_states"]])
        connection.execute(sa.insert(t.cycles).values(
            code=CYCLE, name="benchmark cycle", opens_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
            closes_at=datetime(2027, 1, 1, tzinfo=timezone.utc), limit_per_state=3))
        connection.execute(sa.insert(t.users), [
            {"username": a.username, "email": f"{a.username}@bench.example", "role": a.role.value,
             "member_state": a.member_state, "password_hash": "not-a-hash"} for a in (SUBMITTER, REVIEWER)])


def percentile(sorted_ns: list[int], p: float) -> float:
    """Nearest-rank percentile of sorted nanoseconds, in microseconds."""
    index = min(len(sorted_ns) - 1, max(0, round(p / 100 * len(sorted_ns)) - 1))
    return sorted_ns[index] / 1000


def summary(ns: list[int]) -> dict:
    ordered = sorted(ns)
    return {"count": len(ns), "median_us": statistics.median(ordered) / 1000,
            "p99_us": percentile(ordered, 99), "mean_us": statistics.fmean(ordered) / 1000}


def run(database: str, url: str, instance_path: str, n: int, rounds: int) -> dict:
    """Migrate, set up, warm up, then time interleaved transitions and bare UPDATEs."""
    migrate.upgrade(url)
    svc = Services(Settings(instance_path=instance_path, database_url=url), clock=Clock())
    try:
        build_world(svc)
        with svc.engine.connect() as connection:
            server = connection.dialect.server_version_info
        ids, versions = [], {}
        for i in range(n):
            nomination = nominations.create(svc, SUBMITTER, dict(DRAFT, city_name=f"Bench City {i:04d}"))
            ids.append(nomination.id)
            versions[nomination.id] = nomination.version

        def transition(nomination_id: int, trigger: str, actor: Actor, comment: str | None) -> int:
            start = time.perf_counter_ns()
            nomination = nominations.fire(svc, actor, nomination_id, trigger, versions[nomination_id],
                                          comment=comment)
            elapsed = time.perf_counter_ns() - start
            versions[nomination_id] = nomination.version
            return elapsed

        def bare(nomination_id: int) -> int:
            start = time.perf_counter_ns()
            with svc.engine.begin() as connection:
                connection.execute(BARE_UPDATE, {"id": nomination_id})
            elapsed = time.perf_counter_ns() - start
            versions[nomination_id] += 1
            return elapsed

        def one_round(record: bool) -> None:
            for nomination_id in ids:
                submit_ns = transition(nomination_id, "submit", SUBMITTER, None)
                bare_ns = bare(nomination_id)
                return_ns = transition(nomination_id, "return_for_revision", REVIEWER, "Please revise (bench).")
                bare_ns2 = bare(nomination_id)
                if record:
                    timings["submit"].append(submit_ns)
                    timings["return_for_revision"].append(return_ns)
                    timings["bare"] += (bare_ns, bare_ns2)

        timings = {"submit": [], "return_for_revision": [], "bare": []}
        one_round(record=False)  # warm up: statement caches, the pool, the page cache
        started = time.perf_counter()
        for _ in range(rounds):
            one_round(record=True)
        wall_s = time.perf_counter() - started

        checked, broken = audit.verify(svc)
        with svc.engine.connect() as connection:
            event_rows = connection.scalar(sa.select(sa.func.count()).select_from(t.events))
            outbox_rows = connection.scalar(sa.select(sa.func.count()).select_from(t.outbox))
        expected_events = n * (1 + 2 * (rounds + 1))  # created, then submit + return per round
        if broken or event_rows != expected_events or outbox_rows != expected_events:
            raise SystemExit(f"{database}: the run did not write what it should have: "
                             f"{event_rows} events, {outbox_rows} outbox rows (expected {expected_events}); "
                             f"{len(broken)} broken chain(s) of {checked}")
    finally:
        svc.engine.dispose()

    both = timings["submit"] + timings["return_for_revision"]
    fired = summary(both)
    base = summary(timings["bare"])
    return {
        "database": database,
        "server_version": ".".join(map(str, server)) if server else None,
        "nominations": n, "rounds": rounds,
        "transition": fired,
        "submit": summary(timings["submit"]),
        "return_for_revision": summary(timings["return_for_revision"]),
        "transitions_per_s": len(both) / (sum(both) / 1e9),
        "bare_update": base,
        "ratio_median": fired["median_us"] / base["median_us"],
        "wall_s": wall_s,
        "audit_chains_verified": checked,
    }


def run_sqlite(n: int, rounds: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="scn-bench-") as tmp:
        return run("sqlite", f"sqlite:///{tmp}/bench.sqlite3", tmp, n, rounds)


def run_postgres(n: int, rounds: int) -> dict | None:
    name = f"scn_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        why = " ".join(str(exc.orig).split())
        message = f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {why}"
        if IN_CI:
            raise SystemExit(message) from None
        print(f"{message}; skipping PostgreSQL.", file=sys.stderr)
        return None
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        with tempfile.TemporaryDirectory(prefix="scn-bench-") as tmp:
            return run("postgresql", url, tmp, n, rounds)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def table(results: list[dict]) -> str:
    head = ("database", "transitions", "median µs", "p99 µs", "per s", "bare UPDATE median µs", "ratio")
    rows = [(r["database"], str(r["transition"]["count"]), f"{r['transition']['median_us']:.0f}",
             f"{r['transition']['p99_us']:.0f}", f"{r['transitions_per_s']:.0f}",
             f"{r['bare_update']['median_us']:.0f}", f"{r['ratio_median']:.1f}x") for r in results]
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths)))]
    lines += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
              for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100, help="nominations (default 100)")
    parser.add_argument("--rounds", type=int, default=10,
                        help="submit + return_for_revision per nomination (default 10): 2*n*rounds transitions")
    parser.add_argument("--only", choices=("sqlite", "postgres"), help="run one database only")
    args = parser.parse_args(argv)
    if args.n < 1 or args.rounds < 1:
        parser.error("--n and --rounds must be at least 1")

    results = []
    if args.only in (None, "sqlite"):
        results.append(run_sqlite(args.n, args.rounds))
    if args.only in (None, "postgres"):
        result = run_postgres(args.n, args.rounds)
        if result:
            results.append(result)
    if not results:
        print("nothing measured", file=sys.stderr)
        return 0

    print(f"one transition (services.nominations.fire: machine + event + outbox + commit) "
          f"vs a bare single-row UPDATE commit; {args.n} nominations x {args.rounds} rounds")
    print(table(results))
    for r in results:
        print(f"  {r['database']}: submit median {r['submit']['median_us']:.0f} µs, "
              f"return_for_revision median {r['return_for_revision']['median_us']:.0f} µs, "
              f"bare UPDATE p99 {r['bare_update']['p99_us']:.0f} µs")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "transitions",
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(), "sqlalchemy": sa.__version__,
        "machine": platform.machine(), "cpus": os.cpu_count(),
        "results": results,
    }, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
