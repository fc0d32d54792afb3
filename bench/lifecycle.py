"""The service under load over HTTP, with every mail delivered, as a deployment runs it.

    .venv/bin/python bench/lifecycle.py [--seconds 20] [--clients 96] [--nominations 512]
                                        [--rows 100000] [--only healthz mailed latency list] [--root PATH]

It starts, from tests/harness.py: a temporary PostgreSQL database (SCN_TEST_POSTGRES_URL), a
redis-server of its own, an SMTP sink (aiosmtpd, noting when each mail arrives), `gunicorn -w 2
--worker-class gthread --threads 8 web:app` and `celery -A worker worker -Q
checks,notifications,handover,webhooks -c 2`. It drives them only through the command line
(`db upgrade`, `seed --no-demo`, `users create`) and the HTTP API, so the same bench runs against
another copy of the tree (bench/ab.py). The world: the reference member states with two
submitters each, two reviewers of no member state, an admin, one open cycle.

Phases, each figure printed beside its baseline from the same run:
  healthz  GET /healthz from --clients connections: requests/s and CPU per request; then one
           connection alone: the latency of the cheapest request.
  mailed   each client takes its share of --nominations one at a time: submit, then (a reviewer)
           return_for_revision, each with If-Match, each once the mails of the one before arrived.
           Expected mails follow from the world: a submit mails the member state's submitters and,
           after the checks, checks.completed mails the reviewers not of that member state; a
           return mails the state's submitters. The sink must receive each (X-SCN-Event-Id, To)
           once. transitions/s = transitions / (first request .. last mail); CPU per transition
           from /proc, by process group.
  latency  transitions paced at half the mailed rate, then at 20/s: commit-to-mail p50 and p99,
           from each event's occurred_at (taken inside its transaction, so an upper bound) to the
           sink's acceptance of each of its mails.
  list     --rows nominations are COPYed in and VACUUM ANALYZEd, then GET /api/v1/nominations
           with filters, pages and `q`, as an admin, a reviewer and a submitter, one at a time: p95.
  memory   peak resident memory (VmHWM) of the gunicorn workers and the Celery processes, against
           the same read after setup.

Figures go to bench/results/lifecycle.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlencode, urlsplit

HERE = Path(__file__).resolve().parent
# bench/transitions.py is named like the `transitions` library: keep this folder off sys.path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

import psycopg  # noqa: E402

from tests.harness import (BIN, ROOT, Gunicorn, MailSink, RedisServer, Worker, create_database,  # noqa: E402
                           drop_database, worker_env)

RESULTS = HERE / "results"
PASSWORD = "bench-password"
CYCLE = "BENCH"
SUBMITTED, CHECKED, RETURNED = "nomination.submitted", "checks.completed", "nomination.returned"
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    """Nearest rank."""
    ordered = sorted(values) or [float("nan")]
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ms(values: list[float]) -> dict:
    """Median, p95 and p99 of durations in seconds, in milliseconds."""
    return {"count": len(values), **{k: round(percentile(values, p) * 1000, 1)
                                     for k, p in (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99))}}


def sql(url: str, query: str, params=()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as connection:
        return connection.execute(query, params).fetchall()


class Client:
    """One keep-alive HTTP/1.1 connection; the cookies it was given, and a bearer token if any."""

    def __init__(self, base_url: str, token: str | None = None):
        parts = urlsplit(base_url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
        self.token, self.cookies = token, {}

    def request(self, method: str, path: str, body=None, headers=None, form=None, token=None):
        headers = dict(headers or {})
        if token or self.token:
            headers["Authorization"] = f"Bearer {token or self.token}"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        elif form is not None:
            data, headers["Content-Type"] = urlencode(form).encode(), "application/x-www-form-urlencoded"
        for attempt in (1, 2):
            try:
                self.connection.request(method, path, data, headers)
                response = self.connection.getresponse()
                raw = response.read()
                break
            except (ConnectionError, http.client.HTTPException):
                self.connection.close()  # the server closed a kept connection: open a new one, once
                if attempt == 2:
                    raise
        for cookie in response.headers.get_all("Set-Cookie") or ():
            name, _, rest = cookie.partition("=")
            self.cookies[name.strip()] = rest.split(";")[0]
        return response.status, raw

    def json(self, method: str, path: str, body=None, want: int = 200, token=None):
        status, raw = self.request(method, path, body, token=token)
        if status != want:
            raise RuntimeError(f"{method} {path}: {status} {raw[:300]!r}")
        return json.loads(raw)


@dataclass
class Nomination:
    id: int
    version: int
    submitter: str  # the tokens of who fires its triggers
    reviewer: str
    mails: dict[str, int]  # recipients per event
    member_state: str
    state: str = "drafted"
    submits: int = 0
    returns: int = 0

    def mails_due(self) -> dict[str, int]:
        """The mails its transitions so far call for, by event."""
        m = self.mails
        return {SUBMITTED: self.submits * m[SUBMITTED], CHECKED: self.submits * m[CHECKED],
                RETURNED: self.returns * m[RETURNED]}


@dataclass
class World:
    member_states: list[str]
    users: list[tuple[str, str, str | None]]  # (username, role, member state)
    tokens: dict[str, str] = field(default_factory=dict)

    def email(self, username: str) -> str:
        return f"{username}@bench.example"

    def recipients(self, event: str, member_state: str) -> set[str]:
        """Who is mailed about `event` on a nomination of `member_state` (DESIGN.md, Reactions)."""
        if event in (SUBMITTED, RETURNED):
            return {self.email(u) for u, role, ms in self.users if role == "submitter" and ms == member_state}
        if event == CHECKED:
            return {self.email(u) for u, role, ms in self.users if role == "reviewer" and ms != member_state}
        return set()

    def reviewers(self) -> list[str]:
        return [u for u, role, _ in self.users if role == "reviewer"]


class Mailbox:
    """The sink's mails by (X-SCN-Event-Id, To), and by (nomination, event) once a thread has
    looked up each new event id in the events table."""

    def __init__(self, sink: MailSink, db_url: str):
        self.sink, self.db_url, self.read = sink, db_url, 0
        self.pairs: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.counts: Counter = Counter()
        self.waiting: dict[int, list[tuple[Nomination, threading.Event]]] = defaultdict(list)
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with psycopg.connect(self.db_url, autocommit=True) as connection:
            while self.running:
                time.sleep(0.005)
                new = self.sink.received_since(self.read)
                if not new:
                    continue
                self.read += len(new)
                ids = Counter(message["X-SCN-Event-Id"] or "" for _, message in new)
                rows = connection.execute("SELECT event_id, nomination_id, name FROM events WHERE event_id = ANY(%s)",
                                          (list(ids),)).fetchall()
                with self.lock:
                    for at, message in new:
                        to = parseaddr(message["To"] or "")[1].lower()
                        self.pairs[(message["X-SCN-Event-Id"] or "", to)].append(at)
                    for event_id, nomination_id, name in rows:
                        self.counts[(nomination_id, name)] += ids[event_id]
                    for nomination_id in {row[1] for row in rows} & self.waiting.keys():
                        for nom, done in self.waiting[nomination_id]:
                            if self.settled(nom):
                                done.set()
                        self.waiting[nomination_id] = [w for w in self.waiting[nomination_id] if not w[1].is_set()]

    def settled(self, nom: Nomination) -> bool:
        """Whether every mail of the nomination's transitions so far arrived."""
        return all(self.counts[(nom.id, event)] >= due for event, due in nom.mails_due().items())

    def settle(self, nom: Nomination, timeout: float = 300) -> bool:
        """Wait until the nomination is settled."""
        done = threading.Event()
        with self.lock:
            if self.settled(nom):
                return True
            self.waiting[nom.id].append((nom, done))
        return done.wait(timeout)

    def received(self, event_ids: set[str]) -> dict[tuple[str, str], list[float]]:
        with self.lock:
            return {pair: list(times) for pair, times in self.pairs.items() if pair[0] in event_ids}

    def close(self) -> None:
        self.running = False
        self.thread.join(5)


