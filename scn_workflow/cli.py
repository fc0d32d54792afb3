"""The command line: `scn-workflow ...`, the same commands as `flask --app web ...`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup, ScriptInfo

from scn_workflow.current import svc as _svc
from scn_workflow.domain.errors import DomainError, InvalidInput
from scn_workflow.domain.model import SYSTEM, Actor
from scn_workflow.schemas.nominations import (CheckOut, EventOut, NominationContent, NominationCreate, NominationOut,
                                              TransitionRequest, load)
from scn_workflow.jsonable import jsonable
from scn_workflow.services import audit, nominations, users
from scn_workflow.services import checks as checks_service
from scn_workflow.services import seed as seed_service
from scn_workflow.services.effects import Outcome


def _fail(err: DomainError) -> None:
    click.echo(f"error: {err.detail}", err=True)
    for v in err.violations:
        click.echo(f"  - {v.rule}: {v.message}", err=True)
    if isinstance(err, InvalidInput):
        click.echo("  " + json.dumps(err.fields, default=str), err=True)
    sys.exit(1)


def _json_arg(text: str | None, name: str):
    if text is None:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=name) from None


def _actor(username: str) -> Actor:
    return SYSTEM if username == "system" else users.get_actor(_svc(), username)


def _show(nomination, actor: Actor) -> None:
    nomination.allowed = nominations.allowed_triggers(_svc(), actor, nomination)
    click.echo(json.dumps(NominationOut().dump(nomination), indent=2, ensure_ascii=False))


db_cli = AppGroup("db", help="Database schema (Alembic migrations).")


@db_cli.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision):
    """Migrate the database up to REVISION."""
    from scn_workflow.db import migrate
    migrate.upgrade(_svc().settings.database_url, revision)
    click.echo(f"database at {migrate.current(_svc().settings.database_url)}")


@db_cli.command("downgrade")
@click.option("--revision", default="base", show_default=True)
def db_downgrade(revision):
    """Migrate the database down to REVISION (base: empty)."""
    from scn_workflow.db import migrate
    migrate.downgrade(_svc().settings.database_url, revision)
    click.echo(f"database at {migrate.current(_svc().settings.database_url) or 'base (empty)'}")


@click.command("seed")
@click.option("--demo/--no-demo", default=True, show_default=True,
              help="Also create demo users and the demo nominations of ASCN-2018 and ASCN-2024.")
def seed_cmd(demo):
    """Load member states, lead agencies and cycles (and demo data); idempotent."""
    svc = _svc()
    if demo and svc.settings.env == "production":
        raise click.UsageError("demo users are not created in production; use --no-demo")
    added = seed_service.seed(svc, demo_users=demo)
    click.echo("seeded: " + ", ".join(f"{k} +{v}" for k, v in added.items()))


users_cli = AppGroup("users", help="User accounts.")


@users_cli.command("create")
@click.option("--username", required=True)
@click.option("--password", required=True, prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--email", required=True)
@click.option("--role", required=True, type=click.Choice(["submitter", "reviewer", "operator", "admin"]))
@click.option("--member-state", default=None, help="ISO code; required for submitters.")
@click.option("--name", default=None, help="The name mails greet the person by.")
@click.option("--language", default=None, type=click.Choice(["en", "id"]),
              help="What the person reads: en (English) or id (Bahasa Indonesia); unset: the browser's language "
                   "(mails in English).")
def users_create(username, password, email, role, member_state, name, language):
    """Create a user (the first admin, for instance); the password has 12 characters or more and is not a
    common one."""
    try:
        user = users.create_user(_svc(), username=username, password=password, email=email, role=role,
                                 member_state=member_state, name=name, language=language)
    except DomainError as err:
        _fail(err)
    click.echo(f"created {user.role.value} {user.username}")


audit_cli = AppGroup("audit", help="The audit trail.")


@audit_cli.command("verify")
def audit_verify():
    """Verify every nomination's hash chain; exit 1 naming each broken one."""
    checked, broken = audit.verify(_svc())
    for reference, link in broken:
        click.echo(f"BROKEN {reference} (nomination {link.nomination_id}): event {link.seq} "
                   f"{link.event_id}: {link.reason}")
    click.echo(f"{checked} nomination chain(s) checked, {len(broken)} broken")
    if broken:
        sys.exit(1)


