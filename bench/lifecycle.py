"""The whole service under load over HTTP: transitions with every mail delivered, complete lifecycles,
commit-to-mail latency, list and search on a large table, peak memory, and where the time goes.

    .venv/bin/python bench/lifecycle.py [--seconds 20] [--short-seconds 8] [--nominations 512]
                                        [--rows 100000] [--connections 96] [--worker-class gthread|sync]
                                        [--threads 8] [--concurrency 2] [--only PHASE ...]
                                        [--no-profile] [--keep-profiles DIR]

A default run takes about 2.5 minutes. docs/performance.md has the figures and what they mean.

Everything runs on this machine and is started here: a temporary PostgreSQL database (through
SCN_TEST_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/postgres; dropped at the end),
a redis-server of its own on a free port, gunicorn (`gunicorn -w 2 --worker-class gthread --threads 8
web:app`; --worker-class sync for sync workers), one Celery worker (`celery -A worker worker
-Q checks,notifications,handover,webhooks -c 2`, no beat), and a load generator in a process of its
own: a small asyncio HTTP/1.1 client with many keep-alive connections, and in the same event loop the
SMTP sink (aiosmtpd) that notes when each mail arrives. The load generator shares the CPUs with the
server; its CPU time is measured and printed with everything else's (gunicorn, Celery, Redis, the
PostgreSQL backends, other processes).

Phases (each prints one line or a few, and goes to bench/results/latest.json):

1. baseline: GET /healthz as fast as the connections go (--short-seconds), before any worker starts.
2. web tier only: transitions over HTTP as fast as the server answers, with no worker running (the
   relay publishes to Redis; those messages are purged afterwards): what gunicorn alone sustains.
3. transitions with every mail delivered: the worker runs. Each client owns a share of --nominations
   (complete drafts, 11 member states, 2 submitters each) and takes them one at a time: submit, then
   return_for_revision (a reviewer, with a comment), then the next nomination, each with If-Match.
   Before each transition the client waits until the mails of its previous one arrived (a submit: 2
   mails to the submitters, the checks, and checks.completed's 2 mails to the reviewers; a return: 2
   mails), so at most --connections transitions await their mails at once and submits and returns
   alternate. After --seconds no new transition starts; the
   mails still due are awaited. The expected mails are then counted from the database (every event of
   the phase, notifications.recipients as the worker decides) and checked against the sink.
   transitions/s = transitions / (first request -> last mail).
4. complete lifecycles: each client creates a nomination (POST), submits it, waits for the checks,
   reviews it (reviewer A), accepts it (reviewer B), and waits until the handover worker delivered the
   package to the lead agency (a mail), fired hand_over, and every mail of every event arrived
   (12 mails). lifecycles/s = lifecycles / (first request -> last mail).
5. latency: transitions paced at half the rate of phase 3 for --short-seconds. For each mail the time
   from the event's occurred_at (taken inside the transaction, a few ms before its commit: an upper
   bound of commit-to-mail) and from the HTTP response (after the commit: a lower bound) to the
   sink's acceptance.
6. profile (unless --no-profile): py-spy (pip install --target /tmp/pyspy py-spy; or --py-spy PATH)
   records the gunicorn workers during a web-only burst and the Celery pool during phase 3's load,
   and prints the largest costs.
7. list and search: --rows nominations are COPYed into the table (spread over 9 cycles, 11 member
   states and every state; without events), VACUUM ANALYZEd (as autovacuum soon would be), then
   GET /api/v1/nominations is timed with filters, pagination and q, as an admin, a reviewer and a
   submitter, one request at a time.
8. peak memory: VmHWM of every gunicorn and Celery process, read from /proc at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict, deque
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# bench/transitions.py is named like the `transitions` library the domain imports: keep this
# folder off sys.path, and put the project root on it (for tests.* and bench.*).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

from bench.support import CLOCK_TICK, children, cpu_seconds, percentile, source_state  # noqa: E402
from tests.processes import stop_process_group  # noqa: E402

RESULTS = HERE / "results" / "latest.json"
PASSWORD = "bench-password"
CYCLE = "ASCN-BENCH"
MAILS = {"nomination.submitted": 2, "checks.completed": 2, "nomination.returned": 2, "nomination.reviewed": 2,
         "nomination.accepted": 2, "handover.package": 1, "nomination.handed_over": 3}
ASSESSMENT = {"scores": {"civic_social": 4, "quality_environment": 3}, "recommendation": "accept",
              "summary": "Benchmark assessment."}
TARGETS = {"transitions_per_s": 1100, "commit_to_mail_p99_ms": 200, "list_p95_ms": 30, "web_mb": 150,
           "worker_mb": 200}
SPY_RATE = int(os.environ.get("SCN_BENCH_SPY_RATE", "100"))
PHASES = ("healthz", "web", "delivered", "lifecycles", "latency", "profile", "list")
KEEP_PROFILES: Path | None = None


def content(city: str) -> dict:
    return {"city_name": city, "region": "Bench Region", "population": 100000, "csco_name": "Bench Officer",
            "csco_email": "csco@bench.example", "vision": "A benchmark vision.",
            "focus_areas": ["civic_social", "quality_environment"],
            "projects": [{"title": "Village e-services", "focus_area": "civic_social", "priority": True},
                         {"title": "Clean rivers", "focus_area": "quality_environment"}]}


def dist_ms(seconds: list[float]) -> dict:
    if not seconds:
        return {"count": 0}
    ms = [s * 1000 for s in seconds]
    return {"count": len(ms), "median_ms": round(statistics.median(ms), 2), "p90_ms": round(percentile(ms, 90), 2),
            "p95_ms": round(percentile(ms, 95), 2), "p99_ms": round(percentile(ms, 99), 2),
            "max_ms": round(max(ms), 2)}


# =====================================================================================================
# The load generator: its own process, one asyncio loop with the HTTP clients and the SMTP sink.
# Only the standard library and aiosmtpd are imported here (it is started with "spawn").
# =====================================================================================================

HDR_EVENT_ID = re.compile(rb"^X-SCN-Event-Id:[ \t]*(\S+)", re.M | re.I)
HDR_IDEMPOTENCY = re.compile(rb"^Idempotency-Key:[ \t]*(\S+)", re.M | re.I)
HDR_EVENT = re.compile(rb"^X-SCN-Event:[ \t]*(\S+)", re.M | re.I)
HDR_REFERENCE = re.compile(rb"^Subject:\s*\[([^\]\r\n]+)\]", re.M | re.I)  # \s: a long subject folds after "Subject:"


class Sink:
    """The SMTP handler: per event id the arrival times, per (reference, kind) a count to wait on."""

    def __init__(self):
        self.arrivals: dict[str, list[float]] = defaultdict(list)
        self.counts: Counter = Counter()
        self.waiters: dict[tuple, list] = defaultdict(list)
        self.total = 0

    async def handle_DATA(self, server, session, envelope):
        now = time.time()
        raw = envelope.content
        found = HDR_EVENT_ID.search(raw)
        if found:
            kind = HDR_EVENT.search(raw)
            kind = kind.group(1).decode() if kind else "?"
        else:  # the handover package: keyed by the acceptance event (Idempotency-Key)
            found = HDR_IDEMPOTENCY.search(raw)
            kind = "handover.package"
        event_id = found.group(1).decode() if found else ""
        ref = HDR_REFERENCE.search(raw)
        key = (ref.group(1).decode() if ref else "", kind)
        count = len(envelope.rcpt_tos)
        self.arrivals[event_id].extend([now] * count)
        self.counts[key] += count
        self.total += count
        waiting = self.waiters.get(key)
        if waiting:
            keep = []
            for target, future in waiting:
                if self.counts[key] >= target:
                    if not future.done():
                        future.set_result(now)
                else:
                    keep.append((target, future))
            self.waiters[key] = keep
        return "250 OK"

    def wait(self, ref: str, kind: str, target: int):
        future = asyncio.get_running_loop().create_future()
        if self.counts[(ref, kind)] >= target:
            future.set_result(time.time())
        else:
            self.waiters[(ref, kind)].append((target, future))
        return future


class Http:
    """One HTTP/1.1 connection, kept alive while the server allows (gunicorn's sync workers close it)."""

    def __init__(self, host: str, port: int, timeout: float = 120.0):
        self.host, self.port, self.timeout = host, port, timeout
        self.reader = self.writer = None
        self.connects = 0

    async def close(self):
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        self.reader = self.writer = None

    async def request(self, method: str, path: str, token: str | None = None, body=None,
                      headers: dict | None = None):
        data = b"" if body is None else json.dumps(body).encode()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if token:
            lines.append(f"Authorization: Bearer {token}")
        if body is not None:
            lines.append("Content-Type: application/json")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(data)}")
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + data
        for attempt in range(2):
            reused = self.writer is not None
            if not reused:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
                self.connects += 1
            try:
                self.writer.write(raw)
                return await asyncio.wait_for(self._response(), self.timeout)
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if not reused or attempt:  # a fresh connection failed: that is an answer
                    raise
        raise AssertionError("unreachable")

    async def _response(self):
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
        else:
            body = await self.reader.read()
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, headers, body