class Service:
    """One copy of the service, started from the project tree at `root`, with the bench world in it."""

    def __init__(self, root: Path, workdir: Path, stack: ExitStack, nominations: int, reviewers: int = 2):
        self.root = root
        workdir.mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(workdir)
        self.redis.start()
        stack.callback(self.redis.stop)
        self.sink = MailSink()
        self.sink.controller.start()
        stack.callback(self.sink.controller.stop)
        self.db_url = create_database("scn_bench")
        stack.callback(drop_database, self.db_url)
        # Redelivery after the default 60 s: under load a mail waits seconds in its queue, and is not lost.
        self.env = worker_env(self.db_url, self.redis.url, self.sink.url, workdir / "instance", root,
                              SCN_REDELIVER_AFTER_S=60, SCN_SECRET_KEY="bench-secret-key-" + os.urandom(8).hex())
        self.cli("db", "upgrade")
        self.cli("seed", "--no-demo")
        self.cli("users", "create", "--username", "root", "--password", PASSWORD, "--email", "root@bench.example",
                 "--role", "admin")
        self.web = Gunicorn(self.env, workdir / "gunicorn.log", root=root)
        self.web.start()
        stack.callback(self.web.stop)
        self.worker = Worker(self.env, workdir / "celery.log", concurrency=2, beat=False, root=root)
        self.worker.start()
        stack.callback(self.worker.stop)
        self.mailbox = Mailbox(self.sink, self.db_url)
        stack.callback(self.mailbox.close)
        self.world = self.build_world(reviewers)
        self.pool = self.make_pool(nominations)

    def cli(self, *args: str) -> None:
        done = subprocess.run([str(BIN / "scn-workflow"), *args], cwd=self.root, env=self.env, capture_output=True,
                              text=True)
        if done.returncode:
            raise SystemExit(f"scn-workflow {' '.join(args[:2])} failed:\n{done.stdout}{done.stderr}")

    def token(self, username: str) -> str:
        return Client(self.web.url).json("POST", "/api/v1/tokens", {"username": username, "password": PASSWORD},
                                          want=201)["token"]

    def build_world(self, reviewers: int) -> World:
        admin = Client(self.web.url, self.token("root"))
        states = [m["code"] for m in admin.json("GET", "/api/v1/member-states")]
        users = [(f"sub-{ms.lower()}-{i}", "submitter", ms) for ms in states for i in (1, 2)]
        users += [(f"rev-{i}", "reviewer", None) for i in range(reviewers)]
        world = World(states, users)
        for username, role, ms in users:
            admin.json("POST", "/api/v1/users", {"username": username, "password": PASSWORD, "role": role,
                                                 "email": world.email(username), "member_state": ms}, want=201)
        now = datetime.now(timezone.utc)
        admin.json("POST", "/api/v1/cycles", {"code": CYCLE, "name": "Benchmark cycle", "limit_per_state": 100,
                                              "opens_at": (now - timedelta(days=30)).isoformat(),
                                              "closes_at": (now + timedelta(days=365)).isoformat()}, want=201)
        world.tokens = {u: self.token(u) for u, _, _ in users + [("root", "admin", None)]}
        return world

    def make_pool(self, size: int) -> list[Nomination]:
        """`size` complete drafts, round robin over the member states and their two submitters."""
        states, reviewers, local = self.world.member_states, self.world.reviewers(), threading.local()

        def create(i: int) -> Nomination:
            ms = states[i % len(states)]
            submitter = self.world.tokens[f"sub-{ms.lower()}-{1 + (i // len(states)) % 2}"]
            local.http = getattr(local, "http", None) or Client(self.web.url)
            n = local.http.json("POST", "/api/v1/nominations", dict(draft(f"Bench city {i:05d}"), cycle=CYCLE),
                                want=201, token=submitter)
            mails = {event: len(self.world.recipients(event, ms)) for event in (SUBMITTED, CHECKED, RETURNED)}
            return Nomination(n["id"], n["version"], submitter, self.world.tokens[reviewers[i % len(reviewers)]],
                              mails, ms)
        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(create, range(size)))

    def groups(self) -> dict:
        """The processes whose CPU time is measured, by group."""
        database = self.db_url.rsplit("/", 1)[1]
        return {"web": self.web.pids, "worker": self.worker.pids, "redis": lambda: [self.redis.process.pid],
                "postgres": lambda: postgres_backends(database)}