nominations_cli = AppGroup("nominations", help="Create, edit, move and read nominations.")
AS_OPTION = click.option("--as", "as_user", required=True, help="The username to act as ('system' for the system).")


@nominations_cli.command("create")
@AS_OPTION
@click.option("--data", required=True, help="JSON object: city_name, region, projects, ...")
def nominations_create(as_user, data):
    """Draft a nomination."""
    try:
        actor = _actor(as_user)
        nomination = nominations.create(_svc(), actor, load(NominationCreate(), _json_arg(data, "--data")))
    except DomainError as err:
        _fail(err)
    _show(nomination, actor)


@nominations_cli.command("update")
@AS_OPTION
@click.argument("nomination_id", type=int)
@click.option("--version", "version", type=int, required=True, help="The version your change is based on.")
@click.option("--data", required=True, help="JSON object of the fields to change.")
def nominations_update(as_user, nomination_id, version, data):
    """Edit a drafted nomination."""
    try:
        actor = _actor(as_user)
        changes = load(NominationContent(), _json_arg(data, "--data"), partial=True)
        nomination = nominations.update(_svc(), actor, nomination_id, version, changes)
    except DomainError as err:
        _fail(err)
    _show(nomination, actor)


@nominations_cli.command("fire")
@AS_OPTION
@click.argument("nomination_id", type=int)
@click.argument("trigger")
@click.option("--version", "version", type=int, required=True, help="The version your change is based on.")
@click.option("--comment", default=None)
@click.option("--assessment", default=None, help="JSON object: scores, recommendation, summary.")
def nominations_fire(as_user, nomination_id, trigger, version, comment, assessment):
    """Fire a workflow trigger (submit, review, accept, ...)."""
    body = {"trigger": trigger, "comment": comment}
    if assessment is not None:
        body["assessment"] = _json_arg(assessment, "--assessment")
    try:
        actor = _actor(as_user)
        request = load(TransitionRequest(), body)
        nomination = nominations.fire(_svc(), actor, nomination_id, request["trigger"], version,
                                      comment=request.get("comment"), assessment=request.get("assessment"))
    except DomainError as err:
        _fail(err)
    _show(nomination, actor)


@nominations_cli.command("show")
@AS_OPTION
@click.argument("nomination_id", type=int)
@click.option("--events", "with_events", is_flag=True, help="Print the audit trail instead.")
@click.option("--checks", "with_checks", is_flag=True, help="Print the automated checks instead.")
def nominations_show(as_user, nomination_id, with_events, with_checks):
    """Show one nomination (or its events or checks) as JSON."""
    try:
        actor = _actor(as_user)
        if with_events:
            rows = EventOut(many=True).dump(nominations.events(_svc(), actor, nomination_id))
        elif with_checks:
            rows = CheckOut(many=True).dump(nominations.checks(_svc(), actor, nomination_id))
        else:
            return _show(nominations.get(_svc(), actor, nomination_id), actor)
    except DomainError as err:
        _fail(err)
    click.echo(json.dumps(rows, indent=2, ensure_ascii=False))


@nominations_cli.command("list")
@AS_OPTION
@click.option("--state", default=None)
@click.option("--member-state", default=None)
@click.option("--cycle", default=None)
@click.option("-q", "q", default=None, help="Search city, region and member state.")
@click.option("--page", type=click.IntRange(min=1), default=1)
def nominations_list(as_user, state, member_state, cycle, q, page):
    """List the nominations you may see, as a table."""
    try:
        result = nominations.search(_svc(), _actor(as_user), state=state, member_state=member_state,
                                    cycle=cycle, q=q, page=page, per_page=50)
    except DomainError as err:
        _fail(err)
    for n in result.items:
        click.echo(f"{n.id:>6}  {n.reference:<20} {n.city_name:<24} {n.state:<12} v{n.version}")
    click.echo(f"{result.total} nomination(s); page {result.page}")