class LoadGen:
    """Commands from the orchestrator over a pipe; results back. The SMTP sink runs all along."""

    def __init__(self, conn):
        self.conn = conn
        self.sink = Sink()
        self.host, self.port = "127.0.0.1", 0
        self.pools: dict[str, list[dict]] = {}

    async def serve(self):
        from aiosmtpd.smtp import SMTP
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(self.sink, hostname="bench-sink.localdomain"),
                                          "127.0.0.1", 0)
        self.conn.send(("ready", server.sockets[0].getsockname()[1]))
        while True:
            command, kwargs = await loop.run_in_executor(None, self.conn.recv)
            if command == "stop":
                self.conn.send("stopped")
                return
            try:
                result = await getattr(self, "cmd_" + command)(**kwargs)
            except Exception as exc:  # noqa: BLE001 - reported to the orchestrator
                import traceback
                result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            self.conn.send(result)

    # --- commands ---

    async def cmd_target(self, host: str, port: int):
        self.host, self.port = host, port
        return {}

    async def cmd_pool(self, name: str, nominations: list[dict]):
        self.pools[name] = nominations
        return {"size": len(nominations)}

    async def cmd_mail_total(self):
        return {"total": self.sink.total}

    async def cmd_arrivals(self, event_ids: list[str]):
        return {e: list(self.sink.arrivals.get(e, ())) for e in event_ids}

    async def cmd_healthz(self, seconds: float, connections: int):
        latencies, errors = [], Counter()
        start = time.time()
        deadline = start + seconds

        async def client():
            http = Http(self.host, self.port)
            while time.time() < deadline:
                t0 = time.perf_counter()
                try:
                    status, _, _ = await http.request("GET", "/healthz")
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
                    errors[type(exc).__name__] += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                if status != 200:
                    errors[str(status)] += 1
            await http.close()
            return http.connects

        connects = await asyncio.gather(*(client() for _ in range(connections)))
        elapsed = time.time() - start
        return {"requests": len(latencies), "elapsed_s": round(elapsed, 3),
                "per_s": round(len(latencies) / elapsed, 1), "latency": dist_ms(latencies),
                "connections_opened": sum(connects), "errors": dict(errors)}

    async def _fire(self, http: Http, nom: dict, deliver: bool, stats: dict):
        """Fire the nomination's next trigger (submit or return_for_revision) with If-Match.

        With `deliver`, nom["pending"] becomes a task that waits for the transition's mails."""
        submit = nom["state"] == "drafted"
        trigger = "submit" if submit else "return_for_revision"
        body = {"trigger": trigger} if submit else {"trigger": trigger, "comment": "Please revise (bench)."}
        token = nom["submitter"] if submit else nom["reviewer"]
        kinds = ("nomination.submitted", "checks.completed") if submit else ("nomination.returned",)
        for _ in range(5):
            base = {k: self.sink.counts[(nom["reference"], k)] for k in kinds}
            sent = time.time()
            status, _, raw = await http.request("POST", f"/api/v1/nominations/{nom['id']}/transitions", token, body,
                                                {"If-Match": f'"{nom["version"]}"'})
            answered = time.time()
            stats["requests"] += 1
            stats["latency"].append(answered - sent)
            if status == 200:
                data = json.loads(raw)
                nom["version"], nom["state"] = data["version"], data["state"]
                stats["first"] = min(stats["first"], sent)
                stats["last_response"] = max(stats["last_response"], answered)
                stats["fired"].append((nom["id"], trigger, sent, answered))
                break
            stats["status"][str(status)] += 1
            if status in (409, 412):  # someone else (the checks worker) changed it: reload, try again
                status, _, raw = await http.request("GET", f"/api/v1/nominations/{nom['id']}", token)
                stats["requests"] += 1
                if status == 200:
                    data = json.loads(raw)
                    nom["version"], nom["state"] = data["version"], data["state"]
                    submit = nom["state"] == "drafted"
                    if (trigger == "submit") != submit:
                        return
                continue
            stats["errors"].append(f"{trigger} {nom['id']}: {status} {raw[:300]!r}")
            return
        else:
            return
        if not deliver:
            return

        async def delivered():
            try:
                await asyncio.wait_for(asyncio.gather(*(
                    self.sink.wait(nom["reference"], k, base[k] + MAILS[k]) for k in kinds)), 300)
                if submit:
                    nom["version"] += 1  # checks.completed is a change too
            except asyncio.TimeoutError:
                stats["errors"].append(f"{trigger} {nom['id']}: mails did not arrive within 300 s")

        nom["pending"] = asyncio.ensure_future(delivered())

    @staticmethod
    def _new_stats() -> dict:
        return {"requests": 0, "latency": [], "first": float("inf"), "last_response": 0.0, "fired": [],
                "status": Counter(), "errors": []}

    def _report(self, stats: dict, started: float) -> dict:
        fired = stats["fired"]
        return {"transitions": len(fired), "requests": stats["requests"],
                "first_request": stats["first"] if fired else started, "last_response": stats["last_response"],
                "http_latency": dist_ms(stats["latency"]), "refused": dict(stats["status"]),
                "errors": stats["errors"][:20], "error_count": len(stats["errors"]),
                "fired": [list(f) for f in fired]}

    async def cmd_transitions(self, pool: str, seconds: float, connections: int, deliver: bool):
        """Closed loop: each client takes its share of the pool one nomination at a time, submit then
        return_for_revision (with `deliver`, each after the mails of the one before arrived), then the
        next nomination. So submits and returns alternate whatever the rate, and at most `connections`
        transitions await their mails at once."""
        noms = self.pools[pool]
        stats = self._new_stats()
        started = time.time()
        deadline = started + seconds
        shares = [noms[i::connections] for i in range(connections)]

        async def client(mine: list[dict]):
            http = Http(self.host, self.port)
            k = 0
            while mine and time.time() < deadline:
                nom = mine[k % len(mine)]
                if nom.get("pending") is not None:
                    await nom["pending"]
                    nom["pending"] = None
                    if time.time() >= deadline:
                        break
                await self._fire(http, nom, deliver, stats)
                if nom["state"] == "drafted":  # submitted and returned: on to the next one
                    k += 1
            await http.close()

        await asyncio.gather(*(client(s) for s in shares if s))
        fired_until = time.time()
        pending = [n["pending"] for n in noms if n.get("pending") is not None]
        if pending:
            await asyncio.gather(*pending)
        for n in noms:
            n["pending"] = None
        out = self._report(stats, started)
        out.update(fired_for_s=round(fired_until - started, 3), drained_at=time.time(),
                   triggers=dict(Counter(f[1] for f in stats["fired"])))
        return out

    async def cmd_paced(self, pool: str, rate: float, seconds: float, connections: int):
        """Open loop: one transition every 1/rate seconds, on a nomination whose mails arrived; submits
        and returns alternate, as in phase 3 (whose rate this one halves), so both phases do the same mix."""
        noms = deque(self.pools[pool])
        stats = self._new_stats()
        idle: asyncio.Queue = asyncio.Queue()
        for _ in range(connections):
            idle.put_nowait(Http(self.host, self.port))
        started = time.time()
        tasks, lateness, skipped = [], [], 0

        def ready(state):
            """The first nomination (in `state`) not being fired and whose mails of before arrived."""
            for _ in range(len(noms)):
                nom = noms[0]
                noms.rotate(-1)
                pending = nom.get("pending")
                if not nom.get("busy") and (pending is None or pending.done()) \
                        and (state is None or nom["state"] == state):
                    return nom
            return None

        async def one(nom):
            http = await idle.get()
            try:
                await self._fire(http, nom, True, stats)
            finally:
                idle.put_nowait(http)

        for i in range(max(1, round(rate * seconds))):
            at = started + i / rate
            delay = at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            lateness.append(max(0.0, time.time() - at))
            want = "submitted" if i % 2 else "drafted"  # a return is due on a submitted one, a submit on a draft
            nom = ready(want) or ready(None)
            if nom is None:
                skipped += 1
                continue
            nom["busy"] = True
            task = asyncio.ensure_future(one(nom))
            task.add_done_callback(lambda _t, n=nom: n.__setitem__("busy", False))
            tasks.append(task)
        await asyncio.gather(*tasks)
        fired_until = time.time()
        await asyncio.gather(*(n["pending"] for n in noms if n.get("pending") is not None))
        for n in noms:
            n["pending"] = None
        while not idle.empty():
            await (idle.get_nowait()).close()
        out = self._report(stats, started)
        out.update(fired_for_s=round(fired_until - started, 3), skipped_busy=skipped,
                   dispatch_lateness=dist_ms(lateness))
        return out

    async def cmd_lifecycles(self, seconds: float, connections: int, submitters: dict, reviewers: list[str],
                             prefix: str):
        """Closed loop: create, submit, (checks), review, accept, (handover) per client, until time is up."""
        stats = self._new_stats()
        done, durations = [], []
        started = time.time()
        deadline = started + seconds
        states = sorted(submitters)
        self.lifecycle_runs = getattr(self, "lifecycle_runs", 0) + 1  # city names unique across runs
        prefix = f"{prefix} {self.lifecycle_runs}"

        async def expect(http, method, path, token, body, if_match, want):
            sent = time.time()
            status, _, raw = await http.request(method, path, token, body,
                                                {"If-Match": f'"{if_match}"'} if if_match else None)
            stats["requests"] += 1
            stats["latency"].append(time.time() - sent)
            stats["first"] = min(stats["first"], sent)
            if status != want:
                raise RuntimeError(f"{method} {path}: {status} {raw[:300]!r}")
            return json.loads(raw)

        async def client(k: int):
            http = Http(self.host, self.port)
            n = 0
            while time.time() < deadline:
                ms = states[(k + n) % len(states)]
                n += 1
                t0 = time.time()
                try:
                    created = await expect(http, "POST", "/api/v1/nominations", submitters[ms], content(
                        f"{prefix} {k:03d}-{n:04d}"), None, 201)
                    nid, ref = created["id"], created["reference"]
                    base = f"/api/v1/nominations/{nid}/transitions"
                    got = await expect(http, "POST", base, submitters[ms], {"trigger": "submit"}, created["version"],
                                       200)
                    await asyncio.wait_for(asyncio.gather(
                        self.sink.wait(ref, "nomination.submitted", MAILS["nomination.submitted"]),
                        self.sink.wait(ref, "checks.completed", MAILS["checks.completed"])), 300)
                    got = await expect(http, "POST", base, reviewers[0],
                                       {"trigger": "review", "assessment": ASSESSMENT}, got["version"] + 1, 200)
                    got = await expect(http, "POST", base, reviewers[1], {"trigger": "accept"}, got["version"], 200)
                    arrived = await asyncio.wait_for(asyncio.gather(*(
                        self.sink.wait(ref, kind, MAILS[kind]) for kind in
                        ("nomination.reviewed", "nomination.accepted", "handover.package", "nomination.handed_over"))),
                        300)
                except (RuntimeError, asyncio.TimeoutError, OSError) as exc:
                    stats["errors"].append(f"lifecycle {k}-{n}: {type(exc).__name__}: {exc}")
                    continue
                done.append((nid, ref, t0, max(arrived)))
                durations.append(max(arrived) - t0)
            await http.close()

        await asyncio.gather(*(client(k) for k in range(connections)))
        return {"lifecycles": len(done), "nominations": [d[0] for d in done], "requests": stats["requests"],
                "first_request": stats["first"], "last_mail": max((d[3] for d in done), default=started),
                "http_latency": dist_ms(stats["latency"]), "lifecycle_duration": dist_ms(durations),
                "errors": stats["errors"][:20], "error_count": len(stats["errors"])}

    async def cmd_list(self, queries: list[list], rounds: int):
        """One request at a time (a single connection): latency without queueing."""
        http = Http(self.host, self.port)
        latencies: dict[str, list[float]] = defaultdict(list)
        totals, bad = {}, Counter()
        for label, token, path in queries:  # warm-up: one each
            status, _, raw = await http.request("GET", path, token)
            if status == 200:
                totals[label] = json.loads(raw)["total"]
            else:
                bad[f"{label}: {status} {raw[:200]!r}"] += 1
        for _ in range(rounds):
            for label, token, path in queries:
                t0 = time.perf_counter()
                status, _, raw = await http.request("GET", path, token)
                latencies[label].append(time.perf_counter() - t0)
                if status != 200:
                    bad[f"{label}: {status}"] += 1
        await http.close()
        everything = [x for v in latencies.values() for x in v]
        return {"by_query": {label: dict(dist_ms(v), total_rows=totals.get(label)) for label, v in latencies.items()},
                "all": dist_ms(everything), "errors": dict(bad)}