def draft(city: str) -> dict:
    return {"city_name": city, "region": "Bench Region", "population": 100000, "csco_name": "Bench Officer",
            "csco_email": "csco@bench.example", "vision": "A benchmark vision.",
            "focus_areas": ["civic_social", "quality_environment"],
            "projects": [{"title": "Village e-services", "focus_area": "civic_social", "priority": True},
                         {"title": "Clean rivers", "focus_area": "quality_environment"}]}


# --- what the processes use, from /proc ---------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK  # utime + stime


def peak_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    return round(int(status.split("VmHWM:")[1].split()[0]) / 1024, 1)


def postgres_backends(database: str) -> list[int]:
    """The server processes serving `database` ("postgres: 15/main: user database host(port) state")."""
    pids, needle = [], f" {database} ".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(b"postgres") and needle in cmdline:
                pids.append(int(entry.name))
    return pids


def machine_busy() -> float:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:8]]
    return (sum(values) - values[3] - values[4]) / CLOCK_TICK  # all but idle and iowait


def measured(svc: Service, work) -> dict:
    """Run `work()` and add the CPU seconds each group of processes spent meanwhile, this bench
    process, and the rest of the machine."""
    groups = dict(svc.groups(), bench=lambda: [os.getpid()])
    before = {name: {pid: cpu_seconds(pid) for pid in pids()} for name, pids in groups.items()}
    busy, began = machine_busy(), time.time()
    out = work()
    cpu = {name: round(sum(cpu_seconds(pid) - before[name].get(pid, 0.0) for pid in pids()), 2)
           for name, pids in groups.items()}
    cpu["other processes"] = round(max(0.0, machine_busy() - busy - sum(cpu.values())), 2)
    out.update(cpu_s=cpu, elapsed_s=round(time.time() - began, 1))
    return out