checks_cli = AppGroup("checks", help="Automated checks of submissions.")


@checks_cli.command("run")
@click.argument("event_id")
def checks_run(event_id):
    """Run the checks of the submission EVENT_ID now (what the checks worker does)."""
    outcome = checks_service.run_checks(_svc(), event_id)
    click.echo(outcome)
    if outcome == Outcome.NOT_A_SUBMISSION:
        sys.exit(1)


def _perform_published() -> int | None:
    """Embedded mode has no worker process: a command performs what it published itself (None when a
    broker's workers do)."""
    worker = current_app.extensions.get("scn_embedded_worker")
    return worker.run_once() if worker else None


outbox_cli = AppGroup("outbox", help="The transactional outbox.")


@outbox_cli.command("relay")
@click.option("--loop", is_flag=True, help="Keep relaying every SCN_SWEEP_INTERVAL_S seconds.")
def outbox_relay(loop):
    """Publish what is due in the outbox (embedded mode: perform its reactions here)."""
    import time

    from scn_workflow.services import outbox
    svc = _svc()
    while True:
        count = _perform_published()
        if count is None:
            count = outbox.publish(svc)
        click.echo(f"relayed {count} message(s); backlog {outbox.backlog(svc)}")
        if not loop:
            break
        time.sleep(svc.settings.sweep_interval_s)


failures_cli = AppGroup("failures", help="Work that exhausted its retries.")


@failures_cli.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include retried and discarded ones.")
def failures_list(show_all):
    """List recorded failures."""
    from scn_workflow.services import failures
    rows = failures.list_failures(_svc(), None if show_all else "open")
    for row in rows:
        click.echo(f"{row['id']:>5}  {row['status']:<9} {row['task']:<18} event {row['event_id']}  "
                   f"attempts {row['attempts']}  {row['failed_at']:%Y-%m-%d %H:%M:%S}  {row['error']}")
    click.echo(f"{len(rows)} failure(s)")


@failures_cli.command("retry")
@click.argument("failure_id", type=int)
@click.option("--as", "as_user", default="system", show_default=True, help="The operator acting.")
def failures_retry(failure_id, as_user):
    """Publish a failed piece of work again."""
    from scn_workflow.services import failures
    try:
        failures.retry(_svc(), failure_id, _actor(as_user))
    except DomainError as err:
        _fail(err)
    _perform_published()
    click.echo(f"failure {failure_id} retried")


@failures_cli.command("discard")
@click.argument("failure_id", type=int)
@click.option("--as", "as_user", default="system", show_default=True, help="The operator acting.")
def failures_discard(failure_id, as_user):
    """Give up on a failed piece of work, on record."""
    from scn_workflow.services import failures
    try:
        failures.discard(_svc(), failure_id, _actor(as_user))
    except DomainError as err:
        _fail(err)
    click.echo(f"failure {failure_id} discarded")


webhooks_cli = AppGroup("webhooks", help="Webhook subscriptions.")


@webhooks_cli.command("add")
@click.option("--url", required=True)
@click.option("--secret", required=True, help="Shared secret for the X-SCN-Signature HMAC.")
@click.option("--event", "events", multiple=True, required=True, help="An event name; repeat for more.")
@click.option("--as", "as_user", default="system", show_default=True)
def webhooks_add(url, secret, events, as_user):
    """Subscribe a URL to events."""
    from scn_workflow.services import webhooks
    try:
        hook_id = webhooks.subscribe(_svc(), _actor(as_user), url, secret, list(events))
    except DomainError as err:
        _fail(err)
    click.echo(f"webhook {hook_id} subscribed to {', '.join(events)}")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def serve(host, port):
    """Serve the app (development server; use gunicorn web:app in production)."""
    from scn_workflow import logs
    logs.configure()
    worker = current_app.extensions.get("scn_embedded_worker")
    if worker is not None:
        worker.start()
    from werkzeug.serving import run_simple
    click.echo(f"serving on http://{host}:{port}/ (embedded worker: {'on' if worker else 'off, using the broker'})")
    # app.run() refuses to run under the flask CLI; run_simple is what it would call.
    run_simple(host, port, current_app._get_current_object(), threaded=True, use_reloader=False)


