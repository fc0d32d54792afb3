"""CPU per event of the worker's reactions, run in this process on PostgreSQL, by batch size.

    .venv/bin/python bench/reactions.py [--events 200] [--batches 1 25]

What a worker's pool process spends on the checks of a submission and on the mails of an event,
without Celery, HTTP or other processes in the way: N nominations are created and submitted
through the service layer on a temporary PostgreSQL database (SCN_TEST_POSTGRES_URL, default
postgresql://postgres@127.0.0.1:5432/postgres; dropped at the end), the relay is called by hand,
and then `checks.run_checks_many` and `notifications.notify_many` (for the submissions, then for
their `checks.completed` events) run over the events in batches of each size given. The mail goes
to an aiosmtpd server in this process. Printed per event: the process's CPU (the SMTP server's
thread included, as docs/performance.md's round 3 figures were taken) and this thread's alone.
Then composing the 2 mails of an event: rendered once (`notifications.render`) against rendered
for each recipient. The script uses only functions that round 2's code has too (except `render`):
copied with bench/roundtrips.py into a checkout of older code (`git worktree add`), the same
command there gives the "before" figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# bench/transitions.py is named like the `transitions` library the domain imports: keep this
# folder off sys.path, and put the project root on it (for tests.* and bench.*).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))


def _per_event(label: str, fn, event_ids: list[str], batch: int) -> None:
    process, thread, wall = time.process_time(), time.thread_time(), time.perf_counter()
    for start in range(0, len(event_ids), batch):
        fn(event_ids[start:start + batch])
    n = max(1, len(event_ids))
    print(f"{label:34s} batch {batch:3d}: {1000 * (time.process_time() - process) / n:6.2f} ms CPU/event "
          f"(this thread {1000 * (time.thread_time() - thread) / n:6.2f}), "
          f"{1000 * (time.perf_counter() - wall) / n:6.2f} ms wall/event, {len(event_ids)} events")


def reactions(events: int, batches: list[int]) -> None:
    from bench.lifecycle import content
    from bench.roundtrips import service_in_process
    from scn_workflow.services import checks, notifications, relay

    for batch in batches:  # a fresh database per batch size: each run finds the same work to do
        with service_in_process() as (svc, client, token):
            headers = {"Authorization": f"Bearer {token('sub-id-1')}"}
            for i in range(events):
                n = client.post("/api/v1/nominations", json=content(f"City {i}"), headers=headers).json
                answer = client.post(f"/api/v1/nominations/{n['id']}/transitions", json={"trigger": "submit"},
                                     headers=headers | {"If-Match": f'"{n["version"]}"'})
                assert answer.status_code == 200, answer.json

            def published() -> dict[str, list[str]]:
                out: dict[str, list[str]] = {}
                relay.publish(svc, lambda queue, ids, **_: out.setdefault(queue, []).extend(ids), limit=100_000)
                return out

            first = published()
            _per_event("checks (nomination.submitted)", lambda ids: checks.run_checks_many(svc, ids),
                       first["checks"], batch)
            _per_event("notifications (submitted, 2 mails)", lambda ids: notifications.notify_many(svc, ids),
                       first["notifications"], batch)
            _per_event("notifications (checks.completed)", lambda ids: notifications.notify_many(svc, ids),
                       published()["notifications"], batch)


def composing(rounds: int = 3000) -> None:
    try:
        from scn_workflow.services.notifications import compose, render
    except ImportError:  # code older than round 3: no render(), nothing to compare
        print("composing: this code has no notifications.render")
        return
    settings = SimpleNamespace(mail_from="scn@example.org")
    event = SimpleNamespace(event_id="4b1f7a52-0000-4000-8000-000000000001", name="nomination.returned",
                            comment="Please revise.", to_state="drafted")
    nomination = SimpleNamespace(reference="ASCN-2018-ID-002", city_name="Makassar", member_state="ID",
                                 state="drafted", cycle="ASCN-2018")
    date = "Sat, 28 Nov 2026 21:00:00 -0000"
    recipients = [("Placeholder one", "one@id.example"), ("Placeholder two", "two@id.example")]

    def each_rendered():
        for who, address in recipients:
            compose(settings, event, nomination, who, address, date)

    def rendered_once():
        rendered = render(event, nomination)
        for who, address in recipients:
            compose(settings, event, nomination, who, address, date, rendered)

    for label, fn in (("rendered for each recipient", each_rendered), ("rendered once", rendered_once)):
        fn()
        cpu = time.process_time()
        for _ in range(rounds):
            fn()
        print(f"composing an event's 2 mails, {label:27s}: {1e6 * (time.process_time() - cpu) / rounds:6.0f} µs CPU")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200, help="submissions per batch size")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 25])
    args = parser.parse_args()
    reactions(args.events, args.batches)
    composing()
    return 0


if __name__ == "__main__":
    sys.exit(main())