def cpu_ms_per(out: dict, count: int) -> dict:
    """CPU milliseconds per unit of work, by group; `service` sums web, worker, PostgreSQL and Redis."""
    per = {k: round(v * 1000 / max(1, count), 2) for k, v in out["cpu_s"].items()}
    per["service"] = round(sum(per[k] for k in ("web", "worker", "postgres", "redis")), 2)
    return per


def in_threads(count: int, target) -> None:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# --- phases -------------------------------------------------------------------------------------

def healthz(svc: Service, seconds: float, clients: int) -> dict:
    counts = [0] * clients
    deadline = time.time() + seconds

    def client(i: int) -> None:
        http = Client(svc.web.url)
        while time.time() < deadline:
            http.request("GET", "/healthz")
            counts[i] += 1
    out = measured(svc, lambda: in_threads(clients, client) or {})
    out.update(per_s=round(sum(counts) / out["elapsed_s"], 1), cpu_ms=cpu_ms_per(out, sum(counts)))
    http, alone = Client(svc.web.url), []
    for _ in range(300):
        began = time.perf_counter()
        http.request("GET", "/healthz")
        alone.append(time.perf_counter() - began)
    out["alone"] = ms(alone)
    return out


@dataclass
class Fired:
    transitions: list = field(default_factory=list)  # (nomination id, trigger, sent, answered)
    refused: Counter = field(default_factory=Counter)
    errors: list = field(default_factory=list)


