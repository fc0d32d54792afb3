"""What the fixed parts cost on this machine: the floor under bench/lifecycle.py's figures.

    .venv/bin/python bench/floor.py [--mails 2000] [--statements 2000] [--messages 2000]

Each transition the lifecycle benchmark counts sends 3 mails on average (a submit: 2 to the
submitters, 2 to the reviewers once the checks completed; a return: 2), and its SMTP server, aiosmtpd,
runs on the same 2 CPUs. This measures, with nothing else running:

- aiosmtpd receiving one mail at a time on a kept connection: CPU per mail in the server's process
  (read from getrusage around the mails, not its start-up), and smtplib's CPU per mail in the client;
- one PostgreSQL round trip (SELECT 1): psycopg alone, and through SQLAlchemy Core;
- one Celery message published to Redis (send_task, as the relay does), through kombu's Redis
  transport and through the service's (scn_workflow/workers/transport.py).

and prints what those floors mean for the 1,100 delivered transitions a second of issue 7: the CPU
seconds per second the mail server alone would need. Figures go to bench/results/floor.json.
PostgreSQL: SCN_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres); Redis:
SCN_TEST_REDIS_URL (default redis://127.0.0.1:6379/0; a queue of its own, deleted at the end).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import smtplib
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # see bench/lifecycle.py
sys.path.insert(0, str(ROOT))

from tests.integration.conftest import free_port  # noqa: E402

MAILS_PER_TRANSITION = 3  # (4 for a submit + 2 for a return) / 2, as bench/lifecycle.py drives them
TARGET = 1100
BODY = (b"Subject: [ASCN-2018-ID-001] Makassar was submitted and is being checked\r\nFrom: scn@example.org\r\n"
        b"To: sub-id-1@bench.example\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n\r\n"
        + b"The nomination of Makassar was submitted and is being checked by the ASCN secretariat.\r\n" * 40)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _sink(port: int, ready, commands, results) -> None:
    from aiosmtpd.controller import Controller

    class Handler:
        received = 0

        async def handle_DATA(self, server, session, envelope):
            Handler.received += 1
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    commands.get()  # "start"
    start = _cpu()
    results.put("started")
    commands.get()  # "stop"
    results.put((Handler.received, _cpu() - start))
    controller.stop()


def smtp_floor(mails: int) -> dict:
    port = free_port()
    context = multiprocessing.get_context("spawn")
    ready, commands, results = context.Event(), context.Queue(), context.Queue()
    server = context.Process(target=_sink, args=(port, ready, commands, results), daemon=True)
    server.start()
    if not ready.wait(30):
        raise SystemExit("aiosmtpd did not start")
    client = smtplib.SMTP("127.0.0.1", port)
    client.ehlo()
    client.sendmail("scn@example.org", ["warm-up@bench.example"], BODY)
    commands.put("start")
    results.get(timeout=30)  # "started": the server's CPU is read from here on
    wall, cpu = time.perf_counter(), _cpu()
    for i in range(mails):
        client.sendmail("scn@example.org", [f"sub-{i % 22}@bench.example"], BODY)
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    client.quit()
    commands.put("stop")
    received, server_cpu = results.get(timeout=30)
    server.join(10)
    received -= 1  # the warm-up
    return {"mails": mails, "received": received, "mails_per_s": round(mails / wall, 1),
            "server_cpu_ms_per_mail": round(1000 * server_cpu / max(received, 1), 3),
            "client_cpu_ms_per_mail": round(1000 * cpu / mails, 3)}


def _per_call(fn, n: int) -> dict:
    fn()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn()
    return {"calls": n, "cpu_us": round(1e6 * (time.process_time() - cpu) / n, 1),
            "wall_us": round(1e6 * (time.perf_counter() - wall) / n, 1)}


def database_floor(url: str, n: int) -> dict:
    import psycopg
    import sqlalchemy as sa
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as connection:
        raw = _per_call(lambda: connection.execute("SELECT 1").fetchall(), n)
    engine = sa.create_engine(plain.replace("postgresql://", "postgresql+psycopg://", 1))
    statement = sa.select(sa.literal(1))
    with engine.connect() as connection:
        core = _per_call(lambda: connection.execute(statement).all(), n)
    engine.dispose()
    return {"psycopg": raw, "sqlalchemy_core": core}


def broker_floor(url: str, n: int, transport: str | None = None) -> dict:
    """One Celery publish as the relay makes it, through kombu's Redis transport or `transport`."""
    from celery import Celery
    app = Celery("floor", broker=url)
    app.conf.update(task_send_sent_event=False, broker_connection_retry_on_startup=False)
    if transport:
        app.conf.broker_transport = transport
    queue = f"scn-floor-{os.getpid()}"
    ids = ["00000000-0000-4000-8000-000000000000"]
    try:
        return _per_call(lambda: app.send_task("scn.notifications", args=ids, queue=queue, task_id=ids[0],
                                               retry=False, argsrepr=repr(ids), kwargsrepr="{}"), n)
    finally:
        with app.connection_for_write() as connection:
            connection.default_channel.queue_delete(queue)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--statements", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--output", default=str(HERE / "results" / "floor.json"))
    args = parser.parse_args()
    pg = os.environ.get("SCN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis = os.environ.get("SCN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

    smtp = smtp_floor(args.mails)
    database = database_floor(pg, args.statements)
    broker = broker_floor(redis, args.messages)
    ours = broker_floor(redis, args.messages, "scn_workflow.workers.transport:Transport")
    sink_cpu_s = TARGET * MAILS_PER_TRANSITION * smtp["server_cpu_ms_per_mail"] / 1000
    client_cpu_s = TARGET * MAILS_PER_TRANSITION * smtp["client_cpu_ms_per_mail"] / 1000
    # The most lenient reading of the target: one mail per transition, and besides it one Celery
    # message and one PostgreSQL statement, nothing else (no HTTP, no Flask, no checks).
    lenient_ms = (smtp["server_cpu_ms_per_mail"] + smtp["client_cpu_ms_per_mail"]
                  + broker["cpu_us"] / 1000 + database["sqlalchemy_core"]["cpu_us"] / 1000)
    result = {"load_average": os.getloadavg(), "cpus": os.cpu_count(), "smtp": smtp, "postgres": database,
              "celery_publish": broker, "celery_publish_workers_transport": ours,
              "at_target": {"transitions_per_s": TARGET, "mails_per_transition": MAILS_PER_TRANSITION,
                            "aiosmtpd_cpu_s_per_s": round(sink_cpu_s, 2),
                            "smtplib_cpu_s_per_s": round(client_cpu_s, 2),
                            "one_mail_one_message_one_statement_cpu_s_per_s": round(TARGET * lenient_ms / 1000, 2)}}
    print(f"load average {result['load_average'][0]:.2f} on {result['cpus']} CPUs")
    print(f"aiosmtpd receiving, one mail at a time on a kept connection: {smtp['mails_per_s']:.0f} mails/s; "
          f"server CPU {smtp['server_cpu_ms_per_mail']:.3f} ms/mail, smtplib client CPU "
          f"{smtp['client_cpu_ms_per_mail']:.3f} ms/mail ({smtp['received']} of {smtp['mails']} received)")
    print(f"PostgreSQL SELECT 1: psycopg {database['psycopg']['cpu_us']:.0f} us CPU "
          f"({database['psycopg']['wall_us']:.0f} us wall); SQLAlchemy Core {database['sqlalchemy_core']['cpu_us']:.0f} us "
          f"CPU ({database['sqlalchemy_core']['wall_us']:.0f} us wall)")
    print(f"Celery send_task to Redis: {broker['cpu_us']:.0f} us CPU ({broker['wall_us']:.0f} us wall) per message; "
          f"through workers/transport.py {ours['cpu_us']:.0f} us ({ours['wall_us']:.0f} us wall)")
    print(f"at {TARGET} transitions/s x {MAILS_PER_TRANSITION} mails: the aiosmtpd server alone needs "
          f"{sink_cpu_s:.2f} CPU s/s and smtplib {client_cpu_s:.2f} CPU s/s, of the {result['cpus']} this machine has")
    print(f"even with 1 mail, 1 Celery message and 1 statement per transition and nothing else: "
          f"{lenient_ms:.2f} ms CPU each, {TARGET * lenient_ms / 1000:.2f} CPU s/s at {TARGET}/s")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.output}")
    return 0 if smtp["received"] == smtp["mails"] else 1


if __name__ == "__main__":
    sys.exit(main())
