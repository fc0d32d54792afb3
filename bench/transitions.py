"""One workflow transition in process, against a bare single-row UPDATE, on SQLite and PostgreSQL.

    .venv/bin/python bench/transitions.py [--n 100] [--rounds 10] [--only sqlite|postgres]

A transition is `services.nominations.fire` end to end: a unit of work, loading the nomination,
its facts, the shared machine, the version-checked UPDATE, the hash-chained event row, the
outbox row and the commit; `Services` is built without the app, so nothing is published. The
baseline is `UPDATE nominations SET version = version + 1 WHERE id = :id` committed on its own
through the same engine, interleaved one for one with the transitions so that drift hits both.
Each of --n nominations is submitted and returned for revision --rounds times. PostgreSQL runs in
a temporary database (tests/harness.py). Figures also go to bench/results/transitions.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
# This file is named like the `transitions` library the domain imports: keep its folder off sys.path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

import sqlalchemy as sa  # noqa: E402

from scn_workflow.config import Settings  # noqa: E402
from scn_workflow.db import migrate  # noqa: E402
from scn_workflow.db import tables as t  # noqa: E402
from scn_workflow.domain.model import Actor, Role  # noqa: E402
from scn_workflow.services import Services, nominations  # noqa: E402
from tests.harness import create_database, drop_database  # noqa: E402

SUBMITTER, REVIEWER = Actor("sub-id", Role.SUBMITTER, "ID"), Actor("rev-sg", Role.REVIEWER, "SG")
BARE_UPDATE = sa.text("UPDATE nominations SET version = version + 1 WHERE id = :id")
DRAFT = {"csco_name": "Bench Officer", "csco_email": "csco@bench.example", "vision": "A benchmark vision.",
         "focus_areas": ["civic_social"], "projects": [{"title": "Village e-services", "focus_area": "civic_social"}]}


class Clock:
    """A moment inside the open cycle, one microsecond later at each call."""

    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=1)
        return self.now


def run(database: str, url: str, n: int, rounds: int) -> dict:
    migrate.upgrade(url)
    svc = Services(Settings(instance_path=tempfile.gettempdir(), database_url=url), clock=Clock())
    with svc.engine.begin() as connection:
        connection.execute(sa.insert(t.member_states), [{"code": "ID", "name": "Indonesia"},
                                                        {"code": "SG", "name": "Singapore"}])
        connection.execute(sa.insert(t.cycles).values(
            code="ASCN-2026", name="benchmark cycle", opens_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
            closes_at=datetime(2027, 1, 1, tzinfo=timezone.utc), limit_per_state=3))
        connection.execute(sa.insert(t.users), [
            {"username": a.username, "email": f"{a.username}@bench.example", "role": a.role.value,
             "member_state": a.member_state, "password_hash": "-"} for a in (SUBMITTER, REVIEWER)])
    versions = {}
    for i in range(n):
        created = nominations.create(svc, SUBMITTER, dict(DRAFT, city_name=f"Bench City {i:04d}"))
        versions[created.id] = created.version
    timings = {"transition": [], "bare": []}

    def transition(nid: int, trigger: str, actor: Actor, comment: str | None) -> None:
        began = time.perf_counter_ns()
        versions[nid] = nominations.fire(svc, actor, nid, trigger, versions[nid], comment=comment).version
        timings["transition"].append(time.perf_counter_ns() - began)

    def bare(nid: int) -> None:
        began = time.perf_counter_ns()
        with svc.engine.begin() as connection:
            connection.execute(BARE_UPDATE, {"id": nid})
        timings["bare"].append(time.perf_counter_ns() - began)
        versions[nid] += 1

    def one_round() -> None:
        for nid in versions:
            transition(nid, "submit", SUBMITTER, None)
            bare(nid)
            transition(nid, "return_for_revision", REVIEWER, "Please revise.")
            bare(nid)

    one_round()  # warm-up: statement caches, the pool, the page cache
    timings["transition"].clear()
    timings["bare"].clear()
    for _ in range(rounds):
        one_round()
    with svc.engine.connect() as connection:
        events = connection.scalar(sa.select(sa.func.count()).select_from(t.events))
    svc.engine.dispose()
    if events != n * (1 + 2 * (rounds + 1)):  # created, then a submit and a return per round
        raise SystemExit(f"{database}: {events} events written, not {n * (1 + 2 * (rounds + 1))}")
    fired, bare = (statistics.median(timings[k]) / 1000 for k in ("transition", "bare"))
    return {"database": database, "transitions": len(timings["transition"]), "median_us": round(fired),
            "per_s": round(len(timings["transition"]) / (sum(timings["transition"]) / 1e9)),
            "bare_update_median_us": round(bare), "ratio": round(fired / bare, 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100, help="nominations")
    parser.add_argument("--rounds", type=int, default=10, help="submit + return_for_revision per nomination")
    parser.add_argument("--only", choices=("sqlite", "postgres"))
    args = parser.parse_args(argv)
    results = []
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory(prefix="scn-bench-") as tmp:
            results.append(run("sqlite", f"sqlite:///{tmp}/bench.sqlite3", args.n, args.rounds))
    if args.only in (None, "postgres"):
        url = create_database("scn_bench")
        try:
            results.append(run("postgresql", url, args.n, args.rounds))
        finally:
            drop_database(url)
    print(f"{'database':12s} {'transitions':>11s} {'median µs':>10s} {'per s':>7s} {'bare UPDATE µs':>15s} "
          f"{'ratio':>6s}")
    for r in results:
        print(f"{r['database']:12s} {r['transitions']:>11} {r['median_us']:>10} {r['per_s']:>7} "
              f"{r['bare_update_median_us']:>15} {r['ratio']:>6}")
    path = HERE / "results" / "transitions.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "n": args.n,
                                "rounds": args.rounds, "results": results}, indent=2) + "\n")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