def fire(http: Client, nom: Nomination, fired: Fired) -> None:
    """Fire the nomination's next trigger (submit, or return_for_revision by a reviewer) with If-Match;
    on 412 read the nomination's version and try again."""
    submit = nom.state == "drafted"
    body = {"trigger": "submit"} if submit else {"trigger": "return_for_revision", "comment": "Please revise."}
    token = nom.submitter if submit else nom.reviewer
    for _ in range(3):
        sent = time.time()
        status, raw = http.request("POST", f"/api/v1/nominations/{nom.id}/transitions", body,
                                   {"If-Match": f'"{nom.version}"'}, token=token)
        if status == 200:
            data = json.loads(raw)
            # checks.completed changes a submitted nomination too: expect its version once settled
            nom.state, nom.version = data["state"], data["version"] + (1 if submit else 0)
            nom.submits, nom.returns = nom.submits + submit, nom.returns + (not submit)
            fired.transitions.append((nom.id, body["trigger"], sent, time.time()))
            return
        fired.refused[status] += 1
        if status != 412:
            break
        nom.version = http.json("GET", f"/api/v1/nominations/{nom.id}", token=token)["version"]
    fired.errors.append(f"{body['trigger']} {nom.id}: {status} {raw[:200]!r}")


def check_mails(svc: Service, after_event: int, timeout: float = 300) -> dict:
    """The mails the events since `after_event` call for, against the sink: missing, repeated,
    unexpected; and each expected mail's delay from its event's occurred_at."""
    rows = sql(svc.db_url, "SELECT e.event_id, e.name, n.member_state, e.occurred_at FROM events e "
                           "JOIN nominations n ON n.id = e.nomination_id WHERE e.id > %s", (after_event,))
    expected = {(event_id, address): occurred.timestamp() for event_id, name, ms, occurred in rows
                for address in svc.world.recipients(name, ms)}
    ids, deadline = {row[0] for row in rows}, time.time() + timeout
    got = svc.mailbox.received(ids)
    while time.time() < deadline and any(pair not in got for pair in expected):
        time.sleep(0.1)
        got = svc.mailbox.received(ids)
    delays = defaultdict(list)
    names = {row[0]: row[1] for row in rows}
    for pair, occurred in expected.items():
        if pair in got:
            delays[names[pair[0]]].append(min(got[pair]) - occurred)
    return {"events": len(rows), "mails_expected": len(expected),
            "missing": sum(pair not in got for pair in expected),
            "repeated": sum(len(times) - 1 for pair, times in got.items() if pair in expected),
            "unexpected": sum(len(times) for pair, times in got.items() if pair not in expected),
            "last_mail": max((min(times) for pair, times in got.items() if pair in expected), default=0.0),
            "delays": delays}


def last_event(svc: Service) -> int:
    return sql(svc.db_url, "SELECT coalesce(max(id), 0) FROM events")[0][0]


def mailed(svc: Service, seconds: float, clients: int) -> dict:
    """Closed loop: each client fires its nominations' transitions, each after the mails of the last."""
    mark, fired, deadline = last_event(svc), Fired(), time.time() + seconds
    shares = [svc.pool[i::clients] for i in range(clients)]

    def client(i: int) -> None:
        http, k = Client(svc.web.url), 0
        while shares[i] and time.time() < deadline:
            nom = shares[i][k % len(shares[i])]
            if not svc.mailbox.settle(nom):
                fired.errors.append(f"nomination {nom.id}: mails did not arrive within 300 s")
                return
            fire(http, nom, fired)
            k += nom.state == "drafted"  # submitted and returned: on to the next one

    def load_then_mails() -> dict:
        in_threads(clients, client)
        out = check_mails(svc, mark)
        out.pop("delays")
        return out
    out = measured(svc, load_then_mails)
    first = min((t[2] for t in fired.transitions), default=0.0)
    count = len(fired.transitions)
    out.update(transitions=count, per_s=round(count / max(1e-9, out["last_mail"] - first), 2),
               cpu_ms=cpu_ms_per(out, count), refused=dict(fired.refused), errors=fired.errors[:5])
    return out