def _loadgen_main(conn) -> None:
    asyncio.run(LoadGen(conn).serve())


class LoadGenProcess:
    def __init__(self):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_loadgen_main, args=(child,), name="scn-bench-loadgen", daemon=True)
        self.process.start()
        ready, self.smtp_port = self.conn.recv()
        assert ready == "ready"

    @property
    def pid(self) -> int:
        return self.process.pid

    def call(self, command: str, **kwargs):
        self.conn.send((command, kwargs))
        result = self.conn.recv()
        if isinstance(result, dict) and "error" in result:
            raise SystemExit(f"load generator: {result['error']}\n{result.get('traceback', '')}")
        return result

    def stop(self) -> None:
        if self.process.is_alive():
            try:
                self.conn.send(("stop", {}))
                self.conn.recv()
            except (OSError, EOFError):
                pass
            self.process.join(5)
            if self.process.is_alive():
                self.process.kill()


# =====================================================================================================
# The orchestrator: services, world, phases, figures.
# =====================================================================================================

def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / CLOCK_TICK, total / CLOCK_TICK


class CpuMeter:
    """CPU seconds per group of processes over a phase, and what the rest of the machine used."""

    def __init__(self, groups: dict):
        self.groups = groups

    def _sample(self):
        per = {}
        for name, pids in self.groups.items():
            per[name] = {pid: cpu for pid in set(pids()) if (cpu := cpu_seconds(pid)) is not None}
        return per, machine_busy(), time.time()

    def start(self) -> None:
        self.before = self._sample()

    def stop(self) -> dict:
        after = self._sample()
        (b_per, (b_busy, _), b_t), (a_per, (a_busy, _), a_t) = self.before, after
        used = {name: round(sum(cpu - b_per.get(name, {}).get(pid, 0.0) for pid, cpu in pids.items()), 2)
                for name, pids in a_per.items()}
        busy = a_busy - b_busy
        ours = sum(used.values())
        cpus = os.cpu_count() or 1
        elapsed = a_t - b_t
        return {"seconds": round(elapsed, 2), "cpu_s": used, "ours_cpu_s": round(ours, 2),
                "machine_busy_cpu_s": round(busy, 2), "others_cpu_s": round(max(0.0, busy - ours), 2),
                "machine_busy_share": round(busy / (elapsed * cpus), 3),
                "load_generator_share": round(used.get("load generator + SMTP sink", 0) / (elapsed * cpus), 3)}


def cpu_per(cpu: dict, count: int) -> dict:
    """CPU milliseconds per unit of work, by group of processes (less sensitive to a busy machine than rates)."""
    if not count:
        return {}
    c = cpu["cpu_s"]
    web = c.get("gunicorn workers", 0) + c.get("gunicorn master", 0)
    worker = c.get("celery pool", 0) + c.get("celery main", 0)
    out = {"web": web, "worker": worker, "postgres": c.get("postgres backends", 0), "redis": c.get("redis-server", 0),
           "load generator": c.get("load generator + SMTP sink", 0)}
    out = {k: round(v * 1000 / count, 2) for k, v in out.items()}
    out["server total"] = round(out["web"] + out["worker"] + out["postgres"] + out["redis"], 2)
    return out


def print_cpu(cpu: dict, per: dict | None = None, unit: str = "") -> None:
    parts = ", ".join(f"{k} {v:.1f}" for k, v in cpu["cpu_s"].items() if v >= 0.05)
    print(f"     CPU s over {cpu['seconds']:.1f} s: {parts}; other processes {cpu['others_cpu_s']:.1f} "
          f"(machine {cpu['machine_busy_share']:.0%} busy; load generator {cpu['load_generator_share']:.0%} of it)")
    if per:
        print(f"     CPU ms per {unit}: " + ", ".join(f"{k} {v}" for k, v in per.items()))


def vm_status(pid: int) -> dict:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        pass
    return out


