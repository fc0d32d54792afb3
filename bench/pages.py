"""Twenty people working at once: every page's p95, against GET /healthz in the same run.

    .venv/bin/python bench/pages.py [--people 20] [--seconds 60] [--think 1.0] [--nominations 200] [--rows 0]

The service and its world are bench/lifecycle.py's (PostgreSQL, Redis, gunicorn, a Celery
worker), with four reviewers; half of the --nominations drafts are submitted and checked. Each
person (submitters of several member states, and reviewers) signs in through the HTML form with
the CSRF token from the page, and gets a bearer token; then, until --seconds are up, asks for one
of their pages at random and reads it for 0.5 to 1.5 times --think seconds: the list of
nominations, a nomination's page, the review desk (reviewers), the API's list and nomination,
and /healthz, the baseline. --rows COPYs that many more nominations in first. Figures go to
bench/results/pages.json.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

from bench.lifecycle import (PASSWORD, ROOT, Client, Fired, Service, copy_rows, fire, in_threads,  # noqa: E402
                             ms, write)

CSRF = re.compile(rb'name="csrf_token"[^>]*value="([^"]+)"')
TARGET_MS = 100


def sign_in(svc: Service, username: str) -> Client:
    http = Client(svc.web.url)
    status, page = http.request("GET", "/login")
    found = CSRF.search(page)
    if status != 200 or not found:
        raise RuntimeError(f"GET /login: {status}, {'a' if found else 'no'} CSRF token")
    status, page = http.request("POST", "/login", form={"username": username, "password": PASSWORD,
                                                        "csrf_token": found.group(1).decode()})
    if status not in (302, 303):
        raise RuntimeError(f"sign-in of {username}: {status} {page[:200]!r}")
    return http


def pages_of(svc: Service, role: str, member_state: str | None, rng: random.Random) -> dict[str, list[str]]:
    """The pages a person of this role uses, by name, on nominations they may see."""
    seen = [n.id for n in svc.pool if (n.member_state == member_state if role == "submitter" else n.submits)]
    ids = rng.sample(seen, min(5, len(seen)))
    pages = {"list": ["/nominations"], "nomination": [f"/nominations/{i}" for i in ids],
             "API list": ["/api/v1/nominations"], "API nomination": [f"/api/v1/nominations/{i}" for i in ids],
             "/healthz": ["/healthz"]}
    return pages | ({"review desk": ["/review"]} if role == "reviewer" else {})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--think", type=float, default=1.0, help="mean seconds a person reads a page")
    parser.add_argument("--nominations", type=int, default=200, help="drafts, half of them submitted")
    parser.add_argument("--rows", type=int, default=0, help="nominations COPYed in besides")
    parser.add_argument("--root", type=Path, default=ROOT, help="the project tree to run (default: this one)")
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scn-bench-pages-")))
        svc = Service(args.root.resolve(), workdir, stack, args.nominations, reviewers=4)
        http = Client(svc.web.url)
        for nom in svc.pool[::2]:
            fire(http, nom, Fired())
        for nom in svc.pool[::2]:
            svc.mailbox.settle(nom)
        inserted = copy_rows(svc, args.rows) if args.rows else None
        reviewers = [u for u in svc.world.users if u[1] == "reviewer"]
        submitters = [u for u in svc.world.users if u[1] == "submitter"]
        some = min(len(reviewers), max(1, args.people // 5))
        people = reviewers[:some] + submitters[:args.people - some]
        times, errors = defaultdict(list), []
        deadline = time.time() + args.seconds

        def person(i: int) -> None:
            username, role, ms_ = people[i]
            browser, token = sign_in(svc, username), svc.world.tokens[username]
            rng = random.Random(i)
            pages = pages_of(svc, role, ms_, rng)
            while time.time() < deadline:
                name = rng.choice(list(pages))
                path = rng.choice(pages[name])
                began = time.perf_counter()
                status, body = browser.request("GET", path, token=token if path.startswith("/api/") else None)
                times[name].append(time.perf_counter() - began)
                if status != 200:
                    errors.append(f"{username} GET {path}: {status} {body[:120]!r}")
                time.sleep(rng.uniform(0.5, 1.5) * args.think)
        in_threads(len(people), person)
    by_page = {name: ms(values) for name, values in sorted(times.items())}
    everything = ms([t for name, values in times.items() if name != "/healthz" for t in values])
    base = by_page.get("/healthz", {}).get("p95_ms")
    print(f"{len(people)} people for {args.seconds:g} s, {sum(map(len, times.values()))} requests, "
          f"{len(errors)} errors {errors[:3] or ''}")
    print(f"{'page':16s} {'requests':>8s} {'p50 ms':>7s} {'p95 ms':>7s} {'p95 / healthz p95':>18s}  target")
    for name, d in list(by_page.items()) + [("every page", everything)]:
        print(f"{name:16s} {d['count']:>8} {d['p50_ms']:>7} {d['p95_ms']:>7} {d['p95_ms'] / base if base else 0:>18.2f}"
              f"  {'' if name == '/healthz' else f'< {TARGET_MS} ms'}")
    write("pages", {"people": len(people), "seconds": args.seconds, "think_s": args.think, "rows": inserted,
                    "by_page": by_page, "every_page": everything, "errors": errors[:20]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