def paced(svc: Service, rate: float, seconds: float) -> dict:
    """Open loop: one transition every 1/rate s, submits and returns alternating, each on a
    nomination whose mails so far arrived."""
    mark, fired, busy, local = last_event(svc), Fired(), set(), threading.local()

    def one(nom: Nomination) -> None:
        local.http = getattr(local, "http", None) or Client(svc.web.url)
        try:
            fire(local.http, nom, fired)
        finally:
            busy.discard(nom.id)

    started, skipped, order = time.time(), 0, list(svc.pool)
    with ThreadPoolExecutor(16) as pool:
        for i in range(round(rate * seconds)):
            time.sleep(max(0.0, started + i / rate - time.time()))
            want = "drafted" if i % 2 == 0 else "submitted"
            ready = [n for n in order if n.id not in busy and svc.mailbox.settled(n)]
            nom = next((n for n in ready if n.state == want), ready[0] if ready else None)
            if nom is None:
                skipped += 1
                continue
            order.remove(nom)
            order.append(nom)  # the least recently used first
            busy.add(nom.id)
            pool.submit(one, nom)
    check = check_mails(svc, mark)
    delays = [d for values in check.pop("delays").values() for d in values]
    return dict(check, rate=round(rate, 1), transitions=len(fired.transitions), skipped=skipped,
                errors=fired.errors[:5], commit_to_mail=ms(delays))


WORDS = ["Bandar", "Kota", "Muang", "Thanh", "Phnom", "San", "Bay", "Port", "Hill", "River", "Lake", "Pura",
         "Nakhon", "Ban", "Tanjung", "Sungai", "Kampung", "Batu", "Cao", "Dong", "Hai", "Luang", "Mae", "Pulau"]
REGIONS = ["North", "South", "East", "West", "Central", "Coastal", "Highland", "Delta", "Island", "Valley"]
STATES = ["drafted"] * 20 + ["submitted"] * 15 + ["reviewed"] * 10 + ["accepted"] * 25 + ["handed_over"] * 15 \
    + ["rejected"] * 10 + ["withdrawn"] * 5
COLUMNS = ("reference, member_state, cycle, city_name, region, population, csco_name, csco_email, vision, focus_areas,"
           " projects, state, version, created_by, created_at, updated_at, submitted_at, reviewed_by, checks_outcome,"
           " event_count")


def copy_rows(svc: Service, count: int) -> dict:
    """COPY `count` nominations (without events) over 9 cycles, every member state and every state,
    then VACUUM ANALYZE, as autovacuum soon would."""
    rng, now, states = random.Random(7), datetime.now(timezone.utc), svc.world.member_states
    cycles = [(f"ASCN-{year}", datetime(year, 1, 1, tzinfo=timezone.utc)) for year in range(2018, 2026)]
    focus = json.dumps([p["focus_area"] for p in draft("")["projects"]])
    projects = json.dumps([dict(p, description="", priority=bool(p.get("priority"))) for p in draft("")["projects"]])
    began = time.time()
    with psycopg.connect(svc.db_url, autocommit=True) as connection:
        for code, opens in cycles:
            connection.execute("INSERT INTO cycles (code, name, opens_at, closes_at, limit_per_state) "
                               "VALUES (%s, %s, %s, %s, 3) ON CONFLICT DO NOTHING",
                               (code, code, opens, opens.replace(year=opens.year + 1)))
        with connection.cursor().copy(f"COPY nominations ({COLUMNS}) FROM STDIN") as copy:
            for i in range(count):
                ms, cycle, state = states[i % len(states)], rng.choice(cycles + [(CYCLE, now)])[0], rng.choice(STATES)
                created = now - timedelta(days=rng.uniform(1, 3000))
                copy.write_row((
                    f"{cycle}-{ms}-L{i:06d}", ms, cycle, f"{rng.choice(WORDS)} {rng.choice(WORDS)}{i}",
                    REGIONS[i % len(REGIONS)], rng.randrange(10_000, 10_000_000), "Officer", "csco@list.example",
                    "A vision.", focus, projects, state, 3, f"sub-{ms.lower()}-1", created,
                    created + timedelta(days=rng.uniform(0, 30)), None if state == "drafted" else created,
                    "rev-0" if state in ("reviewed", "accepted", "handed_over", "rejected") else None,
                    None if state == "drafted" else "passed", 0))
        copied = time.time()
        connection.execute("VACUUM ANALYZE nominations")
    return {"rows": count, "copy_s": round(copied - began, 1), "vacuum_s": round(time.time() - copied, 1)}