class Gunicorn:
    """`gunicorn -w N web:app` run from `root` (this project, or another copy of it: bench/ab.py)."""

    def __init__(self, env: dict, log_path: Path, workers: int, worker_class: str, threads: int,
                 root: Path = ROOT):
        from tests.integration.conftest import BIN, free_port
        self.env, self.log_path, self.root = env, log_path, root
        self.port = free_port()
        self.command = [str(BIN / "gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{self.port}",
                        "--worker-class", worker_class, "--timeout", "120", "--log-level", "warning", "web:app"]
        if worker_class == "gthread":
            self.command[3:3] = ["--threads", str(threads)]
        self.workers = workers
        self.process = None

    def start(self) -> None:
        import urllib.request
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command, cwd=self.root, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn did not start:\n{self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as response:
                    if response.status == 200 and len(self.worker_pids()) >= self.workers:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit("gunicorn did not answer /healthz within 60 s")

    def worker_pids(self) -> list[int]:
        return children(self.process.pid) if self.process else []

    def stop(self) -> None:
        stop_process_group(self.process)


def build_world(svc) -> dict:
    """The reference member states (each with a lead agency email), one open cycle without a practical
    limit, 2 submitters per member state, 2 reviewers of no member state, an admin."""
    import sqlalchemy as sa
    from werkzeug.security import generate_password_hash

    from scn_workflow.db import tables as t
    from scn_workflow.domain.reference import ascn
    now = datetime.now(timezone.utc)
    pw = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
    states = [m["code"] for m in ascn()["member_states"]]
    users = [(f"sub-{ms.lower()}-{i}", "submitter", ms) for ms in states for i in (1, 2)]
    users += [("rev-a", "reviewer", None), ("rev-b", "reviewer", None), ("root", "admin", None)]
    with svc.engine.begin() as connection:
        connection.execute(sa.insert(t.member_states), [
            {"code": m["code"], "name": m["name"], "lead_agency_name": m.get("lead_agency") or f"{m['name']} agency",
             "lead_agency_email": f"lead@{m['code'].lower()}.example"} for m in ascn()["member_states"]])
        connection.execute(sa.insert(t.cycles).values(
            code=CYCLE, name="benchmark cycle", opens_at=now - timedelta(days=30), closes_at=now + timedelta(days=365),
            limit_per_state=1_000_000, requires_action_plan=False))
        connection.execute(sa.insert(t.users), [
            {"username": u, "email": f"{u}@bench.example", "role": r, "member_state": ms, "password_hash": pw}
            for u, r, ms in users])
    return {"member_states": states, "users": users}


def issue_tokens(base: str, usernames: list[str]) -> dict[str, str]:
    import urllib.request
    tokens = {}
    for username in usernames:
        request = urllib.request.Request(f"{base}/api/v1/tokens", method="POST",
                                         data=json.dumps({"username": username, "password": PASSWORD}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            tokens[username] = json.loads(response.read())["token"]
    return tokens


def make_pool(svc, world: dict, tokens: dict, size: int, tag: str) -> list[dict]:
    """`size` complete drafts, round robin over the member states (created through the service layer)."""
    from scn_workflow.domain.model import Actor, Role
    from scn_workflow.services import nominations
    pool = []
    states = world["member_states"]
    for i in range(size):
        ms = states[i % len(states)]
        sub = f"sub-{ms.lower()}-{1 + (i // len(states)) % 2}"
        nom = nominations.create(svc, Actor(sub, Role.SUBMITTER, ms), content(f"{tag} {i:05d}"))
        pool.append({"id": nom.id, "reference": nom.reference, "version": nom.version, "state": nom.state,
                     "submitter": tokens[sub], "reviewer": tokens["rev-a" if i % 2 else "rev-b"]})
    return pool


def max_event_pk(svc) -> int:
    import sqlalchemy as sa

    from scn_workflow.db import tables as t
    with svc.engine.connect() as connection:
        return connection.scalar(sa.select(sa.func.coalesce(sa.func.max(t.events.c.id), 0)))


def phase_events(svc, nomination_ids: list[int], after_pk: int) -> list:
    import sqlalchemy as sa

    from scn_workflow.db import tables as t
    e, n = t.events.c, t.nominations.c
    rows = []
    with svc.engine.connect() as connection:
        for i in range(0, len(nomination_ids), 5000):
            chunk = nomination_ids[i:i + 5000]
            rows += connection.execute(
                sa.select(e.event_id, e.nomination_id, e.seq, e.name, e.from_state, e.occurred_at, n.member_state)
                .join(t.nominations, n.id == e.nomination_id)
                .where(e.nomination_id.in_(chunk), e.id > after_pk)).all()
    return rows


def expected_mails(svc, events) -> dict[str, int]:
    """Mails each event should cause, as the worker decides (notifications.recipients), plus the
    handover package mail of each acceptance (the lead agency has an email address)."""
    from types import SimpleNamespace

    from scn_workflow.services import notifications
    from scn_workflow.services.relay import NOTIFIED
    cache: dict[tuple, int] = {}
    out = {}
    with svc.uow(read_only=True) as uow:
        for ev in events:
            if ev.name not in NOTIFIED:
                continue
            key = (ev.member_state, ev.name, ev.from_state)
            if key not in cache:
                cache[key] = len(notifications.recipients(uow, ev, SimpleNamespace(member_state=ev.member_state)))
            out[ev.event_id] = cache[key] + (1 if ev.name == "nomination.accepted" else 0)
    return out


def verify_mails(svc, loadgen: LoadGenProcess, nomination_ids: list[int], after_pk: int,
                 timeout: float = 120.0) -> dict:
    """Count the phase's expected mails from the database and wait until the sink has them all."""
    events = phase_events(svc, nomination_ids, after_pk)
    expected = expected_mails(svc, events)
    deadline = time.monotonic() + timeout
    while True:
        arrivals = loadgen.call("arrivals", event_ids=list(expected))
        missing = sum(max(0, n - len(arrivals.get(e, ()))) for e, n in expected.items())
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    duplicates = sum(max(0, len(arrivals.get(e, ())) - n) for e, n in expected.items())
    last = max((max(a) for a in arrivals.values() if a), default=0.0)
    return {"events": len(events), "mails_expected": sum(expected.values()), "missing": missing,
            "duplicates": duplicates, "last_mail": last, "arrivals": arrivals, "expected": expected,
            "event_rows": events}


def purge_queues(redis_url: str) -> int:
    """Drop the messages waiting in the Celery queues (not kombu's bindings: the publishers keep them)."""
    import redis
    client = redis.Redis.from_url(redis_url)
    names = {b"checks", b"notifications", b"handover", b"webhooks"}
    dropped = 0
    for key in list(client.scan_iter()):
        if key.split(b"\x06\x16")[0] in names:
            dropped += client.llen(key) if client.type(key) == b"list" else 0
            client.delete(key)
    client.close()
    return dropped


# --- py-spy ------------------------------------------------------------------------------------------

WEB_BUCKETS = [  # (label, function, path fragment); the first that matches a busy sample wins
    ("outbox relay thread: publish to Redis", "_run", "scn_workflow/workers/background.py"),
    ("auth: bearer token lookup (tokens.resolve)", "resolve", "scn_workflow/services/tokens.py"),
    ("nominations.fire (load, facts, machine, UPDATE, event + outbox rows, commit)", "fire",
     "scn_workflow/services/nominations.py"),
    ("nominations.get (refresh after 412)", "get", "scn_workflow/services/nominations.py"),
    ("nominations.search (count + page query)", "search", "scn_workflow/services/nominations.py"),
    ("attachments.listing (one query per response)", "listing", "scn_workflow/services/attachments.py"),
    ("allowed_triggers (machine, per item)", "allowed_triggers", "scn_workflow/"),
    ("request body parsing and validation (webargs/marshmallow)", None, "webargs/"),
    ("response serialisation (marshmallow dump, JSON)", "_prepare_response_content", "flask_smorest/"),
    ("response serialisation (marshmallow dump, JSON)", "dump", "marshmallow/schema.py"),
    ("response serialisation (marshmallow dump, JSON)", None, "flask/json/"),
    ("request log line (JSON logging)", "_log_request", "scn_workflow/web/__init__.py"),
    ("metrics (prometheus counters)", None, "scn_workflow/web/metrics.py"),
    ("flask / werkzeug / gunicorn request handling", None, ""),
]
WORKER_BUCKETS = [
    ("outbox relay thread: publish to Redis", "_run", "scn_workflow/workers/background.py"),
    ("heartbeat thread", "beat", "scn_workflow/workers/signals.py"),
    ("task_runs row + log (Celery signal handlers)", "send", "celery/utils/dispatch/signal.py"),
    ("notifications: SMTP conversation", None, "scn_workflow/services/mailer.py"),
    ("notifications: compose mail (jinja, MIME by hand)", "compose", "scn_workflow/services/notifications.py"),
    ("notifications: recipients", "choose_recipients", "scn_workflow/services/notifications.py"),
    ("notifications: reading events, recording mails and done marks", "notify_many",
     "scn_workflow/services/notifications.py"),
    ("checks: run_checks_many (facts, insert, checks.completed, done marks)", "run_checks_many",
     "scn_workflow/services/checks.py"),
    ("checks: one at a time (a retry, or a batch that failed)", "_checks", "scn_workflow/services/reactions.py"),
    ("handover: package, delivery, hand_over", None, "scn_workflow/services/handover.py"),
    ("other task work", "_react", "scn_workflow/workers/tasks.py"),
    ("Celery: message handling in the pool process", None, ""),
]


def _frame(f: str) -> tuple[str, str]:
    """("Class.function" or "function", path relative to site-packages / the stdlib / the project)."""
    name, _, where = f.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return name, path


def _has(frames: list[tuple[str, str]], function: str | None, path: str) -> bool:
    return any((function is None or name.rsplit(".", 1)[-1] == function) and path in where
               for name, where in frames)


def _busy(frames: list[tuple[str, str]], kind: str) -> bool:
    if _has(frames, "_run", "scn_workflow/workers/background.py"):
        return _has(frames, "publish", "scn_workflow/services/relay.py")
    if _has(frames, "beat", "scn_workflow/workers/signals.py"):
        return "sleep" not in frames[-1][0]
    if kind == "web":
        return _has(frames, "handle_request", "gunicorn/workers/") or _has(frames, "handle", "gunicorn/workers/gthread")
    return _has(frames, None, "scn_workflow/") or _has(frames, None, "celery/app/trace.py")


def _waiting_on(frames: list[tuple[str, str]]) -> str:
    """What a busy sample waits on (its innermost frames), or 'Python' when it is on the CPU."""
    if any("do_ping" in name for name, _ in frames):
        return "PostgreSQL: pool pre-ping"
    name, path = frames[-1]
    if path.startswith("psycopg/") and any(w in name for w in ("wait", "execute", "commit", "_exec")):
        return "PostgreSQL: waiting"
    if path in ("smtplib.py", "socket.py", "ssl.py", "selectors.py") or "smtplib" in path:
        return "socket wait (SMTP/HTTP)"
    if path.startswith(("redis/", "kombu/")) and any(w in name for w in ("read", "recv", "wait", "send")):
        return "Redis: waiting"
    return "Python"


def spy_report(raw: Path, pids: set[int], kind: str) -> dict:
    buckets = WEB_BUCKETS if kind == "web" else WORKER_BUCKETS
    total = busy = 0
    by_bucket, by_wait, leaf, inclusive = Counter(), Counter(), Counter(), Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        count = int(count)
        raw_frames = stack.split(";")
        procs = [f for f in raw_frames if f.startswith("process ")]
        if procs:
            pid = int(procs[-1].split()[1].split(":")[0])
            if pids and pid not in pids:
                continue
        frames = [_frame(f) for f in raw_frames if not f.startswith(("process ", "thread "))]
        total += count
        if not frames or not _busy(frames, kind):
            continue
        busy += count
        label = next(label for label, function, path in buckets if _has(frames, function, path))
        by_bucket[label] += count
        by_wait[(label, _waiting_on(frames))] += count
        leaf[f"{frames[-1][0]} ({frames[-1][1]})"] += count
        for key in {f"{name} ({path})" for name, path in frames}:
            inclusive[key] += count
    if not busy:
        return {"error": "py-spy recorded no busy samples", "samples": total}

    def rows(counter, n):
        return [{"what": k if isinstance(k, str) else f"{k[0]} [{k[1]}]", "share": round(v / busy, 3)}
                for k, v in counter.most_common(n)]
    return {"samples": total, "busy_samples": busy, "busy_share_of_samples": round(busy / max(1, total), 3),
            "by_step": rows(by_bucket, 20), "by_step_and_wait": rows(by_wait, 30),
            "top_self": rows(leaf, 25),
            "top_inclusive": [r for r in rows(inclusive, 120) if r["share"] < 0.97][:40]}


class Spy:
    """py-spy record on a process and its children: wall clock (--idle: also time spent waiting on
    PostgreSQL, Redis, SMTP) or on-CPU only (without --idle)."""

    def __init__(self, binary: str, pid: int, out: Path, mode: str = "wall"):
        self.out, self.mode = out, mode
        self.log = out.with_suffix(".log")
        command = [binary, "record", "--subprocesses", "--nonblocking", "--rate", str(SPY_RATE),
                   "--format", "raw", "-o", str(out), "-p", str(pid)]
        command.insert(2, {"wall": "--idle", "gil": "--gil"}.get(mode, "--idle"))
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        time.sleep(1.0)  # attaching

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        if KEEP_PROFILES and self.out.exists():
            KEEP_PROFILES.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.out, KEEP_PROFILES / self.out.name)

    def report(self, pids: set[int], kind: str) -> dict:
        if not self.out.exists():
            return {"error": self.log.read_text(errors="replace")[-500:]}
        out = spy_report(self.out, pids, kind)
        out["tool"] = (f"py-spy record --rate {SPY_RATE} --nonblocking "
                       + ("--idle (wall clock: busy samples, including waits)" if self.mode == "wall"
                          else "--gil (samples of the thread holding the GIL: Python CPU)"))
        return out


def print_profile(title: str, prof: dict) -> None:
    print(f"   {title}")
    if "error" in prof:
        print(f"     {prof['error']}")
        return
    for row in prof["by_step_and_wait"][:14]:
        print(f"     {row['share']:6.1%}  {row['what']}")
    print("     top self time: " + "; ".join(f"{r['what']} {r['share']:.1%}" for r in prof["top_self"][:6]))


# --- list and search on a large table ----------------------------------------------------------------

WORDS = ["Bandar", "Kota", "Muang", "Thanh", "Phnom", "San", "Bay", "Port", "Hill", "River", "Lake", "Pura",
         "Nakhon", "Ban", "Tanjung", "Sungai", "Kampung", "Batu", "Cao", "Dong", "Hai", "Luang", "Mae", "Pulau"]
REGIONS = ["North", "South", "East", "West", "Central", "Coastal", "Highland", "Delta", "Island", "Valley"]
LIST_CYCLES = [f"ASCN-{year}" for year in range(2018, 2026)]


def insert_rows(db_url: str, count: int, states: list[str]) -> dict:
    """COPY `count` nominations into the table (no events), spread over 9 cycles, every member state
    and every state, then VACUUM ANALYZE: what autovacuum does soon after such a load, and what a
    table grown over years looks like (visibility map set, for index-only counts)."""
    import psycopg
    import sqlalchemy as sa
    url = sa.engine.make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    rng = random.Random(7)
    now = datetime.now(timezone.utc)
    workflow_states = ["drafted"] * 20 + ["submitted"] * 15 + ["reviewed"] * 10 + ["accepted"] * 25 + \
        ["handed_over"] * 15 + ["rejected"] * 10 + ["withdrawn"] * 5
    cycles = LIST_CYCLES + [CYCLE]
    focus = json.dumps(["civic_social", "quality_environment"])
    projects = json.dumps([{"title": "Village e-services", "focus_area": "civic_social", "description": "",
                            "priority": True},
                           {"title": "Clean rivers", "focus_area": "quality_environment", "description": "",
                            "priority": False}])
    columns = ("reference, member_state, cycle, city_name, region, population, csco_name, csco_email, vision, "
               "focus_areas, projects, state, version, created_by, created_at, updated_at, submitted_at, "
               "reviewed_by, checks_outcome, event_count")
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO cycles (code, name, opens_at, closes_at, limit_per_state) "
                            "VALUES (%s, %s, %s, %s, 3) ON CONFLICT DO NOTHING",
                            [(c, f"{c} (bench)", datetime(int(c[-4:]), 1, 1, tzinfo=timezone.utc),
                              datetime(int(c[-4:]) + 1, 1, 1, tzinfo=timezone.utc)) for c in LIST_CYCLES])
            with cur.copy(f"COPY nominations ({columns}) FROM STDIN") as copy:
                for i in range(count):
                    ms = states[i % len(states)]
                    cycle = cycles[rng.randrange(len(cycles))]
                    state = workflow_states[rng.randrange(len(workflow_states))]
                    city = f"{WORDS[rng.randrange(len(WORDS))]} {WORDS[rng.randrange(len(WORDS))]}{i}"
                    created = now - timedelta(days=rng.uniform(1, 3000))
                    updated = created + timedelta(days=rng.uniform(0, 30))
                    copy.write_row((f"{cycle}-{ms}-L{i:06d}", ms, cycle, city, REGIONS[i % len(REGIONS)],
                                    rng.randrange(10_000, 10_000_000), "Officer", "csco@list.example",
                                    "A vision.", focus, projects, state, 3, f"sub-{ms.lower()}-1", created, updated,
                                    None if state == "drafted" else created + timedelta(days=1),
                                    "rev-a" if state in ("reviewed", "accepted", "handed_over", "rejected") else None,
                                    None if state == "drafted" else "passed", 0))
        conn.commit()
        inserted = time.perf_counter()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE nominations")
    return {"rows": count, "insert_s": round(inserted - started, 2),
            "vacuum_s": round(time.perf_counter() - inserted, 2)}


def list_queries(tokens: dict) -> list[list]:
    admin, reviewer, submitter = tokens["root"], tokens["rev-a"], tokens["sub-th-1"]
    base = "/api/v1/nominations"
    return [
        ["admin: all, page 1", admin, base],
        ["admin: all, page 200", admin, f"{base}?page=200"],
        ["admin: state=submitted", admin, f"{base}?state=submitted"],
        ["admin: cycle + member_state + state", admin, f"{base}?cycle=ASCN-2024&member_state=MY&state=accepted"],
        ["admin: q=city word", admin, f"{base}?q=tanjung"],
        ["admin: q=member state name", admin, f"{base}?q=malaysia"],
        ["admin: q=no match", admin, f"{base}?q=zzyzx"],
        ["reviewer: default, per_page=50", reviewer, f"{base}?per_page=50"],
        ["reviewer: state=reviewed, page 3", reviewer, f"{base}?state=reviewed&page=3"],
        ["reviewer: q=city word", reviewer, f"{base}?q=sungai"],
        ["submitter: own, page 1", submitter, base],
        ["submitter: own, page 20", submitter, f"{base}?page=20"],
        ["submitter: cycle + q", submitter, f"{base}?cycle=ASCN-2022&q=bay"],
    ]


# --- phases ------------------------------------------------------------------------------------------

def transitions_figures(run: dict, check: dict | None) -> dict:
    out = {k: v for k, v in run.items() if k not in ("fired",)}
    web_s = max(1e-9, run["last_response"] - run["first_request"])
    out["http_per_s"] = round(run["transitions"] / web_s, 1)
    if check is not None:
        out.update({k: v for k, v in check.items() if k not in ("arrivals", "expected", "event_rows")})
        delivered_s = max(1e-9, check["last_mail"] - run["first_request"])
        out["delivered_per_s"] = round(run["transitions"] / delivered_s, 2)
        out["first_request_to_last_mail_s"] = round(delivered_s, 2)
    return out


def latency_figures(run: dict, check: dict) -> dict:
    """Commit-to-mail, bracketed: from occurred_at (before the commit) and from the HTTP response (after it)."""
    arrivals, events = check["arrivals"], check["event_rows"]
    from_event = defaultdict(list)
    for ev in events:
        for at in arrivals.get(ev.event_id, ()):
            from_event[ev.name].append(at - ev.occurred_at.timestamp())
    event_of = {"submit": "nomination.submitted", "return_for_revision": "nomination.returned"}
    by_nomination = defaultdict(list)
    for ev in sorted(events, key=lambda e: e.seq):
        by_nomination[(ev.nomination_id, ev.name)].append(ev.event_id)
    fired = defaultdict(list)
    for nid, trigger, _sent, answered in sorted(run["fired"], key=lambda f: f[2]):
        fired[(nid, event_of[trigger])].append(answered)
    from_response = []
    for key, answers in fired.items():
        for event_id, answered in zip(by_nomination.get(key, []), answers):
            from_response += [at - answered for at in arrivals.get(event_id, ())]
    everything = [x for v in from_event.values() for x in v]
    return {"mails": len(everything), "event_time_to_mail": dist_ms(everything),
            "event_time_to_mail_by_event": {k: dist_ms(v) for k, v in from_event.items()},
            "response_to_mail": dist_ms(from_response)}


def memory_figures(gunicorn: Gunicorn, worker) -> dict:
    web = {pid: vm_status(pid) for pid in gunicorn.worker_pids()}
    pool = {pid: vm_status(pid) for pid in children(worker.process.pid)}
    main_web, main_worker = vm_status(gunicorn.process.pid), vm_status(worker.process.pid)

    def peak(values):
        return max((v.get("VmHWM", 0) for v in values), default=0)
    return {"unit": "MB (VmHWM: peak resident set, shared pages counted in each process)",
            "web_worker_max": peak(web.values()), "web_workers": web, "web_master": main_web,
            "web_total": round(sum(v.get("VmHWM", 0) for v in web.values()) + main_web.get("VmHWM", 0), 1),
            "celery_process_max": peak([*pool.values(), main_worker]), "celery_pool": pool,
            "celery_main": main_worker,
            "celery_total": round(sum(v.get("VmHWM", 0) for v in pool.values()) + main_worker.get("VmHWM", 0), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the delivered transitions and "
                                                                    "lifecycle phases")
    parser.add_argument("--short-seconds", type=float, default=8.0,
                        help="length of the /healthz, web-only, latency and profile phases")
    parser.add_argument("--nominations", type=int, default=512, help="pre-created nominations per pool")
    parser.add_argument("--rows", type=int, default=100_000, help="nominations COPYed in for list and search "
                                                                   "(0: skip that phase)")
    parser.add_argument("--connections", type=int, default=96,
                        help="concurrent clients, each awaiting the mails of its transition before the next")
    parser.add_argument("--lifecycle-connections", type=int, default=32)
    parser.add_argument("--list-rounds", type=int, default=20)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--worker-class", choices=("sync", "gthread"), default="gthread",
                        help="gunicorn worker class (gthread: measured better than sync, see docs/performance.md)")
    parser.add_argument("--threads", type=int, default=8, help="threads per gthread worker")
    parser.add_argument("--concurrency", type=int, default=2, help="-c of the Celery worker")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--py-spy", dest="py_spy", default=shutil.which("py-spy") or (
        "/tmp/pyspy/bin/py-spy" if Path("/tmp/pyspy/bin/py-spy").exists() else None))
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--keep-profiles", metavar="DIR", help="copy py-spy's raw stacks here")
    parser.add_argument("--only", nargs="+", choices=PHASES, help="run only these phases (default: all)")
    parser.add_argument("--latency-rate", type=float, help="pace of the latency phase (default: half of phase 3's "
                                                           "rate)")
    args = parser.parse_args(argv)
    global KEEP_PROFILES
    KEEP_PROFILES = Path(args.keep_profiles) if args.keep_profiles else None
    if args.profile and not args.py_spy:
        print("py-spy not found (pip install --target /tmp/pyspy py-spy, or --py-spy PATH): no profile")
        args.profile = False

    import sqlalchemy as sa

    from bench.workers import BenchWorker, postgres_backends, temporary_database
    from scn_workflow.config import Settings
    from scn_workflow.services import Services
    from tests.integration.conftest import RedisServer, worker_env

    began = time.perf_counter()
    results: dict = {"benchmark": "lifecycle", "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
                     "load_average": {"start": os.getloadavg()}, "source": source_state(),
                     "options": {k: v for k, v in vars(args).items() if k not in ("py_spy", "output")},
                     "targets": TARGETS}
    print(f"load average {results['load_average']['start'][0]:.2f} {results['load_average']['start'][1]:.2f} "
          f"{results['load_average']['start'][2]:.2f} on {os.cpu_count()} CPUs; code at {results['source']['head']}"
          + (f" + {results['source']['uncommitted_changes_in_scn_workflow']} uncommitted file(s) in scn_workflow"
             if results["source"]["uncommitted_changes_in_scn_workflow"] else ""))

    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scn-bench-lifecycle-")))
        loadgen = LoadGenProcess()
        stack.callback(loadgen.stop)
        redis_server = RedisServer(workdir)
        redis_server.start()
        stack.callback(redis_server.stop)
        db_url = stack.enter_context(temporary_database())
        database = sa.engine.make_url(db_url).database
        svc = Services(Settings(instance_path=str(workdir / "bench"), database_url=db_url))
        stack.callback(svc.engine.dispose)
        world = build_world(svc)
        smtp_url = f"smtp://127.0.0.1:{loadgen.smtp_port}"
        env = worker_env(db_url, redis_server.url, smtp_url, workdir / "instance")
        gunicorn = Gunicorn(env, workdir / "gunicorn.log", args.web_workers, args.worker_class, args.threads)
        gunicorn.start()
        stack.callback(gunicorn.stop)
        loadgen.call("target", host="127.0.0.1", port=gunicorn.port)
        base = f"http://127.0.0.1:{gunicorn.port}"
        tokens = issue_tokens(base, [u for u, _, _ in world["users"]])
        pool_web = make_pool(svc, world, tokens, args.nominations, "Web")
        pool_mail = make_pool(svc, world, tokens, args.nominations, "Mail")
        loadgen.call("pool", name="web", nominations=pool_web)
        loadgen.call("pool", name="mail", nominations=pool_mail)
        with svc.engine.connect() as connection:
            results["postgresql"] = ".".join(map(str, connection.dialect.server_version_info))
        worker = BenchWorker(env, workdir / "celery.log", "worker", "checks,notifications,handover,webhooks",
                             args.concurrency)
        groups = {"gunicorn workers": gunicorn.worker_pids, "gunicorn master": lambda: [gunicorn.process.pid],
                  "celery pool": lambda: children(worker.process.pid) if worker.process else [],
                  "celery main": lambda: [worker.process.pid] if worker.process else [],
                  "redis-server": lambda: [redis_server.process.pid],
                  "postgres backends": lambda: postgres_backends(database),
                  "load generator + SMTP sink": lambda: [loadgen.pid], "orchestrator": lambda: [os.getpid()]}
        setup = (f"gunicorn -w {args.web_workers} --worker-class {args.worker_class}"
                 + (f" --threads {args.threads}" if args.worker_class == "gthread" else "")
                 + f"; celery -c {args.concurrency}; {args.connections} client connections")
        results["setup"] = setup
        print(f"setup: {setup}; {len(world['member_states'])} member states x 2 submitters, 2 reviewers; "
              f"pools of {args.nominations} nominations")

        def measured(name: str, fn):
            results["load_average"][name] = os.getloadavg()
            meter = CpuMeter(groups)
            meter.start()
            out = fn()
            out["cpu"] = meter.stop()
            out["load_average_before"] = results["load_average"][name]
            return out

        def want(phase: str) -> bool:
            return not args.only or phase in args.only

        health = None
        if want("healthz"):
            print(f"1. GET /healthz, {args.connections} connections, {args.short_seconds:g} s (no worker running)")
            health = measured("healthz", lambda: loadgen.call("healthz", seconds=args.short_seconds,
                                                              connections=args.connections))
            health["cpu_ms_per_request"] = cpu_per(health["cpu"], health["requests"])
            results["healthz"] = health
            print(f"   {health['per_s']:8.1f} requests/s   latency median {health['latency']['median_ms']} ms, "
                  f"p99 {health['latency']['p99_ms']} ms; errors {health['errors'] or 'none'}")
            print_cpu(health["cpu"], health["cpu_ms_per_request"], "request")

        if want("web"):
            print(f"2. transitions over HTTP, web tier only (no worker), {args.connections} connections, "
                  f"{args.short_seconds:g} s")
            web = measured("web_only", lambda: transitions_figures(loadgen.call(
                "transitions", pool="web", seconds=args.short_seconds, connections=args.connections, deliver=False),
                None))
            web["purged_messages"] = purge_queues(redis_server.url)
            web["cpu_ms_per_transition"] = cpu_per(web["cpu"], web["transitions"])
            results["web_only"] = web
            print(f"   {web['http_per_s']:8.1f} transitions/s (HTTP 200), {web['transitions']} in "
                  f"{web['fired_for_s']} s; latency median {web['http_latency']['median_ms']} ms, "
                  f"p99 {web['http_latency']['p99_ms']} ms"
                  + (f"; = {web['http_per_s'] / health['per_s']:.3f} x /healthz" if health else "")
                  + (f"; {web['error_count']} errors: {web['errors'][:2]}" if web["error_count"] else ""))
            print_cpu(web["cpu"], web["cpu_ms_per_transition"], "transition")

        if args.profile and want("profile"):
            print(f"   profiling the web tier: the same load for {args.short_seconds:g} s under py-spy")
            spies = (Spy(args.py_spy, gunicorn.process.pid, workdir / "web-wall.txt", mode="wall"),
                     Spy(args.py_spy, gunicorn.process.pid, workdir / "web-gil.txt", mode="gil"))
            run = loadgen.call("transitions", pool="web", seconds=args.short_seconds, connections=args.connections,
                               deliver=False)
            for spy in spies:
                spy.stop()
            purge_queues(redis_server.url)
            pids = set(gunicorn.worker_pids())
            results["profile_web"] = {"run": transitions_figures(run, None), "wall": spies[0].report(pids, "web"),
                                      "gil": spies[1].report(pids, "web")}
            print(f"   (under py-spy: {results['profile_web']['run']['http_per_s']} transitions/s)")
            print_profile("gunicorn workers, wall time while busy (web tier only):", results["profile_web"]["wall"])
            print_profile("gunicorn workers, holding the GIL (Python CPU):", results["profile_web"]["gil"])

        worker.start()
        stack.callback(worker.stop)
        # warm-up: every task type once, not counted
        loadgen.call("transitions", pool="mail", seconds=1.5, connections=4, deliver=True)
        ids = [n["id"] for n in pool_mail]

        tr = None
        if want("delivered"):
            print(f"3. transitions with every mail delivered, {args.connections} connections, {args.seconds:g} s")
            mark = max_event_pk(svc)

            def delivered():
                run = loadgen.call("transitions", pool="mail", seconds=args.seconds, connections=args.connections,
                                   deliver=True)
                return transitions_figures(run, verify_mails(svc, loadgen, ids, mark))
            tr = measured("delivered", delivered)
            tr["cpu_ms_per_transition"] = cpu_per(tr["cpu"], tr["transitions"])
            results["transitions"] = tr
            print(f"   {tr['delivered_per_s']:8.2f} transitions/s with every mail delivered: {tr['transitions']} "
                  f"transitions, {tr['mails_expected']} mails ({tr['missing']} missing, {tr['duplicates']} duplicates) "
                  f"in {tr['first_request_to_last_mail_s']} s")
            print(f"   HTTP latency median {tr['http_latency']['median_ms']} ms; {tr.get('triggers')}; "
                  + (f"vs /healthz {tr['delivered_per_s'] / health['per_s']:.4f}; " if health else "")
                  + f"target {TARGETS['transitions_per_s']}/s: "
                  + f"{'met' if tr['delivered_per_s'] >= TARGETS['transitions_per_s'] else 'NOT met'}"
                  + (f"; {tr['error_count']} errors: {tr['errors'][:2]}" if tr["error_count"] else ""))
            print_cpu(tr["cpu"], tr["cpu_ms_per_transition"], "transition")

        if want("lifecycles"):
            print(f"4. complete lifecycles (create .. handed_over), {args.lifecycle_connections} connections, "
                  f"{args.seconds:g} s")
            mark = max_event_pk(svc)

            def lifecycles():
                run = loadgen.call("lifecycles", seconds=args.seconds, connections=args.lifecycle_connections,
                                   submitters={ms: tokens[f"sub-{ms.lower()}-1"] for ms in world["member_states"]},
                                   reviewers=[tokens["rev-a"], tokens["rev-b"]], prefix="Life")
                check = verify_mails(svc, loadgen, run["nominations"], mark)
                out = {k: v for k, v in run.items() if k != "nominations"}
                out.update({k: v for k, v in check.items() if k not in ("arrivals", "expected", "event_rows")})
                span = max(1e-9, check["last_mail"] - run["first_request"])
                out["per_s"] = round(run["lifecycles"] / span, 2)
                out["first_request_to_last_mail_s"] = round(span, 2)
                out["mails_per_lifecycle"] = round(check["mails_expected"] / max(1, run["lifecycles"]), 2)
                return out
            life = measured("lifecycles", lifecycles)
            life["cpu_ms_per_lifecycle"] = cpu_per(life["cpu"], life["lifecycles"])
            results["lifecycles"] = life
            print(f"   {life['per_s']:8.2f} lifecycles/s: {life['lifecycles']} handed over, {life['mails_expected']} "
                  f"mails ({life['missing']} missing, {life['duplicates']} duplicates) in "
                  f"{life['first_request_to_last_mail_s']} s; one lifecycle median "
                  f"{life['lifecycle_duration'].get('median_ms')} ms"
                  + (f"; {life['error_count']} errors: {life['errors'][:2]}" if life["error_count"] else ""))
            print_cpu(life["cpu"], life["cpu_ms_per_lifecycle"], "lifecycle")

        if want("latency"):
            rate = args.latency_rate or (max(0.5, tr["delivered_per_s"] / 2) if tr else 10.0)
            print(f"5. commit-to-mail latency: transitions paced at {rate:.2f}/s "
                  f"({'half of phase 3' if tr and not args.latency_rate else 'given'}) for {args.short_seconds:g} s")
            mark = max_event_pk(svc)

            def paced():
                run = loadgen.call("paced", pool="mail", rate=rate, seconds=args.short_seconds, connections=8)
                check = verify_mails(svc, loadgen, ids, mark)
                out = transitions_figures(run, check)
                out.update(latency_figures(run, check), rate_target_per_s=round(rate, 2))
                out["achieved_per_s"] = round(run["transitions"] / max(1e-9, run["fired_for_s"]), 2)
                return out
            lat = measured("latency", paced)
            results["latency"] = lat
            ev, rs = lat["event_time_to_mail"], lat["response_to_mail"]
            print(f"   {lat['transitions']} transitions ({lat['achieved_per_s']}/s), {lat['mails']} mails "
                  f"({lat['missing']} missing)")
            print(f"   occurred_at (before commit) -> mail: median {ev.get('median_ms')} ms, p99 {ev.get('p99_ms')} ms;"
                  f" HTTP response (after commit) -> mail: median {rs.get('median_ms')} ms, p99 {rs.get('p99_ms')} ms; "
                  f"target p99 < {TARGETS['commit_to_mail_p99_ms']} ms: "
                  f"{'met' if ev.get('p99_ms', 1e9) < TARGETS['commit_to_mail_p99_ms'] else 'NOT met'}")
            for name, d in lat["event_time_to_mail_by_event"].items():
                print(f"     {name:22s} median {d['median_ms']} ms, p99 {d['p99_ms']} ms ({d['count']} mails)")
            print_cpu(lat["cpu"])

        if args.profile and want("profile"):
            print(f"6. profile: phase 3's load for {args.short_seconds:g} s with py-spy on the Celery worker")
            spies = (Spy(args.py_spy, worker.process.pid, workdir / "worker-wall.txt", mode="wall"),
                     Spy(args.py_spy, worker.process.pid, workdir / "worker-gil.txt", mode="gil"))
            mark = max_event_pk(svc)
            run = loadgen.call("transitions", pool="mail", seconds=args.short_seconds, connections=args.connections,
                               deliver=True)
            for spy in spies:
                spy.stop()
            pids = set(children(worker.process.pid))
            results["profile_worker"] = {"run": transitions_figures(run, verify_mails(svc, loadgen, ids, mark)),
                                         "wall": spies[0].report(pids, "worker"),
                                         "gil": spies[1].report(pids, "worker")}
            print(f"   (under py-spy: {results['profile_worker']['run']['delivered_per_s']} transitions/s delivered)")
            print_profile("Celery pool processes, wall time while busy:", results["profile_worker"]["wall"])
            print_profile("Celery pool processes, holding the GIL (Python CPU):", results["profile_worker"]["gil"])

        if args.rows and want("list"):
            print(f"7. list and search with {args.rows:,} more nominations (COPY), one request at a time")
            results["list"] = {"insert": insert_rows(db_url, args.rows, world["member_states"])}
            queries = list_queries(tokens)
            lst = measured("list", lambda: loadgen.call("list", queries=queries, rounds=args.list_rounds))
            results["list"].update(lst)
            print(f"   inserted in {results['list']['insert']['insert_s']} s, vacuumed in "
                  f"{results['list']['insert']['vacuum_s']} s; all queries: median "
                  f"{lst['all']['median_ms']} ms, p95 {lst['all']['p95_ms']} ms, p99 {lst['all']['p99_ms']} ms; "
                  f"target p95 < {TARGETS['list_p95_ms']} ms: "
                  f"{'met' if lst['all']['p95_ms'] < TARGETS['list_p95_ms'] else 'NOT met'}"
                  + (f"; errors {lst['errors']}" if lst["errors"] else ""))
            for label, d in lst["by_query"].items():
                print(f"     {label:38s} median {d['median_ms']:7.1f} ms, p95 {d['p95_ms']:7.1f} ms "
                      f"({d['total_rows']} rows match)")
            if args.profile and want("profile"):
                spy = Spy(args.py_spy, gunicorn.process.pid, workdir / "list-wall.txt", mode="wall")
                loadgen.call("list", queries=queries, rounds=max(5, args.list_rounds // 2))
                spy.stop()
                results["profile_list"] = {"wall": spy.report(set(gunicorn.worker_pids()), "web")}
                print_profile("gunicorn workers during list and search, wall time while busy:",
                              results["profile_list"]["wall"])

        mem = memory_figures(gunicorn, worker)
        results["memory"] = mem
        print(f"8. peak memory (VmHWM): web worker max {mem['web_worker_max']} MB (target < {TARGETS['web_mb']}; "
              f"all gunicorn processes {mem['web_total']} MB); Celery process max {mem['celery_process_max']} MB "
              f"(target < {TARGETS['worker_mb']}; main + pool {mem['celery_total']} MB)")
        results["load_average"]["end"] = os.getloadavg()

    results["wall_s"] = round(time.perf_counter() - began, 1)
    results["table"] = summary_table(results)
    print()
    print(results["table"])
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"written to {out} (whole run {results['wall_s']} s; load average at the end "
          f"{results['load_average']['end'][0]:.2f})")
    return 0


def summary_table(r: dict) -> str:
    rows = [("figure", "measured", "target", "")]
    h, w, t = r.get("healthz"), r.get("web_only"), r.get("transitions")
    if h:
        rows.append(("GET /healthz (baseline)", f"{h['per_s']:.0f} req/s", "",
                     f"CPU {h['cpu_ms_per_request'].get('web')} ms/request in gunicorn"))
    if w:
        rows.append(("transitions over HTTP, web tier only", f"{w['http_per_s']:.0f}/s", "",
                     (f"{w['http_per_s'] / h['per_s']:.3f} x healthz; " if h else "")
                     + f"CPU {w['cpu_ms_per_transition'].get('web')} ms/transition in gunicorn"))
    if t:
        rows.append(("transitions, every mail delivered", f"{t['delivered_per_s']:.1f}/s",
                     f">= {TARGETS['transitions_per_s']}/s",
                     ("met" if t["delivered_per_s"] >= TARGETS["transitions_per_s"] else "NOT met")
                     + (f"; {t['delivered_per_s'] / h['per_s']:.4f} x healthz" if h else "")))
        c = t["cpu_ms_per_transition"]
        rows.append(("  CPU ms per delivered transition", f"{c.get('server total')} ms", "",
                     f"web {c.get('web')}, worker {c.get('worker')}, postgres {c.get('postgres')}, "
                     f"redis {c.get('redis')}; load generator + sink {c.get('load generator')}"))
    life = r.get("lifecycles")
    if life:
        rows.append(("lifecycles drafted -> handed_over", f"{life['per_s']:.2f}/s", "", ""))
    lat = r.get("latency")
    if lat:
        ev, rs = lat["event_time_to_mail"], lat["response_to_mail"]
        rows.append((f"commit -> mail at {lat['rate_target_per_s']}/s, median",
                     f"{rs.get('median_ms')}..{ev.get('median_ms')} ms", "", ""))
        rows.append(("commit -> mail, p99", f"{rs.get('p99_ms')}..{ev.get('p99_ms')} ms",
                     f"< {TARGETS['commit_to_mail_p99_ms']} ms",
                     "met" if ev.get("p99_ms", 1e9) < TARGETS["commit_to_mail_p99_ms"] else
                     ("NOT met" if rs.get("p99_ms", 1e9) >= TARGETS["commit_to_mail_p99_ms"] else "bracket spans it")))
    lst = r.get("list")
    if lst and "all" in lst:
        rows.append((f"list/search, {lst['insert']['rows']:,} rows, p95", f"{lst['all']['p95_ms']} ms",
                     f"< {TARGETS['list_p95_ms']} ms", "met" if lst["all"]["p95_ms"] < TARGETS["list_p95_ms"]
                     else "NOT met"))
    m = r.get("memory")
    if m:
        rows.append(("peak memory, web worker (max)", f"{m['web_worker_max']} MB", f"< {TARGETS['web_mb']} MB",
                     "met" if m["web_worker_max"] < TARGETS["web_mb"] else "NOT met"))
        rows.append(("peak memory, Celery process (max)", f"{m['celery_process_max']} MB",
                     f"< {TARGETS['worker_mb']} MB", ("met" if m["celery_process_max"] < TARGETS["worker_mb"]
                                                      else "NOT met") + f"; main + pool {m['celery_total']} MB"))
    la = r["load_average"]
    rows.append(("load average start / end", f"{la['start'][0]:.2f} / {la.get('end', la['start'])[0]:.2f}",
                 "", f"{r['cpus']} CPUs, shared with other runs"))
    widths = [max(len(str(row[i])) for row in rows) for i in range(4)]
    lines = ["  ".join(str(c).ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