ops_cli = AppGroup("ops", help="Operations: queues, workers, failures, outbox.")


@ops_cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
def ops_status(as_json):
    """Print queues, workers, failures and backlog; exit 1 when something is wrong (for cron and monitoring)."""
    from scn_workflow.services import ops
    result = ops.status(_svc(), current_app.extensions["celery"])
    report = result.report
    if as_json:
        click.echo(json.dumps({"ok": result.ok, "problems": result.problems, "report": jsonable(report)}, indent=2))
    else:
        q = report["queues"]
        click.echo(f"broker: {q['broker']} ({'reachable' if q['reachable'] else 'UNREACHABLE'})")
        click.echo(f"{'queue':<16}{'depth':>8}{'oldest (s)':>12}")
        for row in q["queues"]:
            depth = "?" if row["depth"] is None else row["depth"]
            age = "-" if row["oldest_age_s"] is None else f"{row['oldest_age_s']:.1f}"
            click.echo(f"{row['name']:<16}{depth:>8}{age:>12}")
        for w in report["workers"]:
            click.echo(f"worker {w['hostname']}: {'online' if w['online'] else 'SILENT'} "
                       f"({w['silent_s']} s ago), queues {','.join(w['queues'])}, running {','.join(w['running']) or '-'}")
        o = report["outbox"]
        click.echo(f"outbox: {o['unpublished']} unpublished (oldest {o['oldest_unpublished_age_s']} s), "
                   f"{o['incomplete']} incomplete")
        click.echo(f"failures waiting: {report['failures']}")
        click.echo("nominations: " + ", ".join(f"{k} {v}" for k, v in sorted(report["nominations"].items())))
        click.echo(f"waiting too long: {len(report['waiting'])}")
        for problem in result.problems:
            click.echo(f"PROBLEM: {problem}")
        click.echo("status: OK" if result.ok else f"status: {len(result.problems)} problem(s)")
    if not result.ok:
        sys.exit(1)


attachments_cli = AppGroup("attachments", help="Stored attachment files.")


@attachments_cli.command("sweep")
@click.option("--grace", "grace_s", type=click.IntRange(min=0), default=None,
              help="Seconds a file no attachment names is left alone (default: an hour).")
def attachments_sweep(grace_s):
    """Remove stored files that no attachment names (what a crash between storing a file and
    recording it left behind), once they are older than the grace period."""
    from scn_workflow.services import attachments
    svc = _svc()
    removed = attachments.sweep_orphans(svc) if grace_s is None else attachments.sweep_orphans(svc, grace_s)
    click.echo(f"removed {removed} stored file(s) that no attachment names")


COMMANDS = (db_cli, seed_cmd, users_cli, audit_cli, nominations_cli, checks_cli, outbox_cli, failures_cli,
            webhooks_cli, ops_cli, attachments_cli, serve)


def register(app: Flask) -> None:
    for command in COMMANDS:
        app.cli.add_command(command)


def main() -> None:
    """Entry point of the `scn-workflow` console script. Flask loads the factory from app.py, as
    `flask --app` would: this module does not import app.py, which imports it. (The file's path
    rather than a module name: Flask reads a name relative to the working directory.)"""
    app = ScriptInfo(app_import_path=f"{Path(__file__).with_name('app.py')}:create_app", load_dotenv_defaults=False)
    FlaskGroup(add_default_commands=False, load_dotenv=False,
               help="scn-workflow: the ASCN nomination workflow.")(prog_name="scn-workflow", obj=app)