def listing(svc: Service, rows: int, rounds: int = 20) -> dict:
    inserted = copy_rows(svc, rows)
    t = svc.world.tokens
    admin, reviewer, submitter, base = t["root"], t["rev-0"], t["sub-th-1"], "/api/v1/nominations"
    queries = [("admin: all, page 1", admin, base), ("admin: all, page 200", admin, f"{base}?page=200"),
               ("admin: state=submitted", admin, f"{base}?state=submitted"),
               ("admin: cycle, member state, state", admin,
                f"{base}?cycle=ASCN-2024&member_state=MY&state=accepted"),
               ("admin: q=city word", admin, f"{base}?q=tanjung"),
               ("admin: q=member state name", admin, f"{base}?q=malaysia"),
               ("admin: q=no match", admin, f"{base}?q=zzyzx"),
               ("reviewer: per_page=50", reviewer, f"{base}?per_page=50"),
               ("reviewer: state=reviewed, page 3", reviewer, f"{base}?state=reviewed&page=3"),
               ("reviewer: q=city word", reviewer, f"{base}?q=sungai"),
               ("submitter: own, page 1", submitter, base),
               ("submitter: own, page 20", submitter, f"{base}?page=20"),
               ("submitter: cycle and q", submitter, f"{base}?cycle=ASCN-2022&q=bay")]
    http, times = Client(svc.web.url), defaultdict(list)
    for label, token, path in queries:  # warm-up, once each
        http.json("GET", path, token=token)
    for _ in range(rounds):
        for label, token, path in queries:
            began = time.perf_counter()
            status, raw = http.request("GET", path, token=token)
            times[label].append(time.perf_counter() - began)
            if status != 200:
                raise RuntimeError(f"GET {path}: {status} {raw[:200]!r}")
    return {"insert": inserted, "all": ms([x for v in times.values() for x in v]),
            "by_query": {label: ms(v) for label, v in times.items()}}


def memory(svc: Service) -> dict:
    return {"web_mb": max(map(peak_mb, svc.web.worker_pids())), "worker_mb": max(map(peak_mb, svc.worker.pids()))}


def run_phases(svc: Service, args, between=lambda: None) -> dict:
    """Every phase on `svc`; `between()` is called before each (bench/ab.py keeps two services in step)."""
    want = set(args.only or ("healthz", "mailed", "latency", "list"))
    out = {"memory_after_setup": memory(svc)}
    between()
    if "healthz" in want:
        out["healthz"] = healthz(svc, args.short_seconds, args.clients)
    warm = svc.pool[:8]
    for nom in warm:
        fire(Client(svc.web.url), nom, Fired())
    for nom in warm:
        svc.mailbox.settle(nom)
    between()
    if "mailed" in want:
        out["mailed"] = mailed(svc, args.seconds, args.clients)
    if "latency" in want:
        half = out["mailed"]["per_s"] / 2 if "mailed" in out else args.half_rate
        between()
        out["latency_half"] = paced(svc, half, args.short_seconds)
        between()
        out["latency_20"] = paced(svc, 20.0, args.short_seconds)
    between()
    if "list" in want and args.rows:
        out["list"] = listing(svc, args.rows)
    out["memory"] = memory(svc)
    return out


def figures(r: dict) -> list[tuple[str, float, str, float | None, str]]:
    """(figure, value, unit, baseline, target) of a run; the baselines are measured in the same run."""
    h = r.get("healthz", {})
    rate, cpu, alone = h.get("per_s"), h.get("cpu_ms", {}).get("service"), h.get("alone", {})
    rows = [("GET /healthz", rate, "req/s", None, "baseline"),
            ("  CPU per /healthz request", cpu, "ms", None, "baseline")]
    rows += [(f"  /healthz alone, {p}", alone.get(f"{p}_ms"), "ms", None, "baseline") for p in ("p50", "p95", "p99")]
    if "mailed" in r:
        m = r["mailed"]
        rows += [("mailed transitions", m["per_s"], "/s", rate, "b/a >= 0.8 (bench/ab.py)"),
                 ("  CPU per mailed transition", m["cpu_ms"]["service"], "ms", cpu, "")]
        rows += [(f"    {k}", m["cpu_ms"][k], "ms", None, "") for k in ("web", "worker", "postgres", "redis", "bench")]
    for key, pace, target in (("latency_half", "half the mailed rate", 100), ("latency_20", "20/s", 50)):
        if key in r:
            lat = r[key]["commit_to_mail"]
            rows += [(f"commit-to-mail p50 at {pace}", lat["p50_ms"], "ms", alone.get("p50_ms"), ""),
                     (f"commit-to-mail p99 at {pace}", lat["p99_ms"], "ms", alone.get("p99_ms"), f"< {target} ms"),
                     ("  transitions paced at", r[key]["rate"], "/s", None, "")]
    if "list" in r:
        rows.append((f"list and search p95, {r['list']['insert']['rows']:,} rows", r["list"]["all"]["p95_ms"],
                     "ms", alone.get("p95_ms"), "< 30 ms"))
    for key, label in (("web_mb", "web worker"), ("worker_mb", "Celery process")):
        rows.append((f"peak memory, {label}", r["memory"][key], "MB", r["memory_after_setup"][key], "as before"))
    return rows


def table(rows: list[tuple]) -> str:
    lines = [f"{'figure':44s} {'value':>10s}       {'baseline':>10s} {'ratio':>8s}  target"]
    for label, value, unit, base, target in rows:
        ratio = f"{value / base:8.3f}" if base and value is not None else " " * 8
        lines.append(f"{label:44s} {value if value is not None else '-':>10} {unit:5s} "
                     f"{base if base is not None else '':>10} {ratio}  {target}")
    return "\n".join(lines)


def options(**defaults) -> argparse.ArgumentParser:
    """The options of the phases (bench/ab.py adds its own)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the mailed phase")
    parser.add_argument("--short-seconds", type=float, default=8.0, help="length of the /healthz and latency phases")
    parser.add_argument("--clients", type=int, default=96, help="concurrent clients of the healthz and mailed phases")
    parser.add_argument("--nominations", type=int, default=512, help="drafts the transitions take turns on")
    parser.add_argument("--rows", type=int, default=100_000, help="nominations COPYed in for the list (0: none)")
    parser.add_argument("--half-rate", type=float, default=50.0, help="the latency pace without the mailed phase")
    parser.add_argument("--only", nargs="+", choices=("healthz", "mailed", "latency", "list"))
    parser.set_defaults(**defaults)
    return parser


def main(argv=None) -> int:
    parser = options()
    parser.add_argument("--root", type=Path, default=ROOT, help="the project tree to run (default: this one)")
    args = parser.parse_args(argv)
    began = time.time()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scn-bench-")))
        svc = Service(args.root.resolve(), workdir, stack, args.nominations)
        print(f"{args.root.resolve()}: set up in {time.time() - began:.0f} s; load average {os.getloadavg()[0]:.2f}"
              f" on {os.cpu_count()} CPUs")
        result = run_phases(svc, args)
    result.update(options={k: str(v) for k, v in vars(args).items()}, load_average_end=os.getloadavg(),
                  at=datetime.now(timezone.utc).isoformat(timespec="seconds"), wall_s=round(time.time() - began))
    report(result)
    print(table(figures(result)))
    write("lifecycle", result)
    return 0


def report(r: dict) -> None:
    """Whether every expected mail arrived once."""
    for key in ("mailed", "latency_half", "latency_20"):
        if key in r:
            x = r[key]
            print(f"{key}: {x['transitions']} transitions, {x['mails_expected']} mails expected: {x['missing']} "
                  f"missing, {x['repeated']} repeated, {x['unexpected']} unexpected; errors {x['errors'] or 'none'}")


def write(name: str, result: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"written to {path}")


if __name__ == "__main__":
    sys.exit(main())
